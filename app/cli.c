/*
 * The cleave command line: serve, migrate, seed, modules, new, version.
 * Errors go to stderr with a message naming what is wrong, and a non-zero exit.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleave/log.h"
#include "cleave/otlp.h"
#include "cleave/migrate.h"
#include "auth.h"
#include "host.h"
#include "memory.h"

#define EXIT_USAGE    2
/* How long a stopping server waits for the collector to take the last spans. */
#define OTLP_FLUSH_MS 2000

static void usage(FILE *out)
{
    fprintf(out, "usage: %s [--config FILE] COMMAND [OPTIONS]\n", host_binary_name);
    fputs("\n"
          "commands:\n"
          "  serve              apply pending migrations, then serve until SIGINT/SIGTERM\n"
          "  migrate [--status] [--admin-url URL]\n"
          "                     apply pending migrations, or list them per module; on\n"
          "                     PostgreSQL first create roles and schemas as URL's admin\n"
          "  seed [--module NAME] [--limit N]\n"
          "                     create the demo data of every module (or NAME) that has none;\n"
          "                     --limit: at most the first N records of each kind\n"
          "  modules [--graph|--wire]\n"
          "                     list the modules, local or remote; --graph: dependencies;\n"
          "                     --wire: the RPC API of every module, as Markdown\n"
          "  dlq list | replay MODULE:ID | drop MODULE:ID\n"
          "                     dead letters of the bus: list, deliver again, delete\n"
          "  bus stats          outbox backlog and dead letters per local module\n"
          "  advise [--url URL] [--module NAME]... [--samples N] [--json]\n"
          "                     from a running process's /metrics (default URL\n"
          "                     http://127.0.0.1:8080): the calls and latency that\n"
          "                     extracting each module (or NAME) would add\n"
          "  new module NAME [--templates DIR] [--root DIR]\n"
          "                     scaffold modules/NAME (interface, implementation, tests,\n"
          "                     migrations) and add it to the tree's module list\n"
          "  payments rebuild   drop the payments projections and replay them from events\n"
          "  users add NAME --role customer|staff|admin\n"
          "                     add a user; the password is read from stdin\n"
          "  clients add ID --grant GRANT [--grant GRANT]... --audience AUD\n"
          "                     add an OAuth client and print its secret (once)\n"
          "  keys rotate        make a new token signing key; the old one verifies until\n"
          "                     its last token expires\n"
          "  version            print the version\n"
          "\n"
          "configuration: defaults < --config FILE < CLEAVE_* environment variables\n",
          out);
}

static int fail(const char *what, const cl_error *err)
{
    if (err->field[0] != '\0' && strstr(err->message, err->field) == NULL) {
        fprintf(stderr, "cleave: %s: %s: %s\n", what, err->field, err->message);
    } else {
        fprintf(stderr, "cleave: %s: %s\n", what, err->message);
    }
    return EXIT_FAILURE;
}

static int cmd_version(void)
{
    printf("%s %s\n", host_binary_name, CLEAVE_VERSION);
    return EXIT_SUCCESS;
}

/* The dependency graph between modules, in Mermaid (renders on GitHub and in most docs). */
static int print_graph(void)
{
    printf("graph LR\n");
    for (int i = 0; cl_bindings[i].api != NULL; i++) {
        const cl_module_api *api = cl_bindings[i].api;
        printf("    %s[%s%s]\n", api->name, api->name,
               cl_bindings[i].local != NULL ? "" : " (remote)");
        for (int d = 0; api->depends[d] != NULL; d++) {
            printf("    %s --> %s\n", api->name, api->depends[d]);
        }
        /* An event edge points from the publisher to the subscriber, dotted: asynchronous. */
        for (int e = 0; api->subscribes != NULL && api->subscribes[e] != NULL; e++) {
            printf("    %s -. %s .-> %s\n", api->subscribes[e]->module, api->subscribes[e]->name,
                   api->name);
        }
    }
    return EXIT_SUCCESS;
}

