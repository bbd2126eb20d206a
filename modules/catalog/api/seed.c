/*
 * The demo catalog: SEED_PRODUCTS products spread over the reference categories, or the
 * first opts->limit of them (`cleave seed --limit N`).
 *
 * It is made only through the operations table, so it seeds a remote catalog the same
 * way as a local one. Everything comes from a fixed-seed generator and fixed word
 * lists, so that every machine gets the same products (ids, skus, names, prices, tags)
 * and tests and walkthroughs can name them.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "api.h"

#define SEED_PRODUCTS 1200
#define SEED_STATE    0x5EEDCA7A1060ull

/* Words start with different capitals, so that name prefixes filter interestingly. */
static const char *const adjectives[] = {
    "Amber",  "Bold",  "Classic", "Compact", "Deluxe", "Eco",     "Electric", "Fresh",
    "Golden", "Handy", "Lucky",   "Mighty",  "Modern", "Nimble",  "Quiet",    "Rustic",
    "Silver", "Smart", "Sturdy",  "Sunny",   "Tiny",   "Vintage", "Wild",     "Zesty",
};
static const char *const nouns[] = {
    "Atlas",  "Basket", "Blender", "Bottle", "Candle", "Chair",   "Clock",  "Drum",
    "Guitar", "Hammer", "Jacket",  "Kettle", "Lamp",   "Lantern", "Mug",    "Notebook",
    "Pan",    "Puzzle", "Racket",  "Radio",  "Rake",   "Scarf",   "Shovel", "Speaker",
    "Teapot", "Tent",   "Wallet",  "Whisk",  "Yo-yo",  "Zither",
};
static const char *const tag_words[] = {
    "bestseller", "bundle",  "clearance", "eco",     "gift", "handmade",
    "imported",   "limited", "new",       "premium", "sale", "travel",
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* splitmix64: tiny, well mixed, and the same sequence everywhere (unlike rand()). */
static uint64_t next_random(uint64_t *state)
{
    uint64_t z;

    *state += 0x9E3779B97F4A7C15ull;
    z = *state;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A value in [0, n); the modulo bias is irrelevant for demo data. */
static size_t pick(uint64_t *state, size_t n)
{
    return (size_t)(next_random(state) % n);
}

static cl_status catalog_has_products(const cl_handle *module, cl_ctx *ctx, bool *any)
{
    catalog_product_query q = {.limit = 1};
    catalog_product_page page = {0};
    cl_status rc;

    rc = catalog_list_products(module, ctx, &q, &page);
    if (rc == CL_OK) {
        *any = page.items.n > 0;
    }
    cl_schema_free(&catalog_product_page_type, &page);
    return rc;
}

/* Creates product number i (1-based) from the generator's next values. */
static cl_status create_one(const cl_handle *module, cl_ctx *ctx, uint64_t *state, int i,
                            const catalog_category_list *cats)
{
    const catalog_category *cat = &cats->items.v[pick(state, cats->items.n)];
    const char *adjective = adjectives[pick(state, COUNT(adjectives))];
    const char *noun = nouns[pick(state, COUNT(nouns))];
    size_t ntags = pick(state, 4);
    char *tags[3];
    char sku[16];
    char name[64];
    char description[160];
    catalog_product_input in = {0};
    catalog_product out = {0};
    cl_status rc;

    snprintf(sku, sizeof(sku), "SKU-%06d", i);
    snprintf(name, sizeof(name), "%s %s", adjective, noun);
    snprintf(description, sizeof(description), "The %s %s, from our %s range.", adjective, noun,
             cat->name != NULL ? cat->name : cat->id);
    /* Duplicate draws are fine: the catalog removes duplicate tags. */
    for (size_t t = 0; t < ntags; t++) {
        tags[t] = (char *)tag_words[pick(state, COUNT(tag_words))];
    }
    in.sku = sku;
    in.name = name;
    in.description = description;
    in.price.amount = 99 + (int64_t)pick(state, 200) * 50;
    in.price.currency = "EUR";
    in.category = cat->id;
    in.tags.v = tags;
    in.tags.n = ntags;
    in.tags.set = true;
    rc = catalog_create_product(module, ctx, &in, &out);
    cl_schema_free(&catalog_product_type, &out);
    return rc;
}

cl_status catalog_seed(const cl_handle *module, cl_ctx *ctx, const cl_seed_opts *opts, int *created)
{
    catalog_category_list cats = {0};
    cl_empty none = {0};
    uint64_t state = SEED_STATE;
    bool any = false;
    int n = 0;
    cl_status rc;

    rc = catalog_has_products(module, ctx, &any);
    if (rc != CL_OK) {
        return rc;
    }
    if (any) {
        *created = 0;
        return CL_OK;
    }
    rc = catalog_list_categories(module, ctx, &none, &cats);
    if (rc != CL_OK) {
        return rc;
    }
    if (cats.items.n == 0) {
        rc = cl_fail(ctx, CL_INTERNAL, NULL, "the catalog has no categories to seed into");
        goto out;
    }
    for (n = 0; n < cl_seed_count(opts, SEED_PRODUCTS); n++) {
        rc = create_one(module, ctx, &state, n + 1, &cats);
        if (rc != CL_OK) {
            goto out;
        }
    }
    *created = n;
out:
    cl_schema_free(&catalog_category_list_type, &cats);
    return rc;
}
