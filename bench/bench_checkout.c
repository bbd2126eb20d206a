/*
 * Checkout through the saga (issue #16): the monolith vs every module extracted (all-extracted:
 * the gateway only routes, each module is a service of its own, events cross NATS), vs
 * inventory + payments extracted, all on SQLite; the monolith and all-extracted again with
 * CLEAVE_SQLITE_EXCLUSIVE=1 (each process keeps its SQLite files to itself, ADR 0055); and
 * the monolith on SQLite vs on PostgreSQL.
 * For each: checkouts per second, the time from POST /api/v1/orders to the order's final
 * state (p50, p99) and the CPU seconds each checkout costs, summed over every process of the
 * topology (its cleave processes, its nats-server, the PostgreSQL server and its backends)
 * from /proc/<pid>/stat (utime + stime, and cutime + cstime for children that exited) read
 * before each measured round and after the work its checkouts caused is done: every
 * order's shipment booked, as the processes' /metrics count them (ADR 0066). The rate and
 * the latencies are the clients': up to the last answer of the round. The topologies are
 * started side by side and measured in interleaved rounds in one run, so machine noise hits
 * them alike; the ratios are the figures to read. PostgreSQL is a throwaway server (no replica,
 * fsync off as in the tests: its commits cost no flush) the benchmark starts and stops itself
 * (tests/postgres/pg-cluster.sh).
 *
 *   bench_checkout [checkouts per topology, default 2000] [client threads, default 4] [only]
 *
 * 2000 a topology, 250 a round: with 400, a round was 50 checkouts, some 50 ms of the
 * monolith, its threads' start and end a part of it, and the orders' WAL (some 23 frames a
 * checkout) met two checkpoints in a whole run, so p99 hardly saw the steady state's.
 *
 * With only, just the sides whose label starts with it run ("monolith, sqlite"): one
 * topology under load, for a profiler attached to its processes.
 *
 * With more than one client thread, a second pass follows: a quarter as many checkouts with
 * one client thread. Several clients keep both cores busy (the client's among them), so each
 * checkout's time is mostly its wait for a core, and its p50 follows the CPU a checkout costs;
 * one client alone measures the path itself, each hop and write of it, nothing queued ahead.
 *
 * Each client thread places an order with "Prefer: wait=5" (RFC 7240), as a client that
 * wants the outcome does, then places the next once it is final (every order can confirm:
 * stock and funds are ample). The server answers the POST when the saga ended (201), so one
 * request per checkout is the rule. An order still pending in the answer (202: a wait that
 * ran out, or an older server that does not wait on a POST) is asked for with the same
 * preference until it is final; a server that does not wait at all is polled, 0.1 ms
 * apart. After a 202 the client cannot see the instant the order became final, only a
 * window: after the last answer that was still pending and no later than the answer that
 * was final. The latency reported is the end of the request that said final (what a client
 * waits); the mean window width and the GETs per checkout are printed too, so that a
 * server that made the client ask again shows on the page. Every request is part of each
 * topology's load, and of its CPU per checkout, alike.
 *
 * The client threads share the two cores with the servers, so the client is the lean one of
 * http1.h, as wrk is for the HTTP benches: a kept connection, one send a request. With the
 * tests' libcurl client a checkout's two requests cost some 38 system calls and 0.23 ms of
 * the client's CPU, about a fifth of what the monolith spent on the checkout itself.
 */
#include <ctype.h>
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "http1.h"
#include "shop.h"
#include "topology.h"

#define ROUNDS      8
#define MAX_THREADS 32
#define SKU         "SKU-000010"
#define NSIDES      6
#define MAX_PIDS    4096

