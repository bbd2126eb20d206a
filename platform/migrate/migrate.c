/*
 * Versioned, checksummed migrations, applied through the generic cl_db layer only, so
 * that the same code migrates SQLite now and PostgreSQL later.
 *
 * A migration file must not contain its own BEGIN/COMMIT: each one runs inside the
 * transaction that also records it, which is what makes a failure leave no trace.
 */
#include "cleave/migrate.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleave/util.h"

/* Bounds on what a migrations directory may hold; beyond them something is wrong. */
#define CL__MIGRATE_MAX_FILES   1000
#define CL__MIGRATE_MAX_BYTES   ((size_t)1024 * 1024)
#define CL__MIGRATE_MIN_DIGITS  4
/* 18 digits always fit in an int64_t. */
#define CL__MIGRATE_MAX_DIGITS  18
#define CL__MIGRATE_MAX_MODULE  64
#define CL__MIGRATE_MAX_DIALECT 32

/* Portable DDL: BIGINT and TEXT mean the same in SQLite and PostgreSQL. */
static const char create_table_sql[] = "CREATE TABLE IF NOT EXISTS cl_migrations ("
                                       "version BIGINT PRIMARY KEY, "
                                       "name TEXT NOT NULL, "
                                       "checksum TEXT NOT NULL, "
                                       "applied_at TEXT NOT NULL)";
static const char select_rows_sql[] =
    "SELECT version, name, checksum, applied_at FROM cl_migrations ORDER BY version";
static const char insert_row_sql[] =
    "INSERT INTO cl_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)";

/* The migrations the build read (cl_migrate_known), set once before any thread reads them. */
static const cl_migration_text *known_migrations;
static int nknown_migrations;

typedef struct mig_file {
    int64_t version;
    bool dialect_specific;
    char name[128];
    char checksum[65];
} mig_file;

typedef struct mig_row {
    int64_t version;
    char name[128];
    char checksum[65];
    char applied_at[32];
} mig_row;

/* What is on disk and what the database says, for one module. */
typedef struct mig_state {
    char path[PATH_MAX]; /* dir/module */
    const char *module;
    mig_file *files; /* sorted by version, one per version */
    int nfiles;
    mig_row *rows; /* sorted by version */
    int nrows;
} mig_state;

static void state_free(mig_state *s)
{
    free(s->files);
    free(s->rows);
    s->files = NULL;
    s->rows = NULL;
}

static bool is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

/*
 * Parses NNNN_description.sql or NNNN_description.<dialect>.sql. dialect receives the
 * dialect or "" for a plain file. Returns false for anything else.
 */
static bool parse_name(const char *name, int64_t *version, char dialect[CL__MIGRATE_MAX_DIALECT])
{
    const char *p = name;
    const char *dot;
    int64_t v = 0;
    int digits = 0;
    size_t dlen;

    while (*p >= '0' && *p <= '9') {
        if (digits == CL__MIGRATE_MAX_DIGITS) {
            return false;
        }
        v = v * 10 + (*p - '0');
        digits++;
        p++;
    }
    if (digits < CL__MIGRATE_MIN_DIGITS || *p != '_') {
        return false;
    }
    p++;
    if (!is_name_char(*p)) {
        return false;
    }
    while (is_name_char(*p)) {
        p++;
    }
    if (strcmp(p, ".sql") == 0) {
        dialect[0] = '\0';
        *version = v;
        return true;
    }
    if (*p != '.') {
        return false;
    }
    p++;
    dot = strchr(p, '.');
    if (dot == NULL || strcmp(dot, ".sql") != 0) {
        return false;
    }
    dlen = (size_t)(dot - p);
    if (dlen == 0 || dlen >= CL__MIGRATE_MAX_DIALECT) {
        return false;
    }
    for (size_t i = 0; i < dlen; i++) {
        if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= '0' && p[i] <= '9'))) {
            return false;
        }
    }
    memcpy(dialect, p, dlen);
    dialect[dlen] = '\0';
    *version = v;
    return true;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s);
    size_t m = strlen(suffix);

    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Sorts by version, the plain file before the dialect-specific one. */
