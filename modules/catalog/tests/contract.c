/*
 * The catalog's contract suite (see contract.h). Every test starts from a fresh catalog
 * that holds the reference categories and no product, and goes through the operations
 * table only: no SQL, no knowledge of how a binding stores or transports anything.
 */
#include "contract.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test_module.h"

/* Generous: a remote binding may be slow under sanitizers, but a hang must still fail. */
#define MAX_IDS 256

static const cl_handle *module;

/* Two distinct reference categories, found through list_categories in each setup. */
static char cat_a[64];
static char cat_b[64];

static int setup(void **state)
{
    catalog_category_list cats = {0};
    cl_empty none = {0};
    cl_ctx ctx;

    (void)state;
    if (test_contract_setup(&module) != 0) {
        return -1;
    }
    ctx = test_contract_ctx();
    if (catalog_list_categories(module, &ctx, &none, &cats) != CL_OK || cats.items.n < 2) {
        fprintf(stderr, "setup: list_categories: %s (%zu categories)\n", ctx.err.message,
                cats.items.n);
        cl_schema_free(&catalog_category_list_type, &cats);
        return -1;
    }
    cl_strlcpy(cat_a, cats.items.v[0].id, sizeof(cat_a));
    cl_strlcpy(cat_b, cats.items.v[1].id, sizeof(cat_b));
    cl_schema_free(&catalog_category_list_type, &cats);
    return 0;
}

/* --- helpers ------------------------------------------------------------------------ */

/* A valid product input; tags is a NULL-terminated list or NULL for none. */
static catalog_product_input input(const char *sku, const char *name, const char *category,
                                   char **tags)
{
    catalog_product_input in = {0};

    in.sku = (char *)sku;
    in.name = (char *)name;
    in.description = "Holds about 300 ml.";
    in.price.amount = 1299;
    in.price.currency = "EUR";
    in.category = (char *)category;
    if (tags != NULL) {
        in.tags.v = tags;
        while (tags[in.tags.n] != NULL) {
            in.tags.n++;
        }
        in.tags.set = true;
    }
    return in;
}

/* Creates a product that must be accepted and returns its id. */
static int64_t make(const char *sku, const char *name, const char *category, char **tags)
{
    catalog_product_input in = input(sku, name, category, tags);
    catalog_product p = {0};
    cl_ctx ctx = test_contract_ctx();
    cl_status st;
    int64_t id;

    st = catalog_create_product(module, &ctx, &in, &p);
    if (st != CL_OK) {
        fail_msg("create %s: %s: %s (%s)", sku, cl_status_name(st), ctx.err.message, ctx.err.field);
    }
    id = p.id;
    cl_schema_free(&catalog_product_type, &p);
    return id;
}

/* Creates n products named "<name_base> <i>" with skus "<sku_base>-<i>". */
static void make_many(const char *sku_base, const char *name_base, int n, int64_t *ids)
{
    char sku[64];
    char name[64];

    for (int i = 0; i < n; i++) {
        snprintf(sku, sizeof(sku), "%s-%d", sku_base, i);
        snprintf(name, sizeof(name), "%s %d", name_base, i);
        ids[i] = make(sku, name, i % 2 == 0 ? cat_a : cat_b, NULL);
    }
}

static void get(int64_t id, catalog_product *out)
{
    catalog_product_ref ref = {.id = id};
    cl_ctx ctx = test_contract_ctx();

    assert_int_equal(catalog_get_product(module, &ctx, &ref, out), CL_OK);
}

static void assert_str_eq_or_null(const char *a, const char *b)
{
    if (a == NULL || b == NULL) {
        assert_ptr_equal(a, b);
    } else {
        assert_string_equal(a, b);
    }
}

static void assert_tags(const cl_strs *tags, const char *const *want)
{
    size_t n = 0;

    while (want[n] != NULL) {
        n++;
    }
    assert_int_equal(tags->n, n);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(tags->v[i], want[i]);
    }
}

static void assert_same_product(const catalog_product *a, const catalog_product *b)
{
    assert_int_equal(a->id, b->id);
    assert_string_equal(a->sku, b->sku);
    assert_string_equal(a->name, b->name);
    assert_str_eq_or_null(a->description, b->description);
    assert_int_equal(a->price.amount, b->price.amount);
    assert_string_equal(a->price.currency, b->price.currency);
    assert_string_equal(a->category, b->category);
    assert_int_equal(a->tags.n, b->tags.n);
    for (size_t i = 0; i < a->tags.n; i++) {
        assert_string_equal(a->tags.v[i], b->tags.v[i]);
    }
    assert_string_equal(a->created_at, b->created_at);
    assert_string_equal(a->updated_at, b->updated_at);
    assert_int_equal(a->version, b->version);
}

/* RFC 3339 UTC with milliseconds: "2026-01-02T03:04:05.678Z". */
static void assert_timestamp(const char *ts)
{
    assert_non_null(ts);
    assert_int_equal(strlen(ts), 24);
    assert_int_equal(ts[4], '-');
    assert_int_equal(ts[10], 'T');
    assert_int_equal(ts[19], '.');
    assert_int_equal(ts[23], 'Z');
}

/* Expects CL_INVALID naming field from create_product, and nothing created. */
static void expect_create_invalid(const catalog_product_input *in, const char *field,
                                  const char *label)
{
    catalog_product p = {0};
    cl_ctx ctx = test_contract_ctx();
    cl_status st;

    st = catalog_create_product(module, &ctx, in, &p);
    if (st != CL_INVALID || strcmp(ctx.err.field, field) != 0) {
        fail_msg("%s: want invalid on %s, got %s on \"%s\" (%s)", label, field, cl_status_name(st),
                 ctx.err.field, ctx.err.message);
    }
    /* Outputs are written only on success. */
    assert_null(p.sku);
    assert_int_equal(p.id, 0);
}

/*
 * Pages through a listing with the given filters and limit, checking each page, and
 * returns the ids in *ids (at most MAX_IDS). Fails on overlap, gaps in order, a page
 * larger than limit, or a next_cursor on the last page.
 */
