/*
 * test_server.c - the server over real loopback sockets: an in-process
 * server on port 0 for most tests, the real binary where signals and exit
 * codes are the point.
 */
#include "app.h"
#include "client.h"
#include "frame_io.h"
#include "multiconn.h"
#include "net.h"
#include "server.h"
#include "support.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct server *srv;
static struct server_config cfg;
static int port;

static void start(enum server_mode mode, size_t workers, int idle_ms)
{
    json_object_seed(0);
    server_config_defaults(&cfg);
    cfg.mode = mode;
    cfg.workers = workers;
    cfg.idle_timeout_ms = idle_ms;
    port = ts_start(&srv, &cfg);
    cr_assert_gt(port, 0, "the server should start on an ephemeral port");
}

static void start_app(void) { start(SERVER_MODE_APP, 4, 5000); }
static void start_app_short_idle(void) { start(SERVER_MODE_APP, 2, 200); }
static void start_echo(void) { start(SERVER_MODE_ECHO, 4, 5000); }
static void stop(void) { server_stop(srv); }

TestSuite(server, .init = start_app, .fini = stop, .timeout = 60);

static void expect_search(int fd, const char *value)
{
    struct client_response resp;
    char expected[512];
    ts_expected_search(value, expected, sizeof expected);
    cr_assert_eq(ts_search(fd, value, &resp), 0, "search '%s' should get a response", value);
    cr_assert(ts_content_is(&resp, expected), "search '%s': expected %s, got %.*s", value,
              expected, (int)resp.length, resp.content);
    client_response_free(&resp);
}

static bool peer_closed(int fd)
{
    char c;
    return recv(fd, &c, 1, 0) == 0;
}

Test(server, answers_every_search_on_one_connection)
{
    int fd = ts_connect(port);
    cr_assert_geq(fd, 0);
    expect_search(fd, "morpheus");
    expect_search(fd, "ring");
    expect_search(fd, "\xf0\x9f\x90\xb6");
    expect_search(fd, "nothing here");
    close(fd);
}

Test(server, answers_binary_requests)
{
    int fd = ts_connect(port);
    struct client_response resp;
    char err[256];
    cr_assert_eq(client_exchange(fd, PROTO_CLIENT_BINARY_TYPE, PROTO_BINARY, "getsomething", 12,
                                 1 << 20, ts_deadline(), &resp, err, sizeof err),
                 0, "%s", err);
    cr_assert_str_eq(resp.header.content_type, PROTO_SERVER_BINARY_TYPE);
    cr_assert_eq(resp.length, 37);
    cr_assert(memcmp(resp.content, "First 10 bytes of request: getsomethi", 37) == 0);
    client_response_free(&resp);
    close(fd);
}

Test(server, carries_1000_requests_on_one_connection)
{
    int fd = ts_connect(port);
    const char *values[] = {"morpheus", "ring", "x"};
    for (int i = 0; i < 1000; i++)
        expect_search(fd, values[i % 3]);
    close(fd);
}

Test(server, serves_clients_that_close_after_one_response)
{
    for (int i = 0; i < 50; i++) {
        int fd = ts_connect(port);
        cr_assert_geq(fd, 0, "connection %d", i);
        expect_search(fd, "ring");
        close(fd);
    }
}

#define CLIENTS 24
#define PER_CLIENT 25

static atomic_int client_failures;

static void *client_thread(void *arg)
{
    (void)arg;
    int fd = ts_connect(port);
    if (fd < 0) {
        atomic_fetch_add(&client_failures, 1);
        return NULL;
    }
    for (int i = 0; i < PER_CLIENT; i++) {
        struct client_response resp;
        char expected[256];
        ts_expected_search(i % 2 ? "morpheus" : "zion", expected, sizeof expected);
        if (ts_search(fd, i % 2 ? "morpheus" : "zion", &resp) < 0 ||
            !ts_content_is(&resp, expected))
            atomic_fetch_add(&client_failures, 1);
        client_response_free(&resp);
    }
    close(fd);
    return NULL;
}

