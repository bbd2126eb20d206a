/*
 * config_internal.h - what platform/config exposes to the platform's own tests and fuzz
 * targets, and to nobody else.
 */
#ifndef CLEAVE_CONFIG_INTERNAL_H
#define CLEAVE_CONFIG_INTERNAL_H

#include <stddef.h>

#include "cleave/config.h"

/*
 * cl_config_load with the config file's content given as text[0..len) (any bytes, copied)
 * instead of read from a file; name stands for the file in messages and must not be NULL.
 * Same results as cl_config_load, so that a fuzz target reaches the file parser without
 * a file per input.
 */
cl_status cl__config_load_text(const char *name, const char *text, size_t len, char *const *env,
                               const cl_settings *const *owners, cl_config **out, cl_error *err);

#endif /* CLEAVE_CONFIG_INTERNAL_H */
