/*
 * metrics.c - GET /metrics over libmicrohttpd (see metrics.h).
 *
 * Names follow Prometheus's conventions: an enchufe_ prefix, base units
 * (seconds, bytes), _total on counters, and labels for what varies (the
 * kind of an answer, the code of an error).
 *
 * libmicrohttpd does the HTTP; this file keeps its clients in check.
 * Its own timeout is an idle timeout, reset by every byte, so a client
 * sending a header a byte at a time would hold a connection for as long
 * as it drips, and a few dozen silent ones would fill a small connection
 * limit. So the daemon runs in our own thread (its epoll set polled from
 * here, MHD_run called when it is ready), which also keeps a deadline on
 * each connection: a whole request must arrive within REQUEST_DEADLINE_MS
 * of the connection's start or of its last answer, or the connection is
 * shut down; and when MAX_CONNECTIONS are open, a new one sheds the
 * oldest. Because everything, libmicrohttpd's callbacks included, runs on
 * that one thread, a connection's socket is never shut down after
 * libmicrohttpd has let it go.
 */
#include "metrics.h"
#include "heap.h"
#include "monotime.h"
#include "net.h"

#include <microhttpd.h>

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

/* Bounds on the scrape port, so that no client there can cost much. */
#define MAX_CONNECTIONS 1024
#define REQUEST_DEADLINE_MS 5000LL
#define CONNECTION_MEMORY 16384 /* a request's headers must fit in this */

struct metrics {
    struct MHD_Daemon *daemon;
    int fd;
    int wake_fd; /* eventfd: written to stop the thread */
    pthread_t thread;
    atomic_bool stopping;
    metrics_snapshot_fn fn;
    void *arg;
    struct heap deadlines; /* open connections, by deadline (the thread's own) */
};

/* One open connection on the metrics port (libmicrohttpd's socket context). */
struct scrape_conn {
    struct heap_node deadline;
    int fd;
};

static void family(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void one(FILE *f, const char *name, const char *type, const char *help, double v)
{
    family(f, name, type, help);
    fprintf(f, "%s %.17g\n", name, v);
}

static void write_histogram(FILE *f, const struct latency_sum *l)
{
    const char *name = "enchufe_request_duration_seconds";
    family(f, name, "histogram",
           "Service time of each answer, from the first byte of its request read to the last "
           "byte of the answer written.");
    uint64_t cumulative = 0;
    for (size_t i = 0; i < LATENCY_BOUNDS; i++) {
        cumulative += l->buckets[i];
        fprintf(f, "%s_bucket{le=\"%.9g\"} %llu\n", name, latency_bounds_s[i],
                (unsigned long long)cumulative);
    }
    fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)l->count);
    fprintf(f, "%s_sum %.9f\n%s_count %llu\n", name, (double)l->sum_ns / 1e9, name,
            (unsigned long long)l->count);
}

