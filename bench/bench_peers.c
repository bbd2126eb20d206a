/*
 * Cleave's gateway against its peers (issue #16, TARGETS.md), the same bytes from each,
 * measured by wrk in interleaved rounds in one run so that machine noise hits all alike:
 *
 *   - Cleave: the seeded monolith on SQLite, as `make run` serves it plus 1% of traces
 *     sampled (metrics and the access log are always on): GET /healthz, and
 *     GET /api/v1/products/1 anonymous and with a valid token (verified, RBAC-checked);
 *   - a bare civetweb handler in this process answering the same bytes in one write, with
 *     the gateway's thread count, keep-alive and tcp_nodelay;
 *   - nginx (Debian's) serving the same bytes as static files;
 *   - Node.js + Fastify 5 + better-sqlite3 (bench/peers, installed by `make bench` into the
 *     build folder) reading the monolith's own catalog.db: what a team might pick instead.
 *
 * It checks first that every side answers each path with exactly Cleave's body, then
 * prints the medians per side, the server's CPU per request (the monolith's, this process's
 * for the bare handler, Node's; not nginx's worker processes), the ratios the targets name,
 * and the monolith's RSS idle and after the load. It never fails on timing.
 *
 *   bench_peers [seconds per round, default 3] [rounds, default 3]
 */
#include <civetweb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "proc.h"
#include "shop.h"
#include "topology.h"
#include "wrk.h"

#define NGINX_BIN      "/usr/sbin/nginx"
#define PRODUCT        "/api/v1/products/1"
#define HEALTHZ        "/healthz"
#define PEER_WAIT_S    60
#define GATEWAY_THREAD "64" /* CLEAVE_HTTP_THREADS' default (platform/config) */

/* The bytes the bare handler answers, whole responses (head and body). */
static char bare_healthz[512];
static size_t bare_healthz_len;
static char bare_product[4096];
static size_t bare_product_len;

/* A whole response for body, as the gateway frames it: length, type, keep-alive. */
static size_t frame(char *out, size_t size, const test_resp *r)
{
    int n = snprintf(out, size,
                     "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: keep-alive\r\n\r\n",
                     r->body_len);

    if (n < 0 || (size_t)n + r->body_len >= size) {
        return 0;
    }
    memcpy(out + n, r->body, r->body_len);
    return (size_t)n + r->body_len;
}

/*
 * CPU seconds so far of process pid, all its threads, or -1. CPU per request is the figure
 * that other work on a shared machine moves least: it is printed next to the rates.
 */
static double cpu_seconds(int pid)
{
    clockid_t clock;
    struct timespec ts;

    if (pid <= 0 || clock_getcpuclockid((pid_t)pid, &clock) != 0 ||
        clock_gettime(clock, &ts) != 0) {
        return -1;
    }
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int bare_handler(struct mg_connection *conn, void *arg)
{
    const char *which = arg;

    if (strcmp(which, HEALTHZ) == 0) {
        mg_write(conn, bare_healthz, bare_healthz_len);
    } else {
        mg_write(conn, bare_product, bare_product_len);
    }
    return 200;
}

static struct mg_context *bare_start(int port)
{
    char listen[32];
    const char *options[] = {"listening_ports",   listen, "num_threads", GATEWAY_THREAD,
                             "enable_keep_alive", "yes",  "tcp_nodelay", "1",
                             "decode_url",        "no",   NULL};
    struct mg_callbacks callbacks = {0};
    struct mg_context *ctx;

    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    ctx = mg_start(&callbacks, NULL, options);
    if (ctx != NULL) {
        mg_set_request_handler(ctx, HEALTHZ "$", bare_handler, (void *)HEALTHZ);
        mg_set_request_handler(ctx, PRODUCT "$", bare_handler, (void *)PRODUCT);
    }
    return ctx;
}

static int write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "w");
    int rc = -1;

    if (f != NULL) {
        rc = fwrite(data, 1, len, f) == len ? 0 : -1;
        rc |= fclose(f);
    }
    return rc;
}