static int file_cmp(const void *a, const void *b)
{
    const mig_file *x = a;
    const mig_file *y = b;

    if (x->version != y->version) {
        return x->version < y->version ? -1 : 1;
    }
    return (int)x->dialect_specific - (int)y->dialect_specific;
}

/*
 * Reads dir/name whole into a NUL-terminated buffer the caller frees. The text is handed
 * to the driver as a C string, so a NUL byte inside would silently cut the migration.
 */
static cl_status read_migration(const mig_state *s, const char *name, char **text, size_t *len,
                                cl_error *err)
{
    char path[PATH_MAX];
    char *buf = NULL;
    size_t n = 0;
    ssize_t r;
    int fd = -1;
    cl_status st;

    if (snprintf(path, sizeof(path), "%s/%s", s->path, name) >= (int)sizeof(path)) {
        return cl_error_set(err, CL_INVALID, name, "migration path %s/%s is too long", s->path,
                            name);
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        st = cl_error_set(err, CL_INTERNAL, name, "cannot open migration %s/%s: %s", s->module,
                          name, strerror(errno));
        goto out;
    }
    /* One byte more than the cap tells an oversized file from one exactly at the cap. */
    buf = malloc(CL__MIGRATE_MAX_BYTES + 2);
    if (buf == NULL) {
        st = cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
        goto out;
    }
    for (;;) {
        r = read(fd, buf + n, CL__MIGRATE_MAX_BYTES + 1 - n);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            st = cl_error_set(err, CL_INTERNAL, name, "cannot read migration %s/%s: %s", s->module,
                              name, strerror(errno));
            goto out;
        }
        if (r == 0) {
            break;
        }
        n += (size_t)r;
        if (n > CL__MIGRATE_MAX_BYTES) {
            st = cl_error_set(err, CL_INVALID, name, "migration %s/%s is larger than %zu bytes",
                              s->module, name, CL__MIGRATE_MAX_BYTES);
            goto out;
        }
    }
    if (memchr(buf, '\0', n) != NULL) {
        st = cl_error_set(err, CL_INVALID, name, "migration %s/%s contains a NUL byte", s->module,
                          name);
        goto out;
    }
    buf[n] = '\0';
    *text = buf;
    *len = n;
    buf = NULL;
    st = CL_OK;
out:
    free(buf);
    if (fd >= 0) {
        close(fd);
    }
    return st;
}

static void sha256_hex(const char *data, size_t len, char hex[65])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char md[CL_SHA256_SIZE];

    cl_sha256(data, len, md);
    for (size_t i = 0; i < sizeof(md); i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 0xf];
    }
    hex[64] = '\0';
}

void cl_migrate_known(const cl_migration_text *known, int n)
{
    known_migrations = known;
    nknown_migrations = known != NULL && n > 0 ? n : 0;
}

/*
 * The SHA-256 of a migration's text: the build's when it read these very bytes (compared
 * whole: a checksum stands for the bytes, never for a name), else computed now.
 */
static void checksum_text(const mig_state *s, const char *name, const char *text, size_t len,
                          char hex[65])
{
    /* No text (read_migration always gives one) has no entry either: it is hashed as is. */
    for (int i = 0; text != NULL && i < nknown_migrations; i++) {
        const cl_migration_text *k = &known_migrations[i];

        if (k->len == len && strcmp(k->module, s->module) == 0 && strcmp(k->name, name) == 0 &&
            memcmp(k->text, text, len) == 0) {
            cl_strlcpy(hex, k->sha256, 65);
            return;
        }
    }
    sha256_hex(text, len, hex);
}