static const char *kind_name(const cl_field *f, char *buf, size_t size)
{
    switch (f->kind) {
    case CL_KIND_STR:
        return "string or null";
    case CL_KIND_I64:
        return "integer";
    case CL_KIND_OPT_I64:
        return "integer, optional";
    case CL_KIND_BOOL:
        return "boolean";
    case CL_KIND_STRS:
        return "array of strings";
    case CL_KIND_OBJ:
        snprintf(buf, size, "`%s`", f->sub->name);
        return buf;
    case CL_KIND_OPT_OBJ:
        snprintf(buf, size, "`%s`, optional", f->sub->name);
        return buf;
    case CL_KIND_OBJS:
        snprintf(buf, size, "array of `%s`", f->sub->name);
        return buf;
    }
    return "?";
}

/* Prints type and, once each, the types it contains, as Markdown tables. */
static void print_type(const cl_type *t, const cl_type **seen, int *nseen)
{
    char buf[128];

    for (int i = 0; i < *nseen; i++) {
        if (seen[i] == t) {
            return;
        }
    }
    seen[(*nseen)++] = t;
    printf("\n#### `%s`\n\n", t->name);
    if (t->nfields == 0) {
        printf("An empty object: `{}`.\n");
        return;
    }
    printf("| field | JSON type |\n|---|---|\n");
    for (size_t i = 0; i < t->nfields; i++) {
        printf("| `%s` | %s |\n", t->fields[i].name, kind_name(&t->fields[i], buf, sizeof(buf)));
    }
    for (size_t i = 0; i < t->nfields; i++) {
        if (t->fields[i].sub != NULL && *nseen < 64) {
            print_type(t->fields[i].sub, seen, nseen);
        }
    }
}

/*
 * The wire API of every module, generated from the same operation declarations as the
 * stubs and the dispatch, so that the documentation cannot drift from the code.
 */
static int print_wire(void)
{
    printf("# Wire API v1\n\n"
           "Generated by `cleave modules --wire` from the modules' operation declarations;\n"
           "see `platform/include/cleave/rpc.h` for the protocol (headers, errors).\n"
           "Every call is `POST /rpc/v1/<module>/<operation>` with a JSON body; unknown\n"
           "request fields are ignored. Failures are `application/problem+json` with\n"
           "`cleave_status` and `cleave_field`.\n"
           "Events travel in the bus's envelope (`platform/include/cleave/bus.h`) with the\n"
           "payload below; over NATS JetStream on the subject shown.\n");
    for (int i = 0; cl_bindings[i].api != NULL; i++) {
        const cl_module_api *api = cl_bindings[i].api;
        const cl_type *seen[64];
        int nseen = 0;

        printf("\n## %s (operations v%d)\n\n", api->name, api->ops_version);
        printf("| operation | request | response | kind |\n|---|---|---|---|\n");
        for (size_t k = 0; k < api->nops; k++) {
            const cl_op *op = &api->ops[k];
            printf("| `POST /rpc/v1/%s/%s` | `%s` | `%s` | %s |\n", api->name, op->name,
                   op->req->name, op->resp->name,
                   (op->flags & CL_OP_READ)         ? "read"
                   : (op->flags & CL_OP_IDEMPOTENT) ? "idempotent write"
                                                    : "write");
        }
        if (api->nevents > 0) {
            printf("\n| event | subject | version | payload |\n|---|---|---|---|\n");
        }
        for (size_t k = 0; k < api->nevents; k++) {
            const cl_event *ev = api->events[k];
            printf("| `%s` | `%s` | %d | `%s` |\n", ev->type, ev->subject, ev->version,
                   ev->payload->name);
        }
        for (int e = 0; api->subscribes != NULL && api->subscribes[e] != NULL; e++) {
            printf("%s `%s`", e == 0 ? "\nHandles" : ",", api->subscribes[e]->type);
        }
        if (api->subscribes != NULL && api->subscribes[0] != NULL) {
            printf(".\n");
        }
        for (size_t k = 0; k < api->nops; k++) {
            print_type(api->ops[k].req, seen, &nseen);
            print_type(api->ops[k].resp, seen, &nseen);
        }
        for (size_t k = 0; k < api->nevents; k++) {
            print_type(api->events[k]->payload, seen, &nseen);
        }
    }
    return EXIT_SUCCESS;
}

