/*
 * server.c - wires the listener, the acceptor, the queue, the poller and
 * the pool, and takes them down in the order that loses no request that
 * has arrived.
 *
 * The stop in one paragraph: the workers are told first (between
 * requests they answer what has arrived and close, rather than wait or
 * park); then the acceptor (it takes the backlog and closes the
 * listeners) and the poller (it hands over parked connections with bytes
 * waiting and closes the idle ones). Each says it is done producing to
 * the queue, which then closes by itself; the workers drain it and exit.
 * Waiting for that is the drain, bounded by the drain timeout; past it,
 * or at a second signal, the queue is closed at once (pushes still
 * waiting fail, and their sockets are closed) and the pool cuts every
 * connection it holds.
 */
#include "server.h"
#include "acceptor.h"
#include "answers.h"
#include "app_conn.h"
#include "conn.h"
#include "echo_conn.h"
#include "frame.h"
#include "log.h"
#include "metrics.h"
#include "monotime.h"
#include "net.h"
#include "poller.h"
#include "pool.h"
#include "queue.h"
#include "snapshot.h"
#include "swap.h"
#include "tls.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct server {
    struct swap answers;          /* struct answers: what search answers (aligned stripes: first) */
    struct server_config cfg;
    struct queue queue;
    struct conn_ledger ledger;    /* every connection: how many, how they ended, buffers */
    struct pool pool;
    struct worker_rules rules;    /* what every worker shares */
    struct acceptor acceptor; /* owns the listening sockets */
    struct poller *poller;    /* NULL with --no-park */
    struct metrics *metrics;  /* NULL without --metrics */
    struct tls_server *tls;   /* NULL without a TLS listener */
    bool tls_listener[NET_MAX_LISTENERS];
    struct app_conn_config app;   /* what the serve functions are given */
    struct echo_conn_config echo;
    struct net_unix_id unix_id;   /* the socket file we made, if any */
    long long started_ms;         /* for the uptime */
    int nlisten;
    atomic_bool draining;         /* a stop is announced: health checks say so */
    struct server_reloads {
        pthread_mutex_t lock;     /* the main thread writes, stats read */
        uint64_t done, failed;
        long long last_ok_s;      /* Unix time of the last good reload (or the start) */
        bool last_failed;
        char last_error[256];
    } reloads;
};

/* The CPUs this process may run on (taskset, a container's cpuset), not
 * those the machine has. */
static size_t usable_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return (size_t)CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (size_t)n : 1;
}

void server_config_defaults(struct server_config *cfg)
{
    *cfg = (struct server_config){
        .host = "127.0.0.1",
        .port = "65432",
        .workers = 16,
        .queue_capacity = 1024,
        .mode = SERVER_MODE_APP,
        .max_content = FRAME_DEFAULT_MAX_CONTENT,
        .idle_timeout_ms = 30000,
        .read_timeout_ms = 30000,
        .write_timeout_ms = 30000,
        .drain_timeout_ms = 10000,
        .unix_mode = 0660,
        .park = true,
        .linger_ms = SERVER_DEFAULT_LINGER_MS,
        .max_buffered = SERVER_DEFAULT_MAX_BUFFERED,
    };
}