static cl_status checksum_file(const mig_state *s, const char *name, char hex[65], cl_error *err)
{
    char *text = NULL;
    size_t len = 0;
    cl_status st;

    st = read_migration(s, name, &text, &len, err);
    if (st == CL_OK) {
        checksum_text(s, name, text, len, hex);
    }
    free(text);
    return st;
}

/* Lists, validates and checksums the migration files of s->path for dialect. */
static cl_status load_files(mig_state *s, const char *dialect, cl_error *err)
{
    DIR *d = NULL;
    struct dirent *de;
    mig_file *all = NULL;
    int nall = 0;
    int nsql = 0;
    int kept = 0;
    char file_dialect[CL__MIGRATE_MAX_DIALECT];
    int64_t version;
    cl_status st;

    d = opendir(s->path);
    if (d == NULL) {
        if (errno == ENOENT || errno == ENOTDIR) {
            return cl_error_set(err, CL_NOT_FOUND, NULL, "no migrations directory %s", s->path);
        }
        return cl_error_set(err, CL_INTERNAL, NULL, "cannot read migrations directory %s: %s",
                            s->path, strerror(errno));
    }
    all = calloc(CL__MIGRATE_MAX_FILES, sizeof(*all));
    if (all == NULL) {
        st = cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
        goto out;
    }
    for (;;) {
        errno = 0;
        de = readdir(d);
        if (de == NULL) {
            break;
        }
        /* Hidden files are editors' and tools' business, not migrations. */
        if (de->d_name[0] == '.' || !ends_with(de->d_name, ".sql")) {
            continue;
        }
        if (++nsql > CL__MIGRATE_MAX_FILES) {
            st = cl_error_set(err, CL_INVALID, NULL, "more than %d migrations in %s",
                              CL__MIGRATE_MAX_FILES, s->path);
            goto out;
        }
        if (strlen(de->d_name) >= sizeof(all[0].name) ||
            !parse_name(de->d_name, &version, file_dialect)) {
            st = cl_error_set(err, CL_INVALID, de->d_name,
                              "bad migration file name %s/%s (want NNNN_description.sql or "
                              "NNNN_description.<dialect>.sql)",
                              s->module, de->d_name);
            goto out;
        }
        if (file_dialect[0] != '\0' && strcmp(file_dialect, dialect) != 0) {
            continue;
        }
        all[nall].version = version;
        all[nall].dialect_specific = file_dialect[0] != '\0';
        cl_strlcpy(all[nall].name, de->d_name, sizeof(all[nall].name));
        nall++;
    }
    if (errno != 0) {
        st = cl_error_set(err, CL_INTERNAL, NULL, "cannot read migrations directory %s: %s",
                          s->path, strerror(errno));
        goto out;
    }

    qsort(all, (size_t)nall, sizeof(*all), file_cmp);
    /* Keep one file per version: the dialect's own when there is one. */
    for (int i = 0; i < nall; i++) {
        if (i + 1 < nall && all[i + 1].version == all[i].version) {
            if (all[i + 1].dialect_specific == all[i].dialect_specific) {
                st = cl_error_set(err, CL_INVALID, all[i + 1].name,
                                  "two migrations with version %04lld in %s: %s and %s",
                                  (long long)all[i].version, s->module, all[i].name,
                                  all[i + 1].name);
                goto out;
            }
            /* all[i] is the plain file, replaced by the dialect-specific all[i + 1]. */
            continue;
        }
        all[kept++] = all[i];
    }
    for (int i = 0; i < kept; i++) {
        st = checksum_file(s, all[i].name, all[i].checksum, err);
        if (st != CL_OK) {
            goto out;
        }
    }
    s->files = all;
    s->nfiles = kept;
    all = NULL;
    st = CL_OK;
out:
    free(all);
    closedir(d);
    return st;
}

