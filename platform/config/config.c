/*
 * Configuration: built-in defaults < config file < environment.
 *
 * The platform declares its own keys once, in cfg_keys below; every other key is declared
 * by its owner (a module's interface, a test build's hooks) and handed to cl_config_load,
 * and each module also gets the per-module keys of cfg_module_keys. Each value is
 * validated as it is set, so that an error names the key, the value and where it came
 * from, and start-up stops before anything runs with a half-understood configuration.
 */
#include "cleave/config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleave/log.h"
#include "config_internal.h"

/* Hard caps, so that a hostile or mistaken file cannot make us allocate without bound. */
#define CFG_MAX_FILE_BYTES  ((size_t)64 * 1024)
#define CFG_MAX_LINE_BYTES  4096
#define CFG_MAX_VALUE_BYTES 1024
#define CFG_MAX_MODULES     64
#define CFG_MAX_MODULE_NAME 40
#define CFG_MAX_KEY_BYTES   128
/* How much of an offending value an error message quotes; the message buffer is 256 bytes. */
#define CFG_QUOTE_BYTES     48

#define CFG_COUNT(a)        (sizeof(a) / sizeof((a)[0]))

/* The platform's own keys. A module's keys belong in its interface (cl_module_api). */
static const cl_setting cfg_keys[] = {
    {"CLEAVE_LISTEN", CL_SETTING_LISTEN, "127.0.0.1:8080", "address the HTTP server listens on"},
    {"CLEAVE_DATA_DIR", CL_SETTING_PATH, "./var", "directory for databases and other state"},
    {"CLEAVE_SQLITE_EXCLUSIVE", CL_SETTING_INT(0, 1), "0",
     "1: this process keeps its SQLite files to itself, no other may open them while it runs "
     "(ADR 0055)"},
    {"CLEAVE_BACKGROUND_NICE", CL_SETTING_INT(0, 19), "0",
     "1-19: the nice value of the threads no request waits on (relays, inbox workers, runners, "
     "checkpoints), which then yield the CPU to those that answer (ADR 0071); 0: the process's "
     "own"},
    {"CLEAVE_LOG_LEVEL", CL_SETTING_LEVEL, "info", "lowest level logged: debug, info, warn, error"},
    {"CLEAVE_MIGRATIONS_DIR", CL_SETTING_PATH, NULL, "directory of SQL migrations"},
    {"CLEAVE_HTTP_THREADS", CL_SETTING_INT(1, 1024), "64",
     "HTTP worker threads: each holds one open connection (ADR 0029)"},
    {"CLEAVE_HTTP_HEAD_TIMEOUT_MS", CL_SETTING_INT(1, 600000), "10000",
     "time for a request line and header fields, in total"},
    {"CLEAVE_HTTP_BODY_TIMEOUT_MS", CL_SETTING_INT(1, 600000), "30000",
     "time for a request body, in total"},
    {"CLEAVE_HTTP_MIN_BODY_RATE", CL_SETTING_INT(0, 1073741824), "1024",
     "bytes per second a body must keep after its first second; 0: no minimum"},
    {"CLEAVE_HTTP_KEEP_ALIVE_MS", CL_SETTING_INT(1, 600000), "500",
     "idle time of a kept-alive connection before its next request"},
    {"CLEAVE_HTTP_MAX_CONNECTIONS_PER_CLIENT", CL_SETTING_INT(0, 1024), "0",
     "connections one client address may hold; 0: no cap (behind a gateway or edge proxy)"},
    {"CLEAVE_HTTP_MAX_INFLIGHT", CL_SETTING_INT(1, 1024), "48",
     "requests running at once; more are answered 503 with Retry-After"},
    {"CLEAVE_HTTP_ROUTE_MAX_INFLIGHT", CL_SETTING_INT(1, 1024), "32",
     "requests one route runs at once unless the host gives it its own bulkhead"},
    {"CLEAVE_HTTP_GZIP", CL_SETTING_INT(0, 1), "1",
     "1: gzip JSON and text answers of 1 KiB and more for clients that accept it; 0: never "
     "(ADR 0040)"},
    {"CLEAVE_DRAIN_DELAY_MS", CL_SETTING_INT(0, 600000), "5000",
     "after SIGTERM, how long /readyz answers 503 before the listener closes (ADR 0032)"},
    {"CLEAVE_DRAIN_GRACE_S", CL_SETTING_INT(1, 3600), "25",
     "after SIGTERM, the most time for requests, saga steps and relays to finish"},
    {"CLEAVE_MAX_BODY_BYTES", CL_SETTING_INT(1024, 67108864), "1048576", "largest request body"},
    {"CLEAVE_REQUEST_TIMEOUT_MS", CL_SETTING_INT(1, 600000), "10000", "deadline of one request"},
    {"CLEAVE_CLIENT_ID", CL_SETTING_STRING, NULL,
     "this process's OAuth client (client_credentials) for calling modules in other processes"},
    {"CLEAVE_CLIENT_SECRET", CL_SETTING_STRING, NULL, "the secret of CLEAVE_CLIENT_ID"},
    {"CLEAVE_DEV_SERVICE_TOKEN", CL_SETTING_STRING, NULL,
     "INSECURE, development only: a static token services accept instead of service JWTs, "
     "trusting the caller's principal headers"},
    /* Mutual TLS between the host and the services (ADR 0035). */
    {"CLEAVE_TLS_CERT", CL_SETTING_PATH, NULL,
     "PEM certificate chain: the HTTP server serves only mutual TLS"},
    {"CLEAVE_TLS_KEY", CL_SETTING_PATH, NULL, "private key of CLEAVE_TLS_CERT (PEM)"},
    {"CLEAVE_TLS_CLIENT_CA", CL_SETTING_PATH, NULL,
     "CA whose client certificates the HTTP server requires"},
    {"CLEAVE_TLS_CLIENT_CERT", CL_SETTING_PATH, NULL,
     "PEM certificate this process presents to the services it calls"},
    {"CLEAVE_TLS_CLIENT_KEY", CL_SETTING_PATH, NULL, "private key of CLEAVE_TLS_CLIENT_CERT"},
    {"CLEAVE_TLS_CA", CL_SETTING_PATH, NULL,
     "CA that signs the services' certificates; unset: the system's"},
    {"CLEAVE_TRACE_SAMPLE", CL_SETTING_STRING, "1",
     "share of new traces recorded, 0 to 1; a caller's sampled flag wins (cleave/trace.h)"},
    {"CLEAVE_OTLP_ENDPOINT", CL_SETTING_URL, NULL,
     "OTLP/HTTP collector spans are exported to (http://host:4318); unset: none"},
    {"CLEAVE_AUTH_AUDIENCE", CL_SETTING_STRING, "cleave",
     "the aud a gateway requires of every access token"},
    {"CLEAVE_AUTH_LEEWAY_S", CL_SETTING_INT(0, 300), "30",
     "clock skew a gateway allows for a token's exp and nbf, in seconds"},
    {"CLEAVE_NATS_URL", CL_SETTING_STRING, NULL, "NATS JetStream for the bus; unset: in-process"},
    {"CLEAVE_BUS_RELAYS", CL_SETTING_INT(1, 16), "1", "outbox relay threads per module"},
    {"CLEAVE_BUS_WORKERS", CL_SETTING_INT(1, 64), "2", "handler threads per subscribing module"},
    {"CLEAVE_BUS_MAX_ATTEMPTS", CL_SETTING_INT(1, 100), "5", "handler attempts before dead letter"},
    {"CLEAVE_BUS_BACKOFF_MS", CL_SETTING_INT(1, 60000), "50", "first retry delay"},
    {"CLEAVE_BUS_BACKOFF_MAX_MS", CL_SETTING_INT(1, 600000), "2000", "longest retry delay"},
    {"CLEAVE_BUS_POLL_MS", CL_SETTING_INT(1, 60000), "100", "outbox poll interval when idle"},
    {"CLEAVE_BUS_LINGER_MS", CL_SETTING_INT(0, 20), "5",
     "under load, how long after a round a relay lets rows gather before the next; 0: none"},
    {"CLEAVE_BUS_ACK_WAIT_MS", CL_SETTING_INT(100, 3600000), "30000", "NATS redelivery after"},
    {"CLEAVE_BUS_OPERATION_LEASE_MS", CL_SETTING_INT(1000, 3600000), "30000",
     "how long a runner's lease on a running operation lasts unrenewed"},
    {"CLEAVE_BUS_OPERATION_RENEW_MS", CL_SETTING_INT(100, 600000), "10000",
     "how often a process renews its operations' leases; less than the lease"},
    {"CLEAVE_HOST_ID", CL_SETTING_STRING, NULL,
     "this host's name in saga and operation leases, one process at a time; unset: the "
     "machine's host name"},
    {"CLEAVE_DATABASE_URL", CL_SETTING_STRING, NULL, "PostgreSQL for every module, a schema each"},
    {"CLEAVE_DATABASE_REPLICA_URL", CL_SETTING_STRING, NULL,
     "a read replica of CLEAVE_DATABASE_URL"},
    {"CLEAVE_DATABASE_ADMIN_URL", CL_SETTING_STRING, NULL,
     "PostgreSQL admin: creates roles and schemas"},
    {"CLEAVE_DATABASE_POOL_MIN", CL_SETTING_INT(0, 256), "1", "connections each module keeps open"},
    {"CLEAVE_DATABASE_POOL_MAX", CL_SETTING_INT(1, 256), "8", "most connections of one module"},
    {"CLEAVE_DATABASE_ACQUIRE_TIMEOUT_MS", CL_SETTING_INT(1, 600000), "2000",
     "wait for a connection"},
    /* Remote calls (ADR 0023); each module's CLEAVE_<MODULE>_... of the same name overrides. */
    {"CLEAVE_RPC_BREAKER_FAILURE_PCT", CL_SETTING_INT(1, 100), "50",
     "a remote target's circuit opens at this share of failed calls"},
    {"CLEAVE_RPC_BREAKER_MIN_CALLS", CL_SETTING_INT(1, 100000), "20",
     "calls in the window before the failure share counts"},
    {"CLEAVE_RPC_BREAKER_WINDOW_MS", CL_SETTING_INT(10, 3600000), "10000",
     "rolling window of the failure share"},
    {"CLEAVE_RPC_BREAKER_OPEN_MS", CL_SETTING_INT(1, 3600000), "5000",
     "how long an open circuit refuses calls before a probe"},
    {"CLEAVE_RPC_RETRY_MAX_ATTEMPTS", CL_SETTING_INT(1, 10), "3",
     "attempts of a call to a read or idempotent operation"},
    {"CLEAVE_RPC_RETRY_BACKOFF_MS", CL_SETTING_INT(1, 60000), "25", "first retry's wait ceiling"},
    {"CLEAVE_RPC_RETRY_BACKOFF_MAX_MS", CL_SETTING_INT(1, 600000), "1000",
     "largest retry wait ceiling"},
    {"CLEAVE_RPC_RETRY_BUDGET_PCT", CL_SETTING_INT(0, 100), "10",
     "retries at most this share of calls, per target"},
    {"CLEAVE_RPC_STALE_MAX_ENTRIES", CL_SETTING_INT(0, 1000000), "1000",
     "last good answers of stale-tolerant reads kept per target; 0: no stale fallback"},
    {"CLEAVE_RPC_STALE_MAX_BYTES", CL_SETTING_INT(1024, 1073741824), "4194304",
     "bytes of those answers kept per target"},
    {"CLEAVE_RPC_STALE_MAX_AGE_S", CL_SETTING_INT(1, 86400), "300",
     "oldest answer served stale while its service is unavailable (ADR 0033)"},
    /* The read cache (ADR 0042): one per module with cached operations. */
    {"CLEAVE_CACHE_TTL_MS", CL_SETTING_INT(0, 3600000), "5000",
     "longest a cached read answer is served, and the bound on its staleness; 0: no cache"},
    {"CLEAVE_CACHE_MAX_ENTRIES", CL_SETTING_INT(1, 10000000), "10000",
     "answers kept per cached module"},
    {"CLEAVE_CACHE_MAX_BYTES", CL_SETTING_INT(1024, 4294967296), "16777216",
     "bytes of those answers (keys and values) kept per cached module"},
    {"CLEAVE_REDIS_URL", CL_SETTING_STRING, NULL,
     "redis://host[:port]: the read cache's shared level and its invalidations between "
     "hosts; unset: each host's cache alone"},
};
#define CFG_NKEYS CFG_COUNT(cfg_keys)

