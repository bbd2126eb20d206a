/*
 * catalog/catalog.h - the catalog module's public interface: products and categories.
 *
 * This header is all that other modules and the host may use of the catalog. It holds
 * the types and the operations table, each declared once; the local binding, the
 * remote binding and the REST gateway are all built from these declarations.
 *
 * Money is integer minor units plus an ISO 4217 currency code (cl_money).
 */
#ifndef CATALOG_CATALOG_H
#define CATALOG_CATALOG_H

#include "cleave/module.h"

#define CATALOG_OPS_VERSION   3

/* Largest page of list_products; larger limits are CL_INVALID. */
#define CATALOG_MAX_LIMIT     100
#define CATALOG_DEFAULT_LIMIT 20

/* A product as stored. version starts at 1 and grows by one with every update. */
#define CATALOG_PRODUCT(X, T)                                                                      \
    X(T, I64, id, _)                                                                               \
    X(T, STR, sku, _)                                                                              \
    X(T, STR, name, _)                                                                             \
    X(T, STR, description, _)                                                                      \
    X(T, OBJ, price, cl_money)                                                                     \
    X(T, STR, category, _)                                                                         \
    X(T, STRS, tags, _)                                                                            \
    X(T, STR, created_at, _)                                                                       \
    X(T, STR, updated_at, _)                                                                       \
    X(T, I64, version, _)
CL_TYPE_DECLARE(catalog_product, CATALOG_PRODUCT)

/*
 * A new product. sku: 1-64 of [A-Z0-9-], unique; name: 1-200 bytes; description: up to
 * 4000 bytes (may be absent); price.amount >= 0; currency: three capital letters;
 * category: an existing category id; tags: up to 20, each 1-32 of [a-z0-9-].
 */
#define CATALOG_PRODUCT_INPUT(X, T)                                                                \
    X(T, STR, sku, _)                                                                              \
    X(T, STR, name, _)                                                                             \
    X(T, STR, description, _)                                                                      \
    X(T, OBJ, price, cl_money)                                                                     \
    X(T, STR, category, _)                                                                         \
    X(T, STRS, tags, _)
CL_TYPE_DECLARE(catalog_product_input, CATALOG_PRODUCT_INPUT)

/*
 * The fields an update may change; an absent field (NULL, unset) is left as it is.
 * clear (version 3) names the fields to remove, as null does in a JSON merge patch
 * (RFC 7396): only "description" can be removed, the others being required, and a field
 * cannot be both set and cleared. An update that changes nothing keeps the version.
 */
#define CATALOG_PRODUCT_CHANGES(X, T)                                                              \
    X(T, STR, name, _)                                                                             \
    X(T, STR, description, _)                                                                      \
    X(T, OPT_OBJ, price, cl_money)                                                                 \
    X(T, STR, category, _)                                                                         \
    X(T, STRS, tags, _)                                                                            \
    X(T, STRS, clear, _)
CL_TYPE_DECLARE(catalog_product_changes, CATALOG_PRODUCT_CHANGES)

/* An update: when expected_version is set and differs from the stored one: CL_CONFLICT. */
#define CATALOG_PRODUCT_UPDATE(X, T)                                                               \
    X(T, I64, id, _)                                                                               \
    X(T, OPT_I64, expected_version, _)                                                             \
    X(T, OBJ, changes, catalog_product_changes)
CL_TYPE_DECLARE(catalog_product_update, CATALOG_PRODUCT_UPDATE)

#define CATALOG_PRODUCT_REF(X, T) X(T, I64, id, _)
CL_TYPE_DECLARE(catalog_product_ref, CATALOG_PRODUCT_REF)

/*
 * A page request. Filters (each optional, combined with AND): category id, tag, name
 * prefix (case-sensitive); filters must be valid UTF-8 (CL_INVALID otherwise). cursor: the
 * next_cursor of the previous page, opaque. limit: 1..CATALOG_MAX_LIMIT, 0 means
 * CATALOG_DEFAULT_LIMIT. Products come in ascending id order.
 */