Test(server, answers_more_concurrent_clients_than_workers)
{
    pthread_t t[CLIENTS];
    for (int i = 0; i < CLIENTS; i++)
        pthread_create(&t[i], NULL, client_thread, NULL);
    for (int i = 0; i < CLIENTS; i++)
        pthread_join(t[i], NULL);
    cr_assert_eq(atomic_load(&client_failures), 0,
                 "%d of %d requests failed with %d clients on 4 workers",
                 atomic_load(&client_failures), CLIENTS * PER_CLIENT, CLIENTS);
}

Test(server, answers_pipelined_requests_in_order)
{
    enum { N = 20 };
    static uint8_t burst[N * 256];
    size_t len = 0;
    for (int i = 0; i < N; i++) {
        char value[16], *content;
        snprintf(value, sizeof value, "v%d", i);
        content = client_search_content("search", value);
        len += (size_t)frame_encode_header(burst + len, PROTO_TEXT_JSON, PROTO_UTF8, strlen(content));
        memcpy(burst + len, content, strlen(content));
        len += strlen(content);
        free(content);
    }
    int fd = ts_connect(port);
    cr_assert_eq(net_write_full(fd, burst, len), 0, "all %d requests go out in one write", N);
    for (int i = 0; i < N; i++) {
        struct client_response resp;
        char err[256], value[16], expected[128];
        snprintf(value, sizeof value, "v%d", i);
        ts_expected_search(value, expected, sizeof expected);
        cr_assert_eq(client_read_response(fd, 1 << 20, ts_deadline(), &resp, err, sizeof err), 0, "%s", err);
        cr_assert(ts_content_is(&resp, expected), "response %d out of order: %.*s", i,
                  (int)resp.length, resp.content);
        client_response_free(&resp);
    }
    close(fd);
}

/* Sends raw bytes, reads one response, and checks its error code. */
static void expect_error_then_close(const uint8_t *bytes, size_t len, const char *code)
{
    int fd = ts_connect(port);
    cr_assert_eq(net_write_full(fd, bytes, len), 0);
    struct client_response resp;
    char err[256];
    cr_assert_eq(client_read_response(fd, 1 << 20, ts_deadline(), &resp, err, sizeof err), 0,
                 "a malformed request must still get an answer: %s", err);
    char want[64];
    snprintf(want, sizeof want, "\"error\": \"%s\"", code);
    cr_assert(memmem(resp.content, resp.length, want, strlen(want)),
              "expected error %s, got %.*s", code, (int)resp.length, resp.content);
    cr_assert(memmem(resp.content, resp.length, "\"result\": \"Error: ", 18));
    client_response_free(&resp);
    cr_assert(peer_closed(fd), "the server closes once framing cannot be trusted");
    close(fd);
    /* ...and goes on serving everyone else. */
    int good = ts_connect(port);
    expect_search(good, "morpheus");
    close(good);
}

Test(server, answers_a_header_that_is_not_json_then_closes)
{
    uint8_t buf[256];
    size_t n = ts_frame(buf, sizeof buf, "{not json}", NULL, 0);
    expect_error_then_close(buf, n, "bad-json");
}

Test(server, answers_a_header_missing_a_key_then_closes)
{
    uint8_t buf[256];
    size_t n = ts_frame(buf, sizeof buf,
                        "{\"byteorder\": \"little\", \"content-type\": \"text/json\", "
                        "\"content-encoding\": \"utf-8\"}",
                        NULL, 0);
    expect_error_then_close(buf, n, "bad-header");
}

Test(server, answers_a_zero_length_proto_header_then_closes)
{
    const uint8_t zero[] = {0, 0, 'x'};
    expect_error_then_close(zero, sizeof zero, "bad-proto-header");
}

Test(server, refuses_too_large_content_without_reading_it)
{
    static uint8_t buf[65536 + 256];
    size_t n = ts_frame(buf, sizeof buf,
                        "{\"byteorder\": \"little\", \"content-type\": \"binary/x\", "
                        "\"content-encoding\": \"binary\", \"content-length\": 2000000}",
                        NULL, 0);
    /* Part of the oversized body follows the header, as a real client
     * would keep sending it: the answer must still reach us. */
    memset(buf + n, 'z', 65536);
    expect_error_then_close(buf, n + 65536, "too-large");
}