/* CLEAVE_<MODULE>_<suffix> for every module: here the name is the suffix alone. */
static const cl_setting cfg_module_keys[] = {
    {"URL", CL_SETTING_URL, NULL, "base URL of the module's remote binding"},
    {"DATABASE_URL", CL_SETTING_STRING, NULL, "the module's database"},
    {"DATABASE_ADMIN_URL", CL_SETTING_STRING, NULL,
     "admin credentials of the module's database server"},
    {"REPLICA_URL", CL_SETTING_STRING, NULL, "a read replica of the module's database"},
    {"TIMEOUT_MS", CL_SETTING_INT(1, 600000), NULL, "deadline of one call to the module"},
    {"BREAKER_FAILURE_PCT", CL_SETTING_INT(1, 100), NULL, "CLEAVE_RPC_... for this module"},
    {"BREAKER_MIN_CALLS", CL_SETTING_INT(1, 100000), NULL, "CLEAVE_RPC_... for this module"},
    {"BREAKER_WINDOW_MS", CL_SETTING_INT(10, 3600000), NULL, "CLEAVE_RPC_... for this module"},
    {"BREAKER_OPEN_MS", CL_SETTING_INT(1, 3600000), NULL, "CLEAVE_RPC_... for this module"},
    {"RETRY_MAX_ATTEMPTS", CL_SETTING_INT(1, 10), NULL, "CLEAVE_RPC_... for this module"},
    {"RETRY_BUDGET_PCT", CL_SETTING_INT(0, 100), NULL, "CLEAVE_RPC_... for this module"},
};
#define CFG_NMODULE_KEYS CFG_COUNT(cfg_module_keys)

