/*
 * test_slow.c - no client, however slow or silent, holds a worker.
 *
 * Each `siege` test holds 32 hostile connections of one kind (the engine
 * of enchufe-bench --hostile, bench/siege.h) against a server with two
 * workers, and checks that good clients, each on a new connection, in
 * clear and in TLS, are answered within a bound while the hostile ones
 * stay open. With a worker per waiting client, as before, two of them
 * would be enough to starve every good client for the read timeout.
 *
 * Then: every deadline fires and is counted by its reason; the memory
 * budget (--max-buffered) holds with clients that each send part of a
 * large request and stall; and a stop answers requests that were parked
 * half-read, when their rest arrives during the drain.
 */
#include "client.h"
#include "net.h"
#include "server.h"
#include "siege.h"
#include "snapshot.h"
#include "support.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define HOSTILE 32
#define GOOD_REQUESTS 20
/* Far above what a good request takes (well under a millisecond), far
 * below the 30 s a held worker would make it wait. */
#define GOOD_BOUND_MS 2000
#define DRIP_MS 100

static struct server *srv;
static struct server_config cfg;
static int port, tls_port;
static SSL_CTX *client_ctx;

static void start_with(enum server_mode mode)
{
    json_object_seed(0);
    server_config_defaults(&cfg);
    cfg.workers = 2;
    cfg.mode = mode;
    ts_tls_config(&cfg);
    port = ts_start(&srv, &cfg);
    cr_assert_gt(port, 0, "the server starts");
    tls_port = server_tls_port(srv);
    client_ctx = ts_tls_client(NULL);
    cr_assert_not_null(client_ctx, "the test PKI (make build/tls/server.pem)");
}

static void start_app(void) { start_with(SERVER_MODE_APP); }
static void start_echo(void) { start_with(SERVER_MODE_ECHO); }

static void stop(void)
{
    server_stop(srv);
    SSL_CTX_free(client_ctx);
}

/* Holds n hostile connections of a kind against the port in clear, or
 * the TLS port (tls). */
static struct siege *besiege(enum siege_kind kind, int n, bool tls, bool echo)
{
    char portstr[16], err[256];
    snprintf(portstr, sizeof portstr, "%d", tls ? tls_port : port);
    struct siege_config sc = {.host = "127.0.0.1", .port = portstr, .tls = tls ? client_ctx : NULL,
                              .tls_name = "localhost", .echo = echo, .drip_ms = DRIP_MS};
    sc.count[kind] = n;
    struct siege *s = siege_start(&sc, err, sizeof err);
    cr_assert_not_null(s, "the hostile connections start: %s", err);
    siege_wait_open(s, 10000);
    struct siege_stats st;
    siege_stats(s, &st);
    cr_assert_eq(st.kind[kind].open, n, "all %d %s connections are open (%d)", n,
                 siege_kind_name(kind), st.kind[kind].open);
    usleep(200 * 1000); /* let them reach the server and stall */
    return s;
}

/* One search on a new connection; ms it took, or -1. */
static long long one_good_request(bool tls)
{
    long long t0 = ts_now_ms();
    struct client_response resp;
    char expected[256], err[256];
    ts_expected_search("morpheus", expected, sizeof expected);
    struct stream s = {.fd = -1};
    if (tls) {
        if (ts_tls_open(client_ctx, tls_port, &s, err, sizeof err) < 0)
            return -1;
    } else if ((s.fd = ts_connect(port)) < 0) {
        return -1;
    }
    bool ok = ts_search_on(&s, "morpheus", &resp) == 0 && ts_content_is(&resp, expected);
    if (ok)
        client_response_free(&resp);
    client_close(&s);
    return ok ? ts_now_ms() - t0 : -1;
}

/* Good clients in clear and in TLS, each answered within the bound. */
static void good_clients_are_served(const char *what)
{
    long long worst = 0;
    for (int i = 0; i < GOOD_REQUESTS; i++) {
        bool tls = i % 4 == 3;
        long long ms = one_good_request(tls);
        cr_assert_geq(ms, 0, "with %s held: good request %d (%s) answered", what, i,
                      tls ? "TLS" : "clear");
        cr_assert_lt(ms, GOOD_BOUND_MS, "with %s held: good request %d took %lld ms", what, i,
                     ms);
        if (ms > worst)
            worst = ms;
    }
    fprintf(stderr, "siege: %d %s held, 2 workers: %d good requests, slowest %lld ms\n",
            HOSTILE, what, GOOD_REQUESTS, worst);
}

/* The hostile connections are all still open: the server kept serving
 * without having to close them (their timeouts are 30 s). */