static size_t list_all(const char *category, const char *tag, const char *prefix, int64_t limit,
                       int64_t *ids)
{
    char *cursor = NULL;
    size_t n = 0;
    int pages = 0;

    for (;;) {
        catalog_product_query q = {0};
        catalog_product_page page = {0};
        cl_ctx ctx = test_contract_ctx();
        cl_status st;

        q.category = (char *)category;
        q.tag = (char *)tag;
        q.name_prefix = (char *)prefix;
        q.limit = limit;
        q.cursor = cursor;
        st = catalog_list_products(module, &ctx, &q, &page);
        if (st != CL_OK) {
            fail_msg("list: %s: %s (%s)", cl_status_name(st), ctx.err.message, ctx.err.field);
        }
        assert_true(page.items.n <= (size_t)(limit == 0 ? CATALOG_DEFAULT_LIMIT : limit));
        for (size_t i = 0; i < page.items.n; i++) {
            const catalog_product *p = &page.items.v[i];

            /* Ascending across pages: nothing repeated, nothing out of order. */
            assert_true(n == 0 || p->id > ids[n - 1]);
            assert_true(n < MAX_IDS);
            ids[n++] = p->id;
            if (category != NULL) {
                assert_string_equal(p->category, category);
            }
            if (prefix != NULL) {
                assert_memory_equal(p->name, prefix, strlen(prefix));
            }
            for (size_t t = 1; t < p->tags.n; t++) {
                assert_true(strcmp(p->tags.v[t - 1], p->tags.v[t]) < 0);
            }
        }
        free(cursor);
        cursor = cl_strdup(page.next_cursor);
        /* A page that says more follow is full. */
        if (cursor != NULL) {
            assert_int_equal(page.items.n, limit == 0 ? CATALOG_DEFAULT_LIMIT : limit);
        }
        cl_schema_free(&catalog_product_page_type, &page);
        pages++;
        assert_true(pages <= MAX_IDS + 1);
        if (cursor == NULL) {
            return n;
        }
    }
}

static void expect_ids(const char *category, const char *tag, const char *prefix, int64_t limit,
                       const int64_t *want, size_t nwant)
{
    int64_t got[MAX_IDS] = {0};
    size_t n = list_all(category, tag, prefix, limit, got);

    if (n != nwant) {
        fail_msg("category=%s tag=%s prefix=%s: %zu products, want %zu", category ? category : "-",
                 tag ? tag : "-", prefix ? prefix : "-", n, nwant);
    }
    for (size_t i = 0; i < n && i < nwant; i++) {
        assert_int_equal(got[i], want[i]);
    }
}

/* Lists one page; returns its status and leaves ctx's error in *err. */
static cl_status list_page(const catalog_product_query *q, catalog_product_page *page,
                           cl_error *err)
{
    cl_ctx ctx = test_contract_ctx();
    cl_status st = catalog_list_products(module, &ctx, q, page);

    *err = ctx.err;
    return st;
}

/* --- create and get ----------------------------------------------------------------- */

static void test_create_then_get_round_trips(void **state)
{
    char *tags[] = {"sale", "blue", NULL};
    catalog_product_input in = input("MUG-001", "Blue Mug", cat_a, tags);
    catalog_product made = {0};
    catalog_product got = {0};
    cl_ctx ctx = test_contract_ctx();

    (void)state;
    assert_int_equal(catalog_create_product(module, &ctx, &in, &made), CL_OK);
    assert_true(made.id > 0);
    assert_string_equal(made.sku, "MUG-001");
    assert_string_equal(made.name, "Blue Mug");
    assert_string_equal(made.description, "Holds about 300 ml.");
    assert_int_equal(made.price.amount, 1299);
    assert_string_equal(made.price.currency, "EUR");
    assert_string_equal(made.category, cat_a);
    assert_tags(&made.tags, (const char *const[]){"blue", "sale", NULL});
    assert_int_equal(made.version, 1);
    assert_timestamp(made.created_at);
    assert_string_equal(made.created_at, made.updated_at);

    get(made.id, &got);
    assert_same_product(&made, &got);
    cl_schema_free(&catalog_product_type, &made);
    cl_schema_free(&catalog_product_type, &got);
}

static void test_create_accepts_the_bounds(void **state)
{
    char sku[65];
    char name[201];
    char description[4001];
    char tag32[33];
    char tagbuf[20][8];
    char *tags[21];
    catalog_product_input in;
    catalog_product made = {0};
    catalog_product got = {0};
    cl_ctx ctx = test_contract_ctx();

    (void)state;
    memset(sku, 'Z', 64);
    sku[64] = '\0';
    memset(name, 'n', 200);
    name[200] = '\0';
    memset(description, 'd', 4000);
    description[4000] = '\0';
    memset(tag32, 'x', 32);
    tag32[32] = '\0';
    for (int i = 0; i < 19; i++) {
        snprintf(tagbuf[i], sizeof(tagbuf[i]), "t-%02d", i);
        tags[i] = tagbuf[i];
    }
    tags[19] = tag32;
    tags[20] = NULL;
    in = input(sku, name, cat_b, tags);
    in.description = description;
    in.price.amount = 0;
    assert_int_equal(catalog_create_product(module, &ctx, &in, &made), CL_OK);
    assert_int_equal(strlen(made.sku), 64);
    assert_int_equal(strlen(made.name), 200);
    assert_int_equal(strlen(made.description), 4000);
    assert_int_equal(made.price.amount, 0);
    assert_int_equal(made.tags.n, 20);
    get(made.id, &got);
    assert_same_product(&made, &got);
    cl_schema_free(&catalog_product_type, &made);
    cl_schema_free(&catalog_product_type, &got);

    /* No description and no tags at all. */
    in = input("PLAIN-1", "Plain", cat_a, NULL);
    in.description = NULL;
    assert_int_equal(catalog_create_product(module, &ctx, &in, &made), CL_OK);
    assert_null(made.description);
    assert_int_equal(made.tags.n, 0);
    get(made.id, &got);
    assert_same_product(&made, &got);
    cl_schema_free(&catalog_product_type, &made);
    cl_schema_free(&catalog_product_type, &got);
}