/* Reads cl_migrations into s->rows. */
static cl_status load_rows(mig_state *s, cl_db_conn *c, cl_error *err)
{
    cl_stmt *q = NULL;
    mig_row *rows = NULL;
    int n = 0;
    bool row = false;
    cl_status st;

    free(s->rows);
    s->rows = NULL;
    s->nrows = 0;
    rows = calloc(CL__MIGRATE_MAX_FILES, sizeof(*rows));
    if (rows == NULL) {
        return cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
    }
    st = cl_db_prepare(c, select_rows_sql, &q, err);
    if (st != CL_OK) {
        goto out;
    }
    for (;;) {
        st = cl_stmt_step(q, &row, err);
        if (st != CL_OK || !row) {
            break;
        }
        if (n == CL__MIGRATE_MAX_FILES) {
            st = cl_error_set(err, CL_INTERNAL, NULL, "more than %d rows in cl_migrations of %s",
                              CL__MIGRATE_MAX_FILES, s->module);
            break;
        }
        rows[n].version = cl_stmt_i64(q, 0);
        cl_strlcpy(rows[n].name, cl_stmt_text(q, 1), sizeof(rows[n].name));
        cl_strlcpy(rows[n].checksum, cl_stmt_text(q, 2), sizeof(rows[n].checksum));
        cl_strlcpy(rows[n].applied_at, cl_stmt_text(q, 3), sizeof(rows[n].applied_at));
        n++;
    }
    if (st != CL_OK) {
        goto out;
    }
    s->rows = rows;
    s->nrows = n;
    rows = NULL;
out:
    free(rows);
    return st;
}

static const mig_file *find_file(const mig_state *s, int64_t version)
{
    int lo = 0;
    int hi = s->nfiles;

    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;

        if (s->files[mid].version == version) {
            return &s->files[mid];
        }
        if (s->files[mid].version < version) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}

static const mig_row *find_row(const mig_state *s, int64_t version)
{
    int lo = 0;
    int hi = s->nrows;

    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;

        if (s->rows[mid].version == version) {
            return &s->rows[mid];
        }
        if (s->rows[mid].version < version) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}

/* Every applied migration must still be on disk, byte for byte. */
static cl_status verify(const mig_state *s, cl_error *err)
{
    for (int i = 0; i < s->nrows; i++) {
        const mig_row *r = &s->rows[i];
        const mig_file *f = find_file(s, r->version);

        if (f == NULL) {
            return cl_error_set(err, CL_CONFLICT, r->name,
                                "applied migration %04lld (%s) of %s is missing",
                                (long long)r->version, r->name, s->module);
        }
        if (strcmp(f->checksum, r->checksum) != 0) {
            return cl_error_set(err, CL_CONFLICT, f->name,
                                "migration %s/%s was changed after it was applied "
                                "(checksum %.12s, applied %.12s)",
                                s->module, f->name, f->checksum, r->checksum);
        }
    }
    return CL_OK;
}

static cl_status state_init(mig_state *s, const cl_db *db, const char *dir, const char *module,
                            cl_error *err)
{
    size_t mlen;

    memset(s, 0, sizeof(*s));
    if (db == NULL || dir == NULL || module == NULL) {
        return cl_error_set(err, CL_INVALID, NULL, "migrate: missing argument");
    }
    /* module becomes a path component: no separators, no "..", bounded. */
    mlen = strlen(module);
    if (mlen == 0 || mlen >= CL__MIGRATE_MAX_MODULE) {
        return cl_error_set(err, CL_INVALID, "module", "bad module name");
    }
    for (size_t i = 0; i < mlen; i++) {
        if (!is_name_char(module[i])) {
            return cl_error_set(err, CL_INVALID, "module", "bad module name %s", module);
        }
    }
    if (snprintf(s->path, sizeof(s->path), "%s/%s", dir, module) >= (int)sizeof(s->path)) {
        return cl_error_set(err, CL_INVALID, "dir", "migrations directory path is too long");
    }
    s->module = module;
    return load_files(s, cl_db_driver_of(db)->dialect, err);
}

