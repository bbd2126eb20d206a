/*
 * Configuration: built-in defaults < config file < environment.
 *
 * Every key the platform knows is declared once, in CL__CONFIG_KEYS below; the per-module
 * keys are the product of the host's module list and CL__CONFIG_MODULE_KEYS. Each value is
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

#include "cleave/log.h"

/* Hard caps, so that a hostile or mistaken file cannot make us allocate without bound. */
#define CFG_MAX_FILE_BYTES  ((size_t)64 * 1024)
#define CFG_MAX_LINE_BYTES  4096
#define CFG_MAX_VALUE_BYTES 1024
#define CFG_MAX_MODULES     64
#define CFG_MAX_MODULE_NAME 40
#define CFG_MAX_KEY_BYTES   128
/* How much of an offending value an error message quotes; the message buffer is 256 bytes. */
#define CFG_QUOTE_BYTES     48

typedef enum cfg_type {
    CFG_T_STRING,
    CFG_T_PATH,
    CFG_T_LISTEN,
    CFG_T_LEVEL,
    CFG_T_URL,
    CFG_T_INT,
} cfg_type;

/* The type argument of the tables expands to the type and, for integers, the bounds. */
#define CFG_STRING      CFG_T_STRING, 0, 0
#define CFG_PATH        CFG_T_PATH, 0, 0
#define CFG_LISTEN      CFG_T_LISTEN, 0, 0
#define CFG_LEVEL       CFG_T_LEVEL, 0, 0
#define CFG_URL         CFG_T_URL, 0, 0
#define CFG_INT(lo, hi) CFG_T_INT, (lo), (hi)

/* X(KEY, type, default or NULL, help) */
#define CL__CONFIG_KEYS(X)                                                                         \
    X(CLEAVE_LISTEN, CFG_LISTEN, "127.0.0.1:8080", "address the HTTP server listens on")           \
    X(CLEAVE_DATA_DIR, CFG_PATH, "./var", "directory for databases and other state")               \
    X(CLEAVE_LOG_LEVEL, CFG_LEVEL, "info", "lowest level logged: debug, info, warn, error")        \
    X(CLEAVE_MIGRATIONS_DIR, CFG_PATH, NULL, "directory of SQL migrations")                        \
    X(CLEAVE_HTTP_THREADS, CFG_INT(1, 256), "8", "HTTP worker threads")                            \
    X(CLEAVE_MAX_BODY_BYTES, CFG_INT(1024, 67108864), "1048576", "largest request body")           \
    X(CLEAVE_REQUEST_TIMEOUT_MS, CFG_INT(1, 600000), "10000", "deadline of one request")           \
    X(CLEAVE_SERVICE_TOKEN, CFG_STRING, NULL, "shared secret between services")                    \
    X(CLEAVE_NATS_URL, CFG_STRING, NULL, "NATS JetStream for the bus; unset: in-process")          \
    X(CLEAVE_BUS_RELAYS, CFG_INT(1, 16), "1", "outbox relay threads per module")                   \
    X(CLEAVE_BUS_WORKERS, CFG_INT(1, 64), "2", "handler threads per subscribing module")           \
    X(CLEAVE_BUS_MAX_ATTEMPTS, CFG_INT(1, 100), "5", "handler attempts before dead letter")        \
    X(CLEAVE_BUS_BACKOFF_MS, CFG_INT(1, 60000), "50", "first retry delay")                         \
    X(CLEAVE_BUS_BACKOFF_MAX_MS, CFG_INT(1, 600000), "2000", "longest retry delay")                \
    X(CLEAVE_BUS_POLL_MS, CFG_INT(1, 60000), "100", "outbox poll interval when idle")              \
    X(CLEAVE_BUS_ACK_WAIT_MS, CFG_INT(100, 3600000), "30000", "NATS redelivery after")             \
    X(CLEAVE_SHIPPING_CARRIER_MS, CFG_INT(0, 600000), "200", "shipping: carrier step length")      \
    X(CLEAVE_ORDERS_WORKERS, CFG_INT(1, 64), "4", "orders: saga executor threads")                 \
    X(CLEAVE_ORDERS_STEP_TIMEOUT_MS, CFG_INT(1, 3600000), "10000",                                 \
      "orders: how long a saga step retries an unavailable dependency before compensating")        \
    X(CLEAVE_ORDERS_CALL_TIMEOUT_MS, CFG_INT(1, 600000), "2000",                                   \
      "orders: deadline of one call to inventory, payments or the catalog")                        \
    X(CLEAVE_TEST_CRASH_AT, CFG_STRING, NULL,                                                      \
      "tests only: kill the process at a bus or module step")                                      \
    X(CLEAVE_TEST_POISON, CFG_STRING, NULL, "tests only: fail handlers of matching payloads")      \
    X(CLEAVE_INVENTORY_RESERVATION_TTL_MS, CFG_INT(1, 86400000), "900000",                         \
      "how long a reservation holds stock unless the caller says")                                 \
    X(CLEAVE_INVENTORY_EXPIRY_INTERVAL_MS, CFG_INT(10, 3600000), "1000",                           \
      "how often expired reservations give their stock back")                                      \
    X(CLEAVE_PAYMENTS_SNAPSHOT_EVERY, CFG_INT(1, 1000000), "50",                                   \
      "events between snapshots of a payments stream")                                             \
    X(CLEAVE_DATABASE_URL, CFG_STRING, NULL, "PostgreSQL for every module, a schema each")         \
    X(CLEAVE_DATABASE_REPLICA_URL, CFG_STRING, NULL, "a read replica of CLEAVE_DATABASE_URL")      \
    X(CLEAVE_DATABASE_ADMIN_URL, CFG_STRING, NULL, "PostgreSQL admin: creates roles and schemas")  \
    X(CLEAVE_DATABASE_POOL_MIN, CFG_INT(0, 256), "1", "connections each module keeps open")        \
    X(CLEAVE_DATABASE_POOL_MAX, CFG_INT(1, 256), "8", "most connections of one module")            \
    X(CLEAVE_DATABASE_ACQUIRE_TIMEOUT_MS, CFG_INT(1, 600000), "2000", "wait for a connection")