static void write_server(FILE *f, const struct snapshot *s)
{
    one(f, "enchufe_connections_accepted_total", "counter", "Connections accepted.",
        (double)s->accepted);
    one(f, "enchufe_connections_active", "gauge",
        "Connections open now: in a worker, queued, or parked.", (double)s->active);
    one(f, "enchufe_connections_queued", "gauge", "Connections waiting for a worker.",
        (double)s->queued);
    one(f, "enchufe_connections_parked", "gauge",
        "Connections waiting for their client in the poller (idle, or a request, handshake "
        "or answer in progress).", (double)s->parked);
    family(f, "enchufe_connections_closed_total", "counter",
           "Connections closed, by why they ended (normal, error, the four timeouts, shed, "
           "cut).");
    for (int i = 0; i < CONN_END_COUNT; i++)
        fprintf(f, "enchufe_connections_closed_total{reason=\"%s\"} %llu\n",
                conn_end_name((enum conn_end)i), (unsigned long long)s->ended[i]);
    one(f, "enchufe_buffered_bytes", "gauge",
        "Bytes of partial requests and unsent answers held by connections waiting for their "
        "client.", (double)s->buffered);
    one(f, "enchufe_buffered_bytes_limit", "gauge",
        "The most they may hold (--max-buffered; 0: no limit).", (double)s->buffer_budget);
    one(f, "enchufe_workers", "gauge", "Worker threads.", (double)s->workers);
    one(f, "enchufe_workers_busy", "gauge", "Workers holding a connection now.",
        (double)s->busy);
    family(f, "enchufe_requests_total", "counter", "Requests answered, by kind of answer.");
    for (int k = 0; k < COUNTER_FIRST_ERROR; k++)
        fprintf(f, "enchufe_requests_total{kind=\"%s\"} %llu\n",
                counter_kind_name((enum counter)k), (unsigned long long)s->answers[k]);
    family(f, "enchufe_errors_total", "counter", "Error answers, by protocol error code.");
    for (int e = 0; e < PROTO_ERR_COUNT; e++)
        fprintf(f, "enchufe_errors_total{code=\"%s\"} %llu\n",
                proto_error_code((enum proto_error)e), (unsigned long long)s->errors[e]);
    one(f, "enchufe_received_bytes_total", "counter", "Bytes read from clients.",
        (double)s->bytes_in);
    one(f, "enchufe_sent_bytes_total", "counter", "Bytes written to clients.",
        (double)s->bytes_out);
    write_histogram(f, &s->latency);
    one(f, "enchufe_tls_handshakes_total", "counter", "TLS handshakes completed.",
        (double)s->tls_handshakes);
    one(f, "enchufe_tls_resumed_total", "counter",
        "TLS handshakes that resumed a session (a ticket).", (double)s->tls_resumed);
    one(f, "enchufe_tls_handshakes_waiting", "gauge",
        "TLS handshakes waiting for room in --max-buffered to begin.", (double)s->tls_waiting);
    one(f, "enchufe_tls_handshakes_waited_total", "counter",
        "TLS handshakes that waited for room in --max-buffered to begin.", (double)s->tls_waited);
    family(f, "enchufe_tls_handshake_failures_total", "counter",
           "TLS handshakes that failed, by reason.");
    for (int i = 0; i < COUNTER_TLS_FAILURES; i++)
        fprintf(f, "enchufe_tls_handshake_failures_total{reason=\"%s\"} %llu\n",
                counter_tls_failure_name(i), (unsigned long long)s->tls_failed[i]);
    if (s->tls_not_after) /* only a TLS server has a certificate to expire */
        one(f, "enchufe_tls_certificate_not_after_seconds", "gauge",
            "When the certificate in use expires, in Unix seconds.", (double)s->tls_not_after);
    one(f, "enchufe_data_entries", "gauge", "Values the search action answers.",
        (double)s->data_entries);
    family(f, "enchufe_reloads_total", "counter", "Reloads (SIGHUP), by result.");
    fprintf(f, "enchufe_reloads_total{result=\"done\"} %llu\n",
            (unsigned long long)s->reloads_done);
    fprintf(f, "enchufe_reloads_total{result=\"failed\"} %llu\n",
            (unsigned long long)s->reloads_failed);
    one(f, "enchufe_reload_last_successful", "gauge",
        "Whether the last reload succeeded (1) or failed and changed nothing (0).",
        s->reload_last_failed ? 0.0 : 1.0);
    one(f, "enchufe_reload_last_success_timestamp_seconds", "gauge",
        "When the files in use were loaded, in Unix seconds.", (double)s->reload_last_ok_s);
}

/* --- process_* (the names every Prometheus client library uses) ------------ */

static long count_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    long n = 0;
    if (!d)
        return -1;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

/* Boot time (btime in /proc/stat), for the process's start time. */
static double boot_time(void)
{
    FILE *f = fopen("/proc/stat", "r");
    char line[256];
    double btime = 0;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "btime ", 6) == 0) {
            btime = strtod(line + 6, NULL);
            break;
        }
    if (f)
        fclose(f);
    return btime;
}