typedef struct side {
    const char *name;  /* the topology */
    const char *label; /* as reported */
    int postgres;      /* on the throwaway PostgreSQL server, not SQLite files */
    int exclusive;     /* CLEAVE_SQLITE_EXCLUSIVE=1: each process keeps its files (ADR 0055) */
    topology topo;
    int64_t *lat_us; /* time to final state of every checkout (the window's end) */
    size_t n;
    int64_t busy_ns;     /* wall time of its rounds */
    int64_t window_us;   /* sum over its checkouts of the window the final state fell in */
    int64_t polls;       /* GETs of its orders, over all its checkouts */
    int64_t cpu_ticks;   /* CPU of its processes in its rounds and their work, clock ticks */
    int64_t settle_ns;   /* from its rounds' last answers until their work was done */
    int64_t confirmed;   /* its orders confirmed since it started (the warm-up's among them) */
    double ops_base;     /* operations its processes had finished before its first order */
    char last_order[80]; /* the id of its last order confirmed, or empty */
    int failed;
    int off; /* left out by the only argument */
} side;

/*
 * A round's client threads share one count of checkouts still to start (*left, under *mu):
 * each takes the next as soon as its last ended, so that all stay busy to the round's end.
 * With a fixed share each, those done first sat idle while the slowest finished its own,
 * and the round's wall time counted that tail with fewer clients than asked for.
 */
typedef struct job {
    side *s;
    int *left;
    pthread_mutex_t *mu;
} job;

/* One checkout as the client saw it. */
typedef struct outcome {
    int64_t us;        /* from the POST to the answer that said final */
    int64_t window_us; /* from the last answer that said pending to that one */
    int polls;
    int confirmed; /* the final state was confirmed (not rejected) */
    char id[80];   /* the order's */
} outcome;

/* The throwaway PostgreSQL server, stopped on every exit so that it never outlives us. */
static pgtest pg;
static int cluster_started;

static void stop_cluster(void)
{
    if (cluster_started) {
        cluster_started = 0;
        pgtest_cluster(&pg, "stop");
    }
}

/*
 * Starts the server and points topologies started from now on at it: topology.c takes its
 * database from the shared test fixture, which reads CL_TEST_DB and CL_TEST_PG_ENV.
 */
static int start_cluster(void)
{
    char script[512], out[4096], env_path[600];
    char *args[] = {"pg-cluster.sh", "start", pg.dir, "--no-replica", NULL};

    /* Not under a test directory: the server's user must be able to reach it. */
    snprintf(pg.dir, sizeof(pg.dir), "/tmp/cleave-bench-checkout-pg-%d", (int)getpid());
    snprintf(script, sizeof(script), "%s/tests/postgres/pg-cluster.sh", CLEAVE_SOURCE_DIR);
    if (test_run(script, args, NULL, out, sizeof(out)) != 0) {
        fprintf(stderr, "starting PostgreSQL failed:\n%s\n", out);
        return -1;
    }
    cluster_started = 1;
    snprintf(env_path, sizeof(env_path), "%s/env", pg.dir);
    setenv("CL_TEST_PG_ENV", env_path, 1);
    setenv("CL_TEST_DB", "postgres", 1);
    return 0;
}

/* The PostgreSQL server's process (postmaster.pid's first line), or 0. */
static pid_t postmaster_pid(void)
{
    char path[300], line[32] = "";
    long pid = 0;
    FILE *f;

    snprintf(path, sizeof(path), "%s/primary/postmaster.pid", pg.dir);
    f = fopen(path, "r");
    if (f != NULL) {
        if (fgets(line, sizeof(line), f) != NULL) {
            pid = strtol(line, NULL, 10);
        }
        fclose(f);
    }
    return pid > 0 ? (pid_t)pid : 0;
}

/* One process as /proc/<pid>/stat shows it. */
typedef struct proc_cpu {
    pid_t pid, ppid;
    int64_t ticks; /* utime + stime + cutime + cstime */
    int in;        /* one of the roots or a descendant of one */
} proc_cpu;

/* Reads /proc/<pid>/stat into *p; 0, or -1 when the process is gone. */
static int read_stat(pid_t pid, proc_cpu *p)
{
    char path[64], buf[1024];
    long long field[16] = {0};
    const char *rp;
    char *end;
    size_t n;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    if (f == NULL) {
        return -1;
    }
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /*
     * The command may hold spaces and parentheses: the fields start after the last ')',
     * with the state (1), then ppid (2) ... utime, stime, cutime, cstime (12-15).
     */
    rp = strrchr(buf, ')');
    if (rp == NULL || rp[1] != ' ' || rp[2] == '\0') {
        return -1;
    }
    rp += 3; /* past ") S" */
    for (int i = 2; i < 16; i++) {
        field[i] = strtoll(rp, &end, 10);
        if (end == rp) {
            return -1;
        }
        rp = end;
    }
    p->pid = pid;
    p->ppid = (pid_t)field[2];
    p->ticks = field[12] + field[13] + field[14] + field[15];
    p->in = 0;
    return 0;
}