static void test_create_sorts_tags_and_removes_duplicates(void **state)
{
    char *tags[] = {"zeta", "alpha", "zeta", "mid-1", "alpha", NULL};
    int64_t id;
    catalog_product got = {0};

    (void)state;
    id = make("DUP-TAGS", "Tagged", cat_a, tags);
    get(id, &got);
    assert_tags(&got.tags, (const char *const[]){"alpha", "mid-1", "zeta", NULL});
    cl_schema_free(&catalog_product_type, &got);
}

enum {
    BAD_SKU_MISSING,
    BAD_SKU_EMPTY,
    BAD_SKU_LOWERCASE,
    BAD_SKU_SPACE,
    BAD_SKU_TOO_LONG,
    BAD_NAME_MISSING,
    BAD_NAME_EMPTY,
    BAD_NAME_TOO_LONG,
    BAD_DESCRIPTION_TOO_LONG,
    BAD_AMOUNT_NEGATIVE,
    BAD_CURRENCY_MISSING,
    BAD_CURRENCY_LOWERCASE,
    BAD_CURRENCY_SHORT,
    BAD_CURRENCY_LONG,
    BAD_CURRENCY_DIGIT,
    BAD_CATEGORY_MISSING,
    BAD_CATEGORY_UNKNOWN,
    BAD_TAG_EMPTY,
    BAD_TAG_UPPERCASE,
    BAD_TAG_TOO_LONG,
    BAD_TAG_SPACE,
    BAD_TOO_MANY_TAGS,
    BAD_CASES
};

static const char *const bad_fields[BAD_CASES] = {
    [BAD_SKU_MISSING] = "sku",
    [BAD_SKU_EMPTY] = "sku",
    [BAD_SKU_LOWERCASE] = "sku",
    [BAD_SKU_SPACE] = "sku",
    [BAD_SKU_TOO_LONG] = "sku",
    [BAD_NAME_MISSING] = "name",
    [BAD_NAME_EMPTY] = "name",
    [BAD_NAME_TOO_LONG] = "name",
    [BAD_DESCRIPTION_TOO_LONG] = "description",
    [BAD_AMOUNT_NEGATIVE] = "price.amount",
    [BAD_CURRENCY_MISSING] = "price.currency",
    [BAD_CURRENCY_LOWERCASE] = "price.currency",
    [BAD_CURRENCY_SHORT] = "price.currency",
    [BAD_CURRENCY_LONG] = "price.currency",
    [BAD_CURRENCY_DIGIT] = "price.currency",
    [BAD_CATEGORY_MISSING] = "category",
    [BAD_CATEGORY_UNKNOWN] = "category",
    [BAD_TAG_EMPTY] = "tags[0]",
    [BAD_TAG_UPPERCASE] = "tags[3]",
    [BAD_TAG_TOO_LONG] = "tags[1]",
    [BAD_TAG_SPACE] = "tags[2]",
    [BAD_TOO_MANY_TAGS] = "tags",
};

static void test_create_rejects_each_invalid_field(void **state)
{
    char long_sku[66];
    char long_name[202];
    char long_description[4002];
    char long_tag[34];
    char many[21][8];
    char *many_tags[22];
    char label[32];
    char *tags[6];

    (void)state;
    memset(long_sku, 'A', 65);
    long_sku[65] = '\0';
    memset(long_name, 'n', 201);
    long_name[201] = '\0';
    memset(long_description, 'd', 4001);
    long_description[4001] = '\0';
    memset(long_tag, 'x', 33);
    long_tag[33] = '\0';
    for (int i = 0; i < 21; i++) {
        snprintf(many[i], sizeof(many[i]), "t%d", i);
        many_tags[i] = many[i];
    }
    many_tags[21] = NULL;

    for (int c = 0; c < BAD_CASES; c++) {
        catalog_product_input in = input("GOOD-1", "Good", cat_a, NULL);

        tags[0] = "ok";
        tags[1] = "fine";
        tags[2] = "good";
        tags[3] = "well";
        tags[4] = NULL;
        switch (c) {
        case BAD_SKU_MISSING:
            in.sku = NULL;
            break;
        case BAD_SKU_EMPTY:
            in.sku = "";
            break;
        case BAD_SKU_LOWERCASE:
            in.sku = "abc-1";
            break;
        case BAD_SKU_SPACE:
            in.sku = "AB 1";
            break;
        case BAD_SKU_TOO_LONG:
            in.sku = long_sku;
            break;
        case BAD_NAME_MISSING:
            in.name = NULL;
            break;
        case BAD_NAME_EMPTY:
            in.name = "";
            break;
        case BAD_NAME_TOO_LONG:
            in.name = long_name;
            break;
        case BAD_DESCRIPTION_TOO_LONG:
            in.description = long_description;
            break;
        case BAD_AMOUNT_NEGATIVE:
            in.price.amount = -1;
            break;
        case BAD_CURRENCY_MISSING:
            in.price.currency = NULL;
            break;
        case BAD_CURRENCY_LOWERCASE:
            in.price.currency = "eur";
            break;
        case BAD_CURRENCY_SHORT:
            in.price.currency = "EU";
            break;
        case BAD_CURRENCY_LONG:
            in.price.currency = "EURO";
            break;
        case BAD_CURRENCY_DIGIT:
            in.price.currency = "E1R";
            break;
        case BAD_CATEGORY_MISSING:
            in.category = NULL;
            break;
        case BAD_CATEGORY_UNKNOWN:
            in.category = "no-such-category";
            break;
        case BAD_TAG_EMPTY:
            tags[0] = "";
            break;
        case BAD_TAG_UPPERCASE:
            tags[3] = "Well";
            break;
        case BAD_TAG_TOO_LONG:
            tags[1] = long_tag;
            break;
        case BAD_TAG_SPACE:
            tags[2] = "go od";
            break;
        case BAD_TOO_MANY_TAGS:
            break;
        default:
            fail();
        }
        if (c == BAD_TOO_MANY_TAGS) {
            in.tags.v = many_tags;
            in.tags.n = 21;
        } else {
            in.tags.v = tags;
            in.tags.n = 4;
        }
        in.tags.set = true;
        snprintf(label, sizeof(label), "case %d", c);
        expect_create_invalid(&in, bad_fields[c], label);
    }
    /* None of them left anything behind: the same sku is still free. */
    make("GOOD-1", "Good", cat_a, NULL);
}