#define CATALOG_PRODUCT_QUERY(X, T)                                                                \
    X(T, STR, category, _)                                                                         \
    X(T, STR, tag, _)                                                                              \
    X(T, STR, name_prefix, _)                                                                      \
    X(T, STR, cursor, _)                                                                           \
    X(T, I64, limit, _)
CL_TYPE_DECLARE(catalog_product_query, CATALOG_PRODUCT_QUERY)

/* A page; next_cursor is NULL on the last page. */
#define CATALOG_PRODUCT_PAGE(X, T)                                                                 \
    X(T, OBJS, items, catalog_product)                                                             \
    X(T, STR, next_cursor, _)
CL_TYPE_DECLARE(catalog_product_page, CATALOG_PRODUCT_PAGE)

#define CATALOG_CATEGORY(X, T)                                                                     \
    X(T, STR, id, _)                                                                               \
    X(T, STR, name, _)                                                                             \
    X(T, I64, product_count, _)
CL_TYPE_DECLARE(catalog_category, CATALOG_CATEGORY)

#define CATALOG_CATEGORY_LIST(X, T) X(T, OBJS, items, catalog_category)
CL_TYPE_DECLARE(catalog_category_list, CATALOG_CATEGORY_LIST)

/* Products by SKU (version 2): 1..CATALOG_MAX_SKUS SKUs, answered in the order asked. */
#define CATALOG_MAX_SKUS        100
#define CATALOG_SKU_QUERY(X, T) X(T, STRS, skus, _)
CL_TYPE_DECLARE(catalog_sku_query, CATALOG_SKU_QUERY)

#define CATALOG_PRODUCT_LIST(X, T) X(T, OBJS, items, catalog_product)
CL_TYPE_DECLARE(catalog_product_list, CATALOG_PRODUCT_LIST)

/*
 * The operations. Statuses each may return besides CL_OK:
 *   create_product   CL_INVALID (field named), CL_CONFLICT (sku taken)
 *   update_product   CL_INVALID (changes.*, changes.clear), CL_NOT_FOUND,
 *                    CL_CONFLICT (version or sku); nothing changed: the product as it is
 *   get_product      CL_NOT_FOUND
 *   list_products    CL_INVALID (cursor, limit)
 *   list_categories  -
 *   get_products_by_sku  CL_INVALID (skus: none or more than CATALOG_MAX_SKUS),
 *                    CL_NOT_FOUND (skus[i]: no product has that SKU)
 * and any of them CL_UNAVAILABLE, CL_DEADLINE_EXCEEDED, CL_INTERNAL.
 */
#define CATALOG_OPERATIONS(X, M)                                                                   \
    X(M, create_product, catalog_product_input, catalog_product, CL_OP_WRITE)                      \
    X(M, update_product, catalog_product_update, catalog_product, CL_OP_WRITE)                     \
    X(M, get_product, catalog_product_ref, catalog_product,                                        \
      CL_OP_READ | CL_OP_STALE_OK | CL_OP_CACHED)                                                  \
    X(M, list_products, catalog_product_query, catalog_product_page, CL_OP_READ | CL_OP_STALE_OK)  \
    X(M, list_categories, cl_empty, catalog_category_list,                                         \
      CL_OP_READ | CL_OP_STALE_OK | CL_OP_CACHED)                                                  \
    X(M, get_products_by_sku, catalog_sku_query, catalog_product_list, CL_OP_READ)
CL_OPS_DECLARE(catalog, CATALOG_OPERATIONS)

/*
 * The events it publishes (cleave/bus.h), keyed "product:<id>", each carrying the product
 * as stored after the write:
 *   catalog.product_created  a new product
 *   catalog.product_updated  a product that changed (an update that changes nothing
 *                            publishes nothing)
 */
#define CATALOG_EVENTS(X, M)                                                                       \
    X(M, product_created, 1, catalog_product)                                                      \
    X(M, product_updated, 1, catalog_product)
CL_EVENTS_DECLARE(catalog, CATALOG_EVENTS)

/* The catalog's interface side: REST routes, demo seed, operation list. */
extern const cl_module_api catalog_api;
/* The local binding: the implementation, when the catalog is compiled in. */
extern const cl_module catalog_module;

#endif /* CATALOG_CATALOG_H */
