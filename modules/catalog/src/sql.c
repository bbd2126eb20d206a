/* The catalog's SQL, in the dialect-neutral subset both SQLite and PostgreSQL accept. */
#include "store.h"

#include <stddef.h>

#define PRODUCT_COLUMNS                                                                            \
    "products.id, products.sku, products.name, products.description, products.price_amount, "      \
    "products.currency, products.category_id, products.created_at, products.updated_at, "          \
    "products.version "

#define FROM_PRODUCTS "SELECT " PRODUCT_COLUMNS "FROM products "
/* A tag filter drives from the tag's index, which is ordered by product id. */
#define FROM_TAGGED                                                                                \
    "SELECT " PRODUCT_COLUMNS "FROM product_tags "                                                 \
    "JOIN products ON products.id = product_tags.product_id "
#define BY_CATEGORY "products.category_id = ? AND "
#define BY_TAG      "product_tags.tag = ? AND "
#define BY_NAME     "products.name >= ? AND products.name < ? AND "
/*
 * With a name range alone the planner would rather walk ids in order than sort, which
 * reads every product after the cursor; the unary plus keeps it on the name index, so
 * the cost follows the number of matches instead of the size of the table.
 */
#define PAGE_PLAIN  "products.id > ? ORDER BY products.id LIMIT ?"
#define PAGE_NAME   "+products.id > ? ORDER BY products.id LIMIT ?"
#define PAGE_TAGGED "product_tags.product_id > ? ORDER BY product_tags.product_id LIMIT ?"

const char *const catalog__sql_list[CATALOG_FILTER_COMBINATIONS] = {
    [0] = FROM_PRODUCTS "WHERE " PAGE_PLAIN,
    [CATALOG_FILTER_CATEGORY] = FROM_PRODUCTS "WHERE " BY_CATEGORY PAGE_PLAIN,
    [CATALOG_FILTER_TAG] = FROM_TAGGED "WHERE " BY_TAG PAGE_TAGGED,
    [CATALOG_FILTER_CATEGORY | CATALOG_FILTER_TAG] =
        FROM_TAGGED "WHERE " BY_CATEGORY BY_TAG PAGE_TAGGED,
    [CATALOG_FILTER_NAME] = FROM_PRODUCTS "WHERE " BY_NAME PAGE_NAME,
    [CATALOG_FILTER_CATEGORY | CATALOG_FILTER_NAME] =
        FROM_PRODUCTS "WHERE " BY_CATEGORY BY_NAME PAGE_PLAIN,
    [CATALOG_FILTER_TAG | CATALOG_FILTER_NAME] = FROM_TAGGED "WHERE " BY_TAG BY_NAME PAGE_TAGGED,
    [CATALOG_FILTER_CATEGORY | CATALOG_FILTER_TAG | CATALOG_FILTER_NAME] =
        FROM_TAGGED "WHERE " BY_CATEGORY BY_TAG BY_NAME PAGE_TAGGED,
};

const char catalog__sql_get[] = FROM_PRODUCTS "WHERE products.id = ?";

const char catalog__sql_get_by_sku[] = FROM_PRODUCTS "WHERE products.sku = ?";

const char catalog__sql_tags[] = "SELECT tag FROM product_tags WHERE product_id = ? ORDER BY tag";

const char catalog__sql_category_exists[] = "SELECT 1 FROM categories WHERE id = ?";

const char catalog__sql_categories[] =
    "SELECT categories.id, categories.name, "
    "(SELECT count(*) FROM products WHERE products.category_id = categories.id) "
    "FROM categories ORDER BY categories.id";

const char catalog__sql_insert_product[] =
    "INSERT INTO products (sku, name, description, price_amount, currency, category_id, "
    "created_at, updated_at, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1) RETURNING id";

const char catalog__sql_update_product[] =
    "UPDATE products SET name = ?, description = ?, price_amount = ?, currency = ?, "
    "category_id = ?, updated_at = ?, version = version + 1 "
    "WHERE id = ? AND version = ? RETURNING version";

const char catalog__sql_insert_tag[] = "INSERT INTO product_tags (product_id, tag) VALUES (?, ?)";

const char catalog__sql_delete_tags[] = "DELETE FROM product_tags WHERE product_id = ?";

const char *const catalog__sql_reads[] = {
    catalog__sql_get,        catalog__sql_get_by_sku,
    catalog__sql_tags,       catalog__sql_category_exists,
    catalog__sql_categories, NULL,
};
