/*
 * Internal to the platform: libraries loaded on their first use (ADR 0047).
 *
 * A library that only some deployments need (libpq for PostgreSQL, libcurl for remote
 * modules and span export) is not a dependency of the executable: the platform links a
 * shim that defines the functions it calls, each of which loads the library on the
 * process's first call into it and then calls the library's own function. A SQLite
 * monolith that never calls one of them never maps the library, nor what it drags in
 * (GnuTLS, Kerberos, LDAP).
 *
 * A shim lists the library's functions it defines once, as an X-macro taking three macros:
 * R(return type, name, (parameters), (arguments)) for a function that returns a value,
 * V(name, (parameters), (arguments)) for one that returns none, N(name) for one the shim
 * writes out itself (a variadic one). Then CL__LAZY_SHIM(list, soname) defines the
 * library's table and every R and V function, with the library's own prototypes from its
 * header, so that the compiler checks them. A function the tree starts to call and the
 * list lacks is a link error naming it.
 */
#ifndef CLEAVE_LAZY_H
#define CLEAVE_LAZY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

/* A function of the loaded library, to be cast back to its own type before the call. */
typedef void (*cl__lazy_fn)(void);

/* One library: what to load, and what was resolved (filled on the first call). */
typedef struct cl__lazy_lib {
    const char *soname;
    const char *const *names;
    cl__lazy_fn *fns;
    size_t n;
    atomic_bool loaded;
} cl__lazy_lib;

/*
 * Function i of lib (borrowed), loading lib and resolving all its names on the process's
 * first call, whichever thread makes it. A library or function that cannot be found is
 * what a dynamic link would have refused at exec: it prints what is missing to stderr and
 * aborts the process, since no caller could go on without it.
 */
cl__lazy_fn cl__lazy_get(cl__lazy_lib *lib, int i);

#define CL__LAZY_INDEX_R(ret, name, params, args) cl__lazy_i_##name,
#define CL__LAZY_INDEX_V(name, params, args)      cl__lazy_i_##name,
#define CL__LAZY_INDEX_N(name)                    cl__lazy_i_##name,
#define CL__LAZY_NAME_R(ret, name, params, args)  #name,
#define CL__LAZY_NAME_V(name, params, args)       #name,
#define CL__LAZY_NAME_N(name)                     #name,
#define CL__LAZY_DEFINE_R(ret, name, params, args)                                                 \
    ret name params                                                                                \
    {                                                                                              \
        return ((ret(*) params)cl__lazy_get(&lazy_lib, cl__lazy_i_##name))args;                    \
    }
#define CL__LAZY_DEFINE_V(name, params, args)                                                      \
    void name params                                                                               \
    {                                                                                              \
        ((void(*) params)cl__lazy_get(&lazy_lib, cl__lazy_i_##name)) args;                         \
    }
#define CL__LAZY_DEFINE_N(name)

/*
 * The shim of the library soname whose functions list names: an enum of their indexes,
 * the file's lazy_lib, and the R and V functions. lazy_get(i) is function i for the N
 * ones.
 */
#define CL__LAZY_SHIM(list, so)                                                                    \
    enum { list(CL__LAZY_INDEX_R, CL__LAZY_INDEX_V, CL__LAZY_INDEX_N) cl__lazy_count };            \
    static const char *const lazy_names[cl__lazy_count] = {                                        \
        list(CL__LAZY_NAME_R, CL__LAZY_NAME_V, CL__LAZY_NAME_N)};                                  \
    static cl__lazy_fn lazy_fns[cl__lazy_count];                                                   \
    static cl__lazy_lib lazy_lib = {                                                               \
        .soname = (so), .names = lazy_names, .fns = lazy_fns, .n = cl__lazy_count};                \
    list(CL__LAZY_DEFINE_R, CL__LAZY_DEFINE_V, CL__LAZY_DEFINE_N)

#endif /* CLEAVE_LAZY_H */
