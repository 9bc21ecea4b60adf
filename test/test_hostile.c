/*
 * test_hostile.c - broken, slow and malicious clients, faults and signals.
 *
 * Every test checks two things: what the hostile client got (an error
 * answer or a close), and that a good client is served right after. The
 * in-process server has ONE worker, so "a good client is served" also
 * proves the hostile connection let go of it.
 */
#include "app.h"
#include "client.h"
#include "frame_io.h"
#include "net.h"
#include "server.h"
#include "support.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static struct server *srv;
static struct server_config cfg;
static int port;

static void start_strict(void)
{
    json_object_seed(0);
    server_config_defaults(&cfg);
    cfg.workers = 1;
    cfg.queue_capacity = 4;
    cfg.idle_timeout_ms = 400;
    cfg.read_timeout_ms = 400;
    cfg.write_timeout_ms = 400;
    cfg.max_content = 65536;
    port = ts_start(&srv, &cfg);
    cr_assert_gt(port, 0);
}

static void stop(void) { server_stop(srv); }

TestSuite(hostile, .init = start_strict, .fini = stop, .timeout = 60);

static void good_client_is_served(int p)
{
    int fd = ts_connect(p);
    cr_assert_geq(fd, 0, "a good client can connect");
    struct client_response resp;
    char expected[256];
    ts_expected_search("morpheus", expected, sizeof expected);
    cr_assert_eq(ts_search(fd, "morpheus", &resp), 0, "a good client is answered");
    cr_assert(ts_content_is(&resp, expected), "and correctly");
    client_response_free(&resp);
    close(fd);
}

static void expect_code(int fd, const char *code)
{
    char got[64];
    cr_assert_eq(ts_read_error_code(fd, got, sizeof got), 0, "an error answer should arrive");
    cr_assert_str_eq(got, code);
    cr_assert(ts_closed_within(fd, 3000), "then the server closes the connection");
}

Test(hostile, silent_client_is_closed_at_the_idle_timeout)
{
    int fd = ts_connect(port);
    cr_assert(ts_closed_within(fd, 3000), "a client that never sends is closed");
    close(fd);
    good_client_is_served(port);
}

Test(hostile, slowloris_gets_a_timeout_answer)
{
    int fd = ts_connect(port);
    net_set_nodelay(fd);
    const char *req = "\x00\x60{\"byteorder\": \"little\", \"content-type\": \"text/json\"";
    char code[64] = "";
    /* One byte every 50 ms: each read is quick, the request never ends. */
    for (int i = 0; i < 60 && code[0] == '\0'; i++) {
        if (send(fd, req + (i % 40), 1, MSG_NOSIGNAL) != 1)
            break;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 50) > 0)
            ts_read_error_code(fd, code, sizeof code);
    }
    cr_assert_str_eq(code, "timeout", "the dribbling client is told it took too long");
    close(fd);
    good_client_is_served(port);
}

Test(hostile, client_that_never_reads_is_cut_at_the_write_timeout)
{
    /* Pipeline requests whose answers are large and never read them: the
     * worker blocks writing until the write timeout frees it. */
    static char value[60000];
    memset(value, 'q', sizeof value - 1);
    char *content = client_search_content("search", value);
    size_t len = strlen(content);
    uint8_t head[FRAME_ENCODED_HEADER_MAX];
    int hn = frame_encode_header(head, PROTO_TEXT_JSON, PROTO_UTF8, len);
    int fd = ts_connect(port);
    int bufsize = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufsize, sizeof bufsize);
    for (int i = 0; i < 200; i++) {
        if (send(fd, head, (size_t)hn, MSG_DONTWAIT | MSG_NOSIGNAL) != hn ||
            send(fd, content, len, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)len)
            break;
    }
    free(content);
    good_client_is_served(port);
    close(fd);
}

Test(hostile, bad_content_lengths_are_refused)
{
    const char *lengths[] = {"-1", "4.5", "\"41\"", "1e3", "null"};
    for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
        char header[256];
        snprintf(header, sizeof header,
                 "{\"byteorder\": \"little\", \"content-type\": \"binary/x\", "
                 "\"content-encoding\": \"binary\", \"content-length\": %s}",
                 lengths[i]);
        int fd = ts_connect(port);
        ts_send_raw(fd, header, NULL, 0);
        expect_code(fd, "bad-header");
        close(fd);
    }
    int fd = ts_connect(port);
    ts_send_raw(fd,
                "{\"byteorder\": \"little\", \"content-type\": \"binary/x\", "
                "\"content-encoding\": \"binary\", \"content-length\": 65537}",
                NULL, 0);
    expect_code(fd, "too-large");
    close(fd);
    good_client_is_served(port);
}