typedef enum cfg_source { CFG_SRC_UNSET, CFG_SRC_DEFAULT, CFG_SRC_FILE, CFG_SRC_ENV } cfg_source;

typedef struct cfg_value {
    char *value; /* owned; NULL when unset */
    cfg_source source;
    char *name;             /* owned: the key */
    const cl_setting *desc; /* borrowed: its declaration */
} cfg_value;

/* An owner of keys beyond the platform's, as handed to cl_config_load. */
typedef struct cfg_owner {
    char prefix[CFG_MAX_MODULE_NAME + 2]; /* "WIDGETS_": the owner upper-cased, then '_' */
    const cl_settings *settings;          /* borrowed */
    size_t first;                         /* its first slot: module keys, then its list */
} cfg_owner;

/*
 * Slots 0..CFG_NKEYS-1 hold the platform's keys; then, per owner in the order given, the
 * CFG_NMODULE_KEYS per-module keys (modules only) and the keys of its own list.
 */
struct cl_config {
    size_t nowners;
    cfg_owner owners[CFG_MAX_MODULES];
    size_t nslots;
    cfg_value *slots;
    /* The slots sorted by key (then by slot), so that a lookup is a binary search. */
    cfg_value **by_name;
};

/* Where a value came from, for messages: "environment" or "config.conf line 3". */
typedef struct cfg_origin {
    cfg_source source;
    const char *file;
    int line;
} cfg_origin;

