/*
 * The cleave command line: serve, migrate, seed, modules, version.
 * Errors go to stderr with a message naming what is wrong, and a non-zero exit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleave/log.h"
#include "cleave/migrate.h"
#include "host.h"

#define EXIT_USAGE 2

static void usage(FILE *out)
{
    fprintf(out, "usage: %s [--config FILE] COMMAND [OPTIONS]\n", host_binary_name);
    fputs("\n"
          "commands:\n"
          "  serve              apply pending migrations, then serve until SIGINT/SIGTERM\n"
          "  migrate [--status] apply pending migrations, or list them per module\n"
          "  seed               create the demo data of every module that has none\n"
          "  modules [--graph]  list the modules, local or remote; --graph: dependencies\n"
          "  payments rebuild   drop the payments projections and replay them from events\n"
          "  dlq list | replay MODULE:ID | drop MODULE:ID\n"
          "                     dead letters of the bus: list, deliver again, delete\n"
          "  bus stats          outbox backlog and dead letters per local module\n"
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
    if (argc > 0) {
        fprintf(stderr, "cleave: modules: unknown option %s (try --graph)\n", argv[0]);
        return EXIT_USAGE;
    }
    if (host_open(&h, config, &err) != CL_OK) {
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
    host_close(&h);
    return EXIT_SUCCESS;
}

static int cmd_migrate(const char *config, int argc, char **argv)
{
    host h;
    cl_error err = {0};
    int status = 0;
    int rc = EXIT_FAILURE;

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--status") == 0) {
            status = 1;
        } else {
            fprintf(stderr, "cleave: migrate: unknown option %s\n", argv[i]);
            return EXIT_USAGE;
        }
    }
    if (host_open(&h, config, &err) != CL_OK) {
        rc = fail("migrate", &err);
        goto out;
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

        if (h.modules[i].db == NULL) {
            printf("%s: remote: run 'migrate --status' on its service\n", name);
            continue;
        }
        if (cl_migrate_status(h.modules[i].db, h.migrations_dir, name, info, 256, &n, &err) !=
            CL_OK) {
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

    for (int i = 0; i < argc; i++) {
        /* --if-empty is what seed always does; accepted so scripts can say so. */
        if (strcmp(argv[i], "--if-empty") != 0) {
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
    for (int i = 0; i < h.nmodules; i++) {
        const cl_module_api *api = h.modules[i].binding->api;
        cl_ctx ctx;
        int created = 0;

        cl_ctx_init(&ctx, 0);
        cl_strlcpy(ctx.principal, "service:seed", sizeof(ctx.principal));
        if (api->seed(h.modules[i].ops, &ctx, &created) != CL_OK) {
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
 * `payments rebuild`: calls the payments' rebuild_projections through its operations
 * table, local or remote alike. The host knows modules only by their operation lists,
 * so it finds the operation by name and prints the report the module returns.
 */
static int cmd_payments(const char *config, int argc, char **argv)
{
    const cl_op *op = NULL;
    const void *ops = NULL;
    cl_empty none = {0};
    cl_error err = {0};
    void *report = NULL;
    json_t *j = NULL;
    cl_ctx ctx;
    host h;
    int rc = EXIT_FAILURE;

    if (argc != 1 || strcmp(argv[0], "rebuild") != 0) {
        fprintf(stderr, "cleave: payments: the only subcommand is 'rebuild'\n");
        return EXIT_USAGE;
    }
    if (host_open(&h, config, &err) != CL_OK || host_check_migrations(&h, &err) != CL_OK ||
        host_start_modules(&h, &err) != CL_OK) {
        rc = fail("payments rebuild", &err);
        goto out;
    }
    for (int i = 0; i < h.nmodules; i++) {
        const cl_module_api *api = h.modules[i].binding->api;
        if (strcmp(api->name, "payments") == 0) {
            op = cl_op_find(api->ops, api->nops, "rebuild_projections");
            ops = h.modules[i].ops;
        }
    }
    if (op == NULL || op->req != &cl_empty_type) {
        fprintf(stderr, "cleave: payments rebuild: %s has no payments module\n", host_binary_name);
        goto out;
    }
    report = calloc(1, op->resp->size);
    if (report == NULL) {
        goto out;
    }
    cl_ctx_init(&ctx, 0);
    cl_strlcpy(ctx.principal, "service:cli", sizeof(ctx.principal));
    if (op->invoke(ops, &ctx, &none, report) != CL_OK) {
        rc = fail("payments rebuild", &ctx.err);
        goto out;
    }
    j = cl_schema_to_json(op->resp, report);
    printf("payments: replayed %lld events of %lld streams into %lld accounts and %lld "
           "payments; projections %s\n",
           (long long)json_integer_value(json_object_get(j, "events")),
           (long long)json_integer_value(json_object_get(j, "streams")),
           (long long)json_integer_value(json_object_get(j, "accounts")),
           (long long)json_integer_value(json_object_get(j, "payments")),
           json_is_true(json_object_get(j, "unchanged"))
               ? "unchanged"
               : "CHANGED (the old ones disagreed with the events and were repaired)");
    rc = EXIT_SUCCESS;
out:
    json_decref(j);
    if (report != NULL) {
        cl_schema_free(op->resp, report);
        free(report);
    }
    host_close(&h);
    return rc;
}

static int cmd_serve(const char *config, int argc)
{
    host h;
    cl_error err = {0};
    cl_http_options opt = {0};
    int rc = EXIT_FAILURE;
    int sig;

    if (argc > 0) {
        fprintf(stderr, "cleave: serve takes no arguments (configure with CLEAVE_*)\n");
        return EXIT_USAGE;
    }
    /* Before any thread exists, so that only cl_shutdown_wait sees the signals. */
    cl_shutdown_prepare();
    /* The process that owns a module's database migrates it (ADR 0007). */
    if (host_open(&h, config, &err) != CL_OK || host_migrate(&h, false, &err) != CL_OK) {
        rc = fail("serve", &err);
        goto out;
    }
    /* Only a serving process runs modules' background work (resuming sagas). */
    h.serving = true;
    if (host_start_modules(&h, &err) != CL_OK || host_build_router(&h, &err) != CL_OK ||
        host_start_bus(&h, &err) != CL_OK) {
        rc = fail("serve", &err);
        goto out;
    }
    opt.listen = cl_config_get(h.config, "CLEAVE_LISTEN");
    opt.threads = (int)cl_config_int(h.config, "CLEAVE_HTTP_THREADS", 8);
    opt.max_body = (size_t)cl_config_int(h.config, "CLEAVE_MAX_BODY_BYTES", 1 << 20);
    opt.request_timeout_ms = cl_config_int(h.config, "CLEAVE_REQUEST_TIMEOUT_MS", 10000);
    opt.service = host_binary_name;
    if (cl_http_start(&opt, h.router, &h.server, &err) != CL_OK) {
        rc = fail("serve", &err);
        goto out;
    }
    cl_log_with(CL_LOG_INFO, "host",
                json_pack("{s:s,s:i}", "listen", opt.listen, "port", cl_http_port(h.server)),
                "serving on port %d", cl_http_port(h.server));
    sig = cl_shutdown_wait();
    cl_log_info("host", "signal %d: finishing in-flight requests", sig);
    rc = EXIT_SUCCESS;
out:
    host_close(&h);
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
        int64_t backlog = 0, dead = 0;
        if (h.modules[i].db == NULL) {
            continue;
        }
        if (cl_bus_db_counts(h.modules[i].db, &backlog, &dead, &err) != CL_OK) {
            rc = fail("bus stats", &err);
            continue;
        }
        printf("%-12s outbox_backlog=%lld dead_letters=%lld\n", h.modules[i].binding->api->name,
               (long long)backlog, (long long)dead);
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
    if (strcmp(cmd, "payments") == 0) {
        return cmd_payments(config, argc - i, argv + i);
    }
    fprintf(stderr, "cleave: unknown command '%s'\n", cmd);
    usage(stderr);
    return EXIT_USAGE;
}