static void test_create_duplicate_sku_conflicts(void **state)
{
    catalog_product_input in = input("SAME-SKU", "Second", cat_b, NULL);
    catalog_product p = {0};
    cl_ctx ctx = test_contract_ctx();
    int64_t ids[MAX_IDS];

    (void)state;
    make("SAME-SKU", "First", cat_a, NULL);
    assert_int_equal(catalog_create_product(module, &ctx, &in, &p), CL_CONFLICT);
    assert_string_equal(ctx.err.field, "sku");
    assert_null(p.sku);
    assert_int_equal(list_all(NULL, NULL, NULL, 10, ids), 1);
}

static void test_get_missing_is_not_found(void **state)
{
    catalog_product_ref ref = {.id = 987654321};
    catalog_product p = {0};
    cl_ctx ctx = test_contract_ctx();

    (void)state;
    assert_int_equal(catalog_get_product(module, &ctx, &ref, &p), CL_NOT_FOUND);
    assert_null(p.sku);
    ref.id = 0;
    assert_int_equal(catalog_get_product(module, &ctx, &ref, &p), CL_NOT_FOUND);
    ref.id = -5;
    assert_int_equal(catalog_get_product(module, &ctx, &ref, &p), CL_NOT_FOUND);
}

/* --- get_products_by_sku (operations version 2) ------------------------------------- */

static void test_get_by_sku_answers_in_the_order_asked(void **state)
{
    char *tags[] = {"blue", NULL};
    char *skus[] = {"SKU-B", "SKU-A"};
    catalog_sku_query q = {.skus = {.v = skus, .n = 2, .set = true}};
    catalog_product_list got = {0};
    catalog_product a = {0};
    catalog_product_ref ref = {0};
    cl_ctx ctx = test_contract_ctx();
    int64_t id_a, id_b;

    (void)state;
    assert_true(((const catalog_ops *)module->ops)->version >= 2);
    id_a = make("SKU-A", "First", cat_a, tags);
    id_b = make("SKU-B", "Second", cat_b, NULL);
    assert_int_equal(catalog_get_products_by_sku(module, &ctx, &q, &got), CL_OK);
    assert_int_equal(got.items.n, 2);
    assert_int_equal(got.items.v[0].id, id_b);
    assert_int_equal(got.items.v[1].id, id_a);
    assert_int_equal(got.items.v[1].price.amount, 1299);
    assert_string_equal(got.items.v[1].price.currency, "EUR");
    ref.id = id_a;
    assert_int_equal(catalog_get_product(module, &ctx, &ref, &a), CL_OK);
    assert_same_product(&a, &got.items.v[1]);
    cl_schema_free(&catalog_product_type, &a);
    cl_schema_free(&catalog_product_list_type, &got);
}

static void test_get_by_sku_names_the_unknown_sku(void **state)
{
    char *skus[] = {"SKU-A", "NO-SUCH-SKU"};
    catalog_sku_query q = {.skus = {.v = skus, .n = 2, .set = true}};
    catalog_sku_query none = {0};
    catalog_product_list got = {0};
    cl_ctx ctx = test_contract_ctx();

    (void)state;
    make("SKU-A", "First", cat_a, NULL);
    assert_int_equal(catalog_get_products_by_sku(module, &ctx, &q, &got), CL_NOT_FOUND);
    assert_string_equal(ctx.err.field, "skus[1]");
    assert_int_equal(got.items.n, 0);
    assert_int_equal(catalog_get_products_by_sku(module, &ctx, &none, &got), CL_INVALID);
    assert_string_equal(ctx.err.field, "skus");
}

/* --- update ------------------------------------------------------------------------- */

static void test_update_changes_fields_and_bumps_version(void **state)
{
    char *tags[] = {"old", NULL};
    cl_money price = {.amount = 4500, .currency = "USD"};
    catalog_product before = {0};
    catalog_product after = {0};
    catalog_product got = {0};
    catalog_product_update up = {0};
    cl_ctx ctx = test_contract_ctx();

    (void)state;
    get(make("UPD-1", "Old Name", cat_a, tags), &before);

    up.id = before.id;
    up.expected_version.set = true;
    up.expected_version.v = 1;
    up.changes.name = "New Name";
    up.changes.price = &price;
    assert_int_equal(catalog_update_product(module, &ctx, &up, &after), CL_OK);
    assert_int_equal(after.id, before.id);
    assert_int_equal(after.version, 2);
    assert_string_equal(after.name, "New Name");
    assert_int_equal(after.price.amount, 4500);
    assert_string_equal(after.price.currency, "USD");
    /* What the update did not name stays as it was. */
    assert_string_equal(after.sku, before.sku);
    assert_string_equal(after.description, before.description);
    assert_string_equal(after.category, before.category);
    assert_tags(&after.tags, (const char *const[]){"old", NULL});
    assert_string_equal(after.created_at, before.created_at);
    assert_timestamp(after.updated_at);
    assert_true(strcmp(after.updated_at, before.updated_at) > 0);
    get(before.id, &got);
    assert_same_product(&after, &got);
    cl_schema_free(&catalog_product_type, &got);

    /* The rest of the fields, without expected_version: no check, still a new version. */
    memset(&up.changes, 0, sizeof(up.changes));
    up.expected_version.set = false;
    up.changes.description = "Now with a lid.";
    up.changes.category = cat_b;
    up.changes.tags.v = (char *[]){"new", "lid", "new"};
    up.changes.tags.n = 3;
    up.changes.tags.set = true;
    cl_schema_free(&catalog_product_type, &before);
    before = after;
    memset(&after, 0, sizeof(after));
    assert_int_equal(catalog_update_product(module, &ctx, &up, &after), CL_OK);
    assert_int_equal(after.version, 3);
    assert_string_equal(after.description, "Now with a lid.");
    assert_string_equal(after.category, cat_b);
    assert_tags(&after.tags, (const char *const[]){"lid", "new", NULL});
    assert_string_equal(after.name, "New Name");
    assert_int_equal(after.price.amount, 4500);
    assert_true(strcmp(after.updated_at, before.updated_at) > 0);
    get(before.id, &got);
    assert_same_product(&after, &got);
    cl_schema_free(&catalog_product_type, &got);

    /* An empty tag list that is set clears the tags; nothing else given still bumps. */
    memset(&up.changes, 0, sizeof(up.changes));
    up.changes.tags.set = true;
    cl_schema_free(&catalog_product_type, &before);
    before = after;
    memset(&after, 0, sizeof(after));
    assert_int_equal(catalog_update_product(module, &ctx, &up, &after), CL_OK);
    assert_int_equal(after.version, 4);
    assert_int_equal(after.tags.n, 0);
    get(before.id, &got);
    assert_same_product(&after, &got);
    cl_schema_free(&catalog_product_type, &got);
    cl_schema_free(&catalog_product_type, &before);
    cl_schema_free(&catalog_product_type, &after);
}

