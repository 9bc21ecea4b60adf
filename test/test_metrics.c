/*
 * test_metrics.c - the Prometheus endpoint and the numbers behind it: a
 * real scrape checked by promtool, exact counts after a known load, the
 * library's answers to other paths, methods and hostile input (which must
 * never slow the protocol listener), scrapes that get through hundreds of
 * silent and dripping clients on the metrics port, the stats answer's
 * percentiles, and the watch view's rates.
 */
#include "client.h"
#include "frame.h"
#include "net.h"
#include "protocol.h"
#include "server.h"
#include "support.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct server *srv;
static int port, metrics_port;

static void start(void)
{
    struct server_config cfg;
    json_object_seed(0);
    server_config_defaults(&cfg);
    cfg.workers = 4;
    cfg.metrics = "127.0.0.1:0";
    port = ts_start(&srv, &cfg);
    cr_assert_gt(port, 0);
    char addr[128];
    cr_assert_eq(server_metrics_address(srv, addr, sizeof addr), 0);
    metrics_port = atoi(strrchr(addr, ':') + 1);
}

static void stop(void)
{
    server_stop(srv);
}

TestSuite(metrics, .init = start, .fini = stop, .timeout = 60);

/* An HTTP/1.0 exchange on the metrics port; the whole reply into out. */
static size_t http(const char *request, char *out, size_t cap)
{
    int fd = ts_connect(metrics_port);
    cr_assert_geq(fd, 0);
    cr_assert_eq(net_write_full(fd, request, strlen(request)), 0);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < cap && (r = net_recv_until(fd, out + n, cap - 1 - n, ts_deadline())) > 0)
        n += (size_t)r;
    out[n] = '\0';
    close(fd);
    return n;
}

/* The value of one sample line ("name{labels} value"), or -1. */
static double sample(const char *text, const char *series)
{
    char needle[256];
    snprintf(needle, sizeof needle, "\n%s ", series);
    const char *at = strstr(text, needle);
    return at ? strtod(at + strlen(needle), NULL) : -1;
}

/* The service-time histogram takes a request after its answer's last
 * byte is written, so a client can read its answer before the worker has
 * recorded it: wait (bounded) until the server has counted want. */
static long long latency_count_reaches(long long want)
{
    long long count = -1;
    for (long long end = ts_now_ms() + 5000; ts_now_ms() < end; usleep(1000)) {
        json_t *stats = server_stats(srv);
        count = json_integer_value(json_object_get(json_object_get(stats, "latency"), "count"));
        json_decref(stats);
        if (count >= want)
            break;
    }
    return count;
}

static void send_requests(int n, const char *value, const char *ctype)
{
    int fd = ts_connect(port);
    for (int i = 0; i < n; i++) {
        struct client_response resp;
        char err[256];
        char *content = client_search_content("search", value);
        cr_assert_eq(client_exchange(fd, ctype, strcmp(ctype, PROTO_TEXT_JSON) ? PROTO_BINARY
                                                                               : PROTO_UTF8,
                                     content, strlen(content), 1 << 20, ts_deadline(), &resp,
                                     err, sizeof err),
                     0, "%s", err);
        client_response_free(&resp);
        free(content);
    }
    close(fd);
}

Test(metrics, a_scrape_passes_promtool_and_counts_exactly_what_was_sent)
{
    send_requests(30, "ring", PROTO_TEXT_JSON);
    send_requests(20, "nobody", PROTO_TEXT_JSON);
    send_requests(10, "x", PROTO_CLIENT_BINARY_TYPE);
    cr_assert_eq(latency_count_reaches(60), 60);
    static char reply[1 << 16];
    http("GET /metrics HTTP/1.0\r\n\r\n", reply, sizeof reply);
    cr_assert(strstr(reply, "HTTP/1.0 200") || strstr(reply, "HTTP/1.1 200"), "%.200s", reply);
    cr_assert(strstr(reply, "text/plain; version=0.0.4"), "the exposition format's type");
    const char *body = strstr(reply, "\r\n\r\n");
    cr_assert_not_null(body);
    body += 3; /* keep a newline in front of the first line for sample() */
    cr_assert_eq(sample(body, "enchufe_requests_total{kind=\"search_hit\"}"), 30);
    cr_assert_eq(sample(body, "enchufe_requests_total{kind=\"search_miss\"}"), 20);
    cr_assert_eq(sample(body, "enchufe_requests_total{kind=\"binary\"}"), 10);
    cr_assert_eq(sample(body, "enchufe_request_duration_seconds_count"), 60);
    cr_assert_eq(sample(body, "enchufe_request_duration_seconds_bucket{le=\"+Inf\"}"), 60);
    cr_assert_gt(sample(body, "enchufe_request_duration_seconds_sum"), 0);
    cr_assert_gt(sample(body, "process_resident_memory_bytes"), 0);
    cr_assert_gt(sample(body, "process_open_fds"), 0);
    cr_assert_eq(sample(body, "enchufe_workers"), 4);
    char path[] = "/tmp/enchufe-scrape-XXXXXX", out[4096];
    FILE *f = fdopen(mkstemp(path), "w");
    cr_assert_not_null(f);
    fputs(body + 1, f);
    fclose(f);
    int rc = ts_run(out, sizeof out, "promtool check metrics < %s", path);
    unlink(path);
    cr_assert_eq(rc, 0, "promtool check metrics: %s", out);
}