/*
 * CPU clock ticks so far of the roots and every descendant of theirs (PostgreSQL's backends
 * are the postmaster's children). A child that exited is in its parent's cutime/cstime once
 * reaped, so the sum only grows.
 */
static int64_t tree_ticks(const pid_t *roots, int nroots)
{
    static proc_cpu all[MAX_PIDS];
    int n = 0, grew = 1;
    int64_t sum = 0;
    DIR *d = opendir("/proc");
    struct dirent *e;

    while (d != NULL && n < MAX_PIDS && (e = readdir(d)) != NULL) {
        if (isdigit((unsigned char)e->d_name[0]) &&
            read_stat((pid_t)strtol(e->d_name, NULL, 10), &all[n]) == 0) {
            for (int r = 0; r < nroots; r++) {
                all[n].in |= all[n].pid == roots[r];
            }
            n++;
        }
    }
    if (d != NULL) {
        closedir(d);
    }
    while (grew) {
        grew = 0;
        for (int i = 0; i < n; i++) {
            for (int k = 0; !all[i].in && k < n; k++) {
                if (all[k].in && all[i].ppid == all[k].pid) {
                    all[i].in = 1;
                    grew = 1;
                }
            }
        }
    }
    for (int i = 0; i < n; i++) {
        sum += all[i].in ? all[i].ticks : 0;
    }
    return sum;
}

/* The CPU so far of every process of s's topology, in clock ticks. */
static int64_t side_ticks(const side *s)
{
    pid_t roots[TOPOLOGY_MAX_PROCS + 2];
    int n = 0;

    for (int i = 0; i < s->topo.nprocs; i++) {
        roots[n++] = s->topo.procs[i].pid;
    }
    if (s->topo.nats.own.proc.pid > 0) {
        roots[n++] = s->topo.nats.own.proc.pid;
    }
    if (s->postgres) {
        roots[n] = postmaster_pid();
        n += roots[n] > 0;
    }
    return tree_ticks(roots, n);
}

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/*
 * The client's own headers: the seeded admin's token, as test_http sends it. The orders are
 * placed and read with the lean client (http1.h), which leaves the shared cores to the server.
 */
static void client_headers(const side *s, const char *extra, char *out, size_t size)
{
    snprintf(out, size, "Authorization: Bearer %s\r\n%s", s->topo.token, extra);
}

/* The value of a string member of a JSON answer's body, into out; 0 or -1. */
static int body_string(const http1_answer *a, const char *name, char *out, size_t size)
{
    json_t *j = json_loadb(a->body, a->body_len, 0, NULL);
    const char *v = json_string_value(json_object_get(j, name));
    int ok = v != NULL && strlen(v) < size;

    if (ok) {
        memcpy(out, v, strlen(v) + 1);
    }
    json_decref(j);
    return ok ? 0 : -1;
}

/* Says why a request of a checkout failed, once per client thread. */
static int request_failed(http1_conn *c, const char *what, const http1_answer *a, int *said)
{
    if (!*said) {
        *said = 1;
        if (c->error[0] != '\0') {
            fprintf(stderr, "%s: %s\n", what, c->error);
        } else {
            fprintf(stderr, "%s: status %d: %.*s\n", what, a->status, (int)a->body_len, a->body);
        }
    }
    return -1;
}