static int cmd_modules(const char *config, int argc, char **argv)
{
    host h;
    cl_error err = {0};
    int rc;

    if (argc == 1 && strcmp(argv[0], "--graph") == 0) {
        return print_graph();
    }
    if (argc == 1 && strcmp(argv[0], "--wire") == 0) {
        return print_wire();
    }
    if (argc > 0) {
        fprintf(stderr, "cleave: modules: unknown option %s (try --graph or --wire)\n", argv[0]);
        return EXIT_USAGE;
    }
    if (host_open_with(&h, &(host_options){.config_file = config, .no_db = true}, &err) != CL_OK) {
        rc = fail("modules", &err);
        host_close(&h);
        return rc;
    }
    for (int i = 0; i < h.nmodules; i++) {
        const host_module *m = &h.modules[i];
        const cl_binding *b = m->binding;
        if (b->local != NULL) {
            printf("%-12s %-8s local   operations v%d\n", b->api->name, b->local->version,
                   b->api->ops_version);
        } else {
            printf("%-12s %-8s remote  operations v%d at %s\n", b->api->name, "-",
                   b->api->ops_version, cl_rpc_client_url(m->remote));
        }
    }
    host_print_placement(&h);
    host_close(&h);
    return EXIT_SUCCESS;
}

static int cmd_migrate(const char *config, int argc, char **argv)
{
    host h;
    host_options opt = {.config_file = config, .provision = true};
    cl_error err = {0};
    int status = 0;
    int rc = EXIT_FAILURE;

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--status") == 0) {
            status = 1;
        } else if (strcmp(argv[i], "--admin-url") == 0 && i + 1 < argc) {
            opt.admin_url = argv[++i];
        } else {
            fprintf(stderr, "cleave: migrate: unknown option %s\n", argv[i]);
            return EXIT_USAGE;
        }
    }
    if (host_open_with(&h, &opt, &err) != CL_OK) {
        rc = fail("migrate", &err);
        goto out;
    }
    for (int i = 0; i < h.nmodules; i++) {
        if (h.modules[i].postgres && h.modules[i].admin_url == NULL) {
            fprintf(stderr,
                    "cleave: migrate: %s is on PostgreSQL: give admin credentials with "
                    "--admin-url URL or CLEAVE_DATABASE_ADMIN_URL (its app role may not change "
                    "the schema)\n",
                    h.modules[i].binding->api->name);
            rc = EXIT_FAILURE;
            goto out;
        }
    }
    if (!status) {
        rc = host_migrate(&h, true, &err) == CL_OK ? EXIT_SUCCESS : fail("migrate", &err);
        goto out;
    }
    rc = EXIT_SUCCESS;
    for (int i = 0; i < h.nmodules; i++) {
        cl_migration_info info[256];
        int n = 0;
        const char *name = h.modules[i].binding->api->name;
        cl_db *db = NULL;
        bool owned = false;
        cl_status st;

        if (h.modules[i].db == NULL) {
            printf("%s: remote: run 'migrate --status' on its service\n", name);
            continue;
        }
        st = host_migration_db(&h, &h.modules[i], &db, &owned, &err);
        if (st == CL_OK) {
            st = cl_migrate_status(db, h.migrations_dir, name, info, 256, &n, &err);
        }
        if (owned) {
            cl_db_close(db);
        }
        if (st != CL_OK) {
            rc = fail("migrate --status", &err);
            continue;
        }
        printf("%s:\n", name);
        for (int j = 0; j < n; j++) {
            printf("  %04lld  %-40s %s\n", (long long)info[j].version, info[j].name,
                   info[j].applied ? info[j].applied_at : "pending");
        }
    }
out:
    host_close(&h);
    return rc;
}