static void origin_describe(const cfg_origin *o, char *buf, size_t size)
{
    switch (o->source) {
    case CFG_SRC_FILE:
        snprintf(buf, size, "%s line %d", o->file, o->line);
        break;
    case CFG_SRC_ENV:
        snprintf(buf, size, "environment");
        break;
    default:
        snprintf(buf, size, "built-in default");
        break;
    }
}

static int slot_order(const void *a, const void *b)
{
    const cfg_value *x = *(const cfg_value *const *)a;
    const cfg_value *y = *(const cfg_value *const *)b;
    int c = strcmp(x->name, y->name);

    if (c != 0) {
        return c;
    }
    return x < y ? -1 : x > y;
}

static int key_order(const void *key, const void *elem)
{
    return strcmp(key, (*(const cfg_value *const *)elem)->name);
}

/* Finds the slot of key and its description, or returns -1 for an unknown key. */
static long config_lookup(const cl_config *cfg, const char *key, const cl_setting **desc)
{
    cfg_value *const *found =
        bsearch(key, cfg->by_name, cfg->nslots, sizeof(*cfg->by_name), key_order);

    if (found == NULL) {
        return -1;
    }
    *desc = (*found)->desc;
    return (long)(*found - cfg->slots);
}

static int has_control_chars(const char *s)
{
    for (; *s != '\0'; s++) {
        if (iscntrl((unsigned char)*s)) {
            return 1;
        }
    }
    return 0;
}

static int parse_int(const char *s, int64_t *out)
{
    char *end = NULL;
    long long v;

    /* strtoll would accept leading blanks and an empty string; a config value may not. */
    if (!isdigit((unsigned char)s[0]) &&
        !((s[0] == '-' || s[0] == '+') && isdigit((unsigned char)s[1]))) {
        return -1;
    }
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0') {
        return -1;
    }
    *out = (int64_t)v;
    return 0;
}

/* host:port, split at the last colon so that "[::1]:8080" works. */
static int valid_listen(const char *s)
{
    const char *colon = strrchr(s, ':');
    const char *p;
    long port = 0;

    if (colon == NULL || colon == s || colon[1] == '\0') {
        return 0;
    }
    for (p = s; p < colon; p++) {
        if (isspace((unsigned char)*p) || iscntrl((unsigned char)*p)) {
            return 0;
        }
    }
    for (p = colon + 1; *p != '\0'; p++) {
        if (!isdigit((unsigned char)*p) || p - colon > 5) {
            return 0;
        }
        port = port * 10 + (*p - '0');
    }
    return port <= 65535;
}

static int valid_url(const char *s)
{
    const char *host;

    if (strncmp(s, "http://", 7) == 0) {
        host = s + 7;
    } else if (strncmp(s, "https://", 8) == 0) {
        host = s + 8;
    } else {
        return 0;
    }
    if (*host == '\0' || *host == '/') {
        return 0;
    }
    for (; *s != '\0'; s++) {
        if (isspace((unsigned char)*s) || iscntrl((unsigned char)*s)) {
            return 0;
        }
    }
    return 1;
}

/* Returns NULL when value is valid for desc, or the reason it is not. */
static const char *check_value(const cl_setting *desc, const char *value, char *why, size_t size)
{
    int64_t n;
    cl_log_level level;

    switch (desc->type) {
    case CL_SETTING_TYPE_STRING:
        return has_control_chars(value) ? "contains control characters" : NULL;
    case CL_SETTING_TYPE_PATH:
        if (value[0] == '\0' || has_control_chars(value)) {
            return "is not a path";
        }
        return NULL;
    case CL_SETTING_TYPE_LISTEN:
        return valid_listen(value) ? NULL : "is not host:port with a port 0-65535";
    case CL_SETTING_TYPE_LEVEL:
        if (cl_log_parse_level(value, &level) != CL_OK) {
            return "is not one of debug, info, warn, error";
        }
        return NULL;
    case CL_SETTING_TYPE_URL:
        return valid_url(value) ? NULL : "is not an http:// or https:// URL";
    case CL_SETTING_TYPE_INT:
        if (parse_int(value, &n) != 0 || n < desc->min || n > desc->max) {
            snprintf(why, size, "is not an integer %" PRId64 "-%" PRId64, desc->min, desc->max);
            return why;
        }
        return NULL;
    }
    return "has an unknown type";
}