/* One checkout to its final state into *out; 0, or -1 when a request failed. */
static int checkout(const side *s, http1_conn *c, int *said, outcome *out)
{
    static const char body[] =
        "{\"account_id\":\"bench\",\"lines\":[{\"sku\":\"" SKU "\",\"quantity\":1}]}";
    /* Between two polls: short next to the figures measured, so that the window stays narrow. */
    struct timespec pause = {0, 100000L};
    int64_t t0 = now_ns(), pending_at;
    char headers[4200], path[128], id[80];
    http1_answer a;

    client_headers(s, "Prefer: wait=5\r\n", headers, sizeof(headers));
    c->error[0] = '\0';
    out->polls = 0;
    out->window_us = 0;
    out->confirmed = 0;
    if (http1_request(c, "POST", "/api/v1/orders", headers, body, strlen(body), &a) != 0 ||
        (a.status != 201 && a.status != 202) || body_string(&a, "id", id, sizeof(id)) != 0) {
        return request_failed(c, "POST /api/v1/orders", &a, said);
    }
    pending_at = now_ns();
    memcpy(out->id, id, sizeof(out->id));
    if (a.status == 201) { /* final: the saga ended within the wait */
        char st[32];

        out->us = (pending_at - t0) / 1000;
        out->confirmed =
            body_string(&a, "status", st, sizeof(st)) == 0 && strcmp(st, "confirmed") == 0;
        return 0;
    }
    snprintf(path, sizeof(path), "/api/v1/orders/%s", id);
    for (;;) {
        char st[32];
        int64_t t;

        out->polls++;
        if (http1_request(c, "GET", path, headers, NULL, 0, &a) != 0 || a.status != 200 ||
            body_string(&a, "status", st, sizeof(st)) != 0) {
            return request_failed(c, "GET /api/v1/orders/{id}", &a, said);
        }
        t = now_ns();
        if (strcmp(st, "confirmed") == 0 || strcmp(st, "rejected") == 0) {
            out->us = (t - t0) / 1000;
            out->confirmed = strcmp(st, "confirmed") == 0;
            out->window_us = (t - pending_at) / 1000;
            return 0;
        }
        pending_at = t;
        nanosleep(&pause, NULL);
    }
}

static void *client(void *arg)
{
    job *j = arg;
    http1_conn *c = malloc(sizeof(*c));
    int said = 0;

    if (c == NULL || http1_init(c, j->s->topo.base_url) != 0) {
        fprintf(stderr, "client: %s\n", c != NULL ? c->error : "out of memory");
        /* A failure of its own; the other threads take the checkouts it would have. */
        pthread_mutex_lock(j->mu);
        j->s->failed++;
        pthread_mutex_unlock(j->mu);
        free(c);
        return NULL;
    }
    for (;;) {
        outcome o;
        int rc;

        pthread_mutex_lock(j->mu);
        if (*j->left == 0) {
            pthread_mutex_unlock(j->mu);
            break;
        }
        (*j->left)--;
        pthread_mutex_unlock(j->mu);
        rc = checkout(j->s, c, &said, &o);
        pthread_mutex_lock(j->mu);
        if (rc != 0) {
            j->s->failed++;
        } else {
            j->s->lat_us[j->s->n++] = o.us;
            j->s->window_us += o.window_us;
            j->s->polls += o.polls;
            j->s->confirmed += o.confirmed;
            if (o.confirmed) {
                memcpy(j->s->last_order, o.id, sizeof(o.id));
            }
        }
        pthread_mutex_unlock(j->mu);
    }
    http1_close(c);
    free(c);
    return NULL;
}

/*
 * The sums over every process of s's topology of the operations finished and of those still
 * open (pending or running). -1 when a process did not answer.
 */
static int side_work(const side *s, double *finished, double *open)
{
    char urls[TOPOLOGY_MAX_SERVICES + 1][64];
    int n = 0;

    snprintf(urls[n++], sizeof(urls[0]), "%s", s->topo.base_url);
    for (int i = 0; i < s->topo.nservices; i++) {
        snprintf(urls[n++], sizeof(urls[0]), "http://127.0.0.1:%d", s->topo.service_ports[i]);
    }
    *finished = *open = 0;
    for (int i = 0; i < n; i++) {
        char *text = test_scrape(urls[i]);

        if (text == NULL) {
            return -1;
        }
        *finished += test_metrics_sum(text, "cleave_operations_finished_total", NULL);
        *open += test_metrics_sum(text, "cleave_operations_open", NULL);
        free(text);
    }
    return 0;
}