static void still_held(struct siege *s, enum siege_kind kind)
{
    struct siege_stats st;
    siege_stats(s, &st);
    cr_assert_eq(st.kind[kind].closed_by_server, 0,
                 "the server closed %llu %s connections it had no need to close",
                 (unsigned long long)st.kind[kind].closed_by_server, siege_kind_name(kind));
    siege_stop(s);
}

static void siege_test(enum siege_kind kind, bool tls, const char *what)
{
    struct siege *s = besiege(kind, HOSTILE, tls, cfg.mode == SERVER_MODE_ECHO);
    good_clients_are_served(what);
    still_held(s, kind);
}

TestSuite(siege, .init = start_app, .fini = stop, .timeout = 90);

Test(siege, silent_connections)
{
    siege_test(SIEGE_SILENT, false, "silent connections");
}

Test(siege, silent_connections_on_the_tls_port)
{
    siege_test(SIEGE_SILENT, true, "silent connections on the TLS port");
}

Test(siege, half_a_client_hello)
{
    siege_test(SIEGE_HALF_HANDSHAKE, true, "half ClientHellos");
}

Test(siege, a_tls_handshake_then_one_byte)
{
    siege_test(SIEGE_TLS_STALL, true, "stalled TLS records");
}

Test(siege, slowloris)
{
    siege_test(SIEGE_SLOWLORIS, false, "slowloris clients");
}

Test(siege, slowloris_over_tls)
{
    siege_test(SIEGE_SLOWLORIS, true, "slowloris clients over TLS");
}

Test(siege, header_dribble)
{
    siege_test(SIEGE_HEADER_DRIBBLE, false, "header dribblers");
}

Test(siege, content_dribble)
{
    siege_test(SIEGE_CONTENT_DRIBBLE, false, "content dribblers");
}

Test(siege, pipelining_clients_that_never_read)
{
    siege_test(SIEGE_NON_READER, false, "non-readers");
}

Test(siege, pipelining_clients_that_never_read_over_tls)
{
    siege_test(SIEGE_NON_READER, true, "non-readers over TLS");
}

Test(siege_echo, echo_clients_that_never_read, .init = start_echo, .fini = stop,
     .timeout = 90)
{
    struct siege *s = besiege(SIEGE_NON_READER, HOSTILE, false, true);
    /* A good echo client: 10 KiB back, each on a new connection. */
    static char out[10240], back[10240];
    memset(out, 'e', sizeof out);
    for (int i = 0; i < GOOD_REQUESTS; i++) {
        long long t0 = ts_now_ms();
        int fd = ts_connect(port);
        cr_assert_geq(fd, 0);
        cr_assert_eq(net_write_full(fd, out, sizeof out), 0);
        struct stream st = {.fd = fd};
        cr_assert_eq(stream_read_full(&st, back, sizeof back, ts_deadline()), STREAM_READ_OK,
                     "echo %d came back whole", i);
        cr_assert_eq(memcmp(out, back, sizeof out), 0);
        close(fd);
        long long ms = ts_now_ms() - t0;
        cr_assert_lt(ms, GOOD_BOUND_MS, "echo %d took %lld ms", i, ms);
    }
    still_held(s, SIEGE_NON_READER);
}

/* --- every deadline fires, and is counted ------------------------------------- */

static void start_short(void)
{
    json_object_seed(0);
    server_config_defaults(&cfg);
    cfg.workers = 2;
    cfg.idle_timeout_ms = 300;
    cfg.read_timeout_ms = 300;
    cfg.write_timeout_ms = 300;
    ts_tls_config(&cfg);
    port = ts_start(&srv, &cfg);
    cr_assert_gt(port, 0);
    tls_port = server_tls_port(srv);
    client_ctx = ts_tls_client(NULL);
}

static uint64_t ended(enum conn_end why)
{
    struct snapshot snap;
    server_snapshot(srv, &snap);
    return snap.ended[why];
}

/* Waits (bounded) until the server has counted n ends for this reason. */
static bool counted(enum conn_end why, uint64_t n)
{
    for (int i = 0; i < 300 && ended(why) < n; i++)
        usleep(10 * 1000);
    return ended(why) >= n;
}

TestSuite(deadline, .init = start_short, .fini = stop, .timeout = 60);

Test(deadline, a_silent_new_connection_meets_the_idle_timeout)
{
    int fd = ts_connect(port);
    cr_assert(ts_closed_within(fd, 3000), "closed at the idle timeout");
    close(fd);
    cr_assert(counted(CONN_END_IDLE_TIMEOUT, 1), "counted as idle_timeout");
}