/*
 * Loads files and applied rows and checks them against each other, for status and check.
 * /readyz runs this on every probe, so it only reads: the bookkeeping table is created
 * (portably, with IF NOT EXISTS) only when reading it failed, which on a database that
 * was ever migrated does not happen. Asking whether a table exists would be portable
 * SQL in neither SQLite nor PostgreSQL.
 */
static cl_status survey(mig_state *s, cl_db *db, const char *dir, const char *module, cl_error *err)
{
    cl_db_conn *c = NULL;
    cl_status st;

    st = state_init(s, db, dir, module, err);
    if (st != CL_OK) {
        goto out;
    }
    st = cl_db_acquire(db, NULL, &c, err);
    if (st != CL_OK) {
        goto out;
    }
    st = load_rows(s, c, err);
    if (st != CL_OK) {
        st = cl_db_exec(c, create_table_sql, err);
        if (st != CL_OK) {
            goto out;
        }
        st = load_rows(s, c, err);
        if (st != CL_OK) {
            goto out;
        }
    }
    st = verify(s, err);
out:
    cl_db_release(c);
    return st;
}

/* Runs file f and records it, in the transaction the caller opened. */
static cl_status apply_one(const mig_state *s, cl_db_conn *c, const mig_file *f, cl_error *err)
{
    char *text = NULL;
    size_t len = 0;
    char sum[65];
    char now[32];
    cl_stmt *ins = NULL;
    bool row = false;
    cl_error dberr;
    cl_status st;

    st = read_migration(s, f->name, &text, &len, err);
    if (st != CL_OK) {
        goto out;
    }
    checksum_text(s, f->name, text, len, sum);
    /* The recorded checksum must be that of the text actually run. */
    if (strcmp(sum, f->checksum) != 0) {
        st = cl_error_set(err, CL_CONFLICT, f->name, "migration %s/%s changed while migrating",
                          s->module, f->name);
        goto out;
    }
    cl_error_clear(&dberr);
    if (cl_db_exec(c, text, &dberr) != CL_OK) {
        st = cl_error_set(err, CL_INTERNAL, f->name, "migration %s/%s failed: %s", s->module,
                          f->name, dberr.message);
        goto out;
    }
    cl_now_rfc3339(now);
    st = cl_db_prepare(c, insert_row_sql, &ins, err);
    if (st == CL_OK) {
        st = cl_stmt_bind_i64(ins, 1, f->version, err);
    }
    if (st == CL_OK) {
        st = cl_stmt_bind_text(ins, 2, f->name, err);
    }
    if (st == CL_OK) {
        st = cl_stmt_bind_text(ins, 3, f->checksum, err);
    }
    if (st == CL_OK) {
        st = cl_stmt_bind_text(ins, 4, now, err);
    }
    if (st == CL_OK) {
        st = cl_stmt_step(ins, &row, err);
    }
out:
    free(text);
    return st;
}

/* The first file of s with no row, or NULL when every one is applied. */
static const mig_file *first_pending(const mig_state *s)
{
    for (int i = 0; i < s->nfiles; i++) {
        if (find_row(s, s->files[i].version) == NULL) {
            return &s->files[i];
        }
    }
    return NULL;
}