/* Whether the shipment of s's last confirmed order is booked: 1, 0, or -1 on an error. */
static int last_booked(const side *s, http1_conn *c)
{
    char headers[4200], path[160], what[240];
    http1_answer a;
    json_t *list;
    const char *st;
    int booked;
    int said = 0;

    client_headers(s, "", headers, sizeof(headers));
    snprintf(path, sizeof(path), "/api/v1/shipments?order=order:%s", s->last_order);
    c->error[0] = '\0';
    if (http1_request(c, "GET", path, headers, NULL, 0, &a) != 0 || a.status != 200) {
        snprintf(what, sizeof(what), "%s: GET %s", s->label, path);
        return request_failed(c, what, &a, &said);
    }
    list = json_loadb(a.body, a.body_len, 0, NULL);
    st = json_string_value(
        json_object_get(json_array_get(json_object_get(list, "items"), 0), "status"));
    booked = st != NULL && strcmp(st, "booked") == 0;
    json_decref(list);
    return booked;
}

/*
 * Waits until the work s's confirmed orders caused is done: each order's shipment booked by
 * its carrier operation. The answers to the clients come before it (an order is final once
 * confirmed), and the monolith confirms orders faster than its two runners book shipments
 * with a carrier of 1 ms, so a round left a backlog behind. Its CPU was then spent in the
 * next side's round: not counted for the side that caused it, and taken from the side
 * measured. Runners take the oldest first: it waits on the last order's shipment, a read,
 * then on the count in /metrics, which costs a process some 1.3 ms a scrape. The outbox's
 * marks of delivered events, which a lone relay writes within 100 ms (ADR 0053), are not
 * waited for. 0, or -1 after saying why (at most 60 s).
 */
static int settle(side *s)
{
    struct timespec pause = {0, 1000000L};
    int64_t until = now_ns() + 60 * 1000000000LL;
    double finished, open;
    http1_conn *c = NULL;
    int rc = 0;

    if (s->last_order[0] != '\0') {
        c = malloc(sizeof(*c));
        rc = c != NULL && http1_init(c, s->topo.base_url) == 0 ? 0 : -1;
        if (rc != 0) {
            fprintf(stderr, "%s: %s\n", s->label, c != NULL ? c->error : "out of memory");
        }
        while (rc == 0 && (rc = last_booked(s, c)) == 0 && now_ns() < until) {
            nanosleep(&pause, NULL);
        }
        rc = rc < 0 ? -1 : 0;
        if (c != NULL) {
            http1_close(c);
        }
        free(c);
    }
    while (rc == 0) {
        if (side_work(s, &finished, &open) != 0) {
            return -1;
        }
        if (open == 0 && finished - s->ops_base >= (double)s->confirmed) {
            return 0;
        }
        if (now_ns() > until) {
            fprintf(stderr, "%s: work still open after 60 s: %.0f open, %.0f of %lld operations\n",
                    s->label, open, finished - s->ops_base, (long long)s->confirmed);
            return -1;
        }
        nanosleep(&pause, NULL);
    }
    return rc;
}

static void run_round(side *s, int count, int threads)
{
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_t th[MAX_THREADS];
    job jobs[MAX_THREADS];
    int left = count;
    int64_t ticks0 = side_ticks(s);
    int64_t t0 = now_ns();
    int64_t answered;

    for (int i = 0; i < threads; i++) {
        jobs[i] = (job){s, &left, &mu};
        pthread_create(&th[i], NULL, client, &jobs[i]);
    }
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
    }
    answered = now_ns();
    s->busy_ns += answered - t0;
    if (settle(s) != 0) {
        s->failed++;
    }
    s->settle_ns += now_ns() - answered;
    s->cpu_ticks += side_ticks(s) - ticks0;
}