static int cmd_seed(const char *config, int argc, char **argv)
{
    host h;
    cl_error err = {0};
    int rc = EXIT_FAILURE;

    const char *only = NULL;
    cl_seed_opts opts = {0};

    for (int i = 0; i < argc; i++) {
        /* --if-empty is what seed always does; accepted so scripts can say so. */
        if (strcmp(argv[i], "--module") == 0 && i + 1 < argc) {
            only = argv[++i];
        } else if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc) {
            char *end;
            long n = strtol(argv[++i], &end, 10);

            if (end == argv[i] || *end != '\0' || n < 1 || n > INT_MAX) {
                fprintf(stderr, "cleave: seed: --limit: '%s' is not a number from 1 to %d\n",
                        argv[i], INT_MAX);
                return EXIT_USAGE;
            }
            opts.limit = (int)n;
        } else if (strcmp(argv[i], "--if-empty") != 0) {
            fprintf(stderr, "cleave: seed: unknown option %s\n", argv[i]);
            return EXIT_USAGE;
        }
    }
    if (host_open(&h, config, &err) != CL_OK || host_check_migrations(&h, &err) != CL_OK ||
        host_start_modules(&h, &err) != CL_OK) {
        rc = fail("seed", &err);
        goto out;
    }
    rc = EXIT_SUCCESS;
    for (int i = 0; only != NULL && i <= h.nmodules; i++) {
        if (i == h.nmodules) {
            fprintf(stderr, "cleave: seed: %s has no module '%s'\n", host_binary_name, only);
            rc = EXIT_USAGE;
            goto out;
        }
        if (strcmp(h.modules[i].binding->api->name, only) == 0) {
            break;
        }
    }
    for (int i = 0; i < h.nmodules; i++) {
        const cl_module_api *api = h.modules[i].binding->api;
        cl_ctx ctx;
        int created = 0;

        if (only != NULL && strcmp(api->name, only) != 0) {
            continue;
        }

        cl_ctx_init(&ctx, 0);
        cl_strlcpy(ctx.principal, "service:seed", sizeof(ctx.principal));
        /* "Is it empty?" must be answered by the primary, not by a replica behind it. */
        ctx.read_primary = 1;
        if (api->seed(&h.modules[i].handle, &ctx, &opts, &created) != CL_OK) {
            rc = fail("seed", &ctx.err);
            break;
        }
        if (created > 0) {
            printf("%s: created %d demo records\n", api->name, created);
        } else {
            printf("%s: already has data, nothing to seed\n", api->name);
        }
    }
out:
    host_close(&h);
    return rc;
}

/*
 * Calls operation op of module (local or remote alike) with the request req (JSON,
 * borrowed) and sets *out to the response as JSON (json_decref). The host knows modules
 * only by their operation lists, so it finds the operation by name; module commands
 * (`payments rebuild`, `users add`, ...) are this call plus their own printing.
 */
static int call_op(const char *config, const char *what, const char *module_name,
                   const char *op_name, json_t *req, json_t **out)
{
    const cl_op *op = NULL;
    const cl_handle *module = NULL;
    cl_error err = {0};
    void *in = NULL;
    void *resp = NULL;
    cl_ctx ctx;
    host h;
    int rc = EXIT_FAILURE;

    if (host_open(&h, config, &err) != CL_OK || host_check_migrations(&h, &err) != CL_OK ||
        host_start_modules(&h, &err) != CL_OK) {
        rc = fail(what, &err);
        goto out;
    }
    for (int i = 0; i < h.nmodules; i++) {
        const cl_module_api *api = h.modules[i].binding->api;
        if (strcmp(api->name, module_name) == 0) {
            op = cl_op_find(api->ops, api->nops, op_name);
            module = &h.modules[i].handle;
        }
    }
    if (op == NULL) {
        fprintf(stderr, "cleave: %s: %s has no %s module\n", what, host_binary_name, module_name);
        goto out;
    }
    in = calloc(1, op->req->size);
    resp = calloc(1, op->resp->size);
    if (in == NULL || resp == NULL) {
        goto out;
    }
    if (cl_schema_from_json(op->req, req, CL_DECODE_STRICT, in, &err) != CL_OK) {
        rc = fail(what, &err);
        goto out;
    }
    cl_ctx_init(&ctx, 0);
    cl_strlcpy(ctx.principal, "service:cli", sizeof(ctx.principal));
    if (op->invoke(module, &ctx, in, resp) != CL_OK) {
        rc = fail(what, &ctx.err);
        goto out;
    }
    *out = cl_schema_to_json(op->resp, resp);
    rc = *out != NULL ? EXIT_SUCCESS : EXIT_FAILURE;
out:
    if (in != NULL) {
        cl_schema_free(op->req, in);
        free(in);
    }
    if (resp != NULL) {
        cl_schema_free(op->resp, resp);
        free(resp);
    }
    host_close(&h);
    return rc;
}