static void write_process(FILE *f)
{
    double ticks = (double)sysconf(_SC_CLK_TCK), page = (double)sysconf(_SC_PAGESIZE);
    char buf[1024];
    FILE *st = fopen("/proc/self/stat", "r");
    size_t n = st ? fread(buf, 1, sizeof buf - 1, st) : 0;
    if (st)
        fclose(st);
    buf[n] = '\0';
    /* Fields after the command name (which may hold anything), counted
     * from the state, the third field of proc(5): utime is the 14th,
     * stime the 15th, starttime the 22nd, vsize the 23rd, rss the 24th. */
    char *p = strrchr(buf, ')'), *save = NULL;
    unsigned long long field[25] = {0};
    int i = 3;
    for (char *tok = p ? strtok_r(p + 1, " ", &save) : NULL; tok && i < 25;
         tok = strtok_r(NULL, " ", &save), i++)
        field[i] = strtoull(tok, NULL, 10);
    double utime = (double)field[14], stime = (double)field[15], start = (double)field[22];
    double vsize = (double)field[23], rss = (double)field[24];
    struct rlimit rl = {0, 0};
    getrlimit(RLIMIT_NOFILE, &rl);
    one(f, "process_cpu_seconds_total", "counter", "User and system CPU time spent in seconds.",
        (utime + stime) / ticks);
    one(f, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
        rss * page);
    one(f, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
        vsize);
    one(f, "process_open_fds", "gauge", "Number of open file descriptors.",
        (double)count_open_fds());
    one(f, "process_max_fds", "gauge", "Maximum number of open file descriptors.",
        (double)rl.rlim_cur);
    one(f, "process_start_time_seconds", "gauge",
        "Start time of the process since unix epoch in seconds.",
        boot_time() + start / ticks);
}

void metrics_write(FILE *f, const struct snapshot *s)
{
    write_server(f, s);
    write_process(f);
}

/* --- connections and their deadlines (the metrics thread only) ------------ */

static struct scrape_conn *scrape_conn_of(struct heap_node *x)
{
    return (struct scrape_conn *)(void *)((char *)x - offsetof(struct scrape_conn, deadline));
}

/* Shuts a connection down: libmicrohttpd sees the end of it on its next
 * run and lets it go (on_connection, CLOSED). */
static void shut(struct metrics *m, struct scrape_conn *sc)
{
    heap_remove(&m->deadlines, &sc->deadline);
    shutdown(sc->fd, SHUT_RDWR);
}

static void on_connection(void *cls, struct MHD_Connection *c, void **context,
                          enum MHD_ConnectionNotificationCode what)
{
    struct metrics *m = cls;
    struct scrape_conn *sc = *context;
    if (what == MHD_CONNECTION_NOTIFY_CLOSED) {
        if (sc && heap_node_in(&sc->deadline))
            heap_remove(&m->deadlines, &sc->deadline);
        free(sc);
        *context = NULL;
        return;
    }
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!info || !(sc = calloc(1, sizeof *sc)))
        return; /* unwatched: libmicrohttpd's own timeout still applies */
    sc->fd = info->connect_fd;
    heap_node_init(&sc->deadline);
    if (m->deadlines.n >= MAX_CONNECTIONS) /* the oldest makes room */
        shut(m, scrape_conn_of(heap_min(&m->deadlines)));
    if (heap_push(&m->deadlines, &sc->deadline, monotime_ms() + REQUEST_DEADLINE_MS) < 0) {
        free(sc);
        return;
    }
    *context = sc;
}

/* A request is in: the connection's next one gets a deadline of its own. */
static void answered(struct metrics *m, struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct scrape_conn *sc = info ? info->socket_context : NULL;
    if (!sc || !heap_node_in(&sc->deadline))
        return;
    heap_remove(&m->deadlines, &sc->deadline);
    heap_push(&m->deadlines, &sc->deadline, monotime_ms() + REQUEST_DEADLINE_MS);
}

/* Shuts down what is past its deadline; returns ms until the next one. */
static long long enforce_deadlines(struct metrics *m)
{
    long long now = monotime_ms();
    struct heap_node *first;
    while ((first = heap_min(&m->deadlines)) && first->key <= now)
        shut(m, scrape_conn_of(first));
    return first ? first->key - now : -1;
}

/* The thread: waits for libmicrohttpd's sockets (its epoll set), a
 * deadline or a stop, and lets libmicrohttpd run. */
static void *metrics_main(void *arg)
{
    struct metrics *m = arg;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(m->daemon, MHD_DAEMON_INFO_EPOLL_FD);
    struct pollfd p[2] = {{.fd = info ? info->epoll_fd : -1, .events = POLLIN},
                          {.fd = m->wake_fd, .events = POLLIN}};
    while (!atomic_load(&m->stopping)) {
        long long wait = enforce_deadlines(m);
        MHD_UNSIGNED_LONG_LONG mhd_wait;
        if (MHD_get_timeout(m->daemon, &mhd_wait) == MHD_YES &&
            (wait < 0 || (long long)mhd_wait < wait))
            wait = (long long)mhd_wait;
        if (poll(p, 2, wait < 0 ? -1 : wait > 60000 ? 60000 : (int)wait) < 0 && errno != EINTR)
            break;
        MHD_run(m->daemon);
    }
    return NULL;
}

