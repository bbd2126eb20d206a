/*
 * The SQLite migrations that write CHECK constraints without IN lists (ADR 0059), applied as
 * a deployment meets them: on a database migrated to the version before, holding orders (or
 * reservations) with their child rows. The rows must come through whole, every foreign key
 * must still hold, the constraints must still refuse what they refused, and the writes a
 * checkout makes must no longer build a temporary B-tree for them (SQLite 3.40 builds one
 * per row for an IN list of more than two constants).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleave/migrate.h"

typedef struct fixture {
    char root[64];    /* the temp dir */
    char dir[96];     /* root/migrations: the tree's files up to the version before */
    char moddir[160]; /* root/migrations/<module> */
    char dbpath[160]; /* root/<module>.db */
    const char *module;
} fixture;

static void remove_dir(const char *dir)
{
    char path[512];
    DIR *d = opendir(dir);
    struct dirent *de;

    while (d != NULL && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
            unlink(path);
        }
    }
    if (d != NULL) {
        closedir(d);
    }
    rmdir(dir);
}

/* Copies the tree's migrations of f->module numbered up to last into f->moddir. */
static void copy_migrations_upto(const fixture *f, long last)
{
    char src[512], from[1024], to[1024], buf[4096];
    DIR *d;
    struct dirent *de;
    int copied = 0;

    snprintf(src, sizeof(src), "%s/migrations/%s", CLEAVE_SOURCE_DIR, f->module);
    d = opendir(src);
    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        FILE *in, *out;
        size_t n;

        if (de->d_name[0] < '0' || de->d_name[0] > '9' || strtol(de->d_name, NULL, 10) > last) {
            continue;
        }
        snprintf(from, sizeof(from), "%s/%s", src, de->d_name);
        snprintf(to, sizeof(to), "%s/%s", f->moddir, de->d_name);
        in = fopen(from, "rb");
        out = fopen(to, "wb");
        assert_non_null(in);
        assert_non_null(out);
        while ((n = fread(buf, 1, sizeof(buf), in)) > 0) {
            assert_int_equal(fwrite(buf, 1, n, out), n);
        }
        fclose(in);
        assert_int_equal(fclose(out), 0);
        copied++;
    }
    closedir(d);
    assert_true(copied > 0);
}

static void migrate(const fixture *f, const char *dir, int want)
{
    cl_db *db = NULL;
    cl_error err = {0};
    int applied = -1;
    cl_status st;

    assert_int_equal(cl_db_open(&cl_db_sqlite, f->module, f->dbpath, NULL, &db, &err), CL_OK);
    st = cl_migrate_apply(db, dir, f->module, &applied, &err);
    cl_db_close(db);
    if (st != CL_OK) {
        fail_msg("migrating %s from %s: %s: %s", f->module, dir, cl_status_name(st), err.message);
    }
    if (want >= 0) {
        assert_int_equal(applied, want);
    }
}

static sqlite3 *open_raw(const fixture *f)
{
    sqlite3 *db = NULL;

    assert_int_equal(sqlite3_open(f->dbpath, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA foreign_keys=ON", NULL, NULL, NULL), SQLITE_OK);
    return db;
}

static void exec_ok(sqlite3 *db, const char *sql)
{
    char *msg = NULL;

    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        fail_msg("%s: %s", sql, msg != NULL ? msg : "?");
    }
}

/* The first column of the first row of sql, as text, is want ("" for no row). */
static void expect(sqlite3 *db, const char *sql, const char *want)
{
    sqlite3_stmt *st = NULL;
    char out[256] = "";

    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) != NULL) {
        snprintf(out, sizeof(out), "%s", (const char *)sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
    assert_string_equal(out, want);
}

/* Every foreign key holds, the file is sound, and table's indexes are want (by name, sorted). */
static void expect_sound(sqlite3 *db, const char *table, const char *want)
{
    char sql[256];

    expect(db, "PRAGMA foreign_key_check", "");
    expect(db, "PRAGMA integrity_check", "ok");
    snprintf(sql, sizeof(sql),
             "SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_schema WHERE "
             "type = 'index' AND tbl_name = '%s' AND sql IS NOT NULL ORDER BY name)",
             table);
    expect(db, sql, want);
}

/* How many temporary B-trees the program of sql opens. */
static int ephemeral_tables(sqlite3 *db, const char *sql)
{
    char explain[2048];
    sqlite3_stmt *st = NULL;
    int n = 0;

    snprintf(explain, sizeof(explain), "EXPLAIN %s", sql);
    assert_int_equal(sqlite3_prepare_v2(db, explain, -1, &st, NULL), SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW) {
        n += strcmp((const char *)sqlite3_column_text(st, 1), "OpenEphemeral") == 0;
    }
    sqlite3_finalize(st);
    return n;
}

/* f's database, migrated with the tree's files numbered up to last, opened raw. */
static sqlite3 *migrated_to(const fixture *f, long last)
{
    copy_migrations_upto(f, last);
    migrate(f, f->dir, (int)last);
    return open_raw(f);
}

static void refused(sqlite3 *db, const char *sql)
{
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_CONSTRAINT);
}

