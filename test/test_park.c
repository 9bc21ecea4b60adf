/*
 * test_park.c - idle connections wait in the poller, not in a worker.
 */
#include "app.h"
#include "client.h"
#include "frame_io.h"
#include "net.h"
#include "poller.h"
#include "server.h"
#include "support.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct server *srv;
static struct server_config cfg;
static int port;

static void start_capped_with(int workers, int idle_ms, size_t wake_cap)
{
    json_object_seed(0);
    server_config_defaults(&cfg);
    cfg.workers = (size_t)workers;
    cfg.idle_timeout_ms = idle_ms;
    cfg.wake_cap = wake_cap;
    port = ts_start(&srv, &cfg);
    cr_assert_gt(port, 0);
}

static void start_with(int workers, int idle_ms) { start_capped_with(workers, idle_ms, 0); }
static void start(void) { start_with(2, 10000); }
static void start_short_idle(void) { start_with(2, 300); }
static void stop(void) { server_stop(srv); }

static struct poller_stats stats(void)
{
    struct poller_stats st;
    poller_stats(server_poller(srv), &st);
    return st;
}

static void expect_search(int fd, const char *value)
{
    struct client_response resp;
    char expected[256];
    ts_expected_search(value, expected, sizeof expected);
    cr_assert_eq(ts_search(fd, value, &resp), 0, "search '%s' answered", value);
    cr_assert(ts_content_is(&resp, expected));
    client_response_free(&resp);
}

/* Waits (bounded) until the poller holds at least n connections. */
static bool holding_at_least(size_t n)
{
    for (int i = 0; i < 200; i++) {
        if (stats().holding >= n)
            return true;
        usleep(10 * 1000);
    }
    return false;
}

TestSuite(park, .init = start, .fini = stop, .timeout = 60);

Test(park, idle_connections_beyond_the_workers_do_not_block_a_new_client)
{
    enum { IDLE = 40 }; /* twenty times the two workers */
    int idle[IDLE];
    for (int i = 0; i < IDLE; i++) {
        idle[i] = ts_connect(port);
        expect_search(idle[i], "ring"); /* served, then idle */
    }
    cr_assert(holding_at_least(IDLE), "the poller holds the idle ones (%zu)", stats().holding);
    int fd = ts_connect(port);
    long long t0 = ts_now_ms();
    expect_search(fd, "morpheus");
    long long took = ts_now_ms() - t0;
    cr_assert_lt(took, 1000, "a new client is served at once, not after an idle timeout (%lld ms)",
                 took);
    close(fd);
    for (int i = 0; i < IDLE; i++) {
        expect_search(idle[i], "neo"); /* and every idle one still works */
        close(idle[i]);
    }
}

Test(park, silent_new_connections_are_parked_too)
{
    int silent[10];
    for (int i = 0; i < 10; i++)
        silent[i] = ts_connect(port);
    cr_assert(holding_at_least(10), "connections that have sent nothing hold no worker");
    int fd = ts_connect(port);
    expect_search(fd, "ring");
    close(fd);
    for (int i = 0; i < 10; i++)
        close(silent[i]);
}

Test(park, a_connection_is_parked_and_woken_again_and_again)
{
    int fd = ts_connect(port);
    cr_assert(holding_at_least(1), "a new connection that has sent nothing is parked");
    struct poller_stats before = stats();
    for (int i = 0; i < 100; i++) {
        cr_assert(holding_at_least(1), "parked before request %d", i);
        expect_search(fd, i % 2 ? "ring" : "x");
    }
    cr_assert(holding_at_least(1), "parked after the last answer");
    struct poller_stats after = stats();
    cr_assert_eq(after.parked - before.parked, 100, "parked after every answer");
    cr_assert_eq(after.woken - before.woken, 100, "woken for every request");
    close(fd);
}

Test(park, pipelined_requests_are_served_without_the_poller)
{
    enum { N = 30 };
    static uint8_t burst[N * 256];
    size_t len = 0;
    for (int i = 0; i < N; i++) {
        char *content = client_search_content("search", "ring");
        len += (size_t)frame_encode_header(burst + len, PROTO_TEXT_JSON, PROTO_UTF8, strlen(content));
        memcpy(burst + len, content, strlen(content));
        len += strlen(content);
        free(content);
    }
    int fd = ts_connect(port);
    expect_search(fd, "warm-up");
    cr_assert(holding_at_least(1));
    struct poller_stats before = stats();
    cr_assert_eq(net_write_full(fd, burst, len), 0);
    for (int i = 0; i < N; i++) {
        struct client_response resp;
        char err[128];
        cr_assert_eq(client_read_response(fd, 1 << 20, ts_deadline(), &resp, err, sizeof err), 0, "%s", err);
        client_response_free(&resp);
    }
    cr_assert(holding_at_least(1));
    struct poller_stats after = stats();
    cr_assert_leq(after.woken - before.woken, 2,
                  "%d pipelined requests took %llu trips through the poller", N,
                  (unsigned long long)(after.woken - before.woken));
    close(fd);
}