Test(server, answers_bad_content_and_keeps_the_connection)
{
    int fd = ts_connect(port);
    struct client_response resp;
    char err[256];
    cr_assert_eq(client_exchange(fd, PROTO_TEXT_JSON, PROTO_UTF8, "{oops", 5, 1 << 20, ts_deadline(), &resp, err,
                                 sizeof err),
                 0, "%s", err);
    cr_assert(memmem(resp.content, resp.length, "\"error\": \"bad-content\"", 22));
    client_response_free(&resp);
    expect_search(fd, "ring"); /* framing was fine, so the connection lives on */
    close(fd);
}

Test(server, accepts_a_request_dribbled_one_byte_at_a_time)
{
    uint8_t buf[FRAME_ENCODED_HEADER_MAX + 256];
    char *content = client_search_content("search", "morpheus");
    size_t n = (size_t)frame_encode_header(buf, PROTO_TEXT_JSON, PROTO_UTF8, strlen(content));
    memcpy(buf + n, content, strlen(content));
    n += strlen(content);
    free(content);
    int fd = ts_connect(port);
    net_set_nodelay(fd);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(net_write_full(fd, buf + i, 1), 0);
    struct client_response resp;
    char err[256], expected[256];
    cr_assert_eq(client_read_response(fd, 1 << 20, ts_deadline(), &resp, err, sizeof err), 0, "%s", err);
    ts_expected_search("morpheus", expected, sizeof expected);
    cr_assert(ts_content_is(&resp, expected));
    client_response_free(&resp);
    close(fd);
}

Test(server, answers_after_the_client_half_closes)
{
    int fd = ts_connect(port);
    char *content = client_search_content("search", "ring");
    cr_assert_gt(frame_io_send(fd, PROTO_TEXT_JSON, PROTO_UTF8, content, strlen(content), 0), 0);
    free(content);
    shutdown(fd, SHUT_WR);
    struct client_response resp;
    char err[256], expected[256];
    cr_assert_eq(client_read_response(fd, 1 << 20, ts_deadline(), &resp, err, sizeof err), 0, "%s", err);
    ts_expected_search("ring", expected, sizeof expected);
    cr_assert(ts_content_is(&resp, expected));
    client_response_free(&resp);
    cr_assert(peer_closed(fd));
    close(fd);
}

Test(server_idle, closes_a_connection_idle_past_the_timeout, .init = start_app_short_idle,
     .fini = stop, .timeout = 30)
{
    int fd = ts_connect(port);
    expect_search(fd, "ring");
    long long t0 = ts_now_ms();
    cr_assert(peer_closed(fd), "an idle connection is closed by the server");
    long long waited = ts_now_ms() - t0;
    cr_assert_geq(waited, 150, "not before the idle timeout (waited %lld ms)", waited);
    close(fd);
}

Test(server_idle, frees_workers_from_clients_that_never_send, .init = start_app_short_idle,
     .fini = stop, .timeout = 30)
{
    /* Two workers, three silent clients: the idle timeout frees the
     * workers so a good client is still served. */
    int silent[3];
    for (int i = 0; i < 3; i++)
        silent[i] = ts_connect(port);
    int fd = ts_connect(port);
    expect_search(fd, "morpheus");
    close(fd);
    for (int i = 0; i < 3; i++)
        close(silent[i]);
}

/* --- echo mode ------------------------------------------------------------ */

TestSuite(echo, .init = start_echo, .fini = stop, .timeout = 60);

Test(echo, sends_back_a_mebibyte_unchanged)
{
    size_t len = 1 << 20;
    uint8_t *out = malloc(len), *in = malloc(len);
    for (size_t i = 0; i < len; i++)
        out[i] = (uint8_t)(i * 7 + (i >> 11));
    int fd = ts_connect(port);
    /* Write and read at once, or both sides' buffers fill and stall. */
    struct ts_writer w = {fd, out, len, -1};
    pthread_t t;
    pthread_create(&t, NULL, ts_write_all, &w);
    enum stream_read r = stream_read_full(&(struct stream){.fd = fd}, in, len, ts_deadline());
    pthread_join(t, NULL);
    cr_assert_eq(w.rc, 0);
    cr_assert_eq(r, STREAM_READ_OK);
    cr_assert(memcmp(in, out, len) == 0, "every byte must come back in order");
    shutdown(fd, SHUT_WR);
    cr_assert(peer_closed(fd), "the server closes after the client does");
    close(fd);
    free(out);
    free(in);
}