void server_snapshot(struct server *s, struct snapshot *out)
{
    struct pool *p = &s->pool;
    struct poller_stats ps = {0};
    if (s->poller)
        poller_stats(s->poller, &ps);
    memset(out, 0, sizeof *out);
    out->uptime_s = (double)(monotime_ms() - s->started_ms) / 1000.0;
    out->accepted = atomic_load(&s->acceptor.accepted);
    long open = conn_ledger_open(&s->ledger);
    out->active = open > 0 ? (uint64_t)open : 0;
    for (int i = 0; i < CONN_END_COUNT; i++)
        out->ended[i] = conn_ledger_ended(&s->ledger, (enum conn_end)i);
    out->buffered = conn_ledger_held(&s->ledger);
    out->buffer_budget = s->ledger.budget;
    out->queued = queue_length(&s->queue);
    out->parked = ps.holding;
    out->workers = s->cfg.workers;
    out->busy = pool_busy(p);
    for (int k = 0; k < COUNTER_FIRST_ERROR; k++)
        out->answers[k] = pool_total(p, (enum counter)k);
    for (int e = 0; e < PROTO_ERR_COUNT; e++)
        out->errors[e] = pool_total(p, counter_of_error((enum proto_error)e));
    out->requests = pool_requests(p);
    out->bytes_in = pool_total(p, COUNTER_BYTES_IN);
    out->bytes_out = pool_total(p, COUNTER_BYTES_OUT);
    pool_latency(p, &out->latency);
    out->tls_handshakes = pool_total(p, COUNTER_TLS_HANDSHAKES);
    out->tls_resumed = pool_total(p, COUNTER_TLS_RESUMED);
    long waiting = atomic_load(&s->ledger.deferred);
    out->tls_waiting = waiting > 0 ? (uint64_t)waiting : 0;
    out->tls_waited = atomic_load(&s->ledger.deferred_total);
    for (int i = 0; i < COUNTER_TLS_FAILURES; i++)
        out->tls_failed[i] = pool_total(p, (enum counter)(COUNTER_TLS_FAILED_FIRST + i));
    /* A handshake that timed out ended its connection, and is counted there. */
    out->tls_failed[TLS_FAIL_TIMEOUT] += out->ended[CONN_END_HANDSHAKE_TIMEOUT];
    out->tls_not_after = s->tls ? tls_server_not_after(s->tls) : 0;
    int stripe;
    out->data_entries = answers_count(swap_read_begin(&s->answers, &stripe));
    swap_read_end(&s->answers, stripe);
    pthread_mutex_lock(&s->reloads.lock);
    out->reloads_done = s->reloads.done;
    out->reloads_failed = s->reloads.failed;
    out->reload_last_ok_s = s->reloads.last_ok_s;
    out->reload_last_failed = s->reloads.last_failed;
    pthread_mutex_unlock(&s->reloads.lock);
}

json_t *server_stats(struct server *s)
{
    struct snapshot snap;
    server_snapshot(s, &snap);
    return snapshot_to_json(&snap);
}

static void snapshot_of(void *arg, struct snapshot *out)
{
    server_snapshot(arg, out);
}

static bool draining_of(void *arg)
{
    struct server *s = arg;
    return atomic_load(&s->draining);
}

static json_t *stats_of(void *arg)
{
    return server_stats(arg);
}

static void close_listeners(const int *fds, int n)
{
    for (int i = 0; i < n; i++)
        close(fds[i]);
}

/* The plain listeners (unless TLS only), then the TLS ones on the same
 * host. SOMAXCONN: the kernel's backlog absorbs bursts while the queue
 * is full. */
static int open_own_listeners(struct server *s, const struct net_endpoint *ep, int *fds,
                              char *err, size_t errlen)
{
    const struct server_config *cfg = &s->cfg;
    int n = 0;
    if (!(cfg->tls_port && cfg->tls_only) &&
        (n = net_listen_endpoint(ep, SOMAXCONN, fds, NET_MAX_LISTENERS, err, errlen)) < 0)
        return -1;
    if (!cfg->tls_port)
        return n;
    struct net_endpoint tls_ep = {.host = cfg->host, .port = cfg->tls_port,
                                  .reuseport = cfg->reuseport};
    int k = net_listen_endpoint(&tls_ep, SOMAXCONN, fds + n, NET_MAX_LISTENERS - n, err, errlen);
    if (k < 0) {
        close_listeners(fds, n);
        return -1;
    }
    for (int i = n; i < n + k; i++)
        s->tls_listener[i] = true;
    return n + k;
}

