/*
 * test_bench.c - enchufe-bench's engine: the histogram's percentiles on
 * known samples, answers checked (a deliberately wrong server yields
 * counted errors, never a crash or a silent pass), fixed-rate accuracy,
 * and connection counts per mode. No timing assertions beyond the rate.
 */
#include "app.h"
#include "client.h"
#include "frame_io.h"
#include "histogram.h"
#include "loadgen.h"
#include "net.h"
#include "server.h"
#include "support.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct histogram h, h2;

Test(histogram, percentiles_of_known_samples_are_within_one_percent)
{
    hist_reset(&h);
    for (uint64_t us = 1; us <= 10000; us++)
        hist_record(&h, us * 1000); /* 1 us .. 10 ms, uniform */
    struct { double p; double want; } cases[] = {
        {50, 5000e3}, {90, 9000e3}, {99, 9900e3}, {99.9, 9990e3}, {100, 10000e3}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double got = (double)hist_percentile(&h, cases[i].p);
        cr_assert(fabs(got - cases[i].want) <= cases[i].want * 0.01, "p%g: want %.0f, got %.0f",
                  cases[i].p, cases[i].want, got);
    }
    cr_assert_eq(h.max, 10000000u, "max is exact");
    cr_assert_float_eq(hist_mean(&h), 5000500.0, 1e-6, "mean is exact");
    cr_assert(fabs(hist_stdev(&h) - 2886750.6) < 1000, "stdev %.1f", hist_stdev(&h));
}

Test(histogram, small_values_are_exact_and_empty_is_zero)
{
    hist_reset(&h);
    cr_assert_eq(hist_percentile(&h, 99), 0);
    for (int i = 0; i < 90; i++)
        hist_record(&h, 7);
    for (int i = 0; i < 10; i++)
        hist_record(&h, 200);
    cr_assert_eq(hist_percentile(&h, 90), 7);
    cr_assert_eq(hist_percentile(&h, 91), 200);
}

Test(histogram, merging_equals_recording_together)
{
    hist_reset(&h);
    hist_reset(&h2);
    for (uint64_t v = 1; v < 100000; v += 7)
        hist_record(v % 2 ? &h : &h2, v * 13);
    hist_merge(&h, &h2);
    struct histogram *all = calloc(1, sizeof *all);
    for (uint64_t v = 1; v < 100000; v += 7)
        hist_record(all, v * 13);
    cr_assert_eq(h.total, all->total);
    cr_assert_eq(hist_percentile(&h, 99), hist_percentile(all, 99));
    cr_assert_eq(h.max, all->max);
    free(all);
}

/* --- against our server ------------------------------------------------------ */

static struct server *srv;
static struct server_config cfg;
static int port;
static char port_s[16];

static void start(void)
{
    json_object_seed(0);
    server_config_defaults(&cfg);
    cfg.workers = 16;
    port = ts_start(&srv, &cfg);
    snprintf(port_s, sizeof port_s, "%d", port);
}

static void stop(void) { server_stop(srv); }

static struct bench_request mix[2];
static struct bench_result res;

static struct bench_config config(int conns, enum bench_mode mode)
{
    return (struct bench_config){.host = "127.0.0.1", .port = port_s, .threads = 1,
                                 .connections = conns, .mode = mode, .timeout_ms = 3000,
                                 .mix = mix, .mix_len = 1, .pipeline = 1};
}

TestSuite(loadgen, .init = start, .fini = stop, .timeout = 60);

Test(loadgen, keepalive_opens_one_connection_per_slot)
{
    bench_prepare(&mix[0], BENCH_HIT, 0);
    struct bench_config c = config(5, BENCH_KEEPALIVE);
    c.requests = 500;
    char err[128];
    cr_assert_eq(bench_run(&c, &res, err, sizeof err), 0, "%s", err);
    cr_assert_eq(res.completed, 500);
    cr_assert_eq(res.connections_opened, 5);
    cr_assert_eq(res.latency.total, 500);
    for (int e = 0; e < BENCH_ERR_KINDS; e++)
        cr_assert_eq(res.errors[e], 0, "no %s errors", bench_error_name(e));
    bench_request_free(&mix[0]);
}

Test(loadgen, per_conn_opens_one_connection_per_request)
{
    bench_prepare(&mix[0], BENCH_MISS, 0);
    struct bench_config c = config(4, BENCH_PER_CONN);
    c.requests = 200;
    char err[128];
    cr_assert_eq(bench_run(&c, &res, err, sizeof err), 0, "%s", err);
    cr_assert_eq(res.completed, 200);
    cr_assert_eq(res.connections_opened, 200);
    cr_assert_eq(res.connect.total, 200, "every connect is timed");
    bench_request_free(&mix[0]);
}