/* `payments rebuild`: the payments' rebuild_projections, and the report it returns. */
static int cmd_payments(const char *config, int argc, char **argv)
{
    json_t *none = json_object();
    json_t *j = NULL;
    int rc;

    if (argc != 1 || strcmp(argv[0], "rebuild") != 0) {
        fprintf(stderr, "cleave: payments: the only subcommand is 'rebuild'\n");
        json_decref(none);
        return EXIT_USAGE;
    }
    rc = call_op(config, "payments rebuild", "payments", "rebuild_projections", none, &j);
    if (rc == EXIT_SUCCESS) {
        printf("payments: replayed %lld events of %lld streams into %lld accounts and %lld "
               "payments; projections %s\n",
               (long long)json_integer_value(json_object_get(j, "events")),
               (long long)json_integer_value(json_object_get(j, "streams")),
               (long long)json_integer_value(json_object_get(j, "accounts")),
               (long long)json_integer_value(json_object_get(j, "payments")),
               json_is_true(json_object_get(j, "unchanged"))
                   ? "unchanged"
                   : "CHANGED (the old ones disagreed with the events and were repaired)");
    }
    json_decref(j);
    json_decref(none);
    return rc;
}

/* `users add NAME --role R`: the password comes from stdin, never from argv (ps shows argv). */
static int cmd_users(const char *config, int argc, char **argv)
{
    char password[1100];
    json_t *req = NULL;
    json_t *j = NULL;
    size_t n;
    int rc;

    if (argc != 4 || strcmp(argv[0], "add") != 0 || strcmp(argv[2], "--role") != 0) {
        fprintf(stderr, "cleave: usage: users add NAME --role customer|staff|admin "
                        "(password on stdin)\n");
        return EXIT_USAGE;
    }
    if (fgets(password, sizeof(password), stdin) == NULL) {
        fprintf(stderr, "cleave: users add: no password on stdin\n");
        return EXIT_FAILURE;
    }
    n = strcspn(password, "\r\n");
    password[n] = '\0';
    req = json_pack("{s:s,s:s,s:s}", "username", argv[1], "password", password, "role", argv[3]);
    rc = req != NULL ? call_op(config, "users add", "identity", "add_user", req, &j) : EXIT_FAILURE;
    if (rc == EXIT_SUCCESS) {
        printf("user %s (id %lld, role %s) added\n", argv[1],
               (long long)json_integer_value(json_object_get(j, "id")), argv[3]);
    }
    json_decref(j);
    json_decref(req);
    return rc;
}

/* `clients add ID --grant G [--grant G]... --audience AUD`: prints the secret once. */
static int cmd_clients(const char *config, int argc, char **argv)
{
    json_t *grants = json_array();
    json_t *req = NULL;
    json_t *j = NULL;
    const char *audience = NULL;
    int rc = EXIT_USAGE;

    if (argc < 2 || strcmp(argv[0], "add") != 0) {
        goto usage;
    }
    for (int i = 2; i < argc; i += 2) {
        if (i + 1 >= argc) {
            goto usage;
        }
        if (strcmp(argv[i], "--grant") == 0) {
            json_array_append_new(grants, json_string(argv[i + 1]));
        } else if (strcmp(argv[i], "--audience") == 0) {
            audience = argv[i + 1];
        } else {
            goto usage;
        }
    }
    if (audience == NULL || json_array_size(grants) == 0) {
        goto usage;
    }
    req = json_pack("{s:s,s:O,s:s}", "client_id", argv[1], "grants", grants, "audience", audience);
    rc = req != NULL ? call_op(config, "clients add", "identity", "add_client", req, &j)
                     : EXIT_FAILURE;
    if (rc == EXIT_SUCCESS) {
        printf("client_id=%s\nclient_secret=%s\n(the secret is shown once; only its hash is "
               "stored)\n",
               argv[1], json_string_value(json_object_get(j, "client_secret")));
    }
    goto out;
usage:
    fprintf(stderr, "cleave: usage: clients add ID --grant GRANT [--grant GRANT]... "
                    "--audience AUD\n");
out:
    json_decref(j);
    json_decref(req);
    json_decref(grants);
    return rc;
}