Test(echo, multiconn_gets_every_byte_back)
{
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    struct net_endpoint ep = {.host = "127.0.0.1", .port = p};
    cr_assert_eq(multiconn_run(&ep, 10, ts_deadline()), 0);
}

/* --- the binaries ---------------------------------------------------------- */


Test(cli, searches_and_prints_the_result, .init = start_app, .fini = stop, .timeout = 60)
{
    char out[4096];
    const char *bin = ts_bin_dir();
    cr_assert_eq(ts_run(out, sizeof out, "%s/enchufe-cli --port %d search morpheus", bin, port), 0,
                 "%s", out);
    cr_assert_str_eq(out, "Got result: Follow the white rabbit. \xf0\x9f\x90\xb0\n");
    cr_assert_eq(ts_run(out, sizeof out, "%s/enchufe-cli --port %d search '\xf0\x9f\x90\xb6'", bin,
                     port),
                 0);
    cr_assert_str_eq(out, "Got result: \xf0\x9f\x90\xbe Playing ball! \xf0\x9f\x8f\x90\n");
    cr_assert_eq(ts_run(out, sizeof out, "%s/enchufe-cli -v -v --port %d search ring", bin, port), 0);
    cr_assert(strstr(out, "trace: sending to server: ") && strstr(out, "00 ") &&
                  strstr(out, "|.") && strstr(out, "trace: received from server"),
              "-v -v shows a wire trace: %s", out);
    cr_assert_eq(ts_run(out, sizeof out, "%s/enchufe-cli --port %d get \"it's\"", bin, port), 0);
    cr_assert_str_eq(out, "Got response: b\"First 10 bytes of request: getit's\"\n");
}

Test(cli, runs_echo_and_multiconn, .init = start_echo, .fini = stop, .timeout = 60)
{
    char out[8192];
    const char *bin = ts_bin_dir();
    cr_assert_eq(ts_run(out, sizeof out, "%s/enchufe-cli --port %d echo 'Hello, world'", bin, port),
                 0, "%s", out);
    cr_assert_str_eq(out, "Received b'Hello, world'\n");
    cr_assert_eq(ts_run(out, sizeof out, "%s/enchufe-cli --port %d multiconn 3", bin, port), 0,
                 "%s", out);
    cr_assert(strstr(out, "Connection 3: sent 44 bytes, received 44 bytes: ok"), "%s", out);
    cr_assert(strstr(out, "3 of 3 connections got every byte back"), "%s", out);
}

Test(cli, reports_a_refused_connection_with_exit_1, .timeout = 30)
{
    /* A port we know is closed: bind one, read it, close it. */
    char err[128];
    int fd = net_listen("127.0.0.1", "0", 1, err, sizeof err);
    int closed_port = net_local_port(fd);
    close(fd);
    char out[4096];
    cr_assert_eq(ts_run(out, sizeof out, "%s/enchufe-cli --port %d search ring", ts_bin_dir(),
                     closed_port),
                 1);
    cr_assert(strstr(out, "Connection refused"), "%s", out);
    cr_assert(strstr(out, "is the server running"), "%s", out);
}

Test(cli, exits_2_on_bad_usage_and_0_on_help, .timeout = 30)
{
    char out[4096];
    const char *bin = ts_bin_dir();
    cr_assert_eq(ts_run(out, sizeof out, "%s/enchufe-cli --help", bin), 0);
    cr_assert(strstr(out, "Usage: enchufe-cli"));
    cr_assert_eq(ts_run(out, sizeof out, "%s/enchufe-cli --version", bin), 0);
    cr_assert(strstr(out, "enchufe-cli 0."));
    cr_assert_eq(ts_run(out, sizeof out, "%s/enchufe-cli search", bin), 2);
    cr_assert_eq(ts_run(out, sizeof out, "%s/enchufe-cli --port 70000 search x", bin), 2);
    cr_assert_eq(ts_run(out, sizeof out, "%s/enchufe-cli multiconn lots", bin), 2);
}

