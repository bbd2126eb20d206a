/*
 * Test support: the bus over two throwaway SQLite databases (with CL_TEST_DB=postgres: two
 * schemas of a fresh PostgreSQL database), module "pub" publishing and module "sub"
 * consuming, in process or over NATS. The subscriber records every event
 * it handles (key, seq) in its own table "seen", in the inbox transaction, and counts
 * any event that arrives after a later one of the same key.
 */
#ifndef CLEAVE_TEST_BUS_HARNESS_H
#define CLEAVE_TEST_BUS_HARNESS_H

#include <stdatomic.h>

#include "cleave/bus.h"
#include "pgtest.h"

typedef struct bus_harness {
    char dir[256];
    cl_config *cfg;
    cl_db *pub;
    cl_db *sub;
    cl_db *extra[8]; /* modules added by bus_harness_add_module */
    int nextra;
    cl_bus *bus;
    pgtest pg; /* the PostgreSQL database, when pg.db is set */
    /*
     * Set before publishing: the handler of the event with this seq fails once, after
     * writing its "seen" row (effects its transaction must roll back). 0: none.
     */
    long fail_once_seq;
    atomic_int failures; /* how many times the handler failed so */
} bus_harness;

/* The subscriber's committed "seen" rows. */
typedef struct bus_seen {
    long rows;     /* events handled (committed) */
    long distinct; /* distinct (key, seq) among them */
    long late;     /* of which arrived after a later event of their key */
} bus_seen;

/* The relays' idle poll interval (CLEAVE_BUS_POLL_MS) of harnesses opened from now on; 20. */
extern int bus_harness_poll_ms;
/* Their linger (CLEAVE_BUS_LINGER_MS) of harnesses opened from now on; -1: the default. */
extern int bus_harness_linger_ms;

/*
 * The bus schema version the databases of harnesses opened from now on are brought to; 0
 * (the default): the current one. An older one is for upgrade tests, which apply the rest
 * in before_start (the bus does not start on an old schema).
 */
extern int bus_harness_schema_version;

/* nats_url NULL: in process. Returns 0 or -1 (printed). The bus is started. */
int bus_harness_open(bus_harness *h, const char *nats_url, int relays, int workers);
/*
 * As bus_harness_open, calling before_start(h, arg) once both databases are on the bus and
 * before it starts (to add subscriptions or tables); it returns 0, or -1 to fail the open.
 */
int bus_harness_open_with(bus_harness *h, const char *nats_url, int relays, int workers,
                          int (*before_start)(bus_harness *h, void *arg), void *arg);
void bus_harness_close(bus_harness *h);

/*
 * In before_start: adds a module named name on a throwaway database of its own (a file, or
 * a schema of the harness's PostgreSQL database) with the bus's tables. *db is borrowed
 * (closed by bus_harness_close). 0, or -1 (printed).
 */
int bus_harness_add_module(bus_harness *h, const char *name, cl_db **db);

/* Publishes events seq first..first+n-1 of key in transactions of batch events each. */
int bus_harness_publish(bus_harness *h, const char *key, int first, int n, int batch);
/*
 * Waits until the subscriber's committed rows number total, up to timeout_ms (polling the
 * table). 0, or -1 (printed).
 */
int bus_harness_wait(bus_harness *h, long total, int timeout_ms);
/* Counts the subscriber's committed rows into *out. 0, or -1 (printed). */
int bus_harness_seen(bus_harness *h, bus_seen *out);

#endif
