/*
 * Private to the catalog: every SQL statement the implementation runs.
 *
 * They live in one place rather than inline so that test_catalog_query_plans.c checks
 * the very statements in use. Each has static storage because the statement cache of
 * cleave/db.h is keyed by the address of the SQL text.
 */
#ifndef CATALOG_SRC_STORE_H
#define CATALOG_SRC_STORE_H

/* The filters of list_products, as bits of an index into catalog__sql_list. */
enum {
    CATALOG_FILTER_CATEGORY = 1,
    CATALOG_FILTER_TAG = 2,
    CATALOG_FILTER_NAME = 4,
    CATALOG_FILTER_COMBINATIONS = 8
};

/* The columns of a product row, in the order every product query returns them. */
enum {
    CATALOG_COL_ID,
    CATALOG_COL_SKU,
    CATALOG_COL_NAME,
    CATALOG_COL_DESCRIPTION,
    CATALOG_COL_PRICE_AMOUNT,
    CATALOG_COL_CURRENCY,
    CATALOG_COL_CATEGORY,
    CATALOG_COL_CREATED_AT,
    CATALOG_COL_UPDATED_AT,
    CATALOG_COL_VERSION
};

/*
 * list_products, one statement per combination of filters (an OR of CATALOG_FILTER_*).
 * Parameters in this order, each present only with its filter: category, tag,
 * name low bound, name high bound; then always the last id seen (0 for the first page)
 * and the row limit. Rows: product columns, ascending id.
 */
extern const char *const catalog__sql_list[CATALOG_FILTER_COMBINATIONS];

/* (id) -> product columns. */
extern const char catalog__sql_get[];
/* (sku) -> product columns, through the sku's unique index. */
extern const char catalog__sql_get_by_sku[];
/* (product id) -> tag, sorted. */
extern const char catalog__sql_tags[];
/* (category id) -> one row when the category exists. */
extern const char catalog__sql_category_exists[];
/* () -> id, name, product count; ascending id. */
extern const char catalog__sql_categories[];

/* (sku, name, description, amount, currency, category, created_at, updated_at) -> id. */
extern const char catalog__sql_insert_product[];
/*
 * (name, description, amount, currency, category, updated_at, id, version) -> the new
 * version; no row when the product is not at that version.
 */
extern const char catalog__sql_update_product[];
/* (product id, tag) */
extern const char catalog__sql_insert_tag[];
/* (product id) */
extern const char catalog__sql_delete_tags[];

/*
 * The read statements besides catalog__sql_list, NULL-terminated: with the list
 * statements, what the query plan test checks.
 */
extern const char *const catalog__sql_reads[];

#endif /* CATALOG_SRC_STORE_H */
