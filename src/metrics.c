/*
 * metrics.c - GET /metrics over libmicrohttpd (see metrics.h).
 *
 * Names follow Prometheus's conventions: an enchufe_ prefix, base units
 * (seconds, bytes), _total on counters, and labels for what varies (the
 * kind of an answer, the code of an error).
 */
#include "metrics.h"
#include "net.h"

#include <microhttpd.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* Bounds on the scrape port, so that no client there can cost much. */
#define MAX_CONNECTIONS 64
#define CONNECTION_TIMEOUT_S 10
#define CONNECTION_MEMORY 32768 /* a request's headers must fit in this */

struct metrics {
    struct MHD_Daemon *daemon;
    int fd;
    metrics_snapshot_fn fn;
    void *arg;
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
        "Idle keep-alive connections held by the poller.", (double)s->parked);
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
    family(f, "enchufe_tls_handshake_failures_total", "counter",
           "TLS handshakes that failed, by reason.");
    for (int i = 0; i < COUNTER_TLS_FAILURES; i++)
        fprintf(f, "enchufe_tls_handshake_failures_total{reason=\"%s\"} %llu\n",
                counter_tls_failure_name(i), (unsigned long long)s->tls_failed[i]);
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
    *m = (struct metrics){.fd = -1, .fn = fn, .arg = arg};
    char why[512];
    m->fd = net_listen(host[0] ? host : "0.0.0.0", port, 64, why, sizeof why);
    if (m->fd < 0) {
        snprintf(err, errlen, "metrics: %s", why);
        free(m);
        return NULL;
    }
    m->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, 0, NULL, NULL,
                                 on_request, m, MHD_OPTION_LISTEN_SOCKET, m->fd,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned)MAX_CONNECTIONS,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONNECTION_TIMEOUT_S,
                                 MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY,
                                 MHD_OPTION_END);
    if (!m->daemon) {
        snprintf(err, errlen, "metrics: libmicrohttpd could not start on %s", host_port);
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
    MHD_stop_daemon(m->daemon);
    close(m->fd); /* given with MHD_OPTION_LISTEN_SOCKET: ours to close */
    free(m);
}