/* Listens on the configured address; returns how many listeners, or -1. */
static int open_listeners(struct server *s, int *fds, char *err, size_t errlen)
{
    const struct server_config *cfg = &s->cfg;
    struct net_endpoint ep = {.host = cfg->host, .port = cfg->port, .unix_path = cfg->unix_path,
                              .unix_mode = cfg->unix_mode, .reuseport = cfg->reuseport};
    int n = cfg->ninherited;
    if (n > NET_MAX_LISTENERS) {
        snprintf(err, errlen, "%d listening sockets handed over; at most %d", n,
                 NET_MAX_LISTENERS);
        return -1;
    }
    if (n > 0) {
        memcpy(fds, cfg->inherited, (size_t)n * sizeof *fds);
        for (int i = 0; i < n; i++)
            s->tls_listener[i] = cfg->inherited_tls && cfg->inherited_tls[i];
        s->cfg.unix_path = NULL; /* the socket file is not ours to remove */
    } else {
        n = open_own_listeners(s, &ep, fds, err, errlen);
    }
    if (n < 0)
        return -1;
    if (s->cfg.unix_path)
        net_unix_identify(s->cfg.unix_path, &s->unix_id);
    /* Accepted sockets inherit these from the listener (Linux), which
     * saves system calls per connection. TCP_NODELAY: our messages go out
     * whole in one writev, so Nagle's coalescing would only add latency;
     * it changes when bytes leave, never what a call returns. The unsent
     * limit bounds what a client that does not read can make the kernel
     * keep for it (a send says EAGAIN sooner); every write of ours takes
     * EAGAIN as "wait for room" (worker.h), so nothing is surprised. (A
     * Unix socket has neither: the calls fail, harmlessly.) */
    for (int i = 0; i < n; i++) {
        net_set_nodelay(fds[i]);
        net_set_unsent_limit(fds[i], SERVER_UNSENT_LIMIT);
    }
    return n;
}

static void remove_socket_file(struct server *s)
{
    if (s->cfg.unix_path)
        net_unix_unlink_if_ours(s->cfg.unix_path, &s->unix_id);
}

bool server_config_wants_tls(const struct server_config *cfg)
{
    for (int i = 0; cfg->inherited_tls && i < cfg->ninherited; i++)
        if (cfg->inherited_tls[i])
            return true;
    return cfg->tls_port != NULL;
}

/* Starts everything but the listeners; on failure, undoes what it did. */
static int start_threads(struct server *s, int *fds, char *err, size_t errlen);

static void free_files(struct server *s)
{
    answers_free(swap_destroy(&s->answers));
    pthread_mutex_destroy(&s->reloads.lock);
    tls_server_free(s->tls);
}

/* The answers (--data, or the tutorial's) and the TLS files. */
static int load_files(struct server *s, char *err, size_t errlen)
{
    const struct server_config *cfg = &s->cfg;
    const struct answers *set = answers_builtin();
    if (cfg->data_file && !(set = answers_load(cfg->data_file, err, errlen)))
        return -1;
    if (swap_init(&s->answers, (void *)set) < 0 ||
        (errno = pthread_mutex_init(&s->reloads.lock, NULL)) != 0) {
        snprintf(err, errlen, "cannot create the server's locks: %s", strerror(errno));
        answers_free(set);
        return -1;
    }
    s->reloads.last_ok_s = (long long)time(NULL);
    if (server_config_wants_tls(cfg) && !(s->tls = tls_server_new(&cfg->tls, err, errlen))) {
        free_files(s);
        return -1;
    }
    return 0;
}

static void count_reload(struct server *s, const char *error)
{
    pthread_mutex_lock(&s->reloads.lock);
    s->reloads.last_failed = error != NULL;
    if (error) {
        s->reloads.failed++;
        snprintf(s->reloads.last_error, sizeof s->reloads.last_error, "%s", error);
    } else {
        s->reloads.done++;
        s->reloads.last_ok_s = (long long)time(NULL);
        s->reloads.last_error[0] = '\0';
    }
    pthread_mutex_unlock(&s->reloads.lock);
}

int server_reload(struct server *s, char *err, size_t errlen)
{
    struct answers *next = NULL;
    if (s->cfg.data_file && !(next = answers_load(s->cfg.data_file, err, errlen))) {
        count_reload(s, err);
        return -1;
    }
    /* The TLS files are checked before they are swapped in; the answers,
     * already checked, follow only if they were. */
    if (s->tls && tls_server_reload(s->tls, err, errlen) < 0) {
        answers_free(next);
        count_reload(s, err);
        return -1;
    }
    if (next)
        answers_free(swap_replace(&s->answers, next));
    count_reload(s, NULL);
    return 0;
}