static int prepare(side *s)
{
    char *env[] = {"CLEAVE_SHIPPING_CARRIER_MS=1",
                   s->exclusive ? "CLEAVE_SQLITE_EXCLUSIVE=1" : NULL, NULL};
    const char *acc = "{\"id\":\"bench\",\"owner\":\"Bench\",\"currency\":\"EUR\"}";
    const char *dep = "{\"amount\":{\"amount\":100000000000,\"currency\":\"EUR\"}}";
    const char *stock = "{\"on_hand\":1000000}";
    test_resp r;
    double open;
    int ok;

    if (s->postgres && start_cluster() != 0) {
        return -1;
    }
    if (topology_start_every(&s->topo, s->name, TOPOLOGY_SEED_DEMO, NULL, env) != 0) {
        return -1;
    }
    ok = test_http(s->topo.base_url, "POST", "/api/v1/accounts", acc, strlen(acc), NULL, &r) == 0 &&
         r.status == 201;
    test_resp_free(&r);
    ok = ok &&
         test_http(s->topo.base_url, "POST", "/api/v1/accounts/bench/deposits", dep, strlen(dep),
                   NULL, &r) == 0 &&
         r.status == 200;
    test_resp_free(&r);
    ok = ok &&
         test_http(s->topo.base_url, "PUT", "/api/v1/inventory/" SKU, stock, strlen(stock), NULL,
                   &r) == 0 &&
         r.status == 200;
    test_resp_free(&r);
    /* The operations of the seed's events done: the count of the side's own starts here. */
    s->confirmed = 0;
    s->ops_base = 0;
    if (ok && settle(s) == 0 && side_work(s, &s->ops_base, &open) == 0) {
        return 0;
    }
    return -1;
}

/* The figures of one side, as compared below. */
typedef struct figures {
    double rate, p50, p99, cpu_ms; /* checkouts/s, ms, ms, CPU ms per checkout */
} figures;

static figures report(side *s)
{
    size_t mid = s->n > 0 ? (s->n - 1) / 2 : 0;
    size_t tail = s->n > 0 ? (size_t)((double)(s->n - 1) * 0.99) : 0;
    double n = s->n > 0 ? (double)s->n : 1;
    figures f;

    qsort(s->lat_us, s->n, sizeof(int64_t), cmp_i64);
    f.rate = s->busy_ns > 0 ? (double)s->n * 1e9 / (double)s->busy_ns : 0;
    f.p50 = s->n > 0 ? (double)s->lat_us[mid] / 1000.0 : 0;
    f.p99 = s->n > 0 ? (double)s->lat_us[tail] / 1000.0 : 0;
    f.cpu_ms = (double)s->cpu_ticks * 1000.0 / (double)sysconf(_SC_CLK_TCK) / n;
    printf("%-22s %7.1f checkouts/s  p50 %6.2f ms  p99 %7.2f ms  CPU %6.2f ms/checkout  "
           "(window %.2f ms, %.1f GETs; %zu done, %d failed; settled %.1f ms after a round)\n",
           s->label, f.rate, f.p50, f.p99, f.cpu_ms, (double)s->window_us / 1000.0 / n,
           (double)s->polls / n, s->n, s->failed, (double)s->settle_ns / 1e6 / ROUNDS);
    return f;
}

static void compare(const char *what, const figures *a, const figures *b)
{
    if (b->rate > 0 && a->p50 > 0 && a->p99 > 0 && a->cpu_ms > 0) {
        printf("%s: %.2fx the checkouts/s, %.2fx lower p50, %.2fx lower p99, %.2fx less CPU "
               "per checkout\n",
               what, a->rate / b->rate, b->p50 / a->p50, b->p99 / a->p99, b->cpu_ms / a->cpu_ms);
    }
}

/*
 * Runs total checkouts a side with threads clients, in ROUNDS interleaved rounds, from a
 * clean count, and prints each side's figures (into f) and the ratios between sides.
 */
static void measure(side *sides, int total, int threads, figures *f)
{
    for (int i = 0; i < NSIDES; i++) {
        sides[i].n = 0;
        sides[i].busy_ns = sides[i].window_us = sides[i].polls = sides[i].cpu_ticks = 0;
        sides[i].settle_ns = 0;
        sides[i].failed = 0;
    }
    for (int r = 0; r < ROUNDS; r++) {
        int count = total / ROUNDS + (r < total % ROUNDS ? 1 : 0);
        for (int i = 0; i < NSIDES; i++) {
            if (!sides[(r + i) % NSIDES].off) {
                run_round(&sides[(r + i) % NSIDES], count, threads);
            }
        }
    }
    for (int i = 0; i < NSIDES; i++) {
        f[i] = sides[i].off ? (figures){0} : report(&sides[i]);
    }
    compare("monolith vs all extracted", &f[0], &f[1]);
    compare("monolith vs inventory+payments extracted", &f[0], &f[2]);
    compare("monolith, sqlite vs postgres", &f[0], &f[5]);
    compare("exclusive files vs shared, monolith", &f[3], &f[0]);
    compare("exclusive files vs shared, all extracted", &f[4], &f[1]);
    compare("monolith vs all extracted, both exclusive", &f[3], &f[4]);
}