/* `keys rotate`: a new signer; the old key verifies until its last token expires. */
static int cmd_keys(const char *config, int argc, char **argv)
{
    json_t *none = json_object();
    json_t *j = NULL;
    int rc;

    if (argc != 1 || strcmp(argv[0], "rotate") != 0) {
        fprintf(stderr, "cleave: keys: the only subcommand is 'rotate'\n");
        json_decref(none);
        return EXIT_USAGE;
    }
    rc = call_op(config, "keys rotate", "identity", "rotate_keys", none, &j);
    if (rc == EXIT_SUCCESS) {
        printf("signing key %s; the previous key %s stays in the JWKS until %s\n",
               json_string_value(json_object_get(j, "kid")),
               json_is_string(json_object_get(j, "previous_kid"))
                   ? json_string_value(json_object_get(j, "previous_kid"))
                   : "(none)",
               json_is_string(json_object_get(j, "previous_not_after"))
                   ? json_string_value(json_object_get(j, "previous_not_after"))
                   : "-");
    }
    json_decref(j);
    json_decref(none);
    return rc;
}

static const cl_http_bulkhead probe_bulkheads[] = {
    {"GET", "/healthz", CL_HTTP_UNBOUNDED},
    {"GET", "/readyz", CL_HTTP_UNBOUNDED},
};

static int cmd_serve(const char *config, int argc)
{
    host h;
    cl_error err = {0};
    cl_http_options opt = {0};
    int rc = EXIT_FAILURE;
    int sig;
    int64_t drain_start = 0;
    int64_t stop_start = 0;

    if (argc > 0) {
        fprintf(stderr, "cleave: serve takes no arguments (configure with CLEAVE_*)\n");
        return EXIT_USAGE;
    }
    /* Before any thread exists, so that only cl_shutdown_wait sees the signals. */
    cl_shutdown_prepare();
    /* The process that owns a module's database migrates it (ADR 0007). */
    if (host_open_with(&h, &(host_options){.config_file = config, .provision = true}, &err) !=
            CL_OK ||
        host_check_placement(&h, &err) != CL_OK || host_migrate(&h, false, &err) != CL_OK) {
        rc = fail("serve", &err);
        goto out;
    }
    /* Only a serving process runs modules' background work (resuming sagas). */
    h.serving = true;
    if (cl_config_get(h.config, "CLEAVE_OTLP_ENDPOINT") != NULL &&
        cl_otlp_start(cl_config_get(h.config, "CLEAVE_OTLP_ENDPOINT"), host_binary_name,
                      CLEAVE_VERSION, &err) != CL_OK) {
        rc = fail("serve", &err);
        goto out;
    }
    if (host_open_auth(&h, &err) != CL_OK || host_start_modules(&h, &err) != CL_OK ||
        host_build_router(&h, &err) != CL_OK || host_start_bus(&h, &err) != CL_OK) {
        rc = fail("serve", &err);
        goto out;
    }
    opt.listen = cl_config_get(h.config, "CLEAVE_LISTEN");
    opt.threads = (int)cl_config_int(h.config, "CLEAVE_HTTP_THREADS");
    opt.max_body = (size_t)cl_config_int(h.config, "CLEAVE_MAX_BODY_BYTES");
    opt.request_timeout_ms = cl_config_int(h.config, "CLEAVE_REQUEST_TIMEOUT_MS");
    opt.service = host_binary_name;
    if (host_binary_role == HOST_GATEWAY) {
        opt.guard = host_auth_guard;
        opt.guard_arg = h.auth;
    }

    opt.head_timeout_ms = cl_config_int(h.config, "CLEAVE_HTTP_HEAD_TIMEOUT_MS");
    opt.body_timeout_ms = cl_config_int(h.config, "CLEAVE_HTTP_BODY_TIMEOUT_MS");
    /* In the settings 0 turns a limit off; in cl_http_options 0 means its default. */
    opt.min_body_rate = cl_config_int(h.config, "CLEAVE_HTTP_MIN_BODY_RATE");
    opt.min_body_rate = opt.min_body_rate > 0 ? opt.min_body_rate : -1;
    opt.keep_alive_ms = cl_config_int(h.config, "CLEAVE_HTTP_KEEP_ALIVE_MS");
    opt.gzip_off = cl_config_int(h.config, "CLEAVE_HTTP_GZIP") == 0;
    opt.max_conns_per_client =
        (int)cl_config_int(h.config, "CLEAVE_HTTP_MAX_CONNECTIONS_PER_CLIENT");
    opt.max_inflight = (int)cl_config_int(h.config, "CLEAVE_HTTP_MAX_INFLIGHT");
    opt.route_max_inflight = (int)cl_config_int(h.config, "CLEAVE_HTTP_ROUTE_MAX_INFLIGHT");
    /* Probes must answer while load shedding refuses other requests (ADR 0029). */
    opt.bulkheads = probe_bulkheads;
    opt.nbulkheads = sizeof(probe_bulkheads) / sizeof(probe_bulkheads[0]);
    opt.tls_cert = cl_config_get(h.config, "CLEAVE_TLS_CERT");
    opt.tls_key = cl_config_get(h.config, "CLEAVE_TLS_KEY");
    opt.tls_client_ca = cl_config_get(h.config, "CLEAVE_TLS_CLIENT_CA");
    if (cl_http_start(&opt, h.router, &h.server, &err) != CL_OK) {
        rc = fail("serve", &err);
        goto out;
    }
    cl_log_with(CL_LOG_INFO, "host",
                json_pack("{s:s,s:i}", "listen", opt.listen, "port", cl_http_port(h.server)),
                "serving on port %d", cl_http_port(h.server));
    sig = cl_shutdown_wait();
    drain_start = cl_now_ms();
    rc = host_drain(&h, sig) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
    stop_start = cl_now_ms();
out:
    /* The bus's relays and consumers, then the modules: their workers end their saga steps. */
    host_close(&h);
    if (drain_start > 0) {
        cl_log_with(CL_LOG_INFO, "drain",
                    json_pack("{s:s,s:I,s:I}", "phase", "stop", "duration_ms",
                              cl_now_ms() - stop_start, "drain_ms", cl_now_ms() - drain_start),
                    "bus and modules stopped in %lld ms; drained in %lld ms",
                    (long long)(cl_now_ms() - stop_start), (long long)(cl_now_ms() - drain_start));
    }
    /* After the last request and handler: their spans are queued by now. */
    cl_otlp_stop(OTLP_FLUSH_MS);
    if (rc == EXIT_SUCCESS) {
        cl_log_info("host", "stopped");
    }
    return rc;
}

