/*
 * cleave/extension.h - optional subsystems that register themselves (ADR 0019).
 *
 * The core never calls an optional subsystem (the PostgreSQL driver, the NATS transport)
 * directly: each ships in a library of its own (cleave_postgres, cleave_nats) that
 * defines one cl_extension, and the host registers the extensions its build wired in
 * (cleave_wire ... WITH postgres nats) before it reads any configuration. A setting that
 * asks for an extension the binary lacks is then a clear error naming the library, and a
 * binary without it links neither the subsystem nor its third-party library.
 */
#ifndef CLEAVE_EXTENSION_H
#define CLEAVE_EXTENSION_H

#include "cleave/status.h"

/* How many extensions a process can register. */
#define CL_MAX_EXTENSIONS 8

typedef struct cl_extension {
    const char *kind; /* what it extends: "db" (a cl_db_server), "bus" (a cl_bus_transport_ops),
                         "cache" (a cl_cache_shared_server) */
    const char *name; /* "postgres", "nats": the library is cleave_<name> */
    const void *impl; /* the kind's table, borrowed for the process's life */
} cl_extension;

/* The extensions the platform ships, each defined in its own library. */
extern const cl_extension cl_postgres_extension; /* cleave_postgres: kind "db" */
extern const cl_extension cl_nats_extension;     /* cleave_nats: kind "bus" */
extern const cl_extension cl_redis_extension;    /* cleave_redis: kind "cache" */

/*
 * Registers ext (borrowed for the process's life). Registering the same kind and name
 * again is a harmless no-op. Call at startup, before any thread uses the table.
 * CL_INVALID for a malformed ext, CL_INTERNAL when the table is full.
 */
cl_status cl_extension_register(const cl_extension *ext, cl_error *err);

/* The registered implementation of kind and name (borrowed); NULL when absent. */
const void *cl_extension_find(const char *kind, const char *name);

/*
 * Like cl_extension_find, for a setting that asks for the extension: when it is absent,
 * CL_INVALID with field setting and a message naming the missing library (cleave_<name>).
 * *impl is written only on CL_OK.
 */
cl_status cl_extension_require(const char *kind, const char *name, const char *setting,
                               const void **impl, cl_error *err);

#endif /* CLEAVE_EXTENSION_H */
