/*
 * The catalog's local binding: its operations over its own database.
 *
 * Every operation takes one pooled connection for its whole length; writes run in one
 * transaction, so a product and its tags change together or not at all. Outputs are
 * built in locals and handed over only on CL_OK.
 */
#include "catalog/catalog.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleave/bus.h"
#include "internal.h"
#include "store.h"

/* An instance of the catalog (cleave/module.h): everything it runs on. */
struct catalog_self {
    cl_db *db; /* borrowed from the host for the instance's life */
};

CL_LOCAL_DEFINE(catalog, CATALOG_OPERATIONS, CATALOG_OPS_VERSION)

/* A typed publish function of catalog.h's events, all of which carry the product. */
typedef cl_status (*publish_fn)(cl_db_conn *conn, const cl_ctx *ctx, const char *key,
                                const catalog_product *payload, cl_error *err);

static cl_status oom(cl_ctx *ctx)
{
    return cl_fail(ctx, CL_INTERNAL, NULL, "out of memory");
}

static cl_status acquire(struct catalog_self *self, cl_ctx *ctx, cl_db_conn **conn)
{
    return cl_db_acquire(self->db, ctx, conn, &ctx->err);
}

/*
 * Publishes an event for p with publish in the transaction on conn (ADR 0012), so the event
 * exists exactly when the write does. Keyed by product id: a product's events stay in order.
 */
static cl_status publish_product(cl_ctx *ctx, cl_db_conn *conn, publish_fn publish,
                                 const catalog_product *p)
{
    char key[32];

    snprintf(key, sizeof(key), "product:%" PRId64, p->id);
    return publish(conn, ctx, key, p, &ctx->err);
}

/*
 * For the read operations: a replica connection when the catalog has a replica and the
 * caller did not ask to read its own writes (ctx->read_primary), the primary otherwise.
 */
static cl_status acquire_read(struct catalog_self *self, cl_ctx *ctx, cl_db_conn **conn)
{
    return cl_db_acquire_read(self->db, ctx, conn, &ctx->err);
}

/*
 * Publishes the event for *p in the open transaction, commits, and on success moves *p
 * into *resp: the event exists exactly when the write does.
 */
static cl_status commit_with_event(cl_ctx *ctx, cl_db_conn *conn, publish_fn publish,
                                   catalog_product *p, catalog_product *resp)
{
    cl_status rc = publish_product(ctx, conn, publish, p);

    if (rc == CL_OK) {
        rc = cl_db_commit(conn, &ctx->err);
    }
    if (rc == CL_OK) {
        *resp = *p;
        memset(p, 0, sizeof(*p));
    }
    return rc;
}

/* Copies a text column; false only when out of memory (SQL NULL gives NULL). */
static bool dup_column(cl_stmt *st, int col, char **out)
{
    const char *s = cl_stmt_text(st, col);

    *out = cl_strdup(s);
    return s == NULL || *out != NULL;
}

/* Fills *p (zeroed by the caller) from the current row of a product query. */
static cl_status read_product(cl_ctx *ctx, cl_stmt *st, catalog_product *p)
{
    p->id = cl_stmt_i64(st, CATALOG_COL_ID);
    p->price.amount = cl_stmt_i64(st, CATALOG_COL_PRICE_AMOUNT);
    p->version = cl_stmt_i64(st, CATALOG_COL_VERSION);
    if (!dup_column(st, CATALOG_COL_SKU, &p->sku) || !dup_column(st, CATALOG_COL_NAME, &p->name) ||
        !dup_column(st, CATALOG_COL_DESCRIPTION, &p->description) ||
        !dup_column(st, CATALOG_COL_CURRENCY, &p->price.currency) ||
        !dup_column(st, CATALOG_COL_CATEGORY, &p->category) ||
        !dup_column(st, CATALOG_COL_CREATED_AT, &p->created_at) ||
        !dup_column(st, CATALOG_COL_UPDATED_AT, &p->updated_at)) {
        return oom(ctx);
    }
    return CL_OK;
}