static int setup(void **state, const char *module)
{
    fixture *f = calloc(1, sizeof(*f));

    if (f == NULL) {
        return -1;
    }
    f->module = module;
    strcpy(f->root, "/tmp/cleave-schema-XXXXXX");
    if (mkdtemp(f->root) == NULL) {
        free(f);
        return -1;
    }
    snprintf(f->dir, sizeof(f->dir), "%s/migrations", f->root);
    snprintf(f->moddir, sizeof(f->moddir), "%s/%s", f->dir, module);
    snprintf(f->dbpath, sizeof(f->dbpath), "%s/%s.db", f->root, module);
    if (mkdir(f->dir, 0700) != 0 || mkdir(f->moddir, 0700) != 0) {
        return -1;
    }
    *state = f;
    return 0;
}

static int setup_orders(void **state)
{
    return setup(state, "orders");
}

static int setup_inventory(void **state)
{
    return setup(state, "inventory");
}

static int teardown(void **state)
{
    fixture *f = *state;

    remove_dir(f->moddir);
    rmdir(f->dir);
    remove_dir(f->root);
    free(f);
    return 0;
}

static const char order_insert[] =
    "INSERT INTO orders (id, account_id, status, step, total_amount, currency, created_at, "
    "updated_at, principal, lease_owner, lease_host, lease_until, lease_epoch) "
    "VALUES ('ord-3', 'acc', 'pending', 'reserve', 5, 'EUR', 't', 't', 'u', 'x', 'h', 9, 0)";
static const char order_advance[] =
    "UPDATE orders SET step = 'commit', status = 'pending', updated_at = 't2', "
    "lease_until = 10 WHERE id = 'ord-1' AND lease_owner = 'x' AND lease_epoch = 0";