Test(hostile, deeply_nested_json_is_refused_not_recursed_into)
{
    static char deep[65000];
    size_t depth = 30000;
    memset(deep, '[', depth);
    memset(deep + depth, ']', depth);
    deep[2 * depth] = '\0';
    int fd = ts_connect(port);
    ts_send_raw(fd, deep, NULL, 0);
    expect_code(fd, "bad-json");
    close(fd);
    /* The same in a request's content: the framing holds, the answer is
     * an error, and the connection goes on. */
    fd = ts_connect(port);
    char header[256];
    snprintf(header, sizeof header,
             "{\"byteorder\": \"little\", \"content-type\": \"text/json\", "
             "\"content-encoding\": \"utf-8\", \"content-length\": %zu}",
             2 * depth);
    ts_send_raw(fd, header, deep, 2 * depth);
    char code[64];
    cr_assert_eq(ts_read_error_code(fd, code, sizeof code), 0);
    cr_assert_str_eq(code, "bad-content");
    close(fd);
    good_client_is_served(port);
}

Test(hostile, reset_in_the_middle_of_a_request)
{
    for (int i = 0; i < 20; i++) {
        int fd = ts_connect(port);
        const char *half = "\x00\x5c{\"byteorder\": \"little\", \"content-";
        net_write_full(fd, half, 30);
        struct linger lg = {1, 0}; /* close with RST, not FIN */
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close(fd);
    }
    good_client_is_served(port);
}

Test(hostile, garbage_bytes_get_an_answer)
{
    int fd = ts_connect(port);
    net_write_full(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27);
    /* "GE" is a header length of 18245: the server waits for it, then
     * gives up at the read timeout and says so. */
    expect_code(fd, "timeout");
    close(fd);
    good_client_is_served(port);
}

/* --- backpressure ---------------------------------------------------------- */

static bool answered_within(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, ms) > 0;
}

static int send_search(int p, const char *value)
{
    int fd = ts_connect(p);
    char *content = client_search_content("search", value);
    frame_io_send(fd, PROTO_TEXT_JSON, PROTO_UTF8, content, strlen(content), 0);
    free(content);
    return fd;
}

static void expect_search_answer(int fd, const char *value)
{
    struct client_response resp;
    char err[256], expected[256];
    cr_assert_eq(client_read_response(fd, 1 << 20, ts_deadline(), &resp, err, sizeof err), 0, "%s", err);
    ts_expected_search(value, expected, sizeof expected);
    cr_assert(ts_content_is(&resp, expected));
    client_response_free(&resp);
}

/* Only a worker that waits on its client can be held by one, so a full
 * queue is made in the textbook mode (--no-park): with the poller nothing
 * a client does holds the worker (test_slow.c). */
static void start_tiny_queue(void)
{
    json_object_seed(0);
    server_config_defaults(&cfg);
    cfg.workers = 1;
    cfg.queue_capacity = 1;
    cfg.park = false;
    port = ts_start(&srv, &cfg);
}

Test(backpressure, full_queue_makes_clients_wait_not_fail, .init = start_tiny_queue,
     .fini = stop, .timeout = 60)
{
    /* A holds the only worker mid-request; B fills the queue; C waits in
     * the kernel's backlog while the acceptor waits for room. */
    int a = ts_connect(port);
    net_write_full(a, "\x00", 1);
    usleep(100 * 1000);
    int b = send_search(port, "ring");
    int c = send_search(port, "morpheus");
    cr_assert_not(answered_within(b, 300), "B waits while the worker is busy");
    cr_assert_not(answered_within(c, 100), "C waits too, and is not dropped");
    close(a); /* frees the worker */
    expect_search_answer(b, "ring");
    close(b); /* a keep-alive connection holds its worker until it closes */
    expect_search_answer(c, "morpheus");
    close(c);
}

/* --- EINTR ------------------------------------------------------------------ */

static void on_signal(int sig) { (void)sig; }
static atomic_bool stop_signalling;

static void *signaller(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20000 && !atomic_load(&stop_signalling); i++) {
        kill(getpid(), SIGUSR1);
        usleep(100);
    }
    return NULL;
}