/* Reads the stored tags of p, sorted, into p->tags. */
static cl_status load_tags(cl_ctx *ctx, cl_db_conn *conn, catalog_product *p)
{
    cl_stmt *st;
    bool row;
    cl_status rc;

    rc = cl_db_prepare(conn, catalog__sql_tags, &st, &ctx->err);
    if (rc != CL_OK) {
        return rc;
    }
    rc = cl_stmt_bind_i64(st, 1, p->id, &ctx->err);
    if (rc != CL_OK) {
        return rc;
    }
    /* An empty list is still a list: the product has tags, none of them. */
    p->tags.set = true;
    for (;;) {
        rc = cl_stmt_step(st, &row, &ctx->err);
        if (rc != CL_OK || !row) {
            return rc;
        }
        if (cl_strs_push(&p->tags, cl_stmt_text(st, 0)) != 0) {
            return oom(ctx);
        }
    }
}

/*
 * Reads the one product row that st selects (with its tags) into *p; *found says whether
 * there was one. Steps to the end, so that no statement is left running on conn.
 */
static cl_status read_one(cl_ctx *ctx, cl_db_conn *conn, cl_stmt *st, catalog_product *p,
                          bool *found)
{
    bool row = false;
    cl_status rc = cl_stmt_step(st, &row, &ctx->err);

    *found = rc == CL_OK && row;
    if (*found) {
        rc = read_product(ctx, st, p);
    }
    while (rc == CL_OK && row) {
        rc = cl_stmt_step(st, &row, &ctx->err);
    }
    if (rc == CL_OK && *found) {
        rc = load_tags(ctx, conn, p);
    }
    return rc;
}

/* Reads product id (with its tags) into *p; CL_NOT_FOUND when there is none. */
static cl_status load_product(cl_ctx *ctx, cl_db_conn *conn, int64_t id, catalog_product *p)
{
    cl_stmt *st;
    bool found = false;
    cl_status rc = cl_db_prepare_bind(ctx, conn, catalog__sql_get, &st, "i", id);

    if (rc == CL_OK) {
        rc = read_one(ctx, conn, st, p, &found);
    }
    if (rc == CL_OK && !found) {
        rc = cl_fail(ctx, CL_NOT_FOUND, "id", "product %" PRId64 " does not exist", id);
    }
    return rc;
}

/* CL_OK when the category exists, CL_INVALID on field otherwise. */
static cl_status check_category(cl_ctx *ctx, cl_db_conn *conn, const char *category,
                                const char *field)
{
    cl_stmt *st;
    bool row;
    bool found;
    cl_status rc;

    rc = cl_db_prepare(conn, catalog__sql_category_exists, &st, &ctx->err);
    if (rc == CL_OK) {
        rc = cl_stmt_bind_text(st, 1, category, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, &ctx->err);
    }
    found = rc == CL_OK && row;
    while (rc == CL_OK && row) {
        rc = cl_stmt_step(st, &row, &ctx->err);
    }
    if (rc != CL_OK) {
        return rc;
    }
    if (!found) {
        return cl_fail(ctx, CL_INVALID, field, "category %s does not exist", category);
    }
    return CL_OK;
}

/* Stores tags of product id (which has none stored) and copies them into out. */
static cl_status insert_tags(cl_ctx *ctx, cl_db_conn *conn, int64_t id, const catalog__tags *tags,
                             cl_strs *out)
{
    cl_stmt *st;
    bool row;
    cl_status rc;

    out->set = true;
    for (size_t i = 0; i < tags->n; i++) {
        rc = cl_db_prepare(conn, catalog__sql_insert_tag, &st, &ctx->err);
        if (rc == CL_OK) {
            rc = cl_stmt_bind_all(st, &ctx->err, "it", id, tags->v[i]);
        }
        if (rc == CL_OK) {
            rc = cl_stmt_step(st, &row, &ctx->err);
        }
        if (rc != CL_OK) {
            return rc;
        }
        if (cl_strs_push(out, tags->v[i]) != 0) {
            return oom(ctx);
        }
    }
    return CL_OK;
}

