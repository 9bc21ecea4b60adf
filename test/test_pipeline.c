/*
 * test_pipeline.c - pipelined requests, turns, and lingering workers, over
 * real loopback sockets:
 *
 *  - a long pipeline, with a malformed request at its end, is answered in
 *    order and the error answer comes after every answer before it;
 *  - one client pipelining without pause does not keep the only worker
 *    from another client (its connection is handed back between turns),
 *    and gets every answer right and in order;
 *  - when every worker lingers on an idle connection, a new client is
 *    called back at once, not after the linger;
 *  - a stop ends a linger at once.
 */
#include "app.h"
#include "client.h"
#include "frame.h"
#include "net.h"
#include "server.h"
#include "support.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct server *srv;
static int port;

static void start_with(size_t workers, int linger_ms)
{
    struct server_config cfg;
    json_object_seed(0);
    server_config_defaults(&cfg);
    cfg.workers = workers;
    cfg.linger_ms = linger_ms;
    port = ts_start(&srv, &cfg);
    cr_assert_gt(port, 0);
}

/* Appends a search request for value to buf at *len. */
static void append_search(uint8_t *buf, size_t cap, size_t *len, const char *value)
{
    size_t n = ts_search_request(value, buf + *len, cap - *len);
    cr_assert_gt(n, 0, "room for the request");
    *len += n;
}

Test(pipeline, a_long_pipeline_ending_in_garbage_is_answered_in_order_then_the_error,
     .timeout = 30)
{
    enum { N = 300 }; /* more than one outbox and one buffer's worth */
    start_with(2, 5);
    static uint8_t burst[N * 160 + 64];
    size_t len = 0;
    char value[16];
    for (int i = 0; i < N; i++) {
        snprintf(value, sizeof value, "v%d", i);
        append_search(burst, sizeof burst, &len, value);
    }
    memcpy(burst + len, "\x00\x05hello", 7); /* a header that is not JSON */
    len += 7;
    int fd = ts_connect(port);
    cr_assert_eq(net_write_full(fd, burst, len), 0);
    for (int i = 0; i < N; i++) {
        snprintf(value, sizeof value, "v%d", i);
        cr_assert(ts_answer_is(fd, value), "answer %d of %d, in order", i, N);
    }
    char code[64];
    cr_assert_eq(ts_read_error_code(fd, code, sizeof code), 0, "then the error answer");
    cr_assert_str_eq(code, "bad-json");
    close(fd);
    server_stop(srv);
}

struct pipeliner {
    int fd;
    atomic_bool over;
    atomic_long answered;
    atomic_bool all_right;
};

/* Keeps requests going without pause until told to stop; the reading runs
 * in its own thread, so the pipe always stays full. */
static void *pipeline_sender(void *arg)
{
    struct pipeliner *p = arg;
    static uint8_t batch[32 * 160];
    size_t len = 0;
    for (int i = 0; i < 32; i++)
        append_search(batch, sizeof batch, &len, i % 2 ? "ring" : "morpheus");
    while (!atomic_load(&p->over))
        if (net_write_full(p->fd, batch, len) < 0)
            break;
    return NULL;
}

/* Reads and checks every answer, in order. */
static void *pipeline_reader(void *arg)
{
    struct pipeliner *p = arg;
    for (long i = 0; !atomic_load(&p->over); i++) {
        if (!ts_answer_is(p->fd, i % 2 ? "ring" : "morpheus")) {
            if (!atomic_load(&p->over))
                atomic_store(&p->all_right, false);
            break;
        }
        atomic_store(&p->answered, i + 1);
    }
    return NULL;
}

Test(pipeline, a_client_pipelining_flat_out_does_not_keep_the_only_worker, .timeout = 60)
{
    start_with(1, 5);
    struct pipeliner p = {.fd = ts_connect(port)};
    atomic_init(&p.over, false);
    atomic_init(&p.answered, 0);
    atomic_init(&p.all_right, true);
    pthread_t sender, reader;
    pthread_create(&sender, NULL, pipeline_sender, &p);
    pthread_create(&reader, NULL, pipeline_reader, &p);
    long long worst = 0;
    for (int round = 0; round < 20; round++) {
        usleep(20 * 1000);
        int other = ts_connect(port);
        uint8_t req[512];
        size_t len = 0;
        append_search(req, sizeof req, &len, "ring");
        long long t0 = ts_now_ms();
        cr_assert_eq(net_write_full(other, req, len), 0);
        bool ok = ts_answer_is(other, "ring");
        long long took = ts_now_ms() - t0;
        worst = took > worst ? took : worst;
        cr_assert(ok, "round %d: the other client is answered, right", round);
        close(other);
    }
    long before = atomic_load(&p.answered);
    usleep(100 * 1000);
    bool still_going = atomic_load(&p.answered) > before;
    atomic_store(&p.over, true);
    shutdown(p.fd, SHUT_RDWR);
    pthread_join(sender, NULL);
    pthread_join(reader, NULL);
    fprintf(stderr, "fairness: 1 worker, one client pipelining flat out (%ld answers checked); "
                    "another client's slowest answer in 20 tries: %lld ms\n",
            atomic_load(&p.answered), worst);
    cr_assert(atomic_load(&p.all_right), "every pipelined answer right and in order");
    cr_assert(still_going, "the pipeliner was served throughout");
    cr_assert_lt(worst, 1000, "the other client waits for a turn, not for the pipeliner "
                              "(%lld ms)", worst);
    close(p.fd);
    server_stop(srv);
}

Test(pipeline, a_new_client_calls_back_a_lingering_worker, .timeout = 30)
{
    /* A linger far longer than any answer may take: only the call-back
     * can serve the new client in time. */
    start_with(2, 5000);
    int idle[2];
    for (int i = 0; i < 2; i++) {
        idle[i] = ts_connect(port);
        uint8_t req[512];
        size_t len = 0;
        append_search(req, sizeof req, &len, "ring");
        cr_assert_eq(net_write_full(idle[i], req, len), 0);
        cr_assert(ts_answer_is(idle[i], "ring"));
    }
    /* Both workers now linger on their idle connections. */
    usleep(50 * 1000);
    int fd = ts_connect(port);
    uint8_t req[512];
    size_t len = 0;
    append_search(req, sizeof req, &len, "morpheus");
    long long t0 = ts_now_ms();
    cr_assert_eq(net_write_full(fd, req, len), 0);
    cr_assert(ts_answer_is(fd, "morpheus"));
    long long took = ts_now_ms() - t0;
    cr_assert_lt(took, 1000, "served in %lld ms, not after the 5 s linger", took);
    /* And the idle ones were parked, not dropped. */
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(net_write_full(idle[i], req, len), 0);
        cr_assert(ts_answer_is(idle[i], "morpheus"), "idle connection %d still served", i);
        close(idle[i]);
    }
    close(fd);
    long long s0 = ts_now_ms();
    server_stop(srv);
    cr_assert_lt(ts_now_ms() - s0, 1000, "a stop ends a linger at once");
}