Test(hostile, every_blocking_call_survives_eintr)
{
    /* No SA_RESTART: every blocking call a signal lands in fails with
     * EINTR, in the server's threads and in ours. */
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    pthread_t t;
    pthread_create(&t, NULL, signaller, NULL);
    int fd = ts_connect(port);
    for (int i = 0; i < 300; i++) {
        struct client_response resp;
        char expected[256];
        const char *v = i % 2 ? "ring" : "nobody";
        ts_expected_search(v, expected, sizeof expected);
        cr_assert_eq(ts_search(fd, v, &resp), 0, "request %d under signals", i);
        cr_assert(ts_content_is(&resp, expected));
        client_response_free(&resp);
    }
    close(fd);
    atomic_store(&stop_signalling, true);
    pthread_join(t, NULL);
    good_client_is_served(port);
}

/* --- the real binary: resource limits, drain, leaks ------------------------- */

static void terminate(pid_t pid, int err_fd)
{
    kill(pid, SIGTERM);
    cr_assert_eq(ts_wait_exit(pid, 15000), 0, "the server exits 0 on SIGTERM");
    close(err_fd);
}

Test(binary_faults, out_of_descriptors_backs_off_without_spinning, .timeout = 60)
{
    int p, err_fd;
    const char *args[] = {"--workers", "4", NULL};
    pid_t pid = ts_spawn_server_limited(ts_bin_dir(), args, RLIMIT_NOFILE, 24, &p, &err_fd);
    cr_assert_gt(pid, 0);
    enum { N = 40 };
    int fds[N];
    for (int i = 0; i < N; i++)
        fds[i] = ts_connect(p); /* the kernel's backlog takes what accept cannot */
    cr_assert(ts_wait_for_line(err_fd, "Too many open files", 5000),
              "the server reports running out of descriptors");
    long cpu0 = ts_proc_cpu_ms(pid);
    usleep(1000 * 1000);
    long used = ts_proc_cpu_ms(pid) - cpu0;
    cr_assert_lt(used, 300, "out of fds for 1 s, the server used %ld ms of CPU", used);
    for (int i = 0; i < N; i++)
        close(fds[i]);
    good_client_is_served(p);
    terminate(pid, err_fd);
}

Test(binary_faults, out_of_memory_is_answered_and_survived, .timeout = 60)
{
    int p, err_fd;
    const char *args[] = {"--workers", "2", "--max-content", "1073741824", NULL};
    pid_t pid = ts_spawn_server_limited(ts_bin_dir(), args, RLIMIT_AS, 400UL << 20, &p, &err_fd);
    cr_assert_gt(pid, 0);
    int fd = ts_connect(p);
    ts_send_raw(fd,
                "{\"byteorder\": \"little\", \"content-type\": \"binary/x\", "
                "\"content-encoding\": \"binary\", \"content-length\": 900000000}",
                "abc", 3);
    expect_code(fd, "no-memory");
    close(fd);
    good_client_is_served(p);
    terminate(pid, err_fd);
}

/* One client of big_requests_short_of_memory_are_never_bad_json: a good
 * search for a value of 1 MiB (answered "No match for '...'", as long),
 * and the error code of its answer ("" for none). */
struct big_search {
    int port;
    int rc;
    char code[64];
};

static void *send_big_search(void *arg)
{
    struct big_search *b = arg;
    enum { CONTENT = 1 << 20 };
    static const char head[] = "{\"action\": \"search\", \"value\": \"";
    char *content = malloc(CONTENT);
    uint8_t *req = malloc(CONTENT + 512);
    char header[256];
    b->rc = -1;
    if (!content || !req)
        goto out;
    memcpy(content, head, sizeof head - 1);
    memset(content + sizeof head - 1, 'x', CONTENT - (sizeof head - 1) - 2);
    memcpy(content + CONTENT - 2, "\"}", 2);
    snprintf(header, sizeof header,
             "{\"byteorder\": \"%s\", \"content-type\": \"text/json\", "
             "\"content-encoding\": \"utf-8\", \"content-length\": %d}",
             __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? "little" : "big", CONTENT);
    size_t n = ts_frame(req, CONTENT + 512, header, content, CONTENT);
    int fd = ts_connect(b->port);
    struct client_response resp;
    char err[256];
    if (fd >= 0 && net_write_full(fd, req, n) == 0 &&
        client_read_response(fd, 4 << 20, ts_deadline(), &resp, err, sizeof err) == 0) {
        const char *key = "\"error\": \"";
        const char *at = memmem(resp.content, resp.length, key, strlen(key));
        b->code[0] = '\0';
        if (at)
            sscanf(at + strlen(key), "%63[^\"]", b->code);
        client_response_free(&resp);
        b->rc = 0;
    }
    if (fd >= 0)
        close(fd);
out:
    free(content);
    free(req);
    return NULL;
}