/* Validates value and stores a copy of it in key's slot; the error names key and origin. */
static cl_status config_set(cl_config *cfg, const char *key, const char *value,
                            const cfg_origin *origin, cl_error *err)
{
    char where[160];
    char why[64];
    const cl_setting *desc = NULL;
    const char *problem;
    long slot;
    char *copy;

    origin_describe(origin, where, sizeof(where));
    slot = config_lookup(cfg, key, &desc);
    if (slot < 0) {
        return cl_error_set(err, CL_INVALID, key, "unknown configuration key %.*s (from %s)",
                            CFG_MAX_KEY_BYTES, key, where);
    }
    if (strlen(value) > CFG_MAX_VALUE_BYTES) {
        return cl_error_set(err, CL_INVALID, key, "%s: value is longer than %d bytes (from %s)",
                            key, CFG_MAX_VALUE_BYTES, where);
    }
    problem = check_value(desc, value, why, sizeof(why));
    if (problem != NULL) {
        return cl_error_set(err, CL_INVALID, key, "%s: '%.*s%s' %s (from %s)", key, CFG_QUOTE_BYTES,
                            value, strlen(value) > CFG_QUOTE_BYTES ? "..." : "", problem, where);
    }
    copy = strdup(value);
    if (copy == NULL) {
        return cl_error_set(err, CL_INTERNAL, key, "out of memory");
    }
    free(cfg->slots[slot].value);
    cfg->slots[slot].value = copy;
    cfg->slots[slot].source = origin->source;
    return CL_OK;
}

static char *trim(char *s)
{
    char *end;

    while (isspace((unsigned char)*s)) {
        s++;
    }
    end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1])) {
        end--;
    }
    *end = '\0';
    return s;
}

/*
 * One line of the file, NUL-terminated and writable. `#` starts a comment at the start of a
 * line, or after whitespace outside quotes, so that tokens and URLs may contain '#'. A key
 * set twice keeps its last value, as the environment overrides the file.
 */
static cl_status parse_line(cl_config *cfg, char *line, const cfg_origin *origin, cl_error *err)
{
    char where[160];
    char *eq;
    char *key;
    char *value;

    origin_describe(origin, where, sizeof(where));
    line = trim(line);
    if (line[0] == '\0' || line[0] == '#') {
        return CL_OK;
    }
    eq = strchr(line, '=');
    if (eq == NULL) {
        return cl_error_set(err, CL_INVALID, NULL, "expected KEY = value (from %s)", where);
    }
    *eq = '\0';
    key = trim(line);
    value = trim(eq + 1);
    if (key[0] == '\0') {
        return cl_error_set(err, CL_INVALID, NULL, "missing key before '=' (from %s)", where);
    }
    if (value[0] == '"') {
        char *close = strchr(value + 1, '"');
        char *after;

        if (close == NULL) {
            return cl_error_set(err, CL_INVALID, key, "%.*s: unterminated quote (from %s)",
                                CFG_MAX_KEY_BYTES, key, where);
        }
        *close = '\0';
        after = trim(close + 1);
        if (after[0] != '\0' && after[0] != '#') {
            return cl_error_set(err, CL_INVALID, key,
                                "%.*s: unexpected text after closing quote (from %s)",
                                CFG_MAX_KEY_BYTES, key, where);
        }
        value++;
    } else {
        for (char *p = value; *p != '\0'; p++) {
            if (*p == '#' && (p == value || isspace((unsigned char)p[-1]))) {
                *p = '\0';
                break;
            }
        }
        value = trim(value);
    }
    return config_set(cfg, key, value, origin, err);
}