/* --- HTTP ------------------------------------------------------------------ */

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type,
                             char *body, size_t len, enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload, size_t *upload_size, void **state)
{
    (void)version;
    (void)upload;
    (void)state;
    struct metrics *m = cls;
    answered(m, c);
    static char not_found[] = "Not found: the metrics are at /metrics\n";
    static char not_allowed[] = "Method not allowed: GET /metrics\n";
    *upload_size = 0; /* a body, if any, is not read */
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", not_allowed,
                     sizeof not_allowed - 1, MHD_RESPMEM_PERSISTENT);
    if (strcmp(url, "/metrics") != 0)
        return reply(c, MHD_HTTP_NOT_FOUND, "text/plain", not_found, sizeof not_found - 1,
                     MHD_RESPMEM_PERSISTENT);
    struct snapshot snap;
    m->fn(m->arg, &snap);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return MHD_NO;
    metrics_write(f, &snap);
    fclose(f);
    return reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text, len,
                 MHD_RESPMEM_MUST_FREE);
}

/* Splits "HOST:PORT" (HOST may be "[v6]") at its last colon. */
static int split(const char *host_port, char *host, size_t cap, const char **port)
{
    const char *colon = strrchr(host_port, ':');
    if (!colon || (size_t)(colon - host_port) >= cap || !colon[1])
        return -1;
    memcpy(host, host_port, (size_t)(colon - host_port));
    host[colon - host_port] = '\0';
    *port = colon + 1;
    return 0;
}

static int start_thread(struct metrics *m, char *err, size_t errlen)
{
    m->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    int rc = m->wake_fd < 0 ? errno : pthread_create(&m->thread, NULL, metrics_main, m);
    if (rc) {
        snprintf(err, errlen, "metrics: cannot start its thread: %s", strerror(rc));
        if (m->wake_fd >= 0)
            close(m->wake_fd);
        return -1;
    }
    return 0;
}

struct metrics *metrics_start(const char *host_port, metrics_snapshot_fn fn, void *arg,
                              char *err, size_t errlen)
{
    char host[256];
    const char *port;
    if (split(host_port, host, sizeof host, &port) < 0) {
        snprintf(err, errlen, "--metrics wants HOST:PORT, not '%s'", host_port);
        return NULL;
    }
    struct metrics *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    *m = (struct metrics){.fd = -1, .wake_fd = -1, .fn = fn, .arg = arg};
    atomic_init(&m->stopping, false);
    heap_init(&m->deadlines);
    char why[512];
    m->fd = net_listen(host[0] ? host : "0.0.0.0", port, 64, why, sizeof why);
    if (m->fd < 0) {
        snprintf(err, errlen, "metrics: %s", why);
        free(m);
        return NULL;
    }
    /* libmicrohttpd's idle timeout stays as a backstop; the deadlines
     * above are what bounds a request. */
    m->daemon = MHD_start_daemon(MHD_USE_EPOLL, 0, NULL, NULL, on_request, m,
                                 MHD_OPTION_LISTEN_SOCKET, m->fd,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned)MAX_CONNECTIONS + 64,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)(REQUEST_DEADLINE_MS / 1000),
                                 MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY,
                                 MHD_OPTION_NOTIFY_CONNECTION, on_connection, m,
                                 MHD_OPTION_END);
    if (!m->daemon || start_thread(m, err, errlen) < 0) {
        if (!m->daemon)
            snprintf(err, errlen, "metrics: libmicrohttpd could not start on %s", host_port);
        else
            MHD_stop_daemon(m->daemon);
        close(m->fd);
        free(m);
        return NULL;
    }
    return m;
}

int metrics_address(const struct metrics *m, char *out, size_t outlen)
{
    return net_local_address(m->fd, out, outlen);
}

void metrics_stop(struct metrics *m)
{
    atomic_store(&m->stopping, true);
    uint64_t one = 1;
    while (write(m->wake_fd, &one, sizeof one) < 0 && errno == EINTR)
        ;
    pthread_join(m->thread, NULL);
    MHD_stop_daemon(m->daemon); /* closes its connections: on_connection frees ours */
    close(m->fd); /* given with MHD_OPTION_LISTEN_SOCKET: ours to close */
    close(m->wake_fd);
    heap_free(&m->deadlines);
    free(m);
}