/*
 * A merge patch's null: clear removes the description (only it: the rest are required).
 * An update that changes nothing is no update: same version, same updated_at.
 */
static void test_update_clears_description_and_a_no_op_keeps_the_version(void **state)
{
    char *tags[] = {"mug", NULL};
    catalog_product before = {0}, after = {0}, same = {0}, got = {0};
    catalog_product_update up = {0};
    cl_ctx ctx = test_contract_ctx();

    (void)state;
    get(make("CLR-1", "Clear Me", cat_a, tags), &before);
    assert_non_null(before.description);
    up.id = before.id;
    up.changes.clear.v = (char *[]){"description"};
    up.changes.clear.n = 1;
    up.changes.clear.set = true;
    assert_int_equal(catalog_update_product(module, &ctx, &up, &after), CL_OK);
    assert_null(after.description);
    assert_int_equal(after.version, before.version + 1);
    get(before.id, &got);
    assert_null(got.description);
    assert_same_product(&after, &got);
    cl_schema_free(&catalog_product_type, &got);

    /* Clearing what is gone, and restating what is there, change nothing. */
    up.changes.name = "Clear Me";
    up.changes.tags.v = (char *[]){"mug", "mug"};
    up.changes.tags.n = 2;
    up.changes.tags.set = true;
    up.expected_version.set = true;
    up.expected_version.v = after.version;
    assert_int_equal(catalog_update_product(module, &ctx, &up, &same), CL_OK);
    assert_same_product(&after, &same);
    assert_int_equal(same.version, after.version);
    assert_string_equal(same.updated_at, after.updated_at);
    cl_schema_free(&catalog_product_type, &same);
    /* A stale version is still refused, even when nothing would change. */
    up.expected_version.v = before.version;
    assert_int_equal(catalog_update_product(module, &ctx, &up, &same), CL_CONFLICT);

    /* Only description can be removed, and not while it is also set. */
    memset(&up.changes, 0, sizeof(up.changes));
    up.expected_version.set = false;
    up.changes.clear.v = (char *[]){"name"};
    up.changes.clear.n = 1;
    up.changes.clear.set = true;
    assert_int_equal(catalog_update_product(module, &ctx, &up, &same), CL_INVALID);
    assert_string_equal(ctx.err.field, "changes.clear");
    up.changes.clear.v = (char *[]){"description"};
    up.changes.description = "Both";
    assert_int_equal(catalog_update_product(module, &ctx, &up, &same), CL_INVALID);
    assert_string_equal(ctx.err.field, "changes.description");
    get(before.id, &got);
    assert_int_equal(got.version, after.version);
    cl_schema_free(&catalog_product_type, &got);
    cl_schema_free(&catalog_product_type, &before);
    cl_schema_free(&catalog_product_type, &after);
}

static void test_update_with_stale_version_conflicts(void **state)
{
    catalog_product_update up = {0};
    catalog_product p = {0};
    catalog_product got = {0};
    cl_ctx ctx = test_contract_ctx();

    (void)state;
    up.id = make("VER-1", "Versioned", cat_a, NULL);
    up.changes.name = "First";
    assert_int_equal(catalog_update_product(module, &ctx, &up, &p), CL_OK);
    assert_int_equal(p.version, 2);
    cl_schema_free(&catalog_product_type, &p);

    up.expected_version.set = true;
    up.expected_version.v = 1;
    up.changes.name = "Lost update";
    assert_int_equal(catalog_update_product(module, &ctx, &up, &p), CL_CONFLICT);
    assert_null(p.name);
    /* The message tells the caller which version to reload. */
    assert_non_null(strstr(ctx.err.message, "2"));
    get(up.id, &got);
    assert_string_equal(got.name, "First");
    assert_int_equal(got.version, 2);
    cl_schema_free(&catalog_product_type, &got);

    up.expected_version.v = 2;
    assert_int_equal(catalog_update_product(module, &ctx, &up, &p), CL_OK);
    assert_int_equal(p.version, 3);
    cl_schema_free(&catalog_product_type, &p);
}

static void test_update_missing_is_not_found(void **state)
{
    catalog_product_update up = {0};
    catalog_product p = {0};
    cl_ctx ctx = test_contract_ctx();

    (void)state;
    up.id = 987654321;
    up.changes.name = "Ghost";
    assert_int_equal(catalog_update_product(module, &ctx, &up, &p), CL_NOT_FOUND);
    assert_null(p.name);
    up.expected_version.set = true;
    up.expected_version.v = 1;
    assert_int_equal(catalog_update_product(module, &ctx, &up, &p), CL_NOT_FOUND);
}