/* "shipping:12" -> the local module and the dead letter's id; NULL after a message. */
static host_module *dead_letter_ref(host *h, const char *ref, int64_t *id)
{
    const char *colon = strchr(ref, ':');
    char *end = NULL;

    if (colon != NULL) {
        *id = strtoll(colon + 1, &end, 10);
    }
    if (colon == NULL || end == colon + 1 || *end != '\0' || *id <= 0) {
        fprintf(stderr, "cleave: dlq: '%s' is not MODULE:ID (see 'cleave dlq list')\n", ref);
        return NULL;
    }
    for (int i = 0; i < h->nmodules; i++) {
        const char *name = h->modules[i].binding->api->name;
        if (strlen(name) == (size_t)(colon - ref) && strncmp(name, ref, strlen(name)) == 0 &&
            h->modules[i].db != NULL) {
            return &h->modules[i];
        }
    }
    fprintf(stderr, "cleave: dlq: no local module named in '%s'\n", ref);
    return NULL;
}

static int cmd_dlq(const char *config, int argc, char **argv)
{
    host h;
    cl_error err = {0};
    host_module *m;
    int64_t id = 0;
    int rc = EXIT_FAILURE;
    bool list = argc == 1 && strcmp(argv[0], "list") == 0;

    if (!list && !(argc == 2 && (strcmp(argv[0], "replay") == 0 || strcmp(argv[0], "drop") == 0))) {
        fprintf(stderr, "cleave: dlq: usage: dlq list | replay MODULE:ID | drop MODULE:ID\n");
        return EXIT_USAGE;
    }
    /* Replaying runs the module's handler: the modules are initialised (not the bus). */
    if (host_open(&h, config, &err) != CL_OK || host_check_migrations(&h, &err) != CL_OK ||
        (!list && host_start_modules(&h, &err) != CL_OK)) {
        rc = fail("dlq", &err);
        goto out;
    }
    if (list) {
        rc = EXIT_SUCCESS;
        for (int i = 0; i < h.nmodules; i++) {
            cl_dead_letter_list dl = {0};
            if (h.modules[i].db == NULL) {
                continue;
            }
            if (cl_bus_dlq_list(h.modules[i].db, &dl, &err) != CL_OK) {
                rc = fail("dlq list", &err);
                continue;
            }
            for (size_t j = 0; j < dl.items.n; j++) {
                const cl_dead_letter *d = &dl.items.v[j];
                printf("%s:%lld  %s  %s  key=%s  from=%s  attempts=%lld  failed_at=%s  %s\n",
                       h.modules[i].binding->api->name, (long long)d->id, d->message_id, d->type,
                       d->key, d->source, (long long)d->attempts, d->failed_at, d->last_error);
            }
            cl_schema_free(&cl_dead_letter_list_type, &dl);
        }
        goto out;
    }
    m = dead_letter_ref(&h, argv[1], &id);
    if (m == NULL) {
        goto out;
    }
    if (strcmp(argv[0], "replay") == 0) {
        if (cl_bus_dlq_replay(h.bus, m->binding->api->name, id, &err) != CL_OK) {
            rc = fail("dlq replay", &err);
            goto out;
        }
        printf("%s: delivered again\n", argv[1]);
    } else {
        if (cl_bus_dlq_drop(m->db, id, &err) != CL_OK) {
            rc = fail("dlq drop", &err);
            goto out;
        }
        printf("%s: dropped\n", argv[1]);
    }
    rc = EXIT_SUCCESS;
out:
    host_close(&h);
    return rc;
}

