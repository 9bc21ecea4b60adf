/*
 * test_limits.c - limits that mean what they say: a timeout of 0 is no
 * limit (even with pauses longer than the workers' 100 ms tick), in both
 * modes.
 */
#include "app.h"
#include "client.h"
#include "frame.h"
#include "net.h"
#include "server.h"
#include "support.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PAUSE_US (500 * 1000) /* five of the workers' 100 ms ticks */

static struct server *srv;
static int port;

/* Each limit holds in both modes: parking, and --no-park. */
static bool park_modes[] = {true, false};

/* A server with every timeout at 0 (no limit), parking or not. */
static void start_unlimited(bool park)
{
    struct server_config cfg;
    json_object_seed(0);
    server_config_defaults(&cfg);
    cfg.workers = 2;
    cfg.park = park;
    cfg.idle_timeout_ms = 0;
    cfg.read_timeout_ms = 0;
    cfg.write_timeout_ms = 0;
    port = ts_start(&srv, &cfg);
    cr_assert_gt(port, 0);
}

static void expect_answer(int fd, const char *value)
{
    cr_assert(ts_answer_is(fd, value), "answered, rightly: %s", value);
}

/* --read-timeout 0: a request that pauses half-way is waited for. */
static void request_paused_midway_is_answered(bool park)
{
    start_unlimited(park);
    uint8_t req[1024];
    size_t n = ts_search_request("ring", req, sizeof req);
    int fd = ts_connect(port);
    cr_assert_eq(net_write_full(fd, req, n / 2), 0);
    usleep(PAUSE_US);
    cr_assert_eq(net_write_full(fd, req + n / 2, n - n / 2), 0);
    expect_answer(fd, "ring");
    close(fd);
    server_stop(srv);
}

ParameterizedTestParameters(timeout_zero, read_timeout_0_waits_for_a_paused_request)
{
    return cr_make_param_array(bool, park_modes, 2);
}

ParameterizedTest(bool *park, timeout_zero, read_timeout_0_waits_for_a_paused_request, .timeout = 30)
{
    request_paused_midway_is_answered(*park);
}

/* --idle-timeout 0: a connection idle between requests is kept. */
static void idle_connection_is_kept(bool park)
{
    start_unlimited(park);
    uint8_t req[1024];
    size_t n = ts_search_request("morpheus", req, sizeof req);
    int fd = ts_connect(port);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(net_write_full(fd, req, n), 0);
        expect_answer(fd, "morpheus");
        usleep(PAUSE_US);
    }
    close(fd);
    server_stop(srv);
}

ParameterizedTestParameters(timeout_zero, idle_timeout_0_keeps_an_idle_connection)
{
    return cr_make_param_array(bool, park_modes, 2);
}

ParameterizedTest(bool *park, timeout_zero, idle_timeout_0_keeps_an_idle_connection, .timeout = 30)
{
    idle_connection_is_kept(*park);
}

/* --write-timeout 0: a client that stops reading for a while gets the
 * whole answer once it reads again (echo, so the answer is large). */
static void slow_reader_gets_everything(bool park)
{
    struct server_config cfg;
    json_object_seed(0);
    server_config_defaults(&cfg);
    cfg.mode = SERVER_MODE_ECHO;
    cfg.park = park;
    cfg.write_timeout_ms = 0;
    cfg.idle_timeout_ms = 0;
    port = ts_start(&srv, &cfg);
    cr_assert_gt(port, 0);
    enum { LEN = 8 << 20 }; /* far more than both sockets' buffers */
    uint8_t *data = malloc(LEN), *back = malloc(LEN);
    for (size_t i = 0; i < LEN; i++)
        data[i] = (uint8_t)(i * 7);
    int fd = ts_connect(port);
    struct ts_writer w = {.fd = fd, .data = data, .len = LEN};
    pthread_t t;
    pthread_create(&t, NULL, ts_write_all, &w);
    usleep(PAUSE_US); /* the server's send is stuck meanwhile */
    cr_assert_eq(stream_read_full(&(struct stream){.fd = fd}, back, LEN, ts_deadline() + 10000),
                 STREAM_READ_OK);
    pthread_join(t, NULL);
    cr_assert_eq(w.rc, 0);
    cr_assert(memcmp(data, back, LEN) == 0, "every byte came back");
    free(data);
    free(back);
    close(fd);
    server_stop(srv);
}

ParameterizedTestParameters(timeout_zero, write_timeout_0_waits_for_a_slow_reader)
{
    return cr_make_param_array(bool, park_modes, 2);
}

ParameterizedTest(bool *park, timeout_zero, write_timeout_0_waits_for_a_slow_reader, .timeout = 60)
{
    slow_reader_gets_everything(*park);
}