/* What a fixed rate promises is the sending: requests go out when they
 * are due, whatever the server does. So the requests sent (answered, in
 * flight, or failed) are counted against those due, not the answers
 * against the rate: a busy machine delays answers, not the schedule. */
Test(loadgen, fixed_rate_sends_what_is_due)
{
    bench_prepare(&mix[0], BENCH_HIT, 0);
    bench_prepare(&mix[1], BENCH_BINARY, 100);
    struct bench_config c = config(8, BENCH_KEEPALIVE);
    c.mix_len = 2;
    c.rate = 2000;
    c.duration_s = 1.5;
    char err[128];
    cr_assert_eq(bench_run(&c, &res, err, sizeof err), 0, "%s", err);
    uint64_t failed = 0;
    for (int e = 0; e < BENCH_ERR_KINDS; e++)
        failed += res.errors[e];
    double due = 2000 * res.elapsed_s, sent = (double)(res.completed + res.in_flight + failed);
    cr_assert(sent >= 0.9 * due && sent <= 1.02 * due,
              "asked 2000/s for %.2f s: %.0f due, %.0f sent", res.elapsed_s, due, sent);
    cr_assert_eq(res.errors[BENCH_ERR_CONTENT] + res.errors[BENCH_ERR_FRAMING], 0);
    bench_request_free(&mix[0]);
    bench_request_free(&mix[1]);
}

/* --- against a deliberately wrong server ------------------------------------ */

enum wrong { WRONG_CONTENT, WRONG_TYPE, WRONG_FRAMING, WRONG_CLOSE, WRONG_EXTRA };

struct wrong_server {
    int listen_fd;
    enum wrong how;
};

/* Answers each request on one connection wrongly, the chosen way. */
static void *wrong_conn(void *arg)
{
    int fd = (int)(long)arg & 0xffff, how = (int)((long)arg >> 16);
    net_set_recv_timeout(fd, 5000);
    struct client_response req;
    char err[128];
    for (int i = 0; i < 1000 && client_read_response(fd, 1 << 20, ts_deadline(), &req, err, sizeof err) == 0;
         i++) {
        client_response_free(&req);
        const char *right = "{\"result\": \"Follow the white rabbit. \xf0\x9f\x90\xb0\"}";
        int rc = 0;
        switch (how) {
        case WRONG_CONTENT:
            rc = frame_io_send(fd, PROTO_TEXT_JSON, PROTO_UTF8, "{\"result\": \"Follow the black rabbit\"}",
                            37, 0);
            break;
        case WRONG_TYPE:
            rc = frame_io_send(fd, "text/plain", PROTO_UTF8, right, strlen(right), 0);
            break;
        case WRONG_FRAMING:
            rc = net_write_full(fd, "\x00\x05hello", 7);
            break;
        case WRONG_EXTRA: { /* a right answer and one byte more, in one write */
            uint8_t buf[FRAME_ENCODED_HEADER_MAX + 64];
            int n = frame_encode_header(buf, PROTO_TEXT_JSON, PROTO_UTF8, strlen(right));
            memcpy(buf + n, right, strlen(right));
            buf[(size_t)n + strlen(right)] = '!';
            rc = net_write_full(fd, buf, (size_t)n + strlen(right) + 1);
            break;
        }
        case WRONG_CLOSE:
            rc = -1;
            break;
        }
        if (rc < 0)
            break;
    }
    close(fd);
    return NULL;
}

static void *wrong_accept(void *arg)
{
    struct wrong_server *w = arg;
    for (int i = 0; i < 2000; i++) {
        int fd = accept(w->listen_fd, NULL, NULL);
        if (fd < 0)
            break;
        pthread_t t;
        pthread_create(&t, NULL, wrong_conn, (void *)(long)(fd | ((long)w->how << 16)));
        pthread_detach(t);
    }
    return NULL;
}

static void expect_counted(enum wrong how, enum bench_error kind)
{
    char err[128];
    struct wrong_server w = {.listen_fd = net_listen("127.0.0.1", "0", 64, err, sizeof err),
                             .how = how};
    snprintf(port_s, sizeof port_s, "%d", net_local_port(w.listen_fd));
    pthread_t t;
    pthread_create(&t, NULL, wrong_accept, &w);
    bench_prepare(&mix[0], BENCH_HIT, 0);
    struct bench_config c = config(2, BENCH_KEEPALIVE);
    c.requests = 50;
    cr_assert_eq(bench_run(&c, &res, err, sizeof err), 0, "%s", err);
    cr_assert_eq(res.completed, 0, "no wrong answer may pass as right");
    cr_assert_eq(res.errors[kind], 50, "all 50 counted as %s errors, got %llu",
                 bench_error_name(kind), (unsigned long long)res.errors[kind]);
    shutdown(w.listen_fd, SHUT_RDWR);
    close(w.listen_fd);
    pthread_join(t, NULL);
    bench_request_free(&mix[0]);
}