/* Reads the whole file (at most CFG_MAX_FILE_BYTES) into a new NUL-terminated buffer. */
static cl_status read_file(const char *file, char **out, size_t *len, cl_error *err)
{
    cl_status st = CL_OK;
    FILE *f = NULL;
    char *buf = NULL;
    size_t n;

    f = fopen(file, "rb");
    if (f == NULL) {
        st = cl_error_set(err, CL_NOT_FOUND, NULL, "cannot open config file %s: %s", file,
                          strerror(errno));
        goto out;
    }
    /* One byte more than the cap tells a file at the cap from one over it. */
    buf = malloc(CFG_MAX_FILE_BYTES + 2);
    if (buf == NULL) {
        st = cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
        goto out;
    }
    n = fread(buf, 1, CFG_MAX_FILE_BYTES + 1, f);
    if (ferror(f)) {
        st = cl_error_set(err, CL_NOT_FOUND, NULL, "cannot read config file %s", file);
        goto out;
    }
    if (n > CFG_MAX_FILE_BYTES) {
        st = cl_error_set(err, CL_INVALID, NULL, "config file %s is larger than %zu bytes", file,
                          CFG_MAX_FILE_BYTES);
        goto out;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    buf = NULL;
out:
    free(buf);
    if (f != NULL) {
        fclose(f);
    }
    return st;
}

/* Parses buf[0..len) (writable, with room for a NUL at buf[len]), read from file. */
static cl_status load_text(cl_config *cfg, const char *file, char *buf, size_t len, cl_error *err)
{
    cl_status st = CL_OK;
    size_t pos = 0;
    cfg_origin origin = {CFG_SRC_FILE, file, 0};

    while (pos < len) {
        char *line = buf + pos;
        char *nl = memchr(line, '\n', len - pos);
        size_t llen = nl != NULL ? (size_t)(nl - line) : len - pos;

        origin.line++;
        if (llen > CFG_MAX_LINE_BYTES) {
            return cl_error_set(err, CL_INVALID, NULL,
                                "line is longer than %d bytes (from %s line %d)",
                                CFG_MAX_LINE_BYTES, file, origin.line);
        }
        /* A NUL would silently cut the line short; say so instead. */
        if (memchr(line, '\0', llen) != NULL) {
            return cl_error_set(err, CL_INVALID, NULL, "line contains a NUL byte (from %s line %d)",
                                file, origin.line);
        }
        line[llen] = '\0';
        st = parse_line(cfg, line, &origin, err);
        if (st != CL_OK) {
            return st;
        }
        pos += llen + 1;
    }
    return st;
}

static cl_status load_env(cl_config *cfg, char *const *env, cl_error *err)
{
    static const char prefix[] = "CLEAVE_";
    const cfg_origin origin = {CFG_SRC_ENV, NULL, 0};

    if (env == NULL) {
        return CL_OK;
    }
    for (size_t i = 0; env[i] != NULL; i++) {
        const char *entry = env[i];
        const char *eq;
        char key[CFG_MAX_KEY_BYTES + 1];
        size_t klen;
        cl_status st;

        if (strncmp(entry, prefix, sizeof(prefix) - 1) != 0) {
            continue;
        }
        eq = strchr(entry, '=');
        klen = eq != NULL ? (size_t)(eq - entry) : strlen(entry);
        if (eq == NULL || klen > CFG_MAX_KEY_BYTES) {
            /* No known key is this long or lacks a value; report it as unknown. */
            return cl_error_set(err, CL_INVALID, entry,
                                "unknown configuration key %.*s (from environment)",
                                CFG_MAX_KEY_BYTES, entry);
        }
        memcpy(key, entry, klen);
        key[klen] = '\0';
        st = config_set(cfg, key, eq + 1, &origin, err);
        if (st != CL_OK) {
            return st;
        }
    }
    return CL_OK;
}

/* An owner's name becomes the prefix of its keys: "widgets" -> "WIDGETS_". */
static cl_status owner_prefix(const char *name, char *prefix, cl_error *err)
{
    size_t len = name != NULL ? strlen(name) : 0;

    if (len == 0 || len > CFG_MAX_MODULE_NAME) {
        return cl_error_set(err, CL_INTERNAL, NULL, "settings owner '%.*s' is not 1-%d bytes",
                            CFG_QUOTE_BYTES, name != NULL ? name : "", CFG_MAX_MODULE_NAME);
    }
    for (size_t j = 0; j < len; j++) {
        unsigned char c = (unsigned char)name[j];

        if (!islower(c) && !isdigit(c) && c != '_') {
            return cl_error_set(err, CL_INTERNAL, NULL,
                                "settings owner '%.*s' is not lower-case letters, digits, '_'",
                                CFG_QUOTE_BYTES, name);
        }
        prefix[j] = (char)toupper(c);
    }
    prefix[len] = '_';
    prefix[len + 1] = '\0';
    return CL_OK;
}

/* Checks the declaration of o's own key at list[k]: named after its owner, bounds in order. */
static cl_status check_declaration(const cfg_owner *o, size_t k, cl_error *err)
{
    const cl_settings *owner = o->settings;
    const cl_setting *s = &owner->list[k];
    size_t olen = strlen(o->prefix);

    if (s->name == NULL || strncmp(s->name, "CLEAVE_", 7) != 0 ||
        strncmp(s->name + 7, o->prefix, olen) != 0 || s->name[7 + olen] == '\0' ||
        strlen(s->name) > CFG_MAX_KEY_BYTES) {
        return cl_error_set(err, CL_INTERNAL, s->name, "%s declares '%.*s', not a key CLEAVE_%s...",
                            owner->owner, CFG_MAX_KEY_BYTES, s->name != NULL ? s->name : "(null)",
                            o->prefix);
    }
    if (s->type == CL_SETTING_TYPE_INT && s->min > s->max) {
        return cl_error_set(err, CL_INTERNAL, s->name,
                            "%s: bounds %" PRId64 "-%" PRId64 " are out of order", s->name, s->min,
                            s->max);
    }
    return CL_OK;
}

/* Registers each owner's keys; a declaration that could confuse keys stops start-up. */
static cl_status add_owners(cl_config *cfg, const cl_settings *const *owners, cl_error *err)
{
    cl_status st;

    cfg->nslots = CFG_NKEYS;
    for (size_t i = 0; owners != NULL && owners[i] != NULL; i++) {
        const cl_settings *s = owners[i];
        cfg_owner *o = &cfg->owners[i];

        if (i >= CFG_MAX_MODULES) {
            return cl_error_set(err, CL_INTERNAL, NULL, "more than %d settings owners",
                                CFG_MAX_MODULES);
        }
        st = owner_prefix(s->owner, o->prefix, err);
        if (st != CL_OK) {
            return st;
        }
        if (s->count > 0 && s->list == NULL) {
            return cl_error_set(err, CL_INTERNAL, NULL, "%s declares %zu keys but no list",
                                s->owner, s->count);
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(cfg->owners[j].prefix, o->prefix) == 0) {
                return cl_error_set(err, CL_INTERNAL, NULL, "settings owner %s is given twice",
                                    s->owner);
            }
        }
        o->settings = s;
        o->first = cfg->nslots;
        cfg->nowners = i + 1;
        cfg->nslots += (s->module ? CFG_NMODULE_KEYS : 0) + s->count;
        for (size_t k = 0; k < s->count; k++) {
            st = check_declaration(o, k, err);
            if (st != CL_OK) {
                return st;
            }
        }
    }
    return CL_OK;
}