static int cmd_bus(const char *config, int argc, char **argv)
{
    host h;
    cl_error err = {0};
    int rc = EXIT_SUCCESS;

    if (argc != 1 || strcmp(argv[0], "stats") != 0) {
        fprintf(stderr, "cleave: bus: usage: bus stats\n");
        return EXIT_USAGE;
    }
    if (host_open(&h, config, &err) != CL_OK || host_check_migrations(&h, &err) != CL_OK) {
        rc = fail("bus", &err);
        goto out;
    }
    printf("transport: %s\n", cl_bus_transport(h.bus));
    for (int i = 0; i < h.nmodules; i++) {
        cl_bus_db_counts c;
        if (h.modules[i].db == NULL) {
            continue;
        }
        if (cl_bus_db_count(h.modules[i].db, &c, &err) != CL_OK) {
            rc = fail("bus stats", &err);
            continue;
        }
        printf("%-12s outbox_backlog=%lld dead_letters=%lld operations_open=%lld\n",
               h.modules[i].binding->api->name, (long long)c.outbox_backlog,
               (long long)c.dead_letters, (long long)c.operations_open);
    }
out:
    host_close(&h);
    return rc;
}

int cleave_main(int argc, char **argv)
{
    const char *config = NULL;
    const char *cmd;
    int i = 1;

    host_memory_policy();
    while (i < argc && strncmp(argv[i], "--", 2) == 0) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config = argv[i + 1];
            i += 2;
        } else if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return EXIT_SUCCESS;
        } else {
            fprintf(stderr, "cleave: unknown option %s\n", argv[i]);
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    cmd = argv[i++];
    if (strcmp(cmd, "serve") == 0) {
        return cmd_serve(config, argc - i);
    }
    if (strcmp(cmd, "migrate") == 0) {
        return cmd_migrate(config, argc - i, argv + i);
    }
    if (strcmp(cmd, "seed") == 0) {
        return cmd_seed(config, argc - i, argv + i);
    }
    if (strcmp(cmd, "modules") == 0) {
        return cmd_modules(config, argc - i, argv + i);
    }
    if (strcmp(cmd, "dlq") == 0) {
        return cmd_dlq(config, argc - i, argv + i);
    }
    if (strcmp(cmd, "bus") == 0) {
        return cmd_bus(config, argc - i, argv + i);
    }
    if (strcmp(cmd, "version") == 0) {
        return cmd_version();
    }
    if (strcmp(cmd, "advise") == 0) {
        return cleave_advise(argc - i, argv + i);
    }
    if (strcmp(cmd, "new") == 0) {
        return cleave_new(argc - i, argv + i);
    }
    if (strcmp(cmd, "payments") == 0) {
        return cmd_payments(config, argc - i, argv + i);
    }
    if (strcmp(cmd, "users") == 0) {
        return cmd_users(config, argc - i, argv + i);
    }
    if (strcmp(cmd, "clients") == 0) {
        return cmd_clients(config, argc - i, argv + i);
    }
    if (strcmp(cmd, "keys") == 0) {
        return cmd_keys(config, argc - i, argv + i);
    }
    fprintf(stderr, "cleave: unknown command '%s'\n", cmd);
    usage(stderr);
    return EXIT_USAGE;
}