Test(wrong_server, wrong_content_is_a_content_error, .timeout = 60)
{
    expect_counted(WRONG_CONTENT, BENCH_ERR_CONTENT);
}

Test(wrong_server, wrong_content_type_is_a_header_error, .timeout = 60)
{
    expect_counted(WRONG_TYPE, BENCH_ERR_HEADER);
}

Test(wrong_server, garbage_is_a_framing_error, .timeout = 60)
{
    expect_counted(WRONG_FRAMING, BENCH_ERR_FRAMING);
}

Test(wrong_server, bytes_after_the_answer_are_a_framing_error, .timeout = 60)
{
    expect_counted(WRONG_EXTRA, BENCH_ERR_FRAMING);
}

Test(wrong_server, closing_without_answering_is_counted, .timeout = 60)
{
    expect_counted(WRONG_CLOSE, BENCH_ERR_CLOSED);
}

/* --- over TLS ---------------------------------------------------------------- */

static SSL_CTX *tls_ctx;

static void start_tls(void)
{
    json_object_seed(0);
    server_config_defaults(&cfg);
    cfg.workers = 16;
    ts_tls_config(&cfg);
    cr_assert_gt(ts_start(&srv, &cfg), 0);
    snprintf(port_s, sizeof port_s, "%d", server_tls_port(srv));
    tls_ctx = ts_tls_client(NULL);
    cr_assert_not_null(tls_ctx);
}

static void stop_tls(void)
{
    server_stop(srv);
    SSL_CTX_free(tls_ctx);
}

static long long server_handshakes(void)
{
    json_t *stats = server_stats(srv);
    long long n = json_integer_value(json_object_get(json_object_get(stats, "tls"), "handshakes"));
    json_decref(stats);
    return n;
}

TestSuite(loadgen_tls, .init = start_tls, .fini = stop_tls, .timeout = 60);

Test(loadgen_tls, per_conn_resumes_each_slots_session)
{
    bench_prepare(&mix[0], BENCH_HIT, 0);
    struct bench_config c = config(4, BENCH_PER_CONN);
    c.requests = 100;
    c.tls = tls_ctx;
    c.tls_name = "localhost";
    c.tls_resume = true;
    char err[128];
    cr_assert_eq(bench_run(&c, &res, err, sizeof err), 0, "%s", err);
    cr_assert_eq(res.completed, 100);
    cr_assert_eq(res.connections_opened, 100);
    for (int e = 0; e < BENCH_ERR_KINDS; e++)
        cr_assert_eq(res.errors[e], 0, "no %s errors", bench_error_name(e));
    /* A slot's first connection has nothing to resume; the ticket comes
     * before the answer on the same stream, so every later one resumes. */
    cr_assert_eq(res.tls_full, 4);
    cr_assert_eq(res.tls_resumed, 96);
    cr_assert_eq(server_handshakes(), 100, "the server counted the same handshakes");
    bench_request_free(&mix[0]);
}

Test(loadgen_tls, keepalive_pipelined_checks_every_answer)
{
    bench_prepare(&mix[0], BENCH_MISS, 0);
    struct bench_config c = config(2, BENCH_KEEPALIVE);
    c.requests = 400;
    c.pipeline = 8;
    c.tls = tls_ctx;
    c.tls_name = "localhost";
    char err[128];
    cr_assert_eq(bench_run(&c, &res, err, sizeof err), 0, "%s", err);
    cr_assert_eq(res.completed, 400);
    cr_assert_eq(res.tls_full, 2);
    cr_assert_eq(res.tls_resumed, 0);
    for (int e = 0; e < BENCH_ERR_KINDS; e++)
        cr_assert_eq(res.errors[e], 0, "no %s errors", bench_error_name(e));
    bench_request_free(&mix[0]);
}

Test(loadgen_tls, a_certificate_it_cannot_verify_is_a_tls_error)
{
    bench_prepare(&mix[0], BENCH_HIT, 0);
    struct bench_config c = config(2, BENCH_PER_CONN);
    c.requests = 10;
    c.tls = tls_ctx;
    c.tls_name = "example.com"; /* not the certificate's name */
    char err[128];
    cr_assert_eq(bench_run(&c, &res, err, sizeof err), 0, "%s", err);
    cr_assert_eq(res.completed, 0);
    cr_assert_geq(res.errors[BENCH_ERR_TLS], 1);
    bench_request_free(&mix[0]);
}
