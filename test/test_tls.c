/*
 * test_tls.c - TLS over real sockets: the protocol through our own TLS
 * client (keep-alive, pipelined, parked between requests, echo), client
 * certificates (required: refused without one, refused from another CA,
 * served with the right one, and the worker free at once after a
 * refusal), handshakes that stall or are not TLS at all, TLS on the port
 * in clear, the counters, and a SIGTERM that drains TLS connections and
 * ends each with close_notify.
 *
 * The certificates are made at test time by tools/make_test_certs.sh
 * (make does it before the suites run). Clients nobody here wrote
 * (Python's ssl, openssl s_client, stunnel) are in test/python/test_tls.py.
 */
#include "client.h"
#include "net.h"
#include "protocol.h"
#include "server.h"
#include "stream.h"
#include "support.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct server *srv;
static int port, tls_port;

static void start_with(struct server_config *cfg)
{
    json_object_seed(0);
    ts_tls_config(cfg);
    port = ts_start(&srv, cfg);
    cr_assert_gt(port, 0);
    tls_port = server_tls_port(srv);
    cr_assert_gt(tls_port, 0);
}

static void start(void)
{
    struct server_config cfg;
    server_config_defaults(&cfg);
    cfg.workers = 4;
    start_with(&cfg);
}

static void stop(void)
{
    server_stop(srv);
}

/* One search on an open stream; true if the answer is the right one. */
static bool search_on(const struct stream *s, const char *value)
{
    struct client_response resp;
    char expected[256];
    if (ts_search_on(s, value, &resp) < 0)
        return false;
    ts_expected_search(value, expected, sizeof expected);
    bool ok = ts_content_is(&resp, expected);
    client_response_free(&resp);
    return ok;
}

static long long tls_counter(const char *name)
{
    json_t *stats = server_stats(srv);
    json_t *tls = json_object_get(stats, "tls");
    json_t *v = json_object_get(tls, name);
    if (!v)
        v = json_object_get(json_object_get(tls, "failed"), name);
    long long n = json_integer_value(v);
    json_decref(stats);
    return n;
}

/* Waits (bounded) until a TLS counter reaches want; returns its value. */
static long long tls_counter_reaches(const char *name, long long want)
{
    long long n = -1;
    for (long long end = ts_now_ms() + 10000; ts_now_ms() < end; usleep(2000))
        if ((n = tls_counter(name)) >= want)
            break;
    return n;
}

TestSuite(tls, .init = start, .fini = stop, .timeout = 60);