Test(metrics, other_paths_and_methods_get_the_librarys_errors)
{
    static char reply[8192];
    http("GET / HTTP/1.0\r\n\r\n", reply, sizeof reply);
    cr_assert(strstr(reply, " 404 "), "%.100s", reply);
    http("POST /metrics HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc", reply, sizeof reply);
    cr_assert(strstr(reply, " 405 "), "%.100s", reply);
    http("this is not http\r\n\r\n", reply, sizeof reply);
    cr_assert(strstr(reply, " 400 ") || reply[0] == '\0', "garbage: %.100s", reply);
}

/* A protocol client's answer, timed. */
static long long protocol_answer_ms(void)
{
    long long t0 = ts_now_ms();
    send_requests(1, "morpheus", PROTO_TEXT_JSON);
    return ts_now_ms() - t0;
}

/* A connection to the metrics port that gives up quickly: past its
 * connection limit, libmicrohttpd stops accepting and the backlog fills. */
static int metrics_connect(void)
{
    char p[16], err[256];
    snprintf(p, sizeof p, "%d", metrics_port);
    return net_connect("127.0.0.1", p, 100, err, sizeof err);
}

Test(metrics, hostile_input_on_the_metrics_port_never_slows_the_protocol)
{
    enum { IDLE = 500 };
    static char big[(1 << 20) + 64];
    int idle[IDLE], n = 0, refused = 0;
    /* Past the limit and the backlog, connects time out: a few in a row
     * show that, the rest would only take time. */
    for (int i = 0; i < IDLE && refused < 3; i++) {
        if ((idle[n] = metrics_connect()) >= 0) {
            n++;
            refused = 0;
        } else {
            refused++;
        }
    }
    /* A 1 MiB header, and garbage, while 500 connections sit idle (or
     * wait in the backlog). */
    int fd = metrics_connect();
    if (fd >= 0) {
        memcpy(big, "GET /metrics HTTP/1.1\r\nX-Big: ", 30);
        memset(big + 30, 'a', sizeof big - 30);
        send(fd, big, sizeof big, MSG_NOSIGNAL | MSG_DONTWAIT); /* may be cut short: fine */
        close(fd);
    }
    fd = metrics_connect();
    if (fd >= 0) {
        send(fd, "\x16\x03\x01garbage\r\n\r\n", 13, MSG_NOSIGNAL | MSG_DONTWAIT);
        close(fd);
    }
    long long took = protocol_answer_ms();
    cr_assert_lt(took, 1000, "a protocol client is served at once (%lld ms)", took);
    for (int i = 0; i < n; i++)
        close(idle[i]);
    cr_assert_lt(protocol_answer_ms(), 1000);
}

/* --- slow and silent clients on the metrics port ------------------------------- */

struct drippers {
    int *fds;
    int n;
    atomic_bool stop;
};

/* A byte more of a header every 100 ms on each connection: each byte
 * would reset an idle timeout. */