/* The owner of an owner's slot (slots below CFG_NKEYS are the platform's). */
static const cfg_owner *slot_owner(const cl_config *cfg, size_t slot)
{
    size_t i = 0;

    while (i + 1 < cfg->nowners && cfg->owners[i + 1].first <= slot) {
        i++;
    }
    return &cfg->owners[i];
}

/* Names slot with key (copied) and its declaration. */
static cl_status name_slot(cl_config *cfg, size_t slot, const char *key, const cl_setting *desc,
                           cl_error *err)
{
    cfg->slots[slot].name = strdup(key);
    cfg->slots[slot].desc = desc;
    cfg->by_name[slot] = &cfg->slots[slot];
    return cfg->slots[slot].name != NULL ? CL_OK
                                         : cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
}

/*
 * Makes the slots, names them and sorts them by key. A key declared twice (by an owner and
 * the platform, two owners, or one owner twice) stops start-up, since a lookup could find
 * only one of them: the later declaration is named.
 */
static cl_status index_slots(cl_config *cfg, cl_error *err)
{
    cl_status st = CL_OK;

    cfg->slots = calloc(cfg->nslots, sizeof(*cfg->slots));
    cfg->by_name = calloc(cfg->nslots, sizeof(*cfg->by_name));
    if (cfg->slots == NULL || cfg->by_name == NULL) {
        return cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
    }
    for (size_t i = 0; st == CL_OK && i < CFG_NKEYS; i++) {
        st = name_slot(cfg, i, cfg_keys[i].name, &cfg_keys[i], err);
    }
    for (size_t i = 0; st == CL_OK && i < cfg->nowners; i++) {
        const cfg_owner *o = &cfg->owners[i];
        const cl_settings *s = o->settings;
        size_t own = o->first + (s->module ? CFG_NMODULE_KEYS : 0);

        for (size_t k = 0; st == CL_OK && s->module && k < CFG_NMODULE_KEYS; k++) {
            char key[CFG_MAX_KEY_BYTES + 1];

            snprintf(key, sizeof(key), "CLEAVE_%s%s", o->prefix, cfg_module_keys[k].name);
            st = name_slot(cfg, o->first + k, key, &cfg_module_keys[k], err);
        }
        for (size_t k = 0; st == CL_OK && k < s->count; k++) {
            st = name_slot(cfg, own + k, s->list[k].name, &s->list[k], err);
        }
    }
    if (st != CL_OK) {
        return st;
    }
    qsort(cfg->by_name, cfg->nslots, sizeof(*cfg->by_name), slot_order);
    for (size_t i = 1; i < cfg->nslots; i++) {
        const cfg_value *later = cfg->by_name[i];

        if (strcmp(cfg->by_name[i - 1]->name, later->name) == 0) {
            return cl_error_set(
                err, CL_INTERNAL, later->name, "%s declares %s, a key known already",
                slot_owner(cfg, (size_t)(later - cfg->slots))->settings->owner, later->name);
        }
    }
    return CL_OK;
}

/* Sets every declared default through the same validation, so a bad one fails loudly. */
static cl_status set_defaults(cl_config *cfg, const cl_setting *list, size_t n, cl_error *err)
{
    const cfg_origin def_origin = {CFG_SRC_DEFAULT, NULL, 0};

    for (size_t i = 0; i < n; i++) {
        cl_error def_err;

        if (list[i].def == NULL) {
            continue;
        }
        if (config_set(cfg, list[i].name, list[i].def, &def_origin, &def_err) != CL_OK) {
            return cl_error_set(err, CL_INTERNAL, list[i].name, "bad built-in default: %s",
                                def_err.message);
        }
    }
    return CL_OK;
}