static cl_status catalog_local_create_product(struct catalog_self *self, cl_ctx *ctx,
                                              const catalog_product_input *req,
                                              catalog_product *resp)
{
    catalog_product p = {0};
    catalog__tags tags = {0};
    cl_db_conn *conn = NULL;
    cl_stmt *st;
    bool row = false;
    char now[32];
    cl_status rc;

    rc = catalog__check_input(ctx, req, &tags);
    if (rc != CL_OK) {
        return rc;
    }
    rc = acquire(self, ctx, &conn);
    if (rc != CL_OK) {
        goto out;
    }
    rc = cl_db_begin(conn, &ctx->err);
    if (rc != CL_OK) {
        goto out;
    }
    rc = check_category(ctx, conn, req->category, "category");
    if (rc != CL_OK) {
        goto out;
    }
    cl_now_rfc3339(now);
    rc = cl_db_prepare(conn, catalog__sql_insert_product, &st, &ctx->err);
    if (rc == CL_OK) {
        rc = cl_stmt_bind_all(st, &ctx->err, "tttitttt", req->sku, req->name, req->description,
                              req->price.amount, req->price.currency, req->category, now, now);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, &ctx->err);
    }
    if (rc == CL_CONFLICT) {
        /* The category was checked above, so the only constraint left to break is sku's. */
        rc = cl_fail(ctx, CL_CONFLICT, "sku", "sku %s is already taken", req->sku);
        goto out;
    }
    if (rc == CL_OK && !row) {
        rc = cl_fail(ctx, CL_INTERNAL, NULL, "insert returned no id");
    }
    if (rc != CL_OK) {
        goto out;
    }
    p.id = cl_stmt_i64(st, 0);
    while (rc == CL_OK && row) {
        rc = cl_stmt_step(st, &row, &ctx->err);
    }
    if (rc != CL_OK) {
        goto out;
    }
    rc = insert_tags(ctx, conn, p.id, &tags, &p.tags);
    if (rc != CL_OK) {
        goto out;
    }
    p.price.amount = req->price.amount;
    p.version = 1;
    p.sku = cl_strdup(req->sku);
    p.name = cl_strdup(req->name);
    p.description = cl_strdup(req->description);
    p.price.currency = cl_strdup(req->price.currency);
    p.category = cl_strdup(req->category);
    p.created_at = cl_strdup(now);
    p.updated_at = cl_strdup(now);
    if (p.sku == NULL || p.name == NULL || (req->description != NULL && p.description == NULL) ||
        p.price.currency == NULL || p.category == NULL || p.created_at == NULL ||
        p.updated_at == NULL) {
        rc = oom(ctx);
        goto out;
    }
    rc = commit_with_event(ctx, conn, catalog_publish_product_created, &p, resp);
out:
    cl_db_release(conn);
    cl_schema_free(&catalog_product_type, &p);
    catalog__tags_free(&tags);
    return rc;
}

/* Replaces *field with a copy of value when value is set; false when out of memory. */
static bool replace_text(char **field, const char *value)
{
    char *copy;

    if (value == NULL) {
        return true;
    }
    copy = cl_strdup(value);
    if (copy == NULL) {
        return false;
    }
    free(*field);
    *field = copy;
    return true;
}

/* Writes the merged product p (its stored version still in p->version) back. */
static cl_status store_update(cl_ctx *ctx, cl_db_conn *conn, catalog_product *p)
{
    cl_stmt *st;
    bool row = false;
    int64_t version = 0;
    cl_status rc;

    rc = cl_db_prepare(conn, catalog__sql_update_product, &st, &ctx->err);
    if (rc == CL_OK) {
        rc = cl_stmt_bind_all(st, &ctx->err, "ttitttii", p->name, p->description, p->price.amount,
                              p->price.currency, p->category, p->updated_at, p->id, p->version);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, &ctx->err);
    }
    if (rc == CL_OK && row) {
        version = cl_stmt_i64(st, 0);
    }
    while (rc == CL_OK && row) {
        rc = cl_stmt_step(st, &row, &ctx->err);
    }
    if (rc != CL_OK) {
        return rc;
    }
    /*
     * No row: someone changed the product between our read and this write, which a
     * database that does not serialise the transaction (PostgreSQL's read committed)
     * allows. It is the same conflict as a stale expected_version.
     */
    if (version == 0) {
        return cl_fail(ctx, CL_CONFLICT, "version", "product %" PRId64 " was changed concurrently",
                       p->id);
    }
    p->version = version;
    return CL_OK;
}