Test(server_binary, validates_its_options, .timeout = 30)
{
    char out[4096];
    const char *bin = ts_bin_dir();
    cr_assert_eq(ts_run(out, sizeof out, "%s/enchufe-server --help", bin), 0);
    cr_assert(strstr(out, "--idle-timeout"));
    cr_assert_eq(ts_run(out, sizeof out, "%s/enchufe-server --version", bin), 0);
    cr_assert_eq(ts_run(out, sizeof out, "%s/enchufe-server --workers 0", bin), 2);
    cr_assert(strstr(out, "--workers"), "%s", out);
    cr_assert_eq(ts_run(out, sizeof out, "%s/enchufe-server --mode chat", bin), 2);
    cr_assert_eq(ts_run(out, sizeof out, "%s/enchufe-server --port 80x", bin), 2);
}

Test(server_binary, exits_1_naming_the_address_when_the_port_is_taken, .timeout = 30)
{
    char err[128], out[4096];
    int fd = net_listen("127.0.0.1", "0", 1, err, sizeof err);
    int taken = net_local_port(fd);
    cr_assert_eq(ts_run(out, sizeof out, "%s/enchufe-server --port %d", ts_bin_dir(), taken), 1);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", taken);
    cr_assert(strstr(out, addr), "%s", out);
    cr_assert(strstr(out, "Address already in use"), "%s", out);
    close(fd);
}

/* Sends the first `split` bytes of a search request for value. */
static int start_request(int p, const char *value, uint8_t *rest, size_t *rest_len)
{
    uint8_t buf[FRAME_ENCODED_HEADER_MAX + 256];
    char *content = client_search_content("search", value);
    size_t n = (size_t)frame_encode_header(buf, PROTO_TEXT_JSON, PROTO_UTF8, strlen(content));
    memcpy(buf + n, content, strlen(content));
    n += strlen(content);
    free(content);
    int fd = ts_connect(p);
    size_t split = n / 2;
    if (fd >= 0 && net_write_full(fd, buf, split) < 0)
        return -1;
    memcpy(rest, buf + split, n - split);
    *rest_len = n - split;
    return fd;
}

Test(server_binary, sigterm_lets_requests_in_progress_finish, .timeout = 60)
{
    enum { INFLIGHT = 8, SILENT = 2 };
    int p, err_fd;
    const char *args[] = {"--workers", "4", "-v", NULL};
    pid_t pid = ts_spawn_server(ts_bin_dir(), args, &p, &err_fd);
    cr_assert_gt(pid, 0, "the server binary should start");
    int fds[INFLIGHT + SILENT];
    uint8_t rest[INFLIGHT][256];
    size_t rest_len[INFLIGHT];
    for (int i = 0; i < INFLIGHT; i++) {
        fds[i] = start_request(p, i % 2 ? "ring" : "morpheus", rest[i], &rest_len[i]);
        cr_assert_geq(fds[i], 0);
    }
    for (int i = INFLIGHT; i < INFLIGHT + SILENT; i++)
        fds[i] = ts_connect(p);
    for (int i = 0; i < INFLIGHT + SILENT; i++)
        cr_assert(ts_wait_for_line(err_fd, "Accepted connection", 5000),
                  "connection %d should be accepted before the signal", i);

    kill(pid, SIGTERM);
    cr_assert(ts_wait_for_line(err_fd, "Received SIGTERM", 5000));
    /* New connections are refused while the old ones drain. */
    bool refused = false;
    for (int tries = 0; tries < 200 && !refused; tries++) {
        int fd = ts_connect(p);
        refused = fd < 0;
        if (fd >= 0) {
            close(fd);
            usleep(10000);
        }
    }
    cr_assert(refused, "the listener closes at SIGTERM");

    /* Every request is completed before any answer is read: the server
     * promises to answer each, not in which order (with parking a
     * connection can wait in the queue behind another). */
    for (int i = 0; i < INFLIGHT; i++)
        cr_assert_eq(net_write_full(fds[i], rest[i], rest_len[i]), 0);
    for (int i = 0; i < INFLIGHT; i++) {
        struct client_response resp;
        char err[256], expected[256];
        cr_assert_eq(client_read_response(fds[i], 1 << 20, ts_deadline(), &resp, err, sizeof err), 0,
                     "request %d in progress at SIGTERM must be answered: %s", i, err);
        ts_expected_search(i % 2 ? "ring" : "morpheus", expected, sizeof expected);
        cr_assert(ts_content_is(&resp, expected));
        client_response_free(&resp);
        cr_assert(peer_closed(fds[i]), "then the connection is closed");
    }
    for (int i = INFLIGHT; i < INFLIGHT + SILENT; i++)
        cr_assert(peer_closed(fds[i]), "a connection with no request is closed");
    cr_assert_eq(ts_wait_exit(pid, 15000), 0, "the server exits 0 after draining");
    for (int i = 0; i < INFLIGHT + SILENT; i++)
        close(fds[i]);
    close(err_fd);
}