/* --- a crowd under the wake cap ---------------------------------------------- */

enum { CROWD = 48, CROWD_REQUESTS = 30 };
static atomic_int crowd_answered;

static void start_capped(void) { start_capped_with(8, 10000, 1); }

static void *crowd_client(void *arg)
{
    (void)arg;
    char expected[256];
    ts_expected_search("ring", expected, sizeof expected);
    int fd = ts_connect(port);
    for (int i = 0; fd >= 0 && i < CROWD_REQUESTS; i++) {
        struct client_response resp;
        if (ts_search(fd, "ring", &resp) != 0)
            break;
        if (ts_content_is(&resp, expected))
            atomic_fetch_add(&crowd_answered, 1);
        client_response_free(&resp);
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

/* More keep-alive clients than workers, and at most one worker woken to
 * run while they crowd the queue (queue_limit_wakes): the others sleep
 * on, and the connections wait for the one running, or for a lingering
 * worker called back. Beside them a client silent in the middle of a
 * request, which a worker may linger on. Every request is answered,
 * right. */
Test(park_capped, a_crowd_is_served_with_one_worker_woken_at_a_time, .init = start_capped,
     .fini = stop, .timeout = 120)
{
    int silent = ts_connect(port);
    cr_assert_eq(send(silent, "\0", 1, MSG_NOSIGNAL), 1, "half a length prefix");
    atomic_store(&crowd_answered, 0);
    pthread_t t[CROWD];
    for (int i = 0; i < CROWD; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, crowd_client, NULL), 0);
    for (int i = 0; i < CROWD; i++)
        pthread_join(t[i], NULL);
    cr_assert_eq(atomic_load(&crowd_answered), CROWD * CROWD_REQUESTS,
                 "%d of %d requests answered right", atomic_load(&crowd_answered),
                 CROWD * CROWD_REQUESTS);
    close(silent);
}

Test(park_idle, parked_connections_close_at_the_idle_timeout, .init = start_short_idle,
     .fini = stop, .timeout = 60)
{
    int fds[5];
    for (int i = 0; i < 5; i++) {
        fds[i] = ts_connect(port);
        expect_search(fds[i], "ring");
    }
    for (int i = 0; i < 5; i++)
        cr_assert(ts_closed_within(fds[i], 3000), "parked connection %d closed when idle", i);
    cr_assert_geq(stats().idle_closed, 5);
    cr_assert_eq(stats().holding, 0);
    for (int i = 0; i < 5; i++)
        close(fds[i]);
}

Test(park, stopping_closes_parked_connections_cleanly)
{
    int fds[20];
    for (int i = 0; i < 20; i++) {
        fds[i] = ts_connect(port);
        expect_search(fds[i], "ring");
    }
    cr_assert(holding_at_least(20));
    long long t0 = ts_now_ms();
    cr_assert(server_stop(srv), "nothing was in progress, so the stop drains at once");
    cr_assert_lt(ts_now_ms() - t0, 2000);
    for (int i = 0; i < 20; i++) {
        cr_assert(ts_closed_within(fds[i], 1000), "parked connection %d closed at the stop", i);
        close(fds[i]);
    }
    start(); /* for the suite's .fini */
}

static void start_no_park(void)
{
    json_object_seed(0);
    server_config_defaults(&cfg);
    cfg.workers = 2;
    cfg.park = false;
    port = ts_start(&srv, &cfg);
}

Test(no_park, keeps_a_worker_per_idle_connection, .init = start_no_park, .fini = stop,
     .timeout = 60)
{
    /* The old behaviour, for comparison: with --no-park two idle
     * connections take both workers and a third client waits. */
    cr_assert_null(server_poller(srv));
    int a = ts_connect(port), b = ts_connect(port);
    expect_search(a, "ring");
    expect_search(b, "ring");
    int c = ts_connect(port);
    char *content = client_search_content("search", "x");
    frame_io_send(c, PROTO_TEXT_JSON, PROTO_UTF8, content, strlen(content), 0);
    free(content);
    cr_assert_not(ts_closed_within(c, 300) , "no close, no answer: it waits");
    close(a);
    struct client_response resp;
    char err[128];
    cr_assert_eq(client_read_response(c, 1 << 20, ts_deadline(), &resp, err, sizeof err), 0, "%s", err);
    client_response_free(&resp);
    close(b);
    close(c);
}