Test(deadline, an_idle_connection_between_requests_meets_the_idle_timeout)
{
    int fd = ts_connect(port);
    struct client_response resp;
    cr_assert_eq(ts_search(fd, "ring", &resp), 0);
    client_response_free(&resp);
    cr_assert(ts_closed_within(fd, 3000), "closed at the idle timeout");
    close(fd);
    cr_assert(counted(CONN_END_IDLE_TIMEOUT, 1), "counted as idle_timeout");
}

Test(deadline, a_stalled_handshake_meets_the_read_timeout)
{
    int fd = ts_connect(tls_port);
    cr_assert(ts_closed_within(fd, 3000), "a TLS connection that says nothing is closed");
    close(fd);
    cr_assert(counted(CONN_END_HANDSHAKE_TIMEOUT, 1), "counted as handshake_timeout");
    struct snapshot snap;
    server_snapshot(srv, &snap);
    cr_assert_geq(snap.tls_failed[TLS_FAIL_TIMEOUT], 1, "and as a TLS handshake timeout");
}

Test(deadline, a_partial_request_meets_the_read_timeout_from_its_first_byte)
{
    int fd = ts_connect(port);
    const char *req = "\x00\x60{\"byteorder\": \"little\"";
    char code[64] = "";
    /* A byte every 50 ms: each is quick, the request never ends. */
    long long t0 = ts_now_ms();
    for (int i = 0; i < 60 && code[0] == '\0'; i++) {
        if (send(fd, req + (i % 20), 1, MSG_NOSIGNAL) != 1)
            break;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 50) > 0)
            ts_read_error_code(fd, code, sizeof code);
    }
    long long took = ts_now_ms() - t0;
    cr_assert_str_eq(code, "timeout", "the dribbling client is told it took too long");
    cr_assert_lt(took, 2000, "told after %lld ms: the deadline runs from the first byte", took);
    close(fd);
    cr_assert(counted(CONN_END_READ_TIMEOUT, 1), "counted as read_timeout");
}

Test(deadline, a_client_that_never_reads_meets_the_write_timeout)
{
    struct siege *s = besiege(SIEGE_NON_READER, 4, false, false);
    cr_assert(counted(CONN_END_WRITE_TIMEOUT, 4), "the answers nobody reads time out (%llu)",
              (unsigned long long)ended(CONN_END_WRITE_TIMEOUT));
    /* The server counts a close before the siege's loop sees it: wait
     * (bounded) for the siege to notice. */
    struct siege_stats st;
    siege_stats(s, &st);
    for (int i = 0; i < 300 && st.kind[SIEGE_NON_READER].closed_by_server < 4; i++) {
        usleep(10 * 1000);
        siege_stats(s, &st);
    }
    cr_assert_geq(st.kind[SIEGE_NON_READER].closed_by_server, 4,
                  "and the server closed them (the siege saw %llu)",
                  (unsigned long long)st.kind[SIEGE_NON_READER].closed_by_server);
    siege_stop(s);
}

/* --- the memory budget ------------------------------------------------------- */

static void start_budget(void)
{
    json_object_seed(0);
    server_config_defaults(&cfg);
    cfg.workers = 2;
    cfg.max_buffered = 512 << 10;
    port = ts_start(&srv, &cfg);
    cr_assert_gt(port, 0);
    client_ctx = NULL;
}

static void stop_budget(void) { server_stop(srv); }