/* X(SUFFIX, type, help): CLEAVE_<MODULE>_<SUFFIX> for every module the host knows. */
#define CL__CONFIG_MODULE_KEYS(X)                                                                  \
    X(URL, CFG_URL, "base URL of the module's remote binding")                                     \
    X(DATABASE_URL, CFG_STRING, "the module's database")                                           \
    X(DATABASE_ADMIN_URL, CFG_STRING, "admin credentials of the module's database server")         \
    X(REPLICA_URL, CFG_STRING, "a read replica of the module's database")                          \
    X(TIMEOUT_MS, CFG_INT(1, 600000), "deadline of one call to the module")

typedef struct cfg_key {
    const char *name;
    cfg_type type;
    int64_t min;
    int64_t max;
    const char *def;
    const char *help;
} cfg_key;

static const cfg_key cfg_keys[] = {
#define CFG__KEY_ROW(key, type, def, help) {#key, type, def, help},
    CL__CONFIG_KEYS(CFG__KEY_ROW)
#undef CFG__KEY_ROW
};
#define CFG_NKEYS (sizeof(cfg_keys) / sizeof(cfg_keys[0]))

static const cfg_key cfg_module_keys[] = {
#define CFG__MODULE_ROW(suffix, type, help) {#suffix, type, NULL, help},
    CL__CONFIG_MODULE_KEYS(CFG__MODULE_ROW)
#undef CFG__MODULE_ROW
};
#define CFG_NMODULE_KEYS (sizeof(cfg_module_keys) / sizeof(cfg_module_keys[0]))

typedef enum cfg_source { CFG_SRC_UNSET, CFG_SRC_DEFAULT, CFG_SRC_FILE, CFG_SRC_ENV } cfg_source;

typedef struct cfg_value {
    char *value; /* owned; NULL when unset */
    cfg_source source;
} cfg_value;

/*
 * Slots 0..CFG_NKEYS-1 hold the fixed keys; then one run of CFG_NMODULE_KEYS slots per
 * module, in the order of the host's module list.
 */
