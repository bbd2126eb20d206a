/*
 * cleave/config.h - configuration: built-in defaults < config file < environment.
 *
 * Every key is declared in one table (config.c), with its type and default; an unknown
 * key or a bad value stops start-up with a message that names the key and where it
 * came from. Module keys (CLEAVE_<MODULE>_URL, ...) are accepted for the module names
 * the host knows.
 *
 * The config file has one `KEY = value` per line, `#` starts a comment, the keys are
 * the environment variable names (CLEAVE_LISTEN = 127.0.0.1:8080).
 */
#ifndef CLEAVE_CONFIG_H
#define CLEAVE_CONFIG_H

#include <stdint.h>

#include "cleave/status.h"

typedef struct cl_config cl_config;

/*
 * Loads the configuration. file may be NULL (no config file). env is a NULL-terminated
 * "KEY=value" array (environ); only keys starting with CLEAVE_ are read from it.
 * modules is a NULL-terminated list of module names whose per-module keys are allowed.
 * On success *out is a new configuration owned by the caller (cl_config_free).
 * Returns CL_INVALID naming the key (err->field) for an unknown key or bad value,
 * CL_NOT_FOUND when file cannot be opened, CL_INTERNAL when out of memory.
 */
cl_status cl_config_load(const char *file, char *const *env, const char *const *modules,
                         cl_config **out, cl_error *err);
void cl_config_free(cl_config *cfg);

/* The value of key (borrowed, valid until cl_config_free), or NULL when unset with no default. */
const char *cl_config_get(const cl_config *cfg, const char *key);
/* The value of key as an integer (validated at load for integer keys), or def when unset. */
int64_t cl_config_int(const cl_config *cfg, const char *key, int64_t def);
/* The per-module key CLEAVE_<MODULE>_<suffix> ("catalog", "URL"), or NULL when unset. */
const char *cl_config_module(const cl_config *cfg, const char *module, const char *suffix);
/* Where key's value came from: "default", "file", "environment", or NULL when unset. */
const char *cl_config_source(const cl_config *cfg, const char *key);

#endif /* CLEAVE_CONFIG_H */