int main(int argc, char **argv)
{
    int total = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 2000;
    int threads = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 4;
    const char *only = argc > 3 ? argv[3] : "";
    /* The PostgreSQL side last: topologies started after it would be on PostgreSQL too. */
    side sides[NSIDES] = {
        {.name = "monolith", .label = "monolith, sqlite"},
        {.name = "all-extracted", .label = "all extracted, sqlite"},
        {.name = "inventory+payments-extracted", .label = "inv+pay extr., sqlite"},
        {.name = "monolith", .label = "excl. monolith, sqlite", .exclusive = 1},
        {.name = "all-extracted", .label = "excl. all extr., sqlite", .exclusive = 1},
        {.name = "monolith", .label = "monolith, postgres", .postgres = 1},
    };
    figures f[NSIDES];
    int rc = EXIT_SUCCESS;

    if (total < ROUNDS || threads < 1 || threads > MAX_THREADS) {
        fprintf(stderr, "usage: bench_checkout [checkouts >= %d] [threads 1-%d] [only]\n", ROUNDS,
                MAX_THREADS);
        return 2;
    }
    if (getenv("CL_TEST_DB") != NULL) {
        unsetenv("CL_TEST_DB"); /* the SQLite sides are on SQLite, whatever the caller's shell */
    }
    atexit(stop_cluster);
    for (int i = 0; i < NSIDES; i++) {
        sides[i].off = strncmp(sides[i].label, only, strlen(only)) != 0;
        sides[i].lat_us = calloc((size_t)total, sizeof(int64_t));
        if (sides[i].off) {
            continue;
        }
        if (sides[i].lat_us == NULL || prepare(&sides[i]) != 0) {
            fprintf(stderr, "could not start %s\n", sides[i].label);
            rc = EXIT_FAILURE;
            goto out;
        }
    }
    /* A warm-up checkout each, not measured (a failure is said, as in the rounds). */
    for (int i = 0; i < NSIDES; i++) {
        http1_conn *c = sides[i].off ? NULL : malloc(sizeof(*c));
        int said = 0;
        outcome o;

        if (c != NULL && http1_init(c, sides[i].topo.base_url) == 0) {
            if (checkout(&sides[i], c, &said, &o) == 0) {
                sides[i].confirmed += o.confirmed;
            }
            http1_close(c);
        } else if (c != NULL) {
            fprintf(stderr, "%s: %s\n", sides[i].label, c->error);
        }
        free(c);
    }
    printf("checkout to a final state, %d per topology, %d client threads, %d interleaved rounds\n",
           total, threads, ROUNDS);
    measure(sides, total, threads, f);
    /*
     * Then one client alone: with several, the cores are saturated and a checkout's time is
     * mostly its wait for them, which the CPU ratio above says already. One at a time shows
     * what a checkout's path itself costs, every hop of it, with nothing queued ahead.
     */
    if (threads > 1) {
        printf("one client thread, %d checkouts per topology, %d interleaved rounds: the path "
               "alone, no queueing\n",
               total / 4, ROUNDS);
        measure(sides, total / 4 > ROUNDS ? total / 4 : ROUNDS, 1, f);
    }
out:
    for (int i = 0; i < NSIDES; i++) {
        if (sides[i].topo.nprocs > 0) {
            topology_stop(&sides[i].topo);
        }
        free(sides[i].lat_us);
    }
    /* After the topologies: dropping the PostgreSQL side's database needs the server. */
    stop_cluster();
    test_http_thread_done();
    return rc;
}
