/*
 * cleave/module.h - modules: instances, their operations tables, and the host's wiring.
 *
 * A module is a value, as a SQLite connection is: its state lives in an instance that its
 * lifecycle hooks and operations receive, never in file statics, so two instances of a
 * module can live in one process on two databases (ADR 0021).
 *
 * A module's public header declares its operations once, as an X-macro list of
 * X(M, name, Request, Response, flags). From that list come
 *   - the operations table M_ops: a versioned struct of function pointers, each taking
 *     the instance first (CL_OPS_DECLARE);
 *   - a typed call per operation, M_name(handle, ctx, req, resp), through a cl_handle
 *     (CL_OPS_DECLARE);
 *   - an operation list (name, request/response descriptors, flags, a typed trampoline)
 *     that the RPC server dispatch and the remote stub are driven by (CL_OPS_DEFINE);
 *   - the local table from the implementation's functions M_local_name, so that a missing
 *     implementation does not build (CL_LOCAL_DEFINE);
 *   - the remote table, whose instance is an RPC client (CL_REMOTE_DEFINE, cleave/rpc.h).
 * Every operation has the signature
 *     cl_status op(void *self, cl_ctx *ctx, const Request *req, Response *resp);
 * writes *resp only on CL_OK (the caller frees it with cl_schema_free), and reports
 * failures in ctx->err. Requests and responses are plain data (cleave/schema.h).
 */
#ifndef CLEAVE_MODULE_H
#define CLEAVE_MODULE_H

#include <stdbool.h>
#include <stddef.h>

#include "cleave/bus.h"
#include "cleave/config.h"
#include "cleave/db.h"
#include "cleave/http.h"
#include "cleave/metrics.h"
#include "cleave/schema.h"
#include "cleave/status.h"
#include "cleave/trace.h"

/* Operation flags. */
#define CL_OP_WRITE      0u
#define CL_OP_READ       1u /* read-only; safe to retry and to serve from a replica */
#define CL_OP_IDEMPOTENT 2u /* safe to retry (reads are implicitly) */
/*
 * Served over RPC without a service token: the operation authenticates its callers itself
 * (token issuance, by client secret) or is public (the issuer's keys). Without it the
 * services of a deployment could not get their first token (ADR 0030).
 */
#define CL_OP_PUBLIC     4u
/*
 * A read whose last good answer a remote caller may get while the module's service is
 * unavailable, marked stale (ADR 0033): only for answers that are the same for every
 * caller and that no decision depends on (never stock, money, a customer's own data, keys).
 */
#define CL_OP_STALE_OK   8u
/*
 * A read the caching decorator answers from the read cache (ADR 0042), keyed by the
 * request alone: the same rules as CL_OP_STALE_OK (the same answer for every caller), and
 * the module's writes must all go through its table, so that each one clears it.
 */
#define CL_OP_CACHED     16u

/*
 * A module as its callers hold it: an operations table (local or remote) and the instance
 * it runs on (the module's state, or an RPC client). Callers cannot tell the two apart.
 * Borrowed from whoever created the instance (the host), for the instance's life.
 */
typedef struct cl_handle {
    const void *ops; /* an M_ops */
    void *self;
} cl_handle;

typedef cl_status (*cl_op_invoke)(const cl_handle *m, cl_ctx *ctx, const void *req, void *resp);

typedef struct cl_op {
    const char *name;
    const cl_type *req;
    const cl_type *resp;
    unsigned flags;
    cl_op_invoke invoke; /* calls this operation's slot of m's table on m's instance */
} cl_op;

#define CL__OP_SLOT(M, name, Req, Resp, flags)                                                     \
    cl_status (*name)(void *self, cl_ctx *ctx, const Req *req, Resp *resp);
