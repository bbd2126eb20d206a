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
          "  migrate [--status] [--admin-url URL]\n"
          "                     apply pending migrations, or list them per module; on\n"
          "                     PostgreSQL first create roles and schemas as URL's admin\n"
          "  seed               create the demo data of every module that has none\n"
          "  modules [--graph]  list the modules, local or remote; --graph: dependencies\n"
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
        /* "Is it empty?" must be answered by the primary, not by a replica behind it. */
        ctx.read_primary = 1;
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
    if (host_open_with(&h, &(host_options){.config_file = config, .provision = true}, &err) !=
            CL_OK ||
        host_migrate(&h, false, &err) != CL_OK || host_start_modules(&h, &err) != CL_OK ||
        host_build_router(&h, &err) != CL_OK) {
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
    if (strcmp(cmd, "version") == 0) {
        return cmd_version();
    }
    fprintf(stderr, "cleave: unknown command '%s'\n", cmd);
    usage(stderr);
    return EXIT_USAGE;
}