Test(server_binary, ignores_sigpipe_from_a_vanished_client, .timeout = 60)
{
    int p, err_fd;
    const char *args[] = {"--mode", "echo", NULL};
    pid_t pid = ts_spawn_server(ts_bin_dir(), args, &p, &err_fd);
    cr_assert_gt(pid, 0);
    static uint8_t junk[1 << 20];
    for (int i = 0; i < 20; i++) {
        int fd = ts_connect(p);
        /* Send a lot, read nothing, vanish with a reset: the server's
         * echo write then hits a dead socket. */
        send(fd, junk, sizeof junk, MSG_DONTWAIT | MSG_NOSIGNAL);
        struct linger lg = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close(fd);
    }
    int fd = ts_connect(p);
    cr_assert_geq(fd, 0, "the server is still alive");
    cr_assert_eq(net_write_full(fd, "ping", 4), 0);
    char back[4];
    cr_assert_eq(stream_read_full(&(struct stream){.fd = fd}, back, 4, ts_deadline()), STREAM_READ_OK);
    close(fd);
    kill(pid, SIGINT);
    cr_assert_eq(ts_wait_exit(pid, 15000), 0);
    close(err_fd);
}

/* --- stats ----------------------------------------------------------------- */

static json_t *fetch_stats(int fd)
{
    const char *content = "{\"action\": \"stats\"}";
    struct client_response resp;
    char err[256];
    cr_assert_eq(client_exchange(fd, PROTO_TEXT_JSON, PROTO_UTF8, content, strlen(content), 1 << 20,
                                 ts_deadline(), &resp, err, sizeof err),
                 0, "%s", err);
    json_t *obj = json_loadb((const char *)resp.content, resp.length, 0, NULL);
    client_response_free(&resp);
    json_t *stats = json_incref(json_object_get(obj, "result"));
    json_decref(obj);
    cr_assert(json_is_object(stats), "a stats answer holds an object");
    return stats;
}

static long long counter(json_t *stats, const char *group, const char *name)
{
    return json_integer_value(json_object_get(json_object_get(stats, group), name));
}

Test(server, stats_counters_move_by_exactly_what_was_sent)
{
    int fd = ts_connect(port);
    json_t *before = fetch_stats(fd);
    const char *values[] = {"ring", "morpheus", "ring", "a", "b"};
    for (int i = 0; i < 5; i++)
        expect_search(fd, values[i]);
    struct client_response resp;
    char err[256];
    cr_assert_eq(client_exchange(fd, PROTO_CLIENT_BINARY_TYPE, PROTO_BINARY, "xyz", 3, 1 << 20, ts_deadline(), &resp,
                                 err, sizeof err), 0);
    client_response_free(&resp);
    cr_assert_eq(client_exchange(fd, PROTO_TEXT_JSON, PROTO_UTF8, "{oops", 5, 1 << 20, ts_deadline(), &resp, err,
                                 sizeof err), 0);
    client_response_free(&resp);
    json_t *after = fetch_stats(fd);
    struct { const char *group, *name; long long delta; } want[] = {
        {"requests", "search_hit", 3}, {"requests", "search_miss", 2},
        {"requests", "binary", 1},     {"requests", "stats", 1},
        {"requests", "total", 8},      {"errors", "bad-content", 1},
        {"errors", "bad-json", 0},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        long long d = counter(after, want[i].group, want[i].name) -
                      counter(before, want[i].group, want[i].name);
        cr_assert_eq(d, want[i].delta, "%s.%s moved by %lld, not %lld", want[i].group,
                     want[i].name, d, want[i].delta);
    }
    cr_assert_gt(counter(after, "bytes", "in"), counter(before, "bytes", "in"));
    cr_assert_geq(counter(after, "connections", "accepted"), 1);
    json_decref(before);
    json_decref(after);
    close(fd);
}
