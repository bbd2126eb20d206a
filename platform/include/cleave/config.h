/*
 * cleave/config.h - configuration: built-in defaults < config file < environment.
 *
 * Every key is declared once, with its type, bounds, default and help: the platform's
 * own keys in platform/config, every other key by its owner, a module (cl_module_api's
 * settings) or a test build's hooks, handed to cl_config_load. An unknown key or a bad
 * value stops start-up with a message that names the key and where it came from. Each
 * module also gets the per-module keys CLEAVE_<MODULE>_URL, _DATABASE_URL, ...
 *
 * The config file has one `KEY = value` per line, `#` starts a comment, the keys are
 * the environment variable names (CLEAVE_LISTEN = 127.0.0.1:8080).
 */
#ifndef CLEAVE_CONFIG_H
#define CLEAVE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cleave/status.h"

typedef struct cl_config cl_config;

/* What a value must look like. */
typedef enum cl_setting_type {
    CL_SETTING_TYPE_STRING, /* any text without control characters */
    CL_SETTING_TYPE_PATH,   /* a non-empty path */
    CL_SETTING_TYPE_LISTEN, /* host:port */
    CL_SETTING_TYPE_LEVEL,  /* a log level: debug, info, warn, error */
    CL_SETTING_TYPE_URL,    /* an http:// or https:// URL */
    CL_SETTING_TYPE_INT,    /* a decimal integer within [min, max] */
} cl_setting_type;

/*
 * One configuration key. The type macros below expand to the type and the bounds, so a
 * declaration reads {"CLEAVE_WIDGETS_WORKERS", CL_SETTING_INT(1, 64), "4", "threads"}.
 */
typedef struct cl_setting {
    const char *name; /* the whole key, CLEAVE_<OWNER>_...; also the environment variable */
    cl_setting_type type;
    int64_t min; /* CL_SETTING_TYPE_INT only */
    int64_t max;
    const char *def;  /* the default, validated like any value; NULL: unset unless given */
    const char *help; /* one line for people */
} cl_setting;

#define CL_SETTING_STRING      CL_SETTING_TYPE_STRING, 0, 0
#define CL_SETTING_PATH        CL_SETTING_TYPE_PATH, 0, 0
#define CL_SETTING_LISTEN      CL_SETTING_TYPE_LISTEN, 0, 0
#define CL_SETTING_LEVEL       CL_SETTING_TYPE_LEVEL, 0, 0
#define CL_SETTING_URL         CL_SETTING_TYPE_URL, 0, 0
#define CL_SETTING_INT(lo, hi) CL_SETTING_TYPE_INT, (lo), (hi)

/*
 * The keys of one owner. Every key in list is named CLEAVE_<OWNER>_... (owner upper-cased),
 * so that owners cannot take each other's keys. A module (module true) also gets the
 * per-module keys CLEAVE_<OWNER>_URL, _DATABASE_URL, _DATABASE_ADMIN_URL, _REPLICA_URL and
 * _TIMEOUT_MS, which its own list may not declare again.
 */
typedef struct cl_settings {
    const char *owner;      /* "widgets": lower-case letters, digits, '_' */
    bool module;            /* a module, rather than, say, a test build's hooks */
    const cl_setting *list; /* borrowed for the configuration's life; NULL when count is 0 */
    size_t count;
} cl_settings;

/*
 * Loads the configuration. file may be NULL (no config file). env is a NULL-terminated
 * "KEY=value" array (environ); only keys starting with CLEAVE_ are read from it.
 * owners is a NULL-terminated list (NULL: none) of the keys beyond the platform's that
 * this binary knows, borrowed until cl_config_free; keys of any other owner are unknown.
 * On success *out is a new configuration owned by the caller (cl_config_free).
 * Returns CL_INVALID naming the key (err->field) for an unknown key or bad value,
 * CL_NOT_FOUND when file cannot be opened, CL_INTERNAL for a bad declaration (a key
 * outside its owner's prefix or declared twice, a default its own type refuses) or when
 * out of memory.
 */
cl_status cl_config_load(const char *file, char *const *env, const cl_settings *const *owners,
                         cl_config **out, cl_error *err);
void cl_config_free(cl_config *cfg);

/* The value of key (borrowed, valid until cl_config_free), or NULL when unset with no default. */
const char *cl_config_get(const cl_config *cfg, const char *key);
/*
 * The value of an integer key: what was configured, else its declared default (both
 * validated against its bounds at load). 0 when cfg is NULL or key is unknown or unset,
 * which a key declared with a default never is.
 */
int64_t cl_config_int(const cl_config *cfg, const char *key);
/*
 * This host's name for leases (ADR 0034) into out[size], NUL-terminated and
 * possibly truncated: CLEAVE_HOST_ID, else the machine's host name. One process at a time
 * runs under a host id, so a process may take back the leases of that id's previous
 * process at once: it is dead.
 */
void cl_config_host_id(const cl_config *cfg, char *out, size_t size);
/* The per-module key CLEAVE_<MODULE>_<suffix> ("widgets", "URL"), or NULL when unset. */
const char *cl_config_module(const cl_config *cfg, const char *module, const char *suffix);
/* Where key's value came from: "default", "file", "environment", or NULL when unset. */
const char *cl_config_source(const cl_config *cfg, const char *key);

#endif /* CLEAVE_CONFIG_H */