void server_reload_status(struct server *s, uint64_t *done, uint64_t *failed, char *last,
                          size_t lastlen)
{
    pthread_mutex_lock(&s->reloads.lock);
    *done = s->reloads.done;
    *failed = s->reloads.failed;
    snprintf(last, lastlen, "%s", s->reloads.last_error);
    pthread_mutex_unlock(&s->reloads.lock);
}

struct server *server_start(const struct server_config *cfg, char *err, size_t errlen)
{
    struct server *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    int fds[NET_MAX_LISTENERS];
    s->cfg = *cfg;
    atomic_init(&s->draining, false);
    /* The files first: a bad one must stop the start before any port is
     * taken. */
    if (load_files(s, err, errlen) < 0) {
        free(s);
        return NULL;
    }
    s->nlisten = open_listeners(s, fds, err, errlen);
    if (s->nlisten < 0 || start_threads(s, fds, err, errlen) < 0) {
        free_files(s);
        free(s);
        return NULL;
    }
    /* Last: a scrape reads everything started before it. */
    if (cfg->metrics && !(s->metrics = metrics_start(cfg->metrics, snapshot_of, s, err, errlen))) {
        server_stop(s);
        return NULL;
    }
    return s;
}

static int start_threads(struct server *s, int *fds, char *err, size_t errlen)
{
    const struct server_config *cfg = &s->cfg;
    if (conn_ledger_init(&s->ledger, cfg->max_buffered) < 0) {
        snprintf(err, errlen, "cannot create the connection ledger: %s", strerror(errno));
        goto close_listeners;
    }
    if (queue_init(&s->queue, cfg->queue_capacity) < 0) {
        snprintf(err, errlen, "cannot create the connection queue: %s", strerror(errno));
        goto destroy_ledger;
    }
    /* With a poller a worker waits for nothing but the CPU (and a
     * linger, which a queued connection calls it back from), so a crowd
     * of connections needs no more of them running than the CPUs can
     * keep busy; without one, each waits for its client. */
    if (cfg->park)
        queue_limit_wakes(&s->queue, cfg->workers,
                          cfg->wake_cap ? cfg->wake_cap : SERVER_RUNNING_PER_CPU * usable_cpus());
    s->poller = NULL;
    if (cfg->park && !(s->poller = poller_start(&s->queue, &s->ledger))) {
        snprintf(err, errlen, "cannot start the poller: %s", strerror(errno));
        goto destroy_queue;
    }
    s->started_ms = monotime_ms();
    /* What the serve functions are given: only what each needs. */
    s->app = (struct app_conn_config){.max_content = cfg->max_content,
                                      .read_timeout_ms = cfg->read_timeout_ms,
                                      .write_timeout_ms = cfg->write_timeout_ms,
                                      .server = {.answers = &s->answers, .stats = stats_of,
                                                 .draining = draining_of, .arg = s}};
    s->echo = (struct echo_conn_config){.write_timeout_ms = cfg->write_timeout_ms};
    bool echo = cfg->mode == SERVER_MODE_ECHO;
    struct worker_rules *r = &s->rules;
    worker_rules_init(r);
    r->queue = &s->queue;
    r->poller = s->poller;
    r->idle_timeout_ms = cfg->idle_timeout_ms;
    r->handshake_timeout_ms = cfg->read_timeout_ms;
    r->linger_ms = s->poller ? cfg->linger_ms : 0;
    r->serve = echo ? echo_conn_serve : app_conn_serve;
    r->serve_arg = echo ? (void *)&s->echo : (void *)&s->app;
    if (pool_start(&s->pool, cfg->workers, r) < 0) {
        snprintf(err, errlen, "cannot start %zu workers: %s", cfg->workers, strerror(errno));
        goto stop_poller;
    }
    /* Inherited sockets outlive us: what waits in their backlog waits for
     * the next process, and is not taken at the stop. */
    if (acceptor_start(&s->acceptor, fds, s->tls_listener, s->nlisten, &s->queue,
                       cfg->ninherited == 0, s->tls, &s->ledger) < 0) {
        snprintf(err, errlen, "cannot start the acceptor: %s", strerror(errno));
        queue_close(&s->queue);
        pool_wait(&s->pool, NULL);
        pool_join(&s->pool);
        goto stop_poller;
    }
    return 0;
stop_poller:
    if (s->poller) {
        poller_stop(s->poller);
        poller_join(s->poller);
        poller_free(s->poller);
    }
destroy_queue:
    queue_destroy(&s->queue);
destroy_ledger:
    conn_ledger_destroy(&s->ledger);
close_listeners:
    close_listeners(fds, s->nlisten);
    remove_socket_file(s);
    return -1;
}