static void test_update_rejects_each_invalid_change(void **state)
{
    static const char *const fields[] = {
        "changes.name",           "changes.name",     "changes.description", "changes.price.amount",
        "changes.price.currency", "changes.category", "changes.tags[1]",     "changes.tags",
    };
    char long_name[202];
    char long_description[4002];
    char many[21][8];
    char *many_tags[21];
    char *tags[] = {"ok", "Not-OK"};
    catalog_product got = {0};
    int64_t id;

    (void)state;
    memset(long_name, 'n', 201);
    long_name[201] = '\0';
    memset(long_description, 'd', 4001);
    long_description[4001] = '\0';
    for (int i = 0; i < 21; i++) {
        snprintf(many[i], sizeof(many[i]), "t%d", i);
        many_tags[i] = many[i];
    }
    id = make("CHG-1", "Unchanged", cat_a, NULL);
    for (size_t c = 0; c < sizeof(fields) / sizeof(fields[0]); c++) {
        catalog_product_update up = {0};
        cl_money price = {.amount = 100, .currency = "EUR"};
        catalog_product p = {0};
        cl_ctx ctx = test_contract_ctx();
        cl_status st;

        up.id = id;
        switch (c) {
        case 0:
            up.changes.name = "";
            break;
        case 1:
            up.changes.name = long_name;
            break;
        case 2:
            up.changes.description = long_description;
            break;
        case 3:
            price.amount = -1;
            up.changes.price = &price;
            break;
        case 4:
            price.currency = "eu";
            up.changes.price = &price;
            break;
        case 5:
            up.changes.category = "no-such-category";
            break;
        case 6:
            up.changes.tags.v = tags;
            up.changes.tags.n = 2;
            up.changes.tags.set = true;
            break;
        default:
            up.changes.tags.v = many_tags;
            up.changes.tags.n = 21;
            up.changes.tags.set = true;
            break;
        }
        st = catalog_update_product(module, &ctx, &up, &p);
        if (st != CL_INVALID || strcmp(ctx.err.field, fields[c]) != 0) {
            fail_msg("case %zu: want invalid on %s, got %s on \"%s\" (%s)", c, fields[c],
                     cl_status_name(st), ctx.err.field, ctx.err.message);
        }
        assert_null(p.name);
    }
    get(id, &got);
    assert_string_equal(got.name, "Unchanged");
    assert_int_equal(got.version, 1);
    cl_schema_free(&catalog_product_type, &got);
}

/* --- list_products ------------------------------------------------------------------ */

static void test_list_of_empty_catalog_is_one_empty_page(void **state)
{
    int64_t ids[MAX_IDS];

    (void)state;
    assert_int_equal(list_all(NULL, NULL, NULL, 0, ids), 0);
}

static void test_list_pages_cover_all_without_overlap(void **state)
{
    int64_t ids[40];
    int64_t got[MAX_IDS];
    size_t n;

    (void)state;
    /* 20 with pages of 5: the fourth page is full and still the last one. */
    make_many("PAGE", "Paged", 20, ids);
    for (int i = 1; i < 20; i++) {
        assert_true(ids[i] > ids[i - 1]);
    }
    expect_ids(NULL, NULL, NULL, 5, ids, 20);
    /* 23 with pages of 5, 7, 1 and 100. */
    make_many("MORE", "More", 3, ids + 20);
    expect_ids(NULL, NULL, NULL, 5, ids, 23);
    expect_ids(NULL, NULL, NULL, 7, ids, 23);
    expect_ids(NULL, NULL, NULL, 1, ids, 23);
    n = list_all(NULL, NULL, NULL, 100, got);
    assert_int_equal(n, 23);
}

static void test_list_continues_past_products_created_meanwhile(void **state)
{
    int64_t ids[12];
    catalog_product_query q = {.limit = 5};
    catalog_product_page page = {0};
    cl_error err;

    (void)state;
    make_many("KEY", "Keyset", 10, ids);
    assert_int_equal(list_page(&q, &page, &err), CL_OK);
    assert_int_equal(page.items.n, 5);
    assert_non_null(page.next_cursor);
    /* A product created between pages shows up once, at the end. */
    ids[10] = make("KEY-NEW", "Keyset new", cat_a, NULL);
    q.cursor = page.next_cursor;
    {
        catalog_product_page rest = {0};

        q.limit = 100;
        assert_int_equal(list_page(&q, &rest, &err), CL_OK);
        assert_int_equal(rest.items.n, 6);
        for (size_t i = 0; i < rest.items.n; i++) {
            assert_int_equal(rest.items.v[i].id, ids[5 + i]);
        }
        assert_null(rest.next_cursor);
        cl_schema_free(&catalog_product_page_type, &rest);
    }
    cl_schema_free(&catalog_product_page_type, &page);
}