static void *drip(void *arg)
{
    struct drippers *d = arg;
    for (int round = 0; round < 600 && !atomic_load(&d->stop); round++) {
        for (int i = 0; i < d->n; i++)
            if (d->fds[i] >= 0 && send(d->fds[i], "a", 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 &&
                errno != EAGAIN)
                d->fds[i] = -1 - d->fds[i]; /* the server closed it: remembered to close */
        usleep(100 * 1000);
    }
    return NULL;
}

static int open_dripping(void)
{
    int fd = ts_connect(metrics_port);
    const char *start = "GET /metrics HTTP/1.1\r\nX-Slow: ";
    if (fd >= 0 && net_write_full(fd, start, strlen(start)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

Test(metrics, scrapes_get_through_hundreds_of_silent_and_dripping_clients)
{
    enum { SILENT = 400, DRIPPING = 400, SCRAPES = 10 };
    static int silent[SILENT], dripping[DRIPPING];
    net_raise_fd_limit();
    for (int i = 0; i < SILENT; i++)
        silent[i] = ts_connect(metrics_port);
    for (int i = 0; i < DRIPPING; i++)
        dripping[i] = open_dripping();
    struct drippers d = {.fds = dripping, .n = DRIPPING};
    atomic_init(&d.stop, false);
    pthread_t t;
    pthread_create(&t, NULL, drip, &d);
    static char reply[1 << 16];
    long long worst = 0;
    for (int i = 0; i < SCRAPES; i++) {
        long long t0 = ts_now_ms();
        http("GET /metrics HTTP/1.0\r\n\r\n", reply, sizeof reply);
        long long ms = ts_now_ms() - t0;
        worst = ms > worst ? ms : worst;
        cr_assert(strstr(reply, "200 OK") && strstr(reply, "enchufe_connections_accepted_total"),
                  "scrape %d answered, beside %d silent and %d dripping clients", i, SILENT,
                  DRIPPING);
        cr_assert_lt(ms, 1000, "scrape %d took %lld ms", i, ms);
        usleep(100 * 1000);
    }
    fprintf(stderr, "metrics: %d scrapes beside %d silent and %d dripping clients, slowest %lld "
                    "ms\n", SCRAPES, SILENT, DRIPPING, worst);
    atomic_store(&d.stop, true);
    pthread_join(t, NULL);
    for (int i = 0; i < SILENT; i++)
        if (silent[i] >= 0)
            close(silent[i]);
    for (int i = 0; i < DRIPPING; i++)
        close(dripping[i] >= 0 ? dripping[i] : -1 - dripping[i]);
}

Test(metrics, a_request_dripped_a_byte_at_a_time_is_cut_at_its_deadline)
{
    int fd = open_dripping();
    cr_assert_geq(fd, 0);
    long long t0 = ts_now_ms();
    bool closed = false;
    /* A byte every 100 ms for up to 12 s: an idle timeout would never
     * fire; the whole request's deadline (5 s) must. */
    for (int i = 0; i < 120 && !closed; i++) {
        if (send(fd, "a", 1, MSG_NOSIGNAL) < 0)
            break;
        closed = ts_closed_within(fd, 100);
    }
    long long took = ts_now_ms() - t0;
    close(fd);
    cr_assert(closed || took < 12000, "the dripping client was closed");
    cr_assert_lt(took, 8000, "closed after %lld ms while it still dripped", took);
}

Test(metrics, the_stats_answer_carries_the_same_histogram_and_percentiles)
{
    send_requests(50, "ring", PROTO_TEXT_JSON);
    cr_assert_eq(latency_count_reaches(50), 50);
    json_t *stats = server_stats(srv);
    json_t *lat = json_object_get(stats, "latency");
    cr_assert_eq(json_integer_value(json_object_get(lat, "count")), 50);
    cr_assert_gt(json_real_value(json_object_get(lat, "p99_ms")), 0);
    cr_assert_geq(json_real_value(json_object_get(lat, "p99_ms")),
                  json_real_value(json_object_get(lat, "p50_ms")));
    cr_assert_eq(json_array_size(json_object_get(lat, "buckets")), 35);
    json_decref(stats);
}

Test(cli, stats_watch_shows_the_rate_of_a_known_load, .timeout = 60)
{
    int p, err_fd;
    pid_t pid = ts_spawn_server(ts_bin_dir(), NULL, &p, &err_fd);
    cr_assert_gt(pid, 0);
    char bench[512], port_s[16], out[4096];
    /* A fixed rate of 1000 requests/s for 5 s in the background; the watch
     * reads three one-second lines in its middle. */
    snprintf(bench, sizeof bench, "%s/enchufe-bench", ts_bin_dir());
    snprintf(port_s, sizeof port_s, "%d", p);
    pid_t load = fork();
    if (load == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, STDOUT_FILENO);
        execl(bench, bench, "-q", "--port", port_s, "-c", "4", "-t", "1", "-R", "1000", "-d", "5",
              (char *)NULL);
        _exit(127);
    }
    cr_assert_gt(load, 0);
    usleep(1000 * 1000);
    cr_assert_eq(ts_run(out, sizeof out, "%s/enchufe-cli --port %d stats --watch 1 --count 3",
                        ts_bin_dir(), p), 0, "%s", out);
    int lines = 0;
    for (char *l = strtok(out, "\n"); l; l = strtok(NULL, "\n")) {
        double rate;
        if (sscanf(l, "%lf", &rate) != 1)
            continue; /* the header */
        lines++;
        cr_assert(rate > 900 && rate < 1100, "line %d: %.1f req/s, not 1000 within 10%%", lines,
                  rate);
    }
    cr_assert_eq(lines, 3);
    kill(load, SIGTERM);
    ts_wait_exit(load, 5000);
    kill(pid, SIGTERM);
    cr_assert_eq(ts_wait_exit(pid, 15000), 0);
    close(err_fd);
}