/* 16 clients send a 1 MiB request each at once to a server with little
 * address space: each is answered, or answered no-memory; a parse that
 * ran out of memory is never called bad JSON (jansson reports some failed
 * allocations as syntax errors, and may drop a key it could not insert). */
Test(binary_faults, big_requests_short_of_memory_are_never_bad_json, .timeout = 120)
{
    int p, err_fd;
    const char *args[] = {"--workers", "16", NULL};
    pid_t pid = ts_spawn_server_limited(ts_bin_dir(), args, RLIMIT_AS, 200UL << 20, &p, &err_fd);
    cr_assert_gt(pid, 0);
    enum { CLIENTS = 16, ROUNDS = 3 };
    int answered = 0, short_of_memory = 0;
    for (int round = 0; round < ROUNDS; round++) {
        struct big_search b[CLIENTS];
        pthread_t t[CLIENTS];
        for (int i = 0; i < CLIENTS; i++) {
            b[i] = (struct big_search){.port = p};
            cr_assert_eq(pthread_create(&t[i], NULL, send_big_search, &b[i]), 0);
        }
        for (int i = 0; i < CLIENTS; i++)
            pthread_join(t[i], NULL);
        for (int i = 0; i < CLIENTS; i++) {
            cr_assert_eq(b[i].rc, 0, "client %d got no answer", i);
            cr_assert(b[i].code[0] == '\0' || strcmp(b[i].code, "no-memory") == 0,
                      "a good 1 MiB request short of memory was answered %s", b[i].code);
            answered += b[i].code[0] == '\0';
            short_of_memory += b[i].code[0] != '\0';
        }
    }
    cr_log_info("16 x 1 MiB requests at once, 200 MiB of address space, %d rounds: %d answered, "
                "%d no-memory, 0 bad-json", ROUNDS, answered, short_of_memory);
    good_client_is_served(p);
    terminate(pid, err_fd);
}

Test(binary_faults, drain_timeout_bounds_the_wait_for_stuck_clients, .timeout = 60)
{
    int p, err_fd;
    const char *args[] = {"--drain-timeout", "0.5", NULL};
    pid_t pid = ts_spawn_server(ts_bin_dir(), args, &p, &err_fd);
    cr_assert_gt(pid, 0);
    int fd = ts_connect(p);
    net_write_full(fd, "\x00\x50{\"byte", 9); /* half a request, forever */
    usleep(100 * 1000);
    long long t0 = ts_now_ms();
    kill(pid, SIGTERM);
    cr_assert_eq(ts_wait_exit(pid, 10000), 0);
    long long took = ts_now_ms() - t0;
    cr_assert_lt(took, 3000, "a stuck client holds the exit %lld ms, not the read timeout",
                 took);
    cr_assert(ts_closed_within(fd, 1000));
    close(fd);
    close(err_fd);
}

Test(binary_faults, thousands_of_connections_leak_no_fds_or_memory, .timeout = 120)
{
    int p, err_fd;
    pid_t pid = ts_spawn_server(ts_bin_dir(), NULL, &p, &err_fd);
    cr_assert_gt(pid, 0);
    for (int i = 0; i < 300; i++) /* warm up allocator arenas and threads */
        ts_mixed_connection(p, i);
    usleep(300 * 1000);
    int fds0 = ts_proc_fds(pid);
    long rss0 = ts_proc_rss_kib(pid);
    enum { N = 3000 };
    for (int i = 0; i < N; i++)
        ts_mixed_connection(p, i);
    /* Let the workers finish closing what the clients left. */
    int fds1 = -1;
    for (int tries = 0; tries < 100 && (fds1 = ts_proc_fds(pid)) != fds0; tries++)
        usleep(50 * 1000);
    long rss1 = ts_proc_rss_kib(pid);
    fprintf(stderr, "leak check: %d connections: fds %d -> %d, VmRSS %ld -> %ld KiB\n", N, fds0,
            fds1, rss0, rss1);
    cr_assert_eq(fds1, fds0, "open fds return to %d (got %d)", fds0, fds1);
    cr_assert_lt(rss1 - rss0, 2048, "RSS grew by %ld KiB over %d connections", rss1 - rss0, N);
    good_client_is_served(p);
    terminate(pid, err_fd);
}