/* nginx serving the two bodies from dir (made readable to its unprivileged workers). */
static int nginx_start(test_proc *p, const char *dir, int port, const test_resp *healthz,
                       const test_resp *product)
{
    char path[600], conf[2048], prefix[560], log[600], out[600];
    char *argv[] = {"nginx", "-p", prefix, "-c", path, "-e", log, NULL};

    snprintf(prefix, sizeof(prefix), "%s/", dir);
    snprintf(log, sizeof(log), "%s/nginx-error.log", dir);
    snprintf(conf, sizeof(conf),
             "daemon off;\nworker_processes auto;\npid %s/nginx.pid;\nerror_log %s;\n"
             "events { worker_connections 512; }\n"
             "http {\n  access_log %s/nginx-access.log;\n  default_type application/json;\n"
             "  server {\n    listen 127.0.0.1:%d;\n"
             "    location = " HEALTHZ " { alias %s/healthz.json; }\n"
             "    location = " PRODUCT " { alias %s/product.json; }\n  }\n}\n",
             dir, log, dir, port, dir, dir);
    snprintf(path, sizeof(path), "%s/healthz.json", dir);
    if (write_file(path, healthz->body, healthz->body_len) != 0) {
        return -1;
    }
    snprintf(path, sizeof(path), "%s/product.json", dir);
    if (write_file(path, product->body, product->body_len) != 0) {
        return -1;
    }
    snprintf(path, sizeof(path), "%s/nginx.conf", dir);
    if (write_file(path, conf, strlen(conf)) != 0 || chmod(dir, 0755) != 0) {
        return -1;
    }
    snprintf(out, sizeof(out), "%s/nginx.out", dir);
    return test_proc_start(p, NGINX_BIN, argv, NULL, out);
}

/* The Fastify peer on the monolith's catalog.db. */
static int fastify_start(test_proc *p, const topology *t, int port, const char *dir)
{
    static char node_path[600];
    char db[600], port_s[16], log[600];
    char script[] = CLEAVE_SOURCE_DIR "/bench/peers/catalog-fastify.js";
    char *argv[] = {"node", script, db, port_s, NULL};
    char *env[] = {node_path, NULL};
    struct stat st;

    snprintf(node_path, sizeof(node_path), "NODE_PATH=%s/node_modules", CLEAVE_BENCH_PEERS_DIR);
    if (stat(CLEAVE_BENCH_PEERS_DIR "/node_modules/fastify", &st) != 0) {
        fprintf(stderr, "the Node.js peer is not installed in " CLEAVE_BENCH_PEERS_DIR
                        " (`make bench` installs it)\n");
        return -1;
    }
    snprintf(db, sizeof(db), "%s/data/catalog.db", t->dir);
    snprintf(port_s, sizeof(port_s), "%d", port);
    snprintf(log, sizeof(log), "%s/fastify.log", dir);
    return test_proc_start(p, CLEAVE_NODE_BIN, argv, env, log);
}

/* Waits until base answers path with exactly want's body; 0, or -1 saying what it got. */
static int same_body(const char *label, const char *base, const char *path, const test_resp *want)
{
    time_t deadline = time(NULL) + PEER_WAIT_S;
    test_resp r = {0};
    int rc = -1;

    while (time(NULL) < deadline) {
        test_resp_free(&r);
        memset(&r, 0, sizeof(r));
        if (test_http_as(base, NULL, "GET", path, NULL, &r) == 0) {
            break;
        }
        test_poll_pause();
    }
    if (r.status == 200 && r.body_len == want->body_len &&
        memcmp(r.body, want->body, r.body_len) == 0) {
        rc = 0;
    } else {
        fprintf(stderr, "%s answered GET %s with %ld and a different body:\n  %s\nnot\n  %s\n",
                label, path, r.status, r.body != NULL ? r.body : "(none)", want->body);
    }
    test_resp_free(&r);
    return rc;
}

enum {
    H_CLEAVE,
    H_BARE,
    H_NGINX,
    H_FASTIFY,
    P_CLEAVE,
    P_TOKEN,
    P_BARE,
    P_NGINX,
    P_FASTIFY,
    NSIDES
};