/*
 * cl_config_load, with the file's content either read from file (text NULL) or given as
 * text[0..len) (file only names it in messages).
 */
static cl_status config_load(const char *file, const char *text, size_t len, char *const *env,
                             const cl_settings *const *owners, cl_config **out, cl_error *err)
{
    cl_status st;
    cl_config *cfg;
    char *buf = NULL;

    cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL) {
        st = cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
        goto out;
    }
    st = add_owners(cfg, owners, err);
    if (st == CL_OK) {
        st = index_slots(cfg, err);
    }
    if (st != CL_OK) {
        goto out;
    }
    st = set_defaults(cfg, cfg_keys, CFG_NKEYS, err);
    for (size_t i = 0; st == CL_OK && i < cfg->nowners; i++) {
        const cl_settings *s = cfg->owners[i].settings;

        st = set_defaults(cfg, s->list, s->count, err);
    }
    if (st != CL_OK) {
        goto out;
    }
    if (text != NULL) {
        if (len > CFG_MAX_FILE_BYTES) {
            st = cl_error_set(err, CL_INVALID, NULL, "config file %s is larger than %zu bytes",
                              file, CFG_MAX_FILE_BYTES);
            goto out;
        }
        buf = malloc(len + 1);
        if (buf == NULL) {
            st = cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
            goto out;
        }
        memcpy(buf, text, len);
        buf[len] = '\0';
    } else if (file != NULL) {
        st = read_file(file, &buf, &len, err);
        if (st != CL_OK) {
            goto out;
        }
    }
    if (buf != NULL) {
        st = load_text(cfg, file, buf, len, err);
        if (st != CL_OK) {
            goto out;
        }
    }
    st = load_env(cfg, env, err);
    if (st != CL_OK) {
        goto out;
    }
    *out = cfg;
    cfg = NULL;
out:
    free(buf);
    cl_config_free(cfg);
    return st;
}

cl_status cl_config_load(const char *file, char *const *env, const cl_settings *const *owners,
                         cl_config **out, cl_error *err)
{
    return config_load(file, NULL, 0, env, owners, out, err);
}

cl_status cl__config_load_text(const char *name, const char *text, size_t len, char *const *env,
                               const cl_settings *const *owners, cl_config **out, cl_error *err)
{
    return config_load(name, text, len, env, owners, out, err);
}

void cl_config_free(cl_config *cfg)
{
    if (cfg == NULL) {
        return;
    }
    for (size_t i = 0; cfg->slots != NULL && i < cfg->nslots; i++) {
        free(cfg->slots[i].value);
        free(cfg->slots[i].name);
    }
    free(cfg->slots);
    free(cfg->by_name);
    free(cfg);
}

static const cfg_value *config_slot(const cl_config *cfg, const char *key)
{
    const cl_setting *desc = NULL;
    long slot;

    if (cfg == NULL || key == NULL) {
        return NULL;
    }
    slot = config_lookup(cfg, key, &desc);
    if (slot < 0) {
        return NULL;
    }
    return &cfg->slots[slot];
}

const char *cl_config_get(const cl_config *cfg, const char *key)
{
    const cfg_value *v = config_slot(cfg, key);

    return v != NULL ? v->value : NULL;
}

int64_t cl_config_int(const cl_config *cfg, const char *key)
{
    const char *s = cl_config_get(cfg, key);
    int64_t n;

    if (s == NULL || parse_int(s, &n) != 0) {
        return 0;
    }
    return n;
}

void cl_config_host_id(const cl_config *cfg, char *out, size_t size)
{
    const char *s = cl_config_get(cfg, "CLEAVE_HOST_ID");

    if (size == 0) {
        return;
    }
    out[0] = '\0';
    if (s != NULL && s[0] != '\0') {
        snprintf(out, size, "%s", s);
    } else if (gethostname(out, size) != 0) {
        snprintf(out, size, "localhost");
    }
    out[size - 1] = '\0';
}

const char *cl_config_module(const cl_config *cfg, const char *module, const char *suffix)
{
    char key[CFG_MAX_KEY_BYTES + 1];
    int n;

    if (module == NULL || suffix == NULL) {
        return NULL;
    }
    n = snprintf(key, sizeof(key), "CLEAVE_%s_%s", module, suffix);
    if (n < 0 || (size_t)n >= sizeof(key)) {
        return NULL;
    }
    /* Module names are lower-case in code and upper-case in keys. */
    for (char *p = key; *p != '\0'; p++) {
        *p = (char)toupper((unsigned char)*p);
    }
    return cl_config_get(cfg, key);
}

const char *cl_config_source(const cl_config *cfg, const char *key)
{
    const cfg_value *v = config_slot(cfg, key);

    if (v == NULL || v->value == NULL) {
        return NULL;
    }
    switch (v->source) {
    case CFG_SRC_DEFAULT:
        return "default";
    case CFG_SRC_FILE:
        return "file";
    case CFG_SRC_ENV:
        return "environment";
    default:
        return NULL;
    }
}
