/* The rules of catalog.h for products, each failure naming its field as JSON does. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Fails with CL_INVALID on the field prefix+name ("changes." + "price.amount"). */
static cl_status invalid(cl_ctx *ctx, const char *prefix, const char *name, const char *reason)
{
    char field[64];

    snprintf(field, sizeof(field), "%s%s", prefix, name);
    return cl_fail(ctx, CL_INVALID, field, "%s %s", field, reason);
}

bool catalog__utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    while (*p != 0) {
        uint32_t cp;
        int more;

        if (p[0] < 0x80) {
            p++;
            continue;
        }
        if (p[0] >= 0xC2 && p[0] <= 0xDF) {
            cp = p[0] & 0x1Fu;
            more = 1;
        } else if (p[0] >= 0xE0 && p[0] <= 0xEF) {
            cp = p[0] & 0x0Fu;
            more = 2;
        } else if (p[0] >= 0xF0 && p[0] <= 0xF4) {
            cp = p[0] & 0x07u;
            more = 3;
        } else {
            return false;
        }
        for (int i = 1; i <= more; i++) {
            /* A NUL here is not a continuation byte, so the loop never reads past it. */
            if ((p[i] & 0xC0u) != 0x80u) {
                return false;
            }
            cp = (cp << 6) | (p[i] & 0x3Fu);
        }
        if ((more == 2 && cp < 0x800) || (more == 3 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF)) {
            return false;
        }
        p += more + 1;
    }
    return true;
}

/* Text of min..max bytes of UTF-8; NULL is "required" unless optional. */
static cl_status check_text(cl_ctx *ctx, const char *prefix, const char *name, const char *s,
                            size_t min, size_t max)
{
    size_t len;
    char reason[64];

    if (s == NULL) {
        return invalid(ctx, prefix, name, "is required");
    }
    len = strlen(s);
    if (len < min || len > max) {
        snprintf(reason, sizeof(reason), "must be %zu to %zu bytes long", min, max);
        return invalid(ctx, prefix, name, reason);
    }
    if (!catalog__utf8_valid(s)) {
        return invalid(ctx, prefix, name, "must be valid UTF-8");
    }
    return CL_OK;
}

static bool is_sku_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

static bool is_tag_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

/* 1..max characters, each accepted by ok. */
static bool word_ok(const char *s, size_t max, bool (*ok)(char))
{
    size_t n = 0;

    if (s == NULL) {
        return false;
    }
    for (; s[n] != '\0'; n++) {
        if (n >= max || !ok(s[n])) {
            return false;
        }
    }
    return n > 0;
}

static cl_status check_price(cl_ctx *ctx, const char *prefix, const cl_money *price)
{
    const char *c = price->currency;
    char field[32];

    snprintf(field, sizeof(field), "%sprice.", prefix);
    if (price->amount < 0) {
        return invalid(ctx, field, "amount", "must not be negative");
    }
    if (c == NULL || strlen(c) != 3 || c[0] < 'A' || c[0] > 'Z' || c[1] < 'A' || c[1] > 'Z' ||
        c[2] < 'A' || c[2] > 'Z') {
        return invalid(ctx, field, "currency", "must be three capital letters (ISO 4217)");
    }
    return CL_OK;
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void catalog__tags_free(catalog__tags *tags)
{
    if (tags != NULL) {
        free(tags->v);
        tags->v = NULL;
        tags->n = 0;
    }
}

/* Checks every tag, then sorts and removes duplicates into *out. */
static cl_status check_tags(cl_ctx *ctx, const char *prefix, const cl_strs *in, catalog__tags *out)
{
    char field[64];
    const char **v = NULL;
    size_t n = 0;

    /* A bound before any work: duplicates aside, more tags could never be accepted. */
    if (in->n > CL_SCHEMA_MAX_ITEMS) {
        return invalid(ctx, prefix, "tags", "has too many entries");
    }
    for (size_t i = 0; i < in->n; i++) {
        if (!word_ok(in->v[i], CATALOG_TAG_MAX, is_tag_char)) {
            snprintf(field, sizeof(field), "%stags[%zu]", prefix, i);
            return cl_fail(ctx, CL_INVALID, field, "%s must be 1 to %d of a-z, 0-9 and -", field,
                           CATALOG_TAG_MAX);
        }
    }
    if (in->n > 0) {
        v = malloc(in->n * sizeof(*v));
        if (v == NULL) {
            return cl_fail(ctx, CL_INTERNAL, NULL, "out of memory");
        }
        memcpy(v, in->v, in->n * sizeof(*v));
        qsort(v, in->n, sizeof(*v), compare_strings);
        for (size_t i = 0; i < in->n; i++) {
            if (n == 0 || strcmp(v[n - 1], v[i]) != 0) {
                v[n++] = v[i];
            }
        }
    }
    if (n > CATALOG_TAGS_MAX) {
        free(v);
        return invalid(ctx, prefix, "tags", "must have at most 20 distinct tags");
    }
    out->v = v;
    out->n = n;
    return CL_OK;
}

cl_status catalog__check_input(cl_ctx *ctx, const catalog_product_input *in, catalog__tags *tags)
{
    cl_status st;

    if (!word_ok(in->sku, CATALOG_SKU_MAX, is_sku_char)) {
        return invalid(ctx, "", "sku", "must be 1 to 64 of A-Z, 0-9 and -");
    }
    st = check_text(ctx, "", "name", in->name, 1, CATALOG_NAME_MAX);
    if (st != CL_OK) {
        return st;
    }
    if (in->description != NULL) {
        st = check_text(ctx, "", "description", in->description, 0, CATALOG_DESCRIPTION_MAX);
        if (st != CL_OK) {
            return st;
        }
    }
    st = check_price(ctx, "", &in->price);
    if (st != CL_OK) {
        return st;
    }
    /* Whether the category exists is for the caller to check, in its transaction. */
    if (in->category == NULL || in->category[0] == '\0') {
        return invalid(ctx, "", "category", "is required");
    }
    return check_tags(ctx, "", &in->tags, tags);
}

cl_status catalog__check_changes(cl_ctx *ctx, const catalog_product_changes *ch,
                                 catalog__tags *tags)
{
    static const char prefix[] = "changes.";
    cl_status st;

    if (ch->name != NULL) {
        st = check_text(ctx, prefix, "name", ch->name, 1, CATALOG_NAME_MAX);
        if (st != CL_OK) {
            return st;
        }
    }
    if (ch->description != NULL) {
        st = check_text(ctx, prefix, "description", ch->description, 0, CATALOG_DESCRIPTION_MAX);
        if (st != CL_OK) {
            return st;
        }
    }
    if (ch->price != NULL) {
        st = check_price(ctx, prefix, ch->price);
        if (st != CL_OK) {
            return st;
        }
    }
    if (ch->category != NULL && ch->category[0] == '\0') {
        return invalid(ctx, prefix, "category", "must not be empty");
    }
    for (size_t i = 0; i < ch->clear.n; i++) {
        if (strcmp(ch->clear.v[i], "description") != 0) {
            return invalid(ctx, prefix, "clear",
                           "only description can be removed; the other fields are required");
        }
        if (ch->description != NULL) {
            return invalid(ctx, prefix, "description", "cannot be both set and removed");
        }
    }
    if (!ch->tags.set) {
        tags->v = NULL;
        tags->n = 0;
        return CL_OK;
    }
    return check_tags(ctx, prefix, &ch->tags, tags);
}