cl_status cl_migrate_apply(cl_db *db, const char *dir, const char *module, int *applied,
                           cl_error *err)
{
    mig_state s;
    cl_db_conn *c = NULL;
    const mig_file *next;
    int count = 0;
    cl_status st;

    st = state_init(&s, db, dir, module, err);
    if (st != CL_OK) {
        goto out;
    }
    st = cl_db_acquire(db, NULL, &c, err);
    if (st != CL_OK) {
        goto out;
    }
    st = cl_db_exec(c, create_table_sql, err);
    if (st != CL_OK) {
        goto out;
    }
    /*
     * Nothing to apply, as at most starts: a read says so, without the write lock (on
     * SQLite the pool's writer, a connection more parsing the schema at every start).
     */
    st = load_rows(&s, c, err);
    if (st == CL_OK) {
        st = verify(&s, err);
    }
    if (st != CL_OK || first_pending(&s) == NULL) {
        goto out;
    }
    /*
     * One transaction per migration, and the applied rows are read inside it: with the
     * write lock held (SQLite's BEGIN IMMEDIATE), another process migrating the same
     * database waits, then sees this one's rows and does not apply them again.
     */
    for (;;) {
        st = cl_db_begin(c, err);
        if (st != CL_OK) {
            goto out;
        }
        /*
         * PostgreSQL's BEGIN takes no lock: this one makes a second migrator wait here,
         * as SQLite's BEGIN IMMEDIATE does, instead of failing on a duplicate version.
         */
        if (strcmp(cl_db_driver_of(db)->dialect, "postgres") == 0) {
            st = cl_db_exec(c, "LOCK TABLE cl_migrations IN SHARE ROW EXCLUSIVE MODE", err);
            if (st != CL_OK) {
                goto out;
            }
        }
        st = load_rows(&s, c, err);
        if (st != CL_OK) {
            goto out;
        }
        st = verify(&s, err);
        if (st != CL_OK) {
            goto out;
        }
        next = first_pending(&s);
        if (next == NULL) {
            cl_db_rollback(c);
            break;
        }
        st = apply_one(&s, c, next, err);
        if (st != CL_OK) {
            goto out;
        }
        st = cl_db_commit(c, err);
        if (st != CL_OK) {
            goto out;
        }
        count++;
    }
    st = CL_OK;
out:
    if (st == CL_OK && applied != NULL) {
        *applied = count;
    }
    /* Releasing rolls back whatever transaction a failure left open. */
    cl_db_release(c);
    state_free(&s);
    return st;
}

cl_status cl_migrate_status(cl_db *db, const char *dir, const char *module, cl_migration_info *out,
                            int max, int *count, cl_error *err)
{
    mig_state s;
    cl_status st;

    if (out == NULL || count == NULL || max < 0) {
        return cl_error_set(err, CL_INVALID, NULL, "cl_migrate_status: missing argument");
    }
    st = survey(&s, db, dir, module, err);
    if (st != CL_OK) {
        goto out;
    }
    /* verify() guarantees every row has its file, so the files are the whole list. */
    if (s.nfiles > max) {
        st = cl_error_set(err, CL_INVALID, "max", "%d migrations of %s do not fit in %d entries",
                          s.nfiles, module, max);
        goto out;
    }
    for (int i = 0; i < s.nfiles; i++) {
        const mig_row *r = find_row(&s, s.files[i].version);
        cl_migration_info *m = &out[i];

        memset(m, 0, sizeof(*m));
        m->version = s.files[i].version;
        cl_strlcpy(m->name, s.files[i].name, sizeof(m->name));
        cl_strlcpy(m->checksum, s.files[i].checksum, sizeof(m->checksum));
        m->applied = r != NULL;
        if (r != NULL) {
            cl_strlcpy(m->applied_at, r->applied_at, sizeof(m->applied_at));
        }
    }
    *count = s.nfiles;
out:
    state_free(&s);
    return st;
}

cl_status cl_migrate_check(cl_db *db, const char *dir, const char *module, cl_error *err)
{
    mig_state s;
    const mig_file *first = NULL;
    int pending = 0;
    cl_status st;

    st = survey(&s, db, dir, module, err);
    if (st != CL_OK) {
        goto out;
    }
    for (int i = 0; i < s.nfiles; i++) {
        if (find_row(&s, s.files[i].version) == NULL) {
            if (first == NULL) {
                first = &s.files[i];
            }
            pending++;
        }
    }
    if (pending > 0) {
        st = cl_error_set(err, CL_UNAVAILABLE, first->name,
                          "%d pending migration%s for %s (first: %s)", pending,
                          pending == 1 ? "" : "s", module, first->name);
    }
out:
    state_free(&s);
    return st;
}