int main(int argc, char **argv)
{
    int seconds = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 3;
    int rounds = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 3;
    char *gateway_env[] = {"CLEAVE_TRACE_SAMPLE=0.01", WRK_SERVER_SLOTS, NULL};
    char urls[NSIDES][256], bearer[4200], dir[256] = "", bases[3][64];
    wrk_side s[NSIDES] = {
        [H_CLEAVE] = {.label = "healthz  cleave"},
        [H_BARE] = {.label = "healthz  bare civetweb"},
        [H_NGINX] = {.label = "healthz  nginx static"},
        [H_FASTIFY] = {.label = "healthz  node+fastify"},
        [P_CLEAVE] = {.label = "product  cleave anonymous"},
        [P_TOKEN] = {.label = "product  cleave with token"},
        [P_BARE] = {.label = "product  bare civetweb"},
        [P_NGINX] = {.label = "product  nginx static"},
        [P_FASTIFY] = {.label = "product  node+fastify+sqlite"},
    };
    wrk_figures f[NSIDES];
    /* Whose CPU serves each side: nginx's workers are processes of their own, not counted. */
    int cpu_pid[NSIDES] = {0};
    double cpu_s[NSIDES] = {0}, requests[NSIDES] = {0}, us[NSIDES];
    topology t = {0};
    test_resp healthz = {0}, product = {0};
    test_proc nginx = {0}, fastify = {0};
    struct mg_context *bare = NULL;
    test_rss rss_idle, rss_loaded;
    int ports[3], pid;
    int rc = EXIT_FAILURE;

    if (seconds < 1 || seconds > 60 || rounds < 1 || rounds > WRK_MAX_ROUNDS) {
        fprintf(stderr, "usage: bench_peers [seconds 1-60] [rounds 1-%d]\n", WRK_MAX_ROUNDS);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (getenv("CL_TEST_DB") != NULL) {
        unsetenv("CL_TEST_DB"); /* the monolith on SQLite, whatever the caller's shell */
    }
    if (topology_start_with(&t, "monolith", TOPOLOGY_SEED_DEMO, gateway_env) != 0 ||
        t.token[0] == '\0') {
        fprintf(stderr, "could not start the seeded monolith\n");
        goto out;
    }
    pid = t.procs[t.gateway_slot].pid;
    if (test_http_as(t.base_url, NULL, "GET", HEALTHZ, NULL, &healthz) != 0 ||
        healthz.status != 200 ||
        test_http_as(t.base_url, NULL, "GET", PRODUCT, NULL, &product) != 0 ||
        product.status != 200) {
        fprintf(stderr, "the monolith did not answer " HEALTHZ " and " PRODUCT "\n");
        goto out;
    }
    bare_healthz_len = frame(bare_healthz, sizeof(bare_healthz), &healthz);
    bare_product_len = frame(bare_product, sizeof(bare_product), &product);
    for (int i = 0; i < 3; i++) {
        ports[i] = test_free_port();
        snprintf(bases[i], sizeof(bases[i]), "http://127.0.0.1:%d", ports[i]);
    }
    if (bare_healthz_len == 0 || bare_product_len == 0 || test_tmpdir(dir, sizeof(dir)) != 0 ||
        (bare = bare_start(ports[0])) == NULL ||
        nginx_start(&nginx, dir, ports[1], &healthz, &product) != 0 ||
        fastify_start(&fastify, &t, ports[2], dir) != 0) {
        fprintf(stderr, "could not start the peers\n");
        goto out;
    }
    /* Every side must answer with Cleave's bytes, or the figures compare different work. */
    for (int i = 0; i < 3; i++) {
        const char *label[] = {"the bare handler", "nginx", "the Fastify peer"};

        if (same_body(label[i], bases[i], HEALTHZ, &healthz) != 0 ||
            same_body(label[i], bases[i], PRODUCT, &product) != 0) {
            goto out;
        }
    }
    rss_idle = test_proc_rss(pid);
    snprintf(urls[H_CLEAVE], sizeof(urls[0]), "%s" HEALTHZ, t.base_url);
    snprintf(urls[P_CLEAVE], sizeof(urls[0]), "%s" PRODUCT, t.base_url);
    snprintf(urls[P_TOKEN], sizeof(urls[0]), "%s" PRODUCT, t.base_url);
    for (int i = 0; i < 3; i++) {
        snprintf(urls[H_BARE + i], sizeof(urls[0]), "%s" HEALTHZ, bases[i]);
        snprintf(urls[P_BARE + i], sizeof(urls[0]), "%s" PRODUCT, bases[i]);
    }
    snprintf(bearer, sizeof(bearer), "Authorization: Bearer %s", t.token);
    s[P_TOKEN].header = bearer;
    for (int k = 0; k < NSIDES; k++) {
        s[k].url = urls[k];
    }
    printf("the same bytes from each, wrk -t2 -c32, %d interleaved rounds of %d s\n", rounds,
           seconds);
    cpu_pid[H_CLEAVE] = cpu_pid[P_CLEAVE] = cpu_pid[P_TOKEN] = pid;
    cpu_pid[H_BARE] = cpu_pid[P_BARE] = (int)getpid(); /* wrk is a child: not counted */
    cpu_pid[H_FASTIFY] = cpu_pid[P_FASTIFY] = fastify.pid;
    for (int i = 0; i < rounds; i++) {
        for (int k = 0; k < NSIDES; k++) {
            int at = (i + k) % NSIDES;
            double before = cpu_seconds(cpu_pid[at]);
            double after;

            if (wrk_round(&s[at], seconds) != 0) {
                goto out;
            }
            after = cpu_seconds(cpu_pid[at]);
            if (before >= 0 && after >= before) {
                cpu_s[at] += after - before;
                requests[at] += s[at].rps[s[at].n - 1] * seconds;
            }
        }
    }
    rss_loaded = test_proc_rss(pid);
    for (int k = 0; k < NSIDES; k++) {
        f[k] = wrk_medians(&s[k]);
        us[k] = requests[k] > 0 ? cpu_s[k] * 1e6 / requests[k] : 0;
        printf("%-30s %9.0f req/s   p50 %7.3f ms   p99 %7.3f ms", s[k].label, f[k].rps, f[k].p50_ms,
               f[k].p99_ms);
        if (us[k] > 0) {
            printf("   server CPU %6.1f us/req", us[k]);
        }
        printf("\n");
    }
    if (us[H_CLEAVE] > 0 && us[P_TOKEN] > 0) {
        printf("server CPU per request, bare civetweb / cleave: healthz %.2fx, product with token "
               "%.2fx\n",
               us[H_BARE] / us[H_CLEAVE], us[P_BARE] / us[P_TOKEN]);
    }
    printf("healthz: cleave / bare civetweb            %.2fx throughput   (target >= 0.8)\n",
           f[H_CLEAVE].rps / f[H_BARE].rps);
    printf("product: cleave with token / bare civetweb %.2fx throughput   (target >= 0.6)\n",
           f[P_TOKEN].rps / f[P_BARE].rps);
    printf("product: cleave anonymous / bare civetweb  %.2fx throughput\n",
           f[P_CLEAVE].rps / f[P_BARE].rps);
    printf("product: cleave with token / node+fastify  %.2fx throughput   (target >= 3)\n",
           f[P_TOKEN].rps / f[P_FASTIFY].rps);
    printf("product: node+fastify p99 / cleave p99     %.2fx              (target >= 5)\n",
           f[P_FASTIFY].p99_ms / f[P_TOKEN].p99_ms);
    /*
     * The ceiling for the two figures above: the same bytes from civetweb with no work at
     * all. Cleave serves through civetweb, so on a machine where even this is below a
     * target, the target is out of reach for any handler.
     */
    printf("product: bare civetweb / node+fastify      %.2fx throughput, %.2fx lower p99 "
           "(the ceiling of the two above)\n",
           f[P_BARE].rps / f[P_FASTIFY].rps, f[P_FASTIFY].p99_ms / f[P_BARE].p99_ms);
    printf("nginx static / bare civetweb: healthz %.2fx, product %.2fx throughput\n",
           f[H_NGINX].rps / f[H_BARE].rps, f[P_NGINX].rps / f[P_BARE].rps);
    printf("monolith RSS: %.1f MB idle, %.1f MB after the load   (target <= 10 MB idle)\n",
           rss_idle.total, rss_loaded.total);
    /* What the RSS is made of (ADR 0046): libraries' pages are most of what idles. */
    printf("  idle: %.1f MB anonymous + %.1f MB file pages, %d threads; after: %.1f + %.1f, %d\n",
           rss_idle.anon, rss_idle.file, rss_idle.threads, rss_loaded.anon, rss_loaded.file,
           rss_loaded.threads);
    rc = EXIT_SUCCESS;
out:
    if (fastify.pid > 0) {
        test_proc_stop(&fastify, SIGTERM);
    }
    if (nginx.pid > 0) {
        test_proc_stop(&nginx, SIGTERM);
    }
    if (bare != NULL) {
        mg_stop(bare);
    }
    if (dir[0] != '\0') {
        test_rmrf(dir);
    }
    test_resp_free(&healthz);
    test_resp_free(&product);
    if (t.nprocs > 0) {
        topology_stop(&t);
    }
    test_http_thread_done();
    return rc;
}