static void test_orders_checks_lose_their_lists_and_keep_every_row(void **state)
{
    fixture *f = *state;
    sqlite3 *db;

    db = migrated_to(f, 4);
    /* Before: the insert and the saga's record each build two temporary B-trees. */
    assert_int_equal(ephemeral_tables(db, order_insert), 2);
    assert_int_equal(ephemeral_tables(db, order_advance), 2);
    exec_ok(db, "INSERT INTO orders (id, account_id, status, step, total_amount, currency, "
                "created_at, updated_at, idem_key, request, principal, lease_owner, lease_epoch) "
                "VALUES ('ord-1', 'acc', 'pending', 'reserve', 5, 'EUR', 'c1', 'u1', 'k1', "
                "'{}', 'alice', 'x', 0), "
                "('ord-2', 'acc', 'confirmed', 'done', 7, 'EUR', 'c2', 'u2', NULL, NULL, NULL, "
                "NULL, 3);"
                "INSERT INTO order_lines VALUES ('ord-1', 0, 'SKU-1', 1, 5, 'EUR'), "
                "('ord-2', 0, 'SKU-2', 1, 7, 'EUR');"
                "INSERT INTO saga_log (order_id, seq, step, outcome, at) VALUES "
                "('ord-1', 1, 'place', 'ok', 't'), ('ord-2', 1, 'place', 'ok', 't');"
                "INSERT INTO order_idempotency VALUES ('alice', 'place_order', 'acc', 'k1', "
                "'{}', 'ord-1')");
    sqlite3_close(db);

    migrate(f, CLEAVE_SOURCE_DIR "/migrations", -1);

    db = open_raw(f);
    expect(db,
           "SELECT group_concat(seq || ':' || id || ':' || status || ':' || step || ':' || "
           "total_amount || ':' || created_at || ':' || ifnull(idem_key, '-') || ':' || "
           "ifnull(principal, '-') || ':' || ifnull(lease_owner, '-') || ':' || lease_epoch, "
           "' ') FROM (SELECT * FROM orders ORDER BY seq)",
           "1:ord-1:pending:reserve:5:c1:k1:alice:x:0 2:ord-2:confirmed:done:7:c2:-:-:-:3");
    expect(db,
           "SELECT (SELECT count(*) FROM order_lines) || (SELECT count(*) FROM saga_log) "
           "|| (SELECT count(*) FROM order_idempotency)",
           "221");
    expect_sound(db, "orders", "orders_principal_seq,orders_status_seq");
    /* After: none, and the same values are refused. */
    assert_int_equal(ephemeral_tables(db, order_insert), 0);
    assert_int_equal(ephemeral_tables(db, order_advance), 0);
    refused(db, "UPDATE orders SET status = 'lost' WHERE id = 'ord-1'");
    refused(db, "UPDATE orders SET step = 'ship' WHERE id = 'ord-1'");
    refused(db, "INSERT INTO order_lines VALUES ('ord-9', 0, 'SKU-1', 1, 5, 'EUR')");
    exec_ok(db, order_insert);
    exec_ok(db, order_advance);
    sqlite3_close(db);
}

static const char reservation_insert[] =
    "INSERT INTO reservations VALUES ('ord-3', 'reserved', 't', 9, 't', 't')";
static const char reservation_commit[] =
    "UPDATE reservations SET status = 'committed', updated_at = 't2' WHERE order_id = 'ord-1'";

static void test_inventory_check_loses_its_list_and_keeps_every_row(void **state)
{
    fixture *f = *state;
    sqlite3 *db;

    db = migrated_to(f, 1);
    assert_int_equal(ephemeral_tables(db, reservation_insert), 1);
    assert_int_equal(ephemeral_tables(db, reservation_commit), 1);
    exec_ok(db, "INSERT INTO stock (sku, on_hand, reserved, updated_at) VALUES "
                "('SKU-1', 10, 2, 't');"
                "INSERT INTO reservations VALUES ('ord-1', 'reserved', 'c1', 5, 'e1', 'u1'), "
                "('ord-2', 'released', 'c2', 6, 'e2', 'u2');"
                "INSERT INTO reservation_lines VALUES ('ord-1', 0, 'SKU-1', 2), "
                "('ord-2', 0, 'SKU-1', 1)");
    sqlite3_close(db);

    migrate(f, CLEAVE_SOURCE_DIR "/migrations", -1);

    db = open_raw(f);
    expect(db,
           "SELECT group_concat(order_id || ':' || status || ':' || created_at || ':' || "
           "expires_at_ms || ':' || expires_at || ':' || updated_at, ' ') FROM "
           "(SELECT * FROM reservations ORDER BY order_id)",
           "ord-1:reserved:c1:5:e1:u1 ord-2:released:c2:6:e2:u2");
    expect(db, "SELECT count(*) FROM reservation_lines", "2");
    expect_sound(db, "reservations", "reservations_status_expiry");
    assert_int_equal(ephemeral_tables(db, reservation_insert), 0);
    assert_int_equal(ephemeral_tables(db, reservation_commit), 0);
    refused(db, "UPDATE reservations SET status = 'lost' WHERE order_id = 'ord-1'");
    refused(db, "INSERT INTO reservation_lines VALUES ('ord-9', 0, 'SKU-1', 1)");
    exec_ok(db, reservation_insert);
    exec_ok(db, reservation_commit);
    sqlite3_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_orders_checks_lose_their_lists_and_keep_every_row,
                                        setup_orders, teardown),
        cmocka_unit_test_setup_teardown(test_inventory_check_loses_its_list_and_keeps_every_row,
                                        setup_inventory, teardown),
    };
    return cmocka_run_group_tests_name("schema_checks", tests, NULL, NULL);
}