#define CL__OP_CALL(M, name, Req, Resp, flags)                                                     \
    static inline cl_status M##_##name(const cl_handle *m, cl_ctx *ctx, const Req *req,            \
                                       Resp *resp)                                                 \
    {                                                                                              \
        return ((const M##_ops *)m->ops)->name(m->self, ctx, req, resp);                           \
    }
#define CL__OP_TRAMPOLINE(M, name, Req, Resp, flags)                                               \
    static cl_status M##__invoke_##name(const cl_handle *m, cl_ctx *ctx, const void *req,          \
                                        void *resp)                                                \
    {                                                                                              \
        return M##_##name(m, ctx, (const Req *)req, (Resp *)resp);                                 \
    }
#define CL__OP_ENTRY(M, name, Req, Resp, flags)                                                    \
    {#name, &Req##_type, &Resp##_type, flags, M##__invoke_##name},

/*
 * In the public header: the table type M_ops, a typed call M_<op>(handle, ctx, req, resp)
 * per operation, and the operation list M_op_list.
 */
#define CL_OPS_DECLARE(M, LIST)                                                                    \
    typedef struct M##_ops {                                                                       \
        int version;                                                                               \
        LIST(CL__OP_SLOT, M)                                                                       \
    } M##_ops;                                                                                     \
    LIST(CL__OP_CALL, M)                                                                           \
    extern const cl_op M##_op_list[];                                                              \
    extern const size_t M##_op_count;                                                              \
    extern const M##_ops M##_caller_ops;

/*
 * One caller's way to a module (ADR 0039): the instance behind a handle {M_caller_ops,
 * &caller}. Each call through it is counted as caller -> M in cleave_module_calls_total,
 * then made through callee, the module as the host holds it (local or remote). The host
 * gives every module a handle of its own for each module it depends on, and the public
 * routes one as CL_CALLER_GATEWAY, so that the counts say who calls whom without a line of
 * module code; what an extraction would put on the network is read from them.
 */
typedef struct cl_caller {
    const char *caller;      /* the calling module, or CL_CALLER_GATEWAY */
    const char *binding;     /* how callee is bound here: "local" or "remote" */
    const cl_handle *callee; /* borrowed; its instance may be set after this is made */
} cl_caller;

/* The caller of routes, GraphQL and the host's own calls: code of no module. */
#define CL_CALLER_GATEWAY "gateway"

#define CL__OP_CALLER_FN(M, name, Req, Resp, flags)                                                \
    static cl_status M##__caller_##name(void *self, cl_ctx *ctx, const Req *req, Resp *resp)       \
    {                                                                                              \
        const cl_caller *c_ = self;                                                                \
                                                                                                   \
        cl_metrics_module_call(c_->caller, #M, #name, c_->binding);                                \
        return M##_##name(c_->callee, ctx, req, resp);                                             \
    }
#define CL__OP_CALLER_SLOT(M, name, Req, Resp, flags) .name = M##__caller_##name,

/*
 * The counting table M_caller_ops, whose instance is a cl_caller: made by CL_REMOTE_DEFINE
 * (cleave/rpc.h) with the table's version, which callers may check as they do the others'.
 */
#define CL__CALLER_DEFINE(M, LIST, VERSION)                                                        \
    LIST(CL__OP_CALLER_FN, M)                                                                      \
    const M##_ops M##_caller_ops = {.version = VERSION, LIST(CL__OP_CALLER_SLOT, M)};

/* In one .c file of the module's interface library. */
#define CL_OPS_DEFINE(M, LIST)                                                                     \
    LIST(CL__OP_TRAMPOLINE, M)                                                                     \
    const cl_op M##_op_list[] = {LIST(CL__OP_ENTRY, M)};                                           \
    const size_t M##_op_count = sizeof(M##_op_list) / sizeof(M##_op_list[0]);

#define CL__LOCAL_PROTO(M, name, Req, Resp, flags)                                                 \
    static cl_status M##_local_##name(struct M##_self *self, cl_ctx *ctx, const Req *req,          \
                                      Resp *resp);
/* Each operation of the local binding is a child span of its caller's (cleave/trace.h). */
#define CL__LOCAL_SLOT_FN(M, name, Req, Resp, flags)                                               \
    static cl_status M##__slot_##name(void *self, cl_ctx *ctx, const Req *req, Resp *resp)         \
    {                                                                                              \
        cl_span span_;                                                                             \
        cl_status st_;                                                                             \
        int64_t start_ns_;                                                                         \
                                                                                                   \
        if (ctx == NULL) {                                                                         \
            return M##_local_##name((struct M##_self *)self, ctx, req, resp);                      \
        }                                                                                          \
        start_ns_ = cl_metrics_now_ns();                                                           \
        cl_span_start(&span_, ctx, CL_SPAN_INTERNAL, #M "." #name);                                \
        st_ = cl_span_status(&span_, M##_local_##name((struct M##_self *)self, ctx, req, resp));   \
        cl_span_end(&span_);                                                                       \
        cl_metrics_operation(#M, #name, "local", st_, start_ns_);                                  \
        return st_;                                                                                \
    }
#define CL__LOCAL_SLOT(M, name, Req, Resp, flags) .name = M##__slot_##name,

/*
 * In the implementation file that holds the operations (after `struct M_self`, the
 * instance, is declared): declares `static cl_status M_local_<op>(struct M_self *self,
 * cl_ctx *ctx, const Req *req, Resp *resp)` for every operation of LIST - the file must
 * define each, or it does not build - and the local table M_local_ops from them.
 */
#define CL_LOCAL_DEFINE(M, LIST, VERSION)                                                          \
    LIST(CL__LOCAL_PROTO, M)                                                                       \
    LIST(CL__LOCAL_SLOT_FN, M)                                                                     \
    static const M##_ops M##_local_ops = {.version = VERSION, LIST(CL__LOCAL_SLOT, M)};

/* Finds an operation by name in list[n]; NULL when absent. */
const cl_op *cl_op_find(const cl_op *list, size_t n, const char *name);

/* An empty request or response. */
typedef struct cl_empty {
    char unused_;
} cl_empty;
extern const cl_type cl_empty_type;

/* Money: integer minor units and an ISO 4217 code. Never floating point. */
#define CL_MONEY(X, T)                                                                             \
    X(T, I64, amount, _)                                                                           \
    X(T, STR, currency, _)
CL_TYPE_DECLARE(cl_money, CL_MONEY)

/* --- the module descriptor (the implementation: the local binding) ----------------- */

#define CL_MODULE_ABI 2

struct cl_bus;

/* What the host hands a new instance: its own database and nothing else of others'. */
typedef struct cl_module_env cl_module_env;
struct cl_module_env {
    /*
     * The process's configuration, borrowed: the module's declared settings (defaults
     * applied) among the rest. The host always gives one; a module that reads settings
     * refuses to start without it.
     */
    const cl_config *config;
    cl_db *db; /* the instance's own database, borrowed for its life */
    /*
     * The process's message bus (cleave/bus.h), borrowed: subscribe to events and register
     * long-running operation kinds here, in create. NULL where the host runs no bus.
     */
    struct cl_bus *bus;
    /*
     * Another module of this process's deployment by name - local or remote, callers
     * cannot tell - borrowed for the instance's life; NULL for a module the process does
     * not know. An instance calls only modules its api->depends names. NULL outside a
     * host (a unit test's env), where a module has no others to call.
     */
    const cl_handle *(*module)(const struct cl_module_env *env, const char *name);
    void *host; /* the host's state, for module only */
    /*
     * True when the process serves (cleave serve): background work such as resuming
     * sagas runs only then, never in one-shot commands (seed, migrate, rebuild).
     */
    bool serving;
};

/*
 * The implementation, a constant descriptor (nginx's ngx_module_t). No slot is NULL: the
 * cl_module_noop_* hooks are the defaults.
 *   create   makes an instance on env (which it may keep: everything in it outlives the
 *            instance); *self receives it, owned by the caller, released with destroy.
 *            CL_INVALID for a bad setting or a missing database; others as the module says.
 *   start    starts its background work (threads), after every instance is created.
 *   stop     stops that work; in-flight operations finish. Called before destroy.
 *   destroy  frees the instance. NULL is a no-op.
 */
typedef struct cl_module {
    int abi;             /* CL_MODULE_ABI */
    const char *name;    /* "widgets": also its migrations folder */
    const char *version; /* semantic version of the implementation */
    const void *ops;     /* its local operations table (CL_LOCAL_DEFINE) */
    cl_status (*create)(const cl_module_env *env, void **self, cl_error *err);
    cl_status (*start)(void *self, cl_error *err);
    void (*stop)(void *self);
    void (*destroy)(void *self);
    /*
     * Its interface side, where its settings are declared: whoever loads a configuration
     * for the implementation alone (a test) finds them here.
     */
    const struct cl_module_api *api;
} cl_module;

/* Default no-op hooks, so that no slot is ever NULL. */
cl_status cl_module_noop_start(void *self, cl_error *err);
void cl_module_noop_stop(void *self);

/* --- the module's interface side (compiled into every host that calls it) ---------- */

/* What `cleave seed` asks of every module's demo data (cl_module_api.seed). */
typedef struct cl_seed_opts {
    /*
     * At most this many records of each kind the demo has many of (`cleave seed --limit`);
     * 0: all of them. A smaller demo is the start of the whole one, record for record, so
     * that what a walkthrough or a test names is there in both.
     */
    int limit;
} cl_seed_opts;

/* How many records of a kind whose whole demo has all opts asks for: all, or its limit. */
int cl_seed_count(const cl_seed_opts *opts, int all);

struct cl_rpc_client;

typedef struct cl_module_api {
    const char *name; /* "widgets" */
    int ops_version;  /* version of the operations table */
    const cl_op *ops; /* the operation list */
    size_t nops;
    /*
     * Modules whose interfaces it calls; NULL-terminated. Always M_depends, generated by
     * the build from cleave_module(M DEPENDS ...), the one place they are declared.
     */
    const char *const *depends;
    /* The events it publishes, declared in its public header (CL_EVENTS_DECLARE); may be 0. */
    const cl_event *const *events;
    size_t nevents;
    /*
     * The declared events of other modules it handles, NULL-terminated (NULL: none): the
     * process it runs in must receive them wherever their publisher runs.
     */
    const cl_event *const *subscribes;
    /* Adds the module's public REST routes, which call only through m (borrowed, kept). */
    cl_status (*routes)(cl_router *r, const cl_handle *m, cl_error *err);
    /*
     * Creates demo data through m when the module has none, as opts asks. *created
     * receives a count.
     */
    cl_status (*seed)(const cl_handle *m, cl_ctx *ctx, const cl_seed_opts *opts, int *created);
    /*
     * The remote binding: the operations table that calls the module's service, whose
     * instance is a cl_rpc_client (cleave/rpc.h) (CL_REMOTE_DEFINE).
     */
    const void *remote_ops;
    /*
     * Its configuration keys (cleave/config.h), each named CLEAVE_<NAME>_..., with type,
     * bounds, default and help; NULL when nsettings is 0. Declared on the interface side
     * because every binary of a deployment validates one shared configuration, including
     * the keys of modules it reaches over the network; the implementation reads them
     * (cl_config_int, cl_config_get) and states no default of its own.
     */
    const cl_setting *settings;
    size_t nsettings;
    /*
     * Only for the module that issues the access tokens a gateway checks (the OpenID
     * provider of the deployment), else NULL: its key set as a JWKS document and the issuer its
     * tokens name, asked through m, local or remote (both malloc'd, the caller frees). A gateway
     * whose deployment has no such module accepts no token.
     */
    cl_status (*token_keys)(const cl_handle *m, cl_ctx *ctx, char **jwks, char **issuer);
    /*
     * Only for the token issuer, else NULL: a client_credentials access token for
     * client_id (authenticated by secret) with aud audience, asked through m, local or
     * remote (*token malloc'd, the caller frees; *expires_in its lifetime in seconds).
     * The statuses of the issuer's token operation.
     */
    cl_status (*client_token)(const cl_handle *m, cl_ctx *ctx, const char *client_id,
                              const char *secret, const char *audience, char **token,
                              int64_t *expires_in);
    /*
     * The caching decorator's table (CL_CACHED_DEFINE, cleave/cache.h), whose instance is
     * a cl_cached, when operations are declared CL_OP_CACHED; else NULL.
     */
    const void *cached_ops;
} cl_module_api;

/* Declares M_depends, the list the build generates from cleave_module(M DEPENDS ...). */
#define CL_MODULE_DEPENDS_DECLARE(M) extern const char *const M##_depends[]

/* A module as the host sees it: its interface and, when compiled in, its implementation. */
typedef struct cl_binding {
    const cl_module_api *api;
    const cl_module *local; /* NULL when the module is extracted */
    const void *caller_ops; /* its M_caller_ops (CL_OPS_DEFINE) */
} cl_binding;

/* Generated by the build: every module, in dependency order, NULL-terminated by api. */
extern const cl_binding cl_bindings[];

#endif /* CLEAVE_MODULE_H */