/* Connects and sends a header promising 1 MiB, then `part` bytes of it. */
static int send_part_of_a_big_request(size_t part)
{
    static char content[1 << 20];
    int fd = ts_connect(port);
    if (fd < 0)
        return -1;
    char header[256];
    snprintf(header, sizeof header,
             "{\"byteorder\": \"little\", \"content-type\": \"binary/x\", "
             "\"content-encoding\": \"binary\", \"content-length\": %zu}",
             sizeof content);
    uint8_t frame[512];
    size_t n = ts_frame(frame, sizeof frame, header, NULL, 0);
    if (net_write_full(fd, frame, n) < 0 || net_write_full(fd, content, part) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

Test(budget, partial_requests_never_hold_more_than_the_budget, .init = start_budget,
     .fini = stop_budget, .timeout = 60)
{
    enum { N = 32, PART = 64 << 10 }; /* 2 MiB sent in all, four times the budget */
    int fds[N];
    size_t most = 0;
    for (int i = 0; i < N; i++) {
        fds[i] = send_part_of_a_big_request(PART);
        cr_assert_geq(fds[i], 0);
        usleep(20 * 1000); /* parked before the next one comes */
        struct snapshot snap;
        server_snapshot(srv, &snap);
        if (snap.buffered > most)
            most = snap.buffered;
    }
    usleep(200 * 1000);
    struct snapshot snap;
    server_snapshot(srv, &snap);
    /* The poller sheds past the budget; a park past it by a quarter is
     * refused outright. */
    size_t bound = cfg.max_buffered + cfg.max_buffered / 4;
    fprintf(stderr, "budget: %d clients sent %d KiB each of a 1 MiB request: held at most "
                    "%zu KiB (budget %zu KiB), now %llu KiB, %llu shed\n",
            N, PART >> 10, most >> 10, cfg.max_buffered >> 10,
            (unsigned long long)snap.buffered >> 10,
            (unsigned long long)snap.ended[CONN_END_SHED]);
    cr_assert_leq(most, bound, "held %zu bytes, the budget is %zu", most, cfg.max_buffered);
    cr_assert_leq(snap.buffered, cfg.max_buffered, "back within the budget");
    cr_assert_geq(snap.ended[CONN_END_SHED], N - (int)(cfg.max_buffered / PART) - 1,
                  "the connections holding buffers longest were closed");
    cr_assert(ts_closed_within(fds[0], 1000), "the oldest one is closed");
    int fd = ts_connect(port);
    struct client_response resp;
    cr_assert_eq(ts_search(fd, "ring", &resp), 0, "a good client is served");
    client_response_free(&resp);
    close(fd);
    for (int i = 0; i < N; i++)
        close(fds[i]);
}

Test(budget_binary, thousands_promising_a_mebibyte_stay_within_the_budget, .timeout = 120)
{
    enum { N = 800, PART = 64 << 10 }; /* 50 MiB sent in all */
    net_raise_fd_limit();
    int p, err_fd;
    const char *args[] = {"--max-buffered", "2097152", NULL};
    pid_t pid = ts_spawn_server(ts_bin_dir(), args, &p, &err_fd);
    cr_assert_gt(pid, 0);
    port = p;
    for (int i = 0; i < 50; i++) /* warm up allocator arenas and threads */
        close(send_part_of_a_big_request(PART));
    usleep(300 * 1000);
    long rss0 = ts_proc_rss_kib(pid);
    static int fds[N];
    long most = rss0;
    for (int i = 0; i < N; i++) {
        fds[i] = send_part_of_a_big_request(PART);
        if (i % 50 == 49) {
            long rss = ts_proc_rss_kib(pid);
            most = rss > most ? rss : most;
        }
    }
    usleep(300 * 1000);
    long rss1 = ts_proc_rss_kib(pid);
    most = rss1 > most ? rss1 : most;
    fprintf(stderr, "budget (binary): %d clients, %d KiB each of 1 MiB: RSS %ld -> peak %ld "
                    "KiB (budget 2048 KiB)\n", N, PART >> 10, rss0, most);
    /* Beyond the budget: the workers' own buffers, allocator slack. Without
     * a budget it grows by the 50 MiB sent. */
    cr_assert_lt(most - rss0, 2048 + 10240, "RSS grew by %ld KiB for a 2 MiB budget",
                 most - rss0);
    int fd = ts_connect(p);
    struct client_response resp;
    cr_assert_eq(ts_search(fd, "ring", &resp), 0, "a good client is served");
    client_response_free(&resp);
    close(fd);
    for (int i = 0; i < N; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    kill(pid, SIGTERM);
    cr_assert_eq(ts_wait_exit(pid, 15000), 0);
    close(err_fd);
}

/* --- a stop ------------------------------------------------------------------ */

Test(slow_stop, requests_parked_half_read_are_answered_when_their_rest_comes_in_the_drain,
     .timeout = 60)
{
    enum { N = 20 };
    int p, err_fd;
    pid_t pid = ts_spawn_server(ts_bin_dir(), NULL, &p, &err_fd);
    cr_assert_gt(pid, 0);
    uint8_t req[256];
    size_t len = ts_search_request("morpheus", req, sizeof req);
    int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = ts_connect(p);
        cr_assert_eq(net_write_full(fds[i], req, len / 2), 0);
    }
    usleep(200 * 1000); /* each is parked with half a request */
    kill(pid, SIGTERM);
    usleep(200 * 1000); /* the drain has begun */
    for (int i = 0; i < N; i++)
        cr_assert_eq(net_write_full(fds[i], req + len / 2, len - len / 2), 0,
                     "the rest of request %d goes out during the drain", i);
    for (int i = 0; i < N; i++) {
        cr_assert(ts_answer_is(fds[i], "morpheus"), "request %d is answered", i);
        cr_assert(ts_closed_within(fds[i], 3000), "then its connection is closed");
        close(fds[i]);
    }
    cr_assert_eq(ts_wait_exit(pid, 15000), 0, "the server exits 0");
    close(err_fd);
}