Test(tls, serves_the_protocol_on_a_keep_alive_connection)
{
    SSL_CTX *ctx = ts_tls_client(NULL);
    cr_assert_not_null(ctx);
    struct stream s;
    char err[512];
    cr_assert_eq(ts_tls_open(ctx, tls_port, &s, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(SSL_get_version(s.ssl), "TLSv1.3");
    const char *values[] = {"morpheus", "ring", "\xf0\x9f\x98\x80", "nobody"};
    for (int i = 0; i < 100; i++)
        cr_assert(search_on(&s, values[i % 4]), "request %d", i);
    client_close(&s);
    cr_assert_eq(tls_counter_reaches("handshakes", 1), 1);
    SSL_CTX_free(ctx);
}

Test(tls, a_parked_connection_keeps_its_session)
{
    SSL_CTX *ctx = ts_tls_client(NULL);
    struct stream s;
    char err[512];
    cr_assert_eq(ts_tls_open(ctx, tls_port, &s, err, sizeof err), 0, "%s", err);
    for (int i = 0; i < 5; i++) {
        cr_assert(search_on(&s, "ring"));
        /* Far past the linger: the worker parks the connection, and the
         * poller hands it back when the next request arrives. */
        long long end = ts_now_ms() + 5000;
        json_t *stats = NULL;
        long long parked = 0;
        while (ts_now_ms() < end && parked == 0) {
            usleep(5000);
            stats = server_stats(srv);
            parked = json_integer_value(
                json_object_get(json_object_get(stats, "connections"), "parked"));
            json_decref(stats);
        }
        cr_assert_eq(parked, 1, "the idle TLS connection is parked");
    }
    client_close(&s);
    SSL_CTX_free(ctx);
}

Test(tls, answers_pipelined_requests_sent_in_one_record)
{
    SSL_CTX *ctx = ts_tls_client(NULL);
    struct stream s;
    char err[512];
    cr_assert_eq(ts_tls_open(ctx, tls_port, &s, err, sizeof err), 0, "%s", err);
    enum { DEPTH = 32 };
    static uint8_t batch[DEPTH * 512];
    size_t len = 0;
    for (int i = 0; i < DEPTH; i++) {
        size_t n = ts_search_request(i % 2 ? "ring" : "morpheus", batch + len, sizeof batch - len);
        cr_assert_gt(n, 0);
        len += n;
    }
    /* All of them decrypted at once: most wait in OpenSSL, not in the
     * socket, where the poller could not see them. */
    cr_assert_eq(stream_write_until(&s, batch, len, ts_deadline()), 0);
    for (int i = 0; i < DEPTH; i++) {
        struct client_response resp;
        char expected[256];
        cr_assert_eq(client_read_response_on(&s, 1 << 20, ts_deadline(), &resp, err, sizeof err),
                     0, "answer %d: %s", i, err);
        ts_expected_search(i % 2 ? "ring" : "morpheus", expected, sizeof expected);
        cr_assert(ts_content_is(&resp, expected), "answer %d", i);
        client_response_free(&resp);
    }
    client_close(&s);
    SSL_CTX_free(ctx);
}

Test(tls, resumes_a_session_with_its_ticket)
{
    SSL_CTX *ctx = ts_tls_client(NULL);
    struct stream s;
    char err[512];
    cr_assert_eq(ts_tls_open(ctx, tls_port, &s, err, sizeof err), 0, "%s", err);
    /* TLS 1.3 sends the ticket after the handshake: a read takes it in. */
    cr_assert(search_on(&s, "ring"));
    SSL_SESSION *session = SSL_get1_session(s.ssl);
    cr_assert_not_null(session);
    cr_assert(SSL_SESSION_is_resumable(session), "the server sent a ticket");
    client_close(&s);

    int fd = ts_connect(tls_port);
    cr_assert_geq(fd, 0);
    struct stream again = {.fd = fd, .ssl = SSL_new(ctx)};
    cr_assert_eq(tls_client_attach(again.ssl, fd), 0);
    cr_assert_eq(tls_client_set_name(again.ssl, "localhost"), 0);
    SSL_set_session(again.ssl, session);
    enum tls_failure why;
    cr_assert_eq(stream_handshake(&again, ts_deadline(), &why, err, sizeof err), 0, "%s", err);
    cr_assert(SSL_session_reused(again.ssl), "the second handshake resumed");
    cr_assert(search_on(&again, "morpheus"));
    client_close(&again);
    SSL_SESSION_free(session);
    cr_assert_eq(tls_counter_reaches("resumed", 1), 1);
    cr_assert_eq(tls_counter("handshakes"), 2);
    SSL_CTX_free(ctx);
}

Test(tls, a_client_in_clear_on_the_tls_port_is_closed_at_once)
{
    /* The read timeout is 30 s: a close well before that is the server
     * seeing that this is not TLS, not a timeout. */
    int fd = ts_connect(tls_port);
    cr_assert_geq(fd, 0);
    cr_assert_eq(ts_send_raw(fd, "{\"byteorder\": \"little\", \"content-type\": \"text/json\", "
                                 "\"content-encoding\": \"utf-8\", \"content-length\": 2}",
                             "{}", 2), 0);
    cr_assert(ts_closed_within(fd, 5000), "closed");
    close(fd);
    cr_assert_eq(tls_counter_reaches("protocol", 1), 1);
    /* The worker is free: the next client is served. */
    SSL_CTX *ctx = ts_tls_client(NULL);
    struct stream s;
    char err[512];
    cr_assert_eq(ts_tls_open(ctx, tls_port, &s, err, sizeof err), 0, "%s", err);
    cr_assert(search_on(&s, "ring"));
    client_close(&s);
    SSL_CTX_free(ctx);
}

Test(tls, tls_on_the_port_in_clear_is_closed_at_once)
{
    SSL_CTX *ctx = ts_tls_client(NULL);
    struct stream s;
    char err[512];
    long long t0 = ts_now_ms();
    cr_assert_eq(ts_tls_open(ctx, port, &s, err, sizeof err), -1);
    cr_assert_lt(ts_now_ms() - t0, 5000, "closed, not left to the read timeout: %s", err);
    int fd = ts_connect(port);
    struct client_response resp;
    cr_assert(ts_search(fd, "ring", &resp) == 0, "clear still served");
    client_response_free(&resp);
    close(fd);
    SSL_CTX_free(ctx);
}

Test(tls_echo, serves_echo, .fini = stop, .timeout = 60)
{
    struct server_config cfg;
    server_config_defaults(&cfg);
    cfg.mode = SERVER_MODE_ECHO;
    cfg.workers = 2;
    start_with(&cfg);
    SSL_CTX *ctx = ts_tls_client(NULL);
    struct stream s;
    char err[512];
    cr_assert_eq(ts_tls_open(ctx, tls_port, &s, err, sizeof err), 0, "%s", err);
    enum { SIZE = 1 << 20 };
    uint8_t *out = malloc(SIZE), *back = malloc(SIZE);
    for (size_t i = 0; i < SIZE; i++)
        out[i] = (uint8_t)(i * 7 + 3);
    /* Written in pieces and read as it comes, so neither side's buffers
     * need to hold it all. */
    size_t sent = 0, got = 0;
    while (got < SIZE) {
        if (sent < SIZE) {
            size_t n = SIZE - sent < 65536 ? SIZE - sent : 65536;
            cr_assert_eq(stream_write_until(&s, out + sent, n, ts_deadline()), 0);
            sent += n;
        }
        while (got < sent) {
            ssize_t n = stream_read_until(&s, back + got, sent - got, ts_deadline());
            cr_assert_gt(n, 0);
            got += (size_t)n;
        }
    }
    cr_assert_eq(memcmp(out, back, SIZE), 0);
    free(out);
    free(back);
    client_close(&s);
    SSL_CTX_free(ctx);
}

/* --- client certificates ---------------------------------------------------- */

static void start_mtls(void)
{
    struct server_config cfg;
    server_config_defaults(&cfg);
    cfg.workers = 1; /* one worker: a refusal that held it would show */
    cfg.tls.ca_file = ts_tls_path("ca.pem");
    cfg.tls.auth_clients = TLS_AUTH_YES;
    start_with(&cfg);
}

/* A connection with this client certificate (NULL: none): true if a
 * search on it was answered. */
static bool served_with(const char *cert)
{
    SSL_CTX *ctx = ts_tls_client(cert);
    struct stream s;
    char err[512];
    bool ok = ts_tls_open(ctx, tls_port, &s, err, sizeof err) == 0 && search_on(&s, "ring");
    if (s.fd >= 0)
        client_close(&s);
    SSL_CTX_free(ctx);
    return ok;
}

Test(mtls, refuses_a_client_without_a_certificate_and_frees_the_worker, .init = start_mtls,
     .fini = stop, .timeout = 60)
{
    for (int i = 0; i < 5; i++)
        cr_assert_not(served_with(NULL), "no certificate: refused");
    cr_assert_eq(tls_counter_reaches("verify", 5), 5);
    /* With its one worker, the server serves the next client at once. */
    long long t0 = ts_now_ms();
    cr_assert(served_with("client"));
    cr_assert_lt(ts_now_ms() - t0, 5000);
}

Test(mtls, refuses_a_certificate_from_another_ca, .init = start_mtls, .fini = stop,
     .timeout = 60)
{
    cr_assert_not(served_with("stranger"));
    cr_assert_eq(tls_counter_reaches("verify", 1), 1);
    cr_assert(served_with("client"));
    cr_assert_eq(tls_counter("handshakes"), 1);
}

/* --- handshakes that stall --------------------------------------------------- */

static void start_short_read_timeout(void)
{
    struct server_config cfg;
    server_config_defaults(&cfg);
    cfg.workers = 1;
    cfg.read_timeout_ms = 300;
    start_with(&cfg);
}

Test(stalled, a_stalled_handshake_is_bounded_by_the_read_timeout,
     .init = start_short_read_timeout, .fini = stop, .timeout = 60)
{
    /* One connection sends nothing, one half a ClientHello (a record
     * header announcing 512 bytes, and 10 of them). */
    int silent = ts_connect(tls_port), half = ts_connect(tls_port);
    cr_assert(silent >= 0 && half >= 0);
    static const uint8_t part[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03,
                                   0x03, 0, 0, 0, 0};
    cr_assert_eq(net_write_full(half, part, sizeof part), 0);
    cr_assert(ts_closed_within(silent, 5000), "the silent one is closed");
    cr_assert(ts_closed_within(half, 5000), "the half hello is closed");
    close(silent);
    close(half);
    cr_assert_eq(tls_counter_reaches("timeout", 2), 2);
    cr_assert(served_with(NULL), "the one worker serves again");
}

/* --- the stop ------------------------------------------------------------------ */

Test(tls_stop, sigterm_answers_what_arrived_then_sends_close_notify, .timeout = 60)
{
    const char *extra[] = {"--tls-only", "--tls-port", "0", "--tls-cert",
                           ts_tls_path("server.pem"), "--tls-key", ts_tls_path("server.key"),
                           "--workers", "4", NULL};
    int p, err_fd;
    pid_t pid = ts_spawn_server(ts_bin_dir(), extra, &p, &err_fd);
    cr_assert_gt(pid, 0);
    SSL_CTX *ctx = ts_tls_client(NULL);
    enum { CONNS = 12 };
    struct stream s[CONNS];
    char err[512];
    uint8_t req[256];
    size_t len = ts_search_request("morpheus", req, sizeof req);
    for (int i = 0; i < CONNS; i++) {
        cr_assert_eq(ts_tls_open(ctx, p, &s[i], err, sizeof err), 0, "%s", err);
        cr_assert(search_on(&s[i], "ring"));
        /* A second request, whole, before the stop: it must be answered. */
        cr_assert_eq(stream_write_until(&s[i], req, len, ts_deadline()), 0);
    }
    usleep(100000); /* sent before the signal, not racing it */
    kill(pid, SIGTERM);
    for (int i = 0; i < CONNS; i++) {
        struct client_response resp;
        char expected[256], byte;
        cr_assert_eq(client_read_response_on(&s[i], 1 << 20, ts_deadline(), &resp, err,
                                             sizeof err), 0, "connection %d: %s", i, err);
        ts_expected_search("morpheus", expected, sizeof expected);
        cr_assert(ts_content_is(&resp, expected));
        client_response_free(&resp);
        cr_assert_eq(stream_read_until(&s[i], &byte, 1, ts_deadline()), 0, "then the end");
        cr_assert(SSL_get_shutdown(s[i].ssl) & SSL_RECEIVED_SHUTDOWN,
                  "connection %d ended with close_notify", i);
        client_close(&s[i]);
    }
    cr_assert_eq(ts_wait_exit(pid, 10000), 0);
    close(err_fd);
    SSL_CTX_free(ctx);
}

Test(tls_start, refuses_to_start_naming_the_bad_file, .timeout = 30)
{
    char out[2048];
    const char *bin = ts_bin_dir();
    struct {
        const char *args, *says;
    } cases[] = {
        {"--tls-cert /nonexistent.pem --tls-key %s/server.key", "/nonexistent.pem: No such file"},
        {"--tls-cert %s/server.key --tls-key %s/server.key", "server.key: no start line"},
        {"--tls-cert %s/server.pem --tls-key %s/client.key", "does not match the certificate"},
        {"--tls-cert %s/server.pem --tls-key %s/server.key --tls-auth-clients yes",
         "needs --tls-ca"},
    };
    const char *dir = getenv("ENCHUFE_TLS_DIR") ? getenv("ENCHUFE_TLS_DIR") : "build/tls";
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char args[1024];
        snprintf(args, sizeof args, cases[i].args, dir, dir);
        int rc = ts_run(out, sizeof out, "%s/enchufe-server --port 0 --tls-port 0 %s", bin, args);
        cr_assert(rc == 1 || rc == 2, "case %zu exits 1 or 2, not %d: %s", i, rc, out);
        cr_assert(strstr(out, cases[i].says), "case %zu says '%s': %s", i, cases[i].says, out);
        if (rc == 1)
            cr_assert_eq(strchr(out, '\n'), strrchr(out, '\n'), "one line: %s", out);
    }
}