int server_address(const struct server *s, int i, char *out, size_t outlen)
{
    int fd = acceptor_listener(&s->acceptor, i);
    return fd >= 0 ? net_local_address(fd, out, outlen) : -1;
}

int server_port(const struct server *s)
{
    return net_local_port(acceptor_listener(&s->acceptor, 0));
}

bool server_listener_is_tls(const struct server *s, int i)
{
    return i >= 0 && i < s->nlisten && s->tls_listener[i];
}

int server_tls_port(const struct server *s)
{
    for (int i = 0; i < s->nlisten; i++)
        if (s->tls_listener[i])
            return net_local_port(acceptor_listener(&s->acceptor, i));
    return -1;
}

void server_announce_stop(struct server *s)
{
    atomic_store(&s->draining, true);
}

void server_cut(struct server *s)
{
    /* Pushes still waiting fail (their connections are closed unserved);
     * what is queued is popped and closed unserved; connections in
     * progress are shut down under their workers; parked ones closed. */
    queue_close(&s->queue);
    pool_force(&s->pool);
    if (s->poller)
        poller_cut(s->poller);
}

bool server_drain(struct server *s, struct server_summary *out)
{
    server_announce_stop(s);
    int drain_ms = s->cfg.drain_timeout_ms;
    struct timespec deadline = monotime_timespec_after(drain_ms);
    pool_quiesce(&s->pool);
    acceptor_stop(&s->acceptor);
    if (s->poller)
        poller_quiesce(s->poller);
    /* The drain: until every connection has ended, wherever it was. */
    if (!conn_ledger_wait_empty(&s->ledger, drain_ms > 0 ? &deadline : NULL)) {
        log_error("drain timeout (%g s) passed: cutting the connections still in progress",
                  drain_ms / 1000.0);
        server_cut(s);
        conn_ledger_wait_empty(&s->ledger, NULL);
    }
    /* Nothing is open: the poller, then the queue, then the workers end. */
    if (s->poller)
        poller_stop(s->poller);
    acceptor_join(&s->acceptor);
    if (s->poller)
        poller_join(s->poller);
    pool_wait(&s->pool, NULL);
    if (s->metrics) /* scrapes could watch the drain; now it is over */
        metrics_stop(s->metrics);
    s->metrics = NULL;
    remove_socket_file(s);
    struct server_summary sum = {
        .requests = pool_requests(&s->pool),
        .bytes = pool_total(&s->pool, COUNTER_BYTES_IN),
        .connections = atomic_load(&s->acceptor.accepted),
        .cut = conn_ledger_ended(&s->ledger, CONN_END_CUT),
    };
    sum.drained = sum.cut == 0;
    if (out)
        *out = sum;
    return sum.drained;
}

void server_free(struct server *s)
{
    pool_join(&s->pool);
    if (s->poller)
        poller_free(s->poller); /* no worker is left to park */
    queue_destroy(&s->queue);
    conn_ledger_destroy(&s->ledger);
    free_files(s);
    free(s);
}

int server_metrics_address(const struct server *s, char *out, size_t outlen)
{
    return s->metrics ? metrics_address(s->metrics, out, outlen) : -1;
}

struct poller *server_poller(struct server *s)
{
    return s->poller;
}

bool server_stop(struct server *s)
{
    bool drained = server_drain(s, NULL);
    server_free(s);
    return drained;
}