struct cl_config {
    size_t nmodules;
    char modules[CFG_MAX_MODULES][CFG_MAX_MODULE_NAME + 1]; /* upper-cased */
    size_t nslots;
    cfg_value *slots;
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

/* Finds the slot of key and its description, or returns -1 for an unknown key. */
static long config_lookup(const cl_config *cfg, const char *key, const cfg_key **desc)
{
    static const char prefix[] = "CLEAVE_";
    const size_t plen = sizeof(prefix) - 1;

    for (size_t i = 0; i < CFG_NKEYS; i++) {
        if (strcmp(cfg_keys[i].name, key) == 0) {
            *desc = &cfg_keys[i];
            return (long)i;
        }
    }
    if (strncmp(key, prefix, plen) != 0) {
        return -1;
    }
    for (size_t m = 0; m < cfg->nmodules; m++) {
        const char *mod = cfg->modules[m];
        size_t mlen = strlen(mod);
        const char *rest = key + plen;

        if (strncmp(rest, mod, mlen) != 0 || rest[mlen] != '_') {
            continue;
        }
        rest += mlen + 1;
        for (size_t s = 0; s < CFG_NMODULE_KEYS; s++) {
            if (strcmp(cfg_module_keys[s].name, rest) == 0) {
                *desc = &cfg_module_keys[s];
                return (long)(CFG_NKEYS + m * CFG_NMODULE_KEYS + s);
            }
        }
    }
    return -1;
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
static const char *check_value(const cfg_key *desc, const char *value, char *why, size_t size)
{
    int64_t n;
    cl_log_level level;

    switch (desc->type) {
    case CFG_T_STRING:
        return has_control_chars(value) ? "contains control characters" : NULL;
    case CFG_T_PATH:
        if (value[0] == '\0' || has_control_chars(value)) {
            return "is not a path";
        }
        return NULL;
    case CFG_T_LISTEN:
        return valid_listen(value) ? NULL : "is not host:port with a port 0-65535";
    case CFG_T_LEVEL:
        if (cl_log_parse_level(value, &level) != CL_OK) {
            return "is not one of debug, info, warn, error";
        }
        return NULL;
    case CFG_T_URL:
        return valid_url(value) ? NULL : "is not an http:// or https:// URL";
    case CFG_T_INT:
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
    const cfg_key *desc = NULL;
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

static cl_status load_file(cl_config *cfg, const char *file, cl_error *err)
{
    cl_status st;
    char *buf = NULL;
    size_t len = 0;
    size_t pos = 0;
    cfg_origin origin = {CFG_SRC_FILE, file, 0};

    st = read_file(file, &buf, &len, err);
    if (st != CL_OK) {
        goto out;
    }
    while (pos < len) {
        char *line = buf + pos;
        char *nl = memchr(line, '\n', len - pos);
        size_t llen = nl != NULL ? (size_t)(nl - line) : len - pos;

        origin.line++;
        if (llen > CFG_MAX_LINE_BYTES) {
            st = cl_error_set(err, CL_INVALID, NULL,
                              "line is longer than %d bytes (from %s line %d)", CFG_MAX_LINE_BYTES,
                              file, origin.line);
            goto out;
        }
        /* A NUL would silently cut the line short; say so instead. */
        if (memchr(line, '\0', llen) != NULL) {
            st = cl_error_set(err, CL_INVALID, NULL, "line contains a NUL byte (from %s line %d)",
                              file, origin.line);
            goto out;
        }
        line[llen] = '\0';
        st = parse_line(cfg, line, &origin, err);
        if (st != CL_OK) {
            goto out;
        }
        pos += llen + 1;
    }
out:
    free(buf);
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

static cl_status add_modules(cl_config *cfg, const char *const *modules, cl_error *err)
{
    if (modules == NULL) {
        return CL_OK;
    }
    for (size_t i = 0; modules[i] != NULL; i++) {
        const char *name = modules[i];
        size_t len = strlen(name);

        if (i >= CFG_MAX_MODULES) {
            return cl_error_set(err, CL_INVALID, NULL, "more than %d modules", CFG_MAX_MODULES);
        }
        if (len == 0 || len > CFG_MAX_MODULE_NAME) {
            return cl_error_set(err, CL_INVALID, NULL, "module name '%.*s' is not 1-%d bytes",
                                CFG_QUOTE_BYTES, name, CFG_MAX_MODULE_NAME);
        }
        for (size_t j = 0; j < len; j++) {
            unsigned char c = (unsigned char)name[j];

            if (!islower(c) && !isdigit(c) && c != '_') {
                return cl_error_set(err, CL_INVALID, NULL,
                                    "module name '%.*s' is not lower-case letters, digits, '_'",
                                    CFG_QUOTE_BYTES, name);
            }
            cfg->modules[i][j] = (char)toupper(c);
        }
        cfg->modules[i][len] = '\0';
        cfg->nmodules = i + 1;
    }
    return CL_OK;
}

cl_status cl_config_load(const char *file, char *const *env, const char *const *modules,
                         cl_config **out, cl_error *err)
{
    cl_status st;
    cl_config *cfg;
    const cfg_origin def_origin = {CFG_SRC_DEFAULT, NULL, 0};

    cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL) {
        st = cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
        goto out;
    }
    st = add_modules(cfg, modules, err);
    if (st != CL_OK) {
        goto out;
    }
    cfg->nslots = CFG_NKEYS + cfg->nmodules * CFG_NMODULE_KEYS;
    cfg->slots = calloc(cfg->nslots, sizeof(*cfg->slots));
    if (cfg->slots == NULL) {
        st = cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
        goto out;
    }
    /* Defaults go through the same validation, so a bad edit of the table fails loudly. */
    for (size_t i = 0; i < CFG_NKEYS; i++) {
        cl_error def_err;

        if (cfg_keys[i].def == NULL) {
            continue;
        }

        st = config_set(cfg, cfg_keys[i].name, cfg_keys[i].def, &def_origin, &def_err);
        if (st != CL_OK) {
            st = cl_error_set(err, CL_INTERNAL, cfg_keys[i].name, "bad built-in default: %s",
                              def_err.message);
            goto out;
        }
    }
    if (file != NULL) {
        st = load_file(cfg, file, err);
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
    cl_config_free(cfg);
    return st;
}

void cl_config_free(cl_config *cfg)
{
    if (cfg == NULL) {
        return;
    }
    for (size_t i = 0; cfg->slots != NULL && i < cfg->nslots; i++) {
        free(cfg->slots[i].value);
    }
    free(cfg->slots);
    free(cfg);
}

static const cfg_value *config_slot(const cl_config *cfg, const char *key)
{
    const cfg_key *desc = NULL;
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

int64_t cl_config_int(const cl_config *cfg, const char *key, int64_t def)
{
    const char *s = cl_config_get(cfg, key);
    int64_t n;

    if (s == NULL || parse_int(s, &n) != 0) {
        return def;
    }
    return n;
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