static cl_status replace_tags(cl_ctx *ctx, cl_db_conn *conn, catalog_product *p,
                              const catalog__tags *tags)
{
    catalog_product old = {0};
    cl_stmt *st;
    bool row;
    cl_status rc;

    rc = cl_db_prepare(conn, catalog__sql_delete_tags, &st, &ctx->err);
    if (rc == CL_OK) {
        rc = cl_stmt_bind_i64(st, 1, p->id, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, &ctx->err);
    }
    if (rc != CL_OK) {
        return rc;
    }
    /* The old list is freed through the schema, which allocated it. */
    old.tags = p->tags;
    memset(&p->tags, 0, sizeof(p->tags));
    cl_schema_free(&catalog_product_type, &old);
    return insert_tags(ctx, conn, p->id, tags, &p->tags);
}

/* True when a and b are both absent or hold the same text. */
static bool same_text(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* True when the sorted, duplicate-free tags are exactly p's (stored in tag order). */
static bool same_tags(const catalog_product *p, const catalog__tags *tags)
{
    if (p->tags.n != tags->n) {
        return false;
    }
    for (size_t i = 0; i < tags->n; i++) {
        if (strcmp(p->tags.v[i], tags->v[i]) != 0) {
            return false;
        }
    }
    return true;
}

/*
 * True when applying ch (its tags normalised into tags) to p would change something.
 * A merge patch that restates what is stored is not an update: version, updated_at
 * and the product_updated event stay as they are.
 */
static bool changes_anything(const catalog_product *p, const catalog_product_changes *ch,
                             const catalog__tags *tags)
{
    return (ch->name != NULL && !same_text(ch->name, p->name)) ||
           (ch->description != NULL && !same_text(ch->description, p->description)) ||
           (ch->clear.n > 0 && p->description != NULL) ||
           (ch->category != NULL && !same_text(ch->category, p->category)) ||
           (ch->price != NULL && (ch->price->amount != p->price.amount ||
                                  !same_text(ch->price->currency, p->price.currency))) ||
           (ch->tags.set && !same_tags(p, tags));
}

static cl_status catalog_local_update_product(struct catalog_self *self, cl_ctx *ctx,
                                              const catalog_product_update *req,
                                              catalog_product *resp)
{
    const catalog_product_changes *ch = &req->changes;
    catalog_product p = {0};
    catalog__tags tags = {0};
    cl_db_conn *conn = NULL;
    char now[32];
    cl_status rc;

    rc = catalog__check_changes(ctx, ch, &tags);
    if (rc != CL_OK) {
        return rc;
    }
    rc = acquire(self, ctx, &conn);
    if (rc != CL_OK) {
        goto out;
    }
    rc = cl_db_begin(conn, &ctx->err);
    if (rc != CL_OK) {
        goto out;
    }
    rc = load_product(ctx, conn, req->id, &p);
    if (rc != CL_OK) {
        goto out;
    }
    if (req->expected_version.set && req->expected_version.v != p.version) {
        rc = cl_fail(ctx, CL_CONFLICT, "expected_version",
                     "product %" PRId64 " is at version %" PRId64 ", not %" PRId64, p.id, p.version,
                     req->expected_version.v);
        goto out;
    }
    if (!changes_anything(&p, ch, &tags)) {
        /* Releasing the connection ends the transaction, which wrote nothing. */
        *resp = p;
        memset(&p, 0, sizeof(p));
        goto out;
    }
    if (ch->category != NULL && strcmp(ch->category, p.category) != 0) {
        rc = check_category(ctx, conn, ch->category, "changes.category");
        if (rc != CL_OK) {
            goto out;
        }
    }
    catalog__next_timestamp(p.updated_at, now);
    if (!replace_text(&p.name, ch->name) || !replace_text(&p.description, ch->description) ||
        !replace_text(&p.category, ch->category) || !replace_text(&p.updated_at, now) ||
        (ch->price != NULL && !replace_text(&p.price.currency, ch->price->currency))) {
        rc = oom(ctx);
        goto out;
    }
    if (ch->price != NULL) {
        p.price.amount = ch->price->amount;
    }
    /* check_changes allowed only description in clear. */
    if (ch->clear.n > 0) {
        free(p.description);
        p.description = NULL;
    }
    rc = store_update(ctx, conn, &p);
    if (rc != CL_OK) {
        goto out;
    }
    if (ch->tags.set) {
        rc = replace_tags(ctx, conn, &p, &tags);
        if (rc != CL_OK) {
            goto out;
        }
    }
    rc = commit_with_event(ctx, conn, catalog_publish_product_updated, &p, resp);
out:
    cl_db_release(conn);
    cl_schema_free(&catalog_product_type, &p);
    catalog__tags_free(&tags);
    return rc;
}

static cl_status catalog_local_get_product(struct catalog_self *self, cl_ctx *ctx,
                                           const catalog_product_ref *req, catalog_product *resp)
{
    catalog_product p = {0};
    cl_db_conn *conn = NULL;
    cl_status rc;

    rc = acquire_read(self, ctx, &conn);
    /*
     * A read section, not a transaction (cl_db_begin takes SQLite's write lock, which reads
     * must not queue for): on SQLite the row and its tags are one snapshot, in one read
     * transaction instead of one per statement, where an update racing between the two
     * could show the tags of the next version.
     */
    if (rc == CL_OK) {
        rc = cl_db_begin_read(conn, &ctx->err);
    }
    if (rc != CL_OK) {
        goto out;
    }
    rc = load_product(ctx, conn, req->id, &p);
    if (rc != CL_OK) {
        goto out;
    }
    *resp = p;
    memset(&p, 0, sizeof(p));
out:
    cl_db_release(conn);
    cl_schema_free(&catalog_product_type, &p);
    return rc;
}

/* Reads the product with sku (with its tags) into *p; CL_NOT_FOUND naming field. */
static cl_status load_by_sku(cl_ctx *ctx, cl_db_conn *conn, const char *sku, const char *field,
                             catalog_product *p)
{
    cl_stmt *st;
    bool found = false;
    cl_status rc = cl_db_prepare_bind(ctx, conn, catalog__sql_get_by_sku, &st, "t", sku);

    if (rc == CL_OK) {
        rc = read_one(ctx, conn, st, p, &found);
    }
    if (rc == CL_OK && !found) {
        rc = cl_fail(ctx, CL_NOT_FOUND, field, "no product has SKU %s", sku);
    }
    return rc;
}

/* The products of a list of SKUs: what a checkout prices its lines with. */
static cl_status catalog_local_get_products_by_sku(struct catalog_self *self, cl_ctx *ctx,
                                                   const catalog_sku_query *req,
                                                   catalog_product_list *resp)
{
    catalog_product_list list = {0};
    cl_db_conn *conn = NULL;
    char field[32];
    cl_status rc;

    if (req->skus.n == 0 || req->skus.n > CATALOG_MAX_SKUS) {
        return cl_fail(ctx, CL_INVALID, "skus", "skus must name 1-%d SKUs", CATALOG_MAX_SKUS);
    }
    for (size_t i = 0; i < req->skus.n; i++) {
        if (req->skus.v[i] == NULL || req->skus.v[i][0] == '\0') {
            snprintf(field, sizeof(field), "skus[%zu]", i);
            return cl_fail(ctx, CL_INVALID, field, "a SKU must not be empty");
        }
    }
    /* A read section, as in get_product: one snapshot, and no write lock. */
    rc = acquire(self, ctx, &conn);
    if (rc == CL_OK) {
        rc = cl_db_begin_read(conn, &ctx->err);
    }
    for (size_t i = 0; rc == CL_OK && i < req->skus.n; i++) {
        catalog_product *p = CL_LIST_PUSH(list.items);

        snprintf(field, sizeof(field), "skus[%zu]", i);
        rc = p != NULL ? load_by_sku(ctx, conn, req->skus.v[i], field, p) : oom(ctx);
    }
    cl_db_release(conn);
    if (rc != CL_OK) {
        cl_schema_free(&catalog_product_list_type, &list);
        return rc;
    }
    *resp = list;
    return CL_OK;
}

/* A filter given as "" filters nothing, as if absent, which is what a form sends. */
static const char *filter_value(const char *s)
{
    return s != NULL && s[0] != '\0' ? s : NULL;
}

/* Runs the page query: up to limit products into *page, *more when others follow. */
static cl_status query_page(cl_ctx *ctx, cl_db_conn *conn, const char *category, const char *tag,
                            const char *prefix, int64_t after, int64_t limit,
                            catalog_product_page *page, bool *more)
{
    char hi[CATALOG_PREFIX_MAX + 1];
    unsigned flags = 0;
    cl_stmt *st;
    bool row = false;
    int idx = 1;
    cl_status rc;

    flags |= category != NULL ? CATALOG_FILTER_CATEGORY : 0u;
    flags |= tag != NULL ? CATALOG_FILTER_TAG : 0u;
    flags |= prefix != NULL ? CATALOG_FILTER_NAME : 0u;
    rc = cl_db_prepare(conn, catalog__sql_list[flags], &st, &ctx->err);
    if (rc == CL_OK && category != NULL) {
        rc = cl_stmt_bind_text(st, idx++, category, &ctx->err);
    }
    if (rc == CL_OK && tag != NULL) {
        rc = cl_stmt_bind_text(st, idx++, tag, &ctx->err);
    }
    if (rc == CL_OK && prefix != NULL) {
        rc = cl_stmt_bind_text(st, idx++, prefix, &ctx->err);
    }
    if (rc == CL_OK && prefix != NULL) {
        /*
         * Without a successor (a prefix of 0xFF bytes) the bound is NULL and nothing
         * matches, which is right: names are UTF-8, where 0xFF never occurs.
         */
        bool bounded = catalog__prefix_successor(prefix, hi, sizeof(hi));
        rc = cl_stmt_bind_text(st, idx++, bounded ? hi : NULL, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_bind_i64(st, idx++, after, &ctx->err);
    }
    if (rc == CL_OK) {
        /* One more row than asked for tells whether a next page exists. */
        rc = cl_stmt_bind_i64(st, idx, limit + 1, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, &ctx->err);
    }
    *more = false;
    while (rc == CL_OK && row) {
        if (page->items.n == (size_t)limit) {
            *more = true;
        } else {
            catalog_product *p = CL_LIST_PUSH(page->items);

            if (p == NULL) {
                return oom(ctx);
            }
            rc = read_product(ctx, st, p);
        }
        if (rc == CL_OK) {
            rc = cl_stmt_step(st, &row, &ctx->err);
        }
    }
    return rc;
}

static cl_status catalog_local_list_products(struct catalog_self *self, cl_ctx *ctx,
                                             const catalog_product_query *req,
                                             catalog_product_page *resp)
{
    const char *category = filter_value(req->category);
    const char *tag = filter_value(req->tag);
    const char *prefix = filter_value(req->name_prefix);
    catalog_product_page page = {0};
    cl_db_conn *conn = NULL;
    int64_t limit = req->limit == 0 ? CATALOG_DEFAULT_LIMIT : req->limit;
    int64_t after = 0;
    uint64_t digest;
    bool more = false;
    cl_status rc;

    if (limit < 1 || limit > CATALOG_MAX_LIMIT) {
        return cl_fail(ctx, CL_INVALID, "limit", "limit must be 1 to %d (0 means %d)",
                       CATALOG_MAX_LIMIT, CATALOG_DEFAULT_LIMIT);
    }
    if (category != NULL && strlen(category) > CATALOG_CATEGORY_FILTER_MAX) {
        return cl_fail(ctx, CL_INVALID, "category", "category must be at most %d bytes",
                       CATALOG_CATEGORY_FILTER_MAX);
    }
    if (tag != NULL && strlen(tag) > CATALOG_TAG_MAX) {
        return cl_fail(ctx, CL_INVALID, "tag", "tag must be at most %d bytes", CATALOG_TAG_MAX);
    }
    if (prefix != NULL && strlen(prefix) > CATALOG_PREFIX_MAX) {
        return cl_fail(ctx, CL_INVALID, "name_prefix", "name_prefix must be at most %d bytes",
                       CATALOG_PREFIX_MAX);
    }
    /*
     * Stored text is valid UTF-8, and PostgreSQL refuses anything else as a parameter;
     * refusing it here keeps both databases (and JSON, which cannot carry it) alike.
     */
    if (category != NULL && !catalog__utf8_valid(category)) {
        return cl_fail(ctx, CL_INVALID, "category", "category must be valid UTF-8");
    }
    if (tag != NULL && !catalog__utf8_valid(tag)) {
        return cl_fail(ctx, CL_INVALID, "tag", "tag must be valid UTF-8");
    }
    if (prefix != NULL && !catalog__utf8_valid(prefix)) {
        return cl_fail(ctx, CL_INVALID, "name_prefix", "name_prefix must be valid UTF-8");
    }
    digest = catalog__filters_digest(category, tag, prefix);
    if (req->cursor != NULL) {
        rc = catalog__cursor_decode(ctx, req->cursor, digest, &after);
        if (rc != CL_OK) {
            return rc;
        }
    }
    rc = acquire_read(self, ctx, &conn);
    /* A read section, as in get_product: the page and its tags are one snapshot. */
    if (rc == CL_OK) {
        rc = cl_db_begin_read(conn, &ctx->err);
    }
    if (rc != CL_OK) {
        goto out;
    }
    rc = query_page(ctx, conn, category, tag, prefix, after, limit, &page, &more);
    /* One cached statement per product: at most CATALOG_MAX_LIMIT cheap index lookups. */
    for (size_t i = 0; rc == CL_OK && i < page.items.n; i++) {
        rc = load_tags(ctx, conn, &page.items.v[i]);
    }
    if (rc != CL_OK) {
        goto out;
    }
    if (more) {
        page.next_cursor = catalog__cursor_encode(page.items.v[page.items.n - 1].id, digest);
        if (page.next_cursor == NULL) {
            rc = oom(ctx);
            goto out;
        }
    }
    *resp = page;
    memset(&page, 0, sizeof(page));
out:
    cl_db_release(conn);
    cl_schema_free(&catalog_product_page_type, &page);
    return rc;
}

static cl_status catalog_local_list_categories(struct catalog_self *self, cl_ctx *ctx,
                                               const cl_empty *req, catalog_category_list *resp)
{
    catalog_category_list list = {0};
    cl_db_conn *conn = NULL;
    cl_stmt *st;
    bool row = false;
    cl_status rc;

    (void)req;
    rc = acquire_read(self, ctx, &conn);
    if (rc != CL_OK) {
        goto out;
    }
    rc = cl_db_prepare(conn, catalog__sql_categories, &st, &ctx->err);
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, &ctx->err);
    }
    while (rc == CL_OK && row) {
        catalog_category *c = CL_LIST_PUSH(list.items);

        if (c == NULL) {
            rc = oom(ctx);
            goto out;
        }
        c->product_count = cl_stmt_i64(st, 2);
        if (!dup_column(st, 0, &c->id) || !dup_column(st, 1, &c->name)) {
            rc = oom(ctx);
            goto out;
        }
        rc = cl_stmt_step(st, &row, &ctx->err);
    }
    if (rc != CL_OK) {
        goto out;
    }
    *resp = list;
    memset(&list, 0, sizeof(list));
out:
    cl_db_release(conn);
    cl_schema_free(&catalog_category_list_type, &list);
    return rc;
}

static void catalog_destroy(void *self)
{
    free(self);
}

static cl_status catalog_create(const cl_module_env *env, void **out, cl_error *err)
{
    struct catalog_self *self;

    if (env == NULL || env->db == NULL) {
        return cl_error_set(err, CL_INVALID, "db", "the catalog needs its database");
    }
    self = calloc(1, sizeof(*self));
    if (self == NULL) {
        return cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
    }
    self->db = env->db;
    *out = self;
    return CL_OK;
}

const cl_module catalog_module = {
    .abi = CL_MODULE_ABI,
    .name = "catalog",
    .version = "1.0.0",
    .ops = &catalog_local_ops,
    .create = catalog_create,
    .start = cl_module_noop_start,
    .stop = cl_module_noop_stop,
    .destroy = catalog_destroy,
    .api = &catalog_api,
};