static void test_list_filters_by_category_tag_and_name_prefix(void **state)
{
    int64_t id[8];

    (void)state;
    id[0] = make("F-0", "Apple Pie Dish", cat_a, (char *[]){"red", "sale", NULL});
    id[1] = make("F-1", "apple corer", cat_a, (char *[]){"sale", NULL});
    id[2] = make("F-2", "Apricot Jam", cat_b, (char *[]){"red", NULL});
    id[3] = make("F-3", "Banana Stand", cat_b, NULL);
    id[4] = make("F-4", "Apple Watch Strap", cat_b, (char *[]){"sale", "red", NULL});
    id[5] = make("F-5", "\xc3\x84pfel Korb", cat_a, (char *[]){"new", NULL});
    id[6] = make("F-6", "Ap", cat_a, NULL);
    id[7] = make("F-7", "\xc3\x84rmel", cat_b, (char *[]){"new", "sale", NULL});

    expect_ids(cat_a, NULL, NULL, 2, (int64_t[]){id[0], id[1], id[5], id[6]}, 4);
    expect_ids(cat_b, NULL, NULL, 3, (int64_t[]){id[2], id[3], id[4], id[7]}, 4);
    expect_ids(NULL, "red", NULL, 2, (int64_t[]){id[0], id[2], id[4]}, 3);
    expect_ids(NULL, "sale", NULL, 1, (int64_t[]){id[0], id[1], id[4], id[7]}, 4);
    expect_ids(NULL, "blue", NULL, 5, NULL, 0);
    /* Prefixes are case-sensitive and byte-exact; the whole name is a prefix too. */
    expect_ids(NULL, NULL, "Ap", 2, (int64_t[]){id[0], id[2], id[4], id[6]}, 4);
    expect_ids(NULL, NULL, "Apple", 1, (int64_t[]){id[0], id[4]}, 2);
    expect_ids(NULL, NULL, "apple", 5, (int64_t[]){id[1]}, 1);
    expect_ids(NULL, NULL, "Apple Pie Dish", 5, (int64_t[]){id[0]}, 1);
    expect_ids(NULL, NULL, "Apples", 5, NULL, 0);
    expect_ids(NULL, NULL, "\xc3\x84", 5, (int64_t[]){id[5], id[7]}, 2);
    expect_ids(NULL, NULL, "\xc3\x84p", 5, (int64_t[]){id[5]}, 1);
    /* Combined filters must all hold. */
    expect_ids(cat_b, "red", NULL, 1, (int64_t[]){id[2], id[4]}, 2);
    expect_ids(cat_b, NULL, "Ap", 1, (int64_t[]){id[2], id[4]}, 2);
    expect_ids(NULL, "sale", "Apple", 1, (int64_t[]){id[0], id[4]}, 2);
    expect_ids(cat_a, "sale", "Apple", 1, (int64_t[]){id[0]}, 1);
    expect_ids(cat_b, "sale", "\xc3\x84", 1, (int64_t[]){id[7]}, 1);
    expect_ids(cat_a, "red", "Banana", 1, NULL, 0);
    /* A category that does not exist simply has no products. */
    expect_ids("no-such-category", NULL, NULL, 5, NULL, 0);
}

static void test_list_limit_bounds(void **state)
{
    int64_t ids[25];
    catalog_product_query q = {0};
    catalog_product_page page = {0};
    cl_error err;

    (void)state;
    make_many("LIM", "Limited", 25, ids);
    q.limit = 0;
    assert_int_equal(list_page(&q, &page, &err), CL_OK);
    assert_int_equal(page.items.n, CATALOG_DEFAULT_LIMIT);
    assert_non_null(page.next_cursor);
    cl_schema_free(&catalog_product_page_type, &page);

    q.limit = CATALOG_MAX_LIMIT;
    assert_int_equal(list_page(&q, &page, &err), CL_OK);
    assert_int_equal(page.items.n, 25);
    assert_null(page.next_cursor);
    cl_schema_free(&catalog_product_page_type, &page);

    q.limit = CATALOG_MAX_LIMIT + 1;
    assert_int_equal(list_page(&q, &page, &err), CL_INVALID);
    assert_string_equal(err.field, "limit");
    assert_int_equal(page.items.n, 0);
    q.limit = -1;
    assert_int_equal(list_page(&q, &page, &err), CL_INVALID);
    assert_string_equal(err.field, "limit");
    q.limit = INT64_MIN;
    assert_int_equal(list_page(&q, &page, &err), CL_INVALID);
    assert_string_equal(err.field, "limit");
    assert_null(page.items.v);
}

static void test_list_rejects_garbage_and_altered_cursors(void **state)
{
    static const char *const garbage[] = {
        "",     "!", "not a cursor", "YzE6MTow", "c1:1:0000000000000000", "AAAAAAAAAAAAAAAAAAAA",
        "====",
    };
    int64_t ids[3];
    catalog_product_query q = {.limit = 1};
    catalog_product_page first = {0};
    catalog_product_page page = {0};
    cl_error err;
    char *altered;
    size_t len;

    (void)state;
    make_many("CUR", "Cursor", 3, ids);
    for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
        q.cursor = (char *)garbage[i];
        if (list_page(&q, &page, &err) != CL_INVALID || strcmp(err.field, "cursor") != 0) {
            fail_msg("cursor \"%s\" was not refused as invalid on \"cursor\"", garbage[i]);
        }
        assert_null(page.items.v);
    }
    q.cursor = NULL;
    assert_int_equal(list_page(&q, &first, &err), CL_OK);
    assert_non_null(first.next_cursor);
    /* Changing any one character of a real cursor makes it one that is refused. */
    len = strlen(first.next_cursor);
    altered = cl_strdup(first.next_cursor);
    assert_non_null(altered);
    for (size_t i = 0; i < len; i++) {
        char was = altered[i];

        altered[i] = was == 'A' ? 'B' : 'A';
        q.cursor = altered;
        if (list_page(&q, &page, &err) != CL_INVALID || strcmp(err.field, "cursor") != 0) {
            fail_msg("cursor altered at %zu was not refused", i);
        }
        altered[i] = was;
    }
    /* Cut short or extended. */
    altered[len - 1] = '\0';
    q.cursor = altered;
    assert_int_equal(list_page(&q, &page, &err), CL_INVALID);
    assert_string_equal(err.field, "cursor");
    free(altered);
    /* The untouched cursor still works. */
    q.cursor = first.next_cursor;
    assert_int_equal(list_page(&q, &page, &err), CL_OK);
    assert_int_equal(page.items.n, 1);
    assert_int_equal(page.items.v[0].id, ids[1]);
    cl_schema_free(&catalog_product_page_type, &page);
    cl_schema_free(&catalog_product_page_type, &first);
}

