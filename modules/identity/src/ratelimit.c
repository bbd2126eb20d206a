/* The token endpoint's rate limit: a fixed one-minute window per key (see internal.h). */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#include "cleave/status.h"

#define WINDOW_MS 60000
#define PROBES    8

void identity_rate_init(identity_rate *r, int64_t per_minute)
{
    memset(r->chunks, 0, sizeof(r->chunks));
    r->per_minute = per_minute;
    pthread_mutex_init(&r->lock, NULL);
}

void identity_rate_destroy(identity_rate *r)
{
    for (size_t i = 0; i < sizeof(r->chunks) / sizeof(r->chunks[0]); i++) {
        free(r->chunks[i]);
        r->chunks[i] = NULL;
    }
    pthread_mutex_destroy(&r->lock);
}

_Static_assert(IDENTITY_RATE_SLOTS % IDENTITY_RATE_CHUNK == 0, "whole chunks");

/*
 * Slot i, its chunk allocated (zeroed: window 0, a minute long past) on first use; NULL when
 * out of memory. Under r->lock.
 */
static identity_rate_slot *slot_at(identity_rate *r, uint32_t i)
{
    identity_rate_slot **chunk = &r->chunks[i / IDENTITY_RATE_CHUNK];

    if (*chunk == NULL) {
        *chunk = calloc(IDENTITY_RATE_CHUNK, sizeof(**chunk));
        if (*chunk == NULL) {
            return NULL;
        }
    }
    return &(*chunk)[i % IDENTITY_RATE_CHUNK];
}

/* FNV-1a: spreads keys over the table; not a defence against chosen keys (see internal.h). */
static uint32_t hash(const char *s)
{
    uint32_t h = 2166136261u;

    for (; *s != '\0'; s++) {
        h = (h ^ (unsigned char)*s) * 16777619u;
    }
    return h;
}

int identity_rate_take(identity_rate *r, const char *key, int64_t now_ms, int64_t *retry_after_s)
{
    int64_t window = now_ms / WINDOW_MS;
    uint32_t h = hash(key);
    identity_rate_slot *slot = NULL;
    identity_rate_slot *first = NULL;
    int ok = 0;

    pthread_mutex_lock(&r->lock);
    for (int i = 0; i < PROBES && slot == NULL; i++) {
        identity_rate_slot *s = slot_at(r, (h + (uint32_t)i) % IDENTITY_RATE_SLOTS);

        if (s == NULL) {
            /* Out of memory: limited early rather than let through uncounted. */
            goto out;
        }
        if (first == NULL) {
            first = s;
        }
        if (s->window == window && strcmp(s->key, key) == 0) {
            slot = s;
        } else if (s->window != window) {
            /* Free: its minute has passed. */
            cl_strlcpy(s->key, key, sizeof(s->key));
            s->window = window;
            s->count = 0;
            slot = s;
        }
    }
    if (slot == NULL) {
        slot = first;
    }
    slot->count++;
    ok = slot->count <= r->per_minute;
out:
    pthread_mutex_unlock(&r->lock);
    *retry_after_s = ((window + 1) * WINDOW_MS - now_ms + 999) / 1000;
    return ok;
}
