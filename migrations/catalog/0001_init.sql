-- The catalog's own tables: categories, products and their tags.
--
-- Every list query of the catalog is served by an index (checked by
-- modules/catalog/tests/test_catalog_query_plans.c): keyset pagination walks ids in
-- ascending order, so each filter's index ends in the product id.

CREATE TABLE categories (
    id   TEXT PRIMARY KEY, -- a slug: 'books'
    name TEXT NOT NULL
);

-- id is the rowid: new products get ascending ids, which keyset pagination relies on.
-- Text compares byte-wise (SQLite's BINARY collation), which makes name prefixes
-- case-sensitive and lets a prefix be a range on the name index.
CREATE TABLE products (
    id           INTEGER PRIMARY KEY,
    sku          TEXT NOT NULL UNIQUE,
    name         TEXT NOT NULL,
    description  TEXT,
    price_amount INTEGER NOT NULL CHECK (price_amount >= 0),
    currency     TEXT NOT NULL,
    category_id  TEXT NOT NULL REFERENCES categories (id),
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    version      INTEGER NOT NULL CHECK (version >= 1)
);

-- Filter by category, in id order; also counts products per category.
CREATE INDEX products_category_id ON products (category_id, id);
-- Filter by name prefix: a range on name.
CREATE INDEX products_name ON products (name, id);

-- The primary key serves "products with this tag, in id order".
CREATE TABLE product_tags (
    product_id INTEGER NOT NULL REFERENCES products (id),
    tag        TEXT NOT NULL,
    PRIMARY KEY (tag, product_id)
);
-- A product's tags, sorted.
CREATE INDEX product_tags_product_id ON product_tags (product_id, tag);