static void test_list_rejects_cursor_of_other_filters(void **state)
{
    int64_t ids[6];
    catalog_product_query q = {.limit = 1};
    catalog_product_page first = {0};
    catalog_product_page page = {0};
    cl_error err;

    (void)state;
    make_many("FLT", "Filtered", 6, ids);
    q.category = cat_a;
    assert_int_equal(list_page(&q, &first, &err), CL_OK);
    assert_non_null(first.next_cursor);
    q.cursor = first.next_cursor;

    q.category = cat_b;
    assert_int_equal(list_page(&q, &page, &err), CL_INVALID);
    assert_string_equal(err.field, "cursor");
    q.category = NULL;
    assert_int_equal(list_page(&q, &page, &err), CL_INVALID);
    assert_string_equal(err.field, "cursor");
    q.category = cat_a;
    q.tag = "sale";
    assert_int_equal(list_page(&q, &page, &err), CL_INVALID);
    assert_string_equal(err.field, "cursor");
    q.tag = NULL;
    q.name_prefix = "Filtered";
    assert_int_equal(list_page(&q, &page, &err), CL_INVALID);
    assert_string_equal(err.field, "cursor");
    assert_null(page.items.v);

    /* Same filters with another page size continue the listing. */
    q.name_prefix = NULL;
    q.limit = 10;
    assert_int_equal(list_page(&q, &page, &err), CL_OK);
    assert_int_equal(page.items.n, 2);
    assert_int_equal(page.items.v[0].id, ids[2]);
    assert_int_equal(page.items.v[1].id, ids[4]);
    assert_null(page.next_cursor);
    cl_schema_free(&catalog_product_page_type, &page);
    cl_schema_free(&catalog_product_page_type, &first);
}

static void test_list_items_carry_their_tags(void **state)
{
    catalog_product_query q = {0};
    catalog_product_page page = {0};
    cl_error err;

    (void)state;
    make("TAGS-1", "One", cat_a, (char *[]){"b", "a", NULL});
    make("TAGS-2", "Two", cat_a, NULL);
    make("TAGS-3", "Three", cat_a, (char *[]){"c", NULL});
    assert_int_equal(list_page(&q, &page, &err), CL_OK);
    assert_int_equal(page.items.n, 3);
    assert_tags(&page.items.v[0].tags, (const char *const[]){"a", "b", NULL});
    assert_tags(&page.items.v[1].tags, (const char *const[]){NULL});
    assert_tags(&page.items.v[2].tags, (const char *const[]){"c", NULL});
    cl_schema_free(&catalog_product_page_type, &page);
}

/* --- list_categories ---------------------------------------------------------------- */

static void test_list_categories_counts_products(void **state)
{
    catalog_category_list cats = {0};
    catalog_product_update up = {0};
    catalog_product p = {0};
    cl_empty none = {0};
    cl_ctx ctx = test_contract_ctx();

    (void)state;
    make("CNT-1", "Counted", cat_a, NULL);
    make("CNT-2", "Counted", cat_a, NULL);
    up.id = make("CNT-3", "Counted", cat_a, NULL);
    make("CNT-4", "Counted", cat_b, NULL);
    /* Moving a product moves its count. */
    up.changes.category = cat_b;
    assert_int_equal(catalog_update_product(module, &ctx, &up, &p), CL_OK);
    cl_schema_free(&catalog_product_type, &p);

    assert_int_equal(catalog_list_categories(module, &ctx, &none, &cats), CL_OK);
    assert_true(cats.items.n >= 2);
    for (size_t i = 0; i < cats.items.n; i++) {
        const catalog_category *c = &cats.items.v[i];

        assert_non_null(c->id);
        assert_non_null(c->name);
        assert_true(c->name[0] != '\0');
        if (i > 0) {
            assert_true(strcmp(cats.items.v[i - 1].id, c->id) < 0);
        }
        if (strcmp(c->id, cat_a) == 0 || strcmp(c->id, cat_b) == 0) {
            assert_int_equal(c->product_count, 2);
        } else {
            assert_int_equal(c->product_count, 0);
        }
    }
    cl_schema_free(&catalog_category_list_type, &cats);
}

/* --- the runner --------------------------------------------------------------------- */

#define CONTRACT_TEST(f) cmocka_unit_test_setup_teardown(f, setup, test_contract_teardown)

int catalog_contract_run(const char *binding_name, const cl_handle *(*setup_fn)(void),
                         void (*teardown_fn)(void))
{
    const struct CMUnitTest tests[] = {
        CONTRACT_TEST(test_create_then_get_round_trips),
        CONTRACT_TEST(test_create_accepts_the_bounds),
        CONTRACT_TEST(test_create_sorts_tags_and_removes_duplicates),
        CONTRACT_TEST(test_create_rejects_each_invalid_field),
        CONTRACT_TEST(test_create_duplicate_sku_conflicts),
        CONTRACT_TEST(test_get_missing_is_not_found),
        CONTRACT_TEST(test_get_by_sku_answers_in_the_order_asked),
        CONTRACT_TEST(test_get_by_sku_names_the_unknown_sku),
        CONTRACT_TEST(test_update_changes_fields_and_bumps_version),
        CONTRACT_TEST(test_update_clears_description_and_a_no_op_keeps_the_version),
        CONTRACT_TEST(test_update_with_stale_version_conflicts),
        CONTRACT_TEST(test_update_missing_is_not_found),
        CONTRACT_TEST(test_update_rejects_each_invalid_change),
        CONTRACT_TEST(test_list_of_empty_catalog_is_one_empty_page),
        CONTRACT_TEST(test_list_pages_cover_all_without_overlap),
        CONTRACT_TEST(test_list_continues_past_products_created_meanwhile),
        CONTRACT_TEST(test_list_filters_by_category_tag_and_name_prefix),
        CONTRACT_TEST(test_list_limit_bounds),
        CONTRACT_TEST(test_list_rejects_garbage_and_altered_cursors),
        CONTRACT_TEST(test_list_rejects_cursor_of_other_filters),
        CONTRACT_TEST(test_list_items_carry_their_tags),
        CONTRACT_TEST(test_list_categories_counts_products),
    };

    test_contract_bind(setup_fn, teardown_fn, CATALOG_OPS_VERSION);
    return cmocka_run_group_tests_name(binding_name, tests, NULL, NULL);
}
