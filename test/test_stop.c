/*
 * test_stop.c - what a stop promises, on the real binary and real signals,
 * in both modes (parking, the default, and --no-park), repeated:
 *
 *  - every request whose bytes had fully arrived before the signal is
 *    answered, on parked, held, queued and just-accepted connections alike;
 *  - the process exits within the drain timeout + 1 s, whatever clients do;
 *  - a second signal cuts the drain short and says how many it cut;
 *  - SIGHUP does not stop the server.
 *
 * "Fully arrived" is taken as "send() returned before kill() was called":
 * on loopback the bytes are then in the server's socket buffer.
 */
#include "app.h"
#include "client.h"
#include "frame.h"
#include "net.h"
#include "support.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define ROUNDS 20 /* stops per mode: enough to catch a race, not a long wait */

static const char *const PARK[] = {NULL};
static const char *const NO_PARK[] = {"--no-park", NULL};

/* Every promise of the stop holds in both modes: one parameterized test
 * runs each in both. The parameter is an index into this table: Criterion
 * copies parameters into the test's own process, where a pointer to
 * static data need not point to the same place. */
static const struct mode {
    const char *const *args;
    const char *name;
} modes[] = {{PARK, "parking"}, {NO_PARK, "--no-park"}};
static int mode_index[] = {0, 1};

/* Starts the server with args (mode first, then the rest). */
static pid_t spawn(const char *const mode[], const char *const args[], int *port, int *err_fd)
{
    const char *all[24];
    size_t n = 0;
    for (size_t i = 0; mode[i] && n < 23; i++)
        all[n++] = mode[i];
    for (size_t i = 0; args && args[i] && n < 23; i++)
        all[n++] = args[i];
    all[n] = NULL;
    pid_t pid = ts_spawn_server(ts_bin_dir(), all, port, err_fd);
    cr_assert_gt(pid, 0, "the server starts");
    return pid;
}

static bool send_request(int fd, const char *value)
{
    uint8_t buf[1024];
    size_t n = ts_search_request(value, buf, sizeof buf);
    return n > 0 && net_write_full(fd, buf, n) == 0;
}

/* How long pid takes to exit after t0, with its status. */
static long long exit_after(pid_t pid, long long t0, int *status)
{
    *status = ts_wait_exit(pid, 15000);
    return ts_now_ms() - t0;
}

/* Reads what is left of the server's log into out. */
static void read_log(int err_fd, char *out, size_t cap)
{
    size_t n = 0;
    ssize_t r;
    while (n + 1 < cap && (r = read(err_fd, out + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    out[n] = '\0';
}

/* --- every request that arrived is answered ---------------------------------- */

struct tally {
    int sent, answered;
};

/* One stop. `idle` connections have had one exchange and wait between
 * requests (parked, or held by a worker with --no-park, so fewer than the
 * workers there); `fresh` ones were never served. Each then sends one
 * whole request, and the server gets SIGTERM, at once or 100 ms later. */
static void stop_round(const char *const mode[], int idle, int fresh, int pause_ms,
                       struct tally *t)
{
    enum { MAX = 128 };
    int port, err_fd, fds[MAX];
    const char *args[] = {"--workers", "4", NULL};
    pid_t pid = spawn(mode, args, &port, &err_fd);
    int n = idle + fresh;
    cr_assert_leq(n, MAX);
    for (int i = 0; i < n; i++) {
        fds[i] = ts_connect(port);
        cr_assert_geq(fds[i], 0);
        if (i < idle) {
            cr_assert(send_request(fds[i], "ring"), "idle connection %d: first request sent", i);
            cr_assert(ts_answer_is(fds[i], "ring"), "idle connection %d: first request answered", i);
        }
    }
    for (int i = 0; i < n; i++)
        cr_assert(send_request(fds[i], i % 2 ? "morpheus" : "neo"), "request %d sent", i);
    if (pause_ms)
        usleep((useconds_t)pause_ms * 1000);
    long long t0 = ts_now_ms();
    kill(pid, SIGTERM);
    for (int i = 0; i < n; i++) {
        t->sent++;
        t->answered += ts_answer_is(fds[i], i % 2 ? "morpheus" : "neo");
        close(fds[i]);
    }
    int status;
    long long took = exit_after(pid, t0, &status);
    cr_assert_eq(status, 0, "the server exits 0 after a drain");
    cr_assert_lt(took, 11000, "a drain with nothing stuck ends well within the drain timeout");
    close(err_fd);
}

static void every_arrived_request_is_answered(const char *const mode[], const char *name)
{
    struct tally t = {0, 0};
    bool park = mode[0] == NULL;
    for (int round = 0; round < ROUNDS; round++)
        stop_round(mode, park ? 40 : 3, 40, round % 2 ? 100 : 0, &t);
    fprintf(stderr, "stop (%s): %d rounds, %d requests sent before SIGTERM, %d answered, %d lost\n",
            name, ROUNDS, t.sent, t.answered, t.sent - t.answered);
    cr_assert_eq(t.answered, t.sent, "%s: every request that arrived before the stop is "
                                     "answered (%d of %d)", name, t.answered, t.sent);
}

ParameterizedTestParameters(stop, answers_every_request_that_arrived)
{
    return cr_make_param_array(int, mode_index, 2);
}

ParameterizedTest(int *m, stop, answers_every_request_that_arrived, .timeout = 120)
{
    every_arrived_request_is_answered(modes[*m].args, modes[*m].name);
}

/* --- the same under mixed, continuous load ---------------------------------- */

struct load {
    int port;
    bool per_conn;          /* connect for each request, as the tutorial's client */
    atomic_llong kill_ms;   /* when SIGTERM was sent (0: not yet) */
    atomic_bool over;
    int must, got;          /* requests sent 5 ms or more before the kill, and answered */
};

/* A client that sends requests back to back until the server goes away,
 * counting those it finished sending well before the signal. The 5 ms
 * margin covers a loopback packet still in the kernel when send returned. */
static void *load_client(void *arg)
{
    struct load *l = arg;
    int fd = -1;
    for (int i = 0; i < 100000 && !atomic_load(&l->over); i++) {
        if (fd < 0 && (fd = ts_connect(l->port)) < 0)
            break; /* refused: the server is stopping */
        const char *value = i % 2 ? "ring" : "neo";
        bool sent = send_request(fd, value);
        long long sent_ms = ts_now_ms();
        bool ok = sent && ts_answer_is(fd, value);
        long long kill_ms = atomic_load(&l->kill_ms); /* still 0: all of it came before */
        bool must = sent && (kill_ms == 0 || sent_ms + 5 <= kill_ms);
        l->must += must;
        l->got += must && ok;
        if (!ok || l->per_conn) {
            close(fd);
            fd = -1;
        }
        if (!ok)
            break;
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

static void mixed_load_stops(const char *const mode[], const char *name)
{
    enum { KEEPALIVE = 32, PER_CONN = 32, CLIENTS = KEEPALIVE + PER_CONN };
    int must = 0, got = 0;
    long long worst_exit = 0;
    for (int round = 0; round < ROUNDS; round++) {
        int port, err_fd;
        const char *args[] = {"--workers", "8", NULL};
        pid_t pid = spawn(mode, args, &port, &err_fd);
        struct load loads[CLIENTS];
        pthread_t threads[CLIENTS];
        for (int i = 0; i < CLIENTS; i++) {
            loads[i] = (struct load){.port = port, .per_conn = i >= KEEPALIVE};
            atomic_init(&loads[i].kill_ms, 0);
            atomic_init(&loads[i].over, false);
            pthread_create(&threads[i], NULL, load_client, &loads[i]);
        }
        usleep(150 * 1000);
        long long t0 = ts_now_ms();
        for (int i = 0; i < CLIENTS; i++)
            atomic_store(&loads[i].kill_ms, t0);
        kill(pid, SIGTERM);
        int status;
        long long took = exit_after(pid, t0, &status);
        worst_exit = took > worst_exit ? took : worst_exit;
        cr_assert_eq(status, 0, "round %d: the server exits 0", round);
        for (int i = 0; i < CLIENTS; i++) {
            atomic_store(&loads[i].over, true);
            pthread_join(threads[i], NULL);
            must += loads[i].must;
            got += loads[i].got;
        }
        close(err_fd);
    }
    fprintf(stderr, "stop under mixed load (%s): %d rounds, %d requests sent before SIGTERM, "
                    "%d answered, %d lost; slowest exit %lld ms\n",
            name, ROUNDS, must, got, must - got, worst_exit);
    cr_assert_eq(got, must, "%s: %d of %d requests sent before the stop were lost", name,
                 must - got, must);
}

ParameterizedTestParameters(stop, loses_nothing_under_mixed_load)
{
    return cr_make_param_array(int, mode_index, 2);
}

ParameterizedTest(int *m, stop, loses_nothing_under_mixed_load, .timeout = 120)
{
    mixed_load_stops(modes[*m].args, modes[*m].name);
}

/* --- the drain is bounded ---------------------------------------------------- */

struct dribbler {
    int fd;
    atomic_bool over;
};

/* Sends a request one byte every 50 ms, never finishing it (the header
 * announces more content than ever comes). */
static void *dribble(void *arg)
{
    struct dribbler *d = arg;
    static const char req[] = "\x00\x5a{\"byteorder\": \"little\", \"content-type\": \"text/json\", "
                              "\"content-encoding\": \"utf-8\", \"content-length\": 1000}";
    for (size_t i = 0; i < 400 && !atomic_load(&d->over); i++) {
        if (send(d->fd, i < sizeof req - 1 ? &req[i] : "x", 1, MSG_NOSIGNAL) != 1)
            break;
        usleep(50 * 1000);
    }
    return NULL;
}

/* One worker, a queue of one, a client dribbling a request and three
 * waiting behind it (queued, held by the acceptor, in the backlog). */
static void drain_is_bounded(const char *const mode[], const char *read_timeout)
{
    int port, err_fd;
    const char *args[] = {"--workers", "1", "--queue", "1", "--read-timeout", read_timeout,
                          "--drain-timeout", "0.5", NULL};
    pid_t pid = spawn(mode, args, &port, &err_fd);
    struct dribbler d = {.fd = ts_connect(port)};
    atomic_init(&d.over, false);
    pthread_t t;
    pthread_create(&t, NULL, dribble, &d);
    usleep(200 * 1000);
    int waiting[3];
    for (int i = 0; i < 3; i++) {
        waiting[i] = ts_connect(port);
        cr_assert(send_request(waiting[i], "ring"));
    }
    usleep(200 * 1000);
    long long t0 = ts_now_ms();
    kill(pid, SIGTERM);
    int status;
    long long took = exit_after(pid, t0, &status);
    atomic_store(&d.over, true);
    pthread_join(t, NULL);
    char log[8192];
    read_log(err_fd, log, sizeof log);
    fprintf(stderr, "drain bound (read timeout %s): exit %lld ms after SIGTERM, drain timeout "
                    "500 ms\n", read_timeout, took);
    cr_assert_eq(status, 0, "the server exits 0: %s", log);
    cr_assert_lt(took, 1500, "exit within the drain timeout + 1 s, not %lld ms", took);
    cr_assert(strstr(log, "cut "), "the log says what was cut: %s", log);
    for (int i = 0; i < 3; i++)
        close(waiting[i]);
    close(d.fd);
    close(err_fd);
}

ParameterizedTestParameters(stop, drain_timeout_bounds_the_exit_with_a_full_queue)
{
    return cr_make_param_array(int, mode_index, 2);
}

ParameterizedTest(int *m, stop, drain_timeout_bounds_the_exit_with_a_full_queue,
                  .timeout = 60)
{
    drain_is_bounded(modes[*m].args, "4");
    drain_is_bounded(modes[*m].args, "0");
}

Test(stop, a_second_signal_cuts_the_drain_and_says_how_many, .timeout = 60)
{
    int port, err_fd;
    const char *args[] = {"--drain-timeout", "30", NULL};
    pid_t pid = spawn(PARK, args, &port, &err_fd);
    struct dribbler d = {.fd = ts_connect(port)};
    atomic_init(&d.over, false);
    pthread_t t;
    pthread_create(&t, NULL, dribble, &d);
    usleep(200 * 1000);
    kill(pid, SIGTERM);
    cr_assert(ts_wait_for_line(err_fd, "Received SIGTERM", 5000));
    usleep(300 * 1000);
    long long t0 = ts_now_ms();
    kill(pid, SIGINT);
    int status;
    long long took = exit_after(pid, t0, &status);
    atomic_store(&d.over, true);
    pthread_join(t, NULL);
    char log[8192];
    read_log(err_fd, log, sizeof log);
    cr_assert_eq(status, 0, "%s", log);
    cr_assert_lt(took, 1000, "the second signal ends the drain at once, not in %lld ms", took);
    cr_assert(strstr(log, "Received SIGINT during the drain"), "%s", log);
    cr_assert(strstr(log, "cut 1 connection still in progress"), "%s", log);
    close(d.fd);
    close(err_fd);
}

Test(stop, sighup_reloads_and_does_not_stop_the_server, .timeout = 60)
{
    int port, err_fd;
    pid_t pid = spawn(PARK, NULL, &port, &err_fd);
    kill(pid, SIGHUP);
    cr_assert(ts_wait_for_line(err_fd, "Reloaded: ", 5000));
    int fd = ts_connect(port);
    cr_assert(send_request(fd, "ring") && ts_answer_is(fd, "ring"), "still serving after SIGHUP");
    close(fd);
    kill(pid, SIGTERM);
    cr_assert_eq(ts_wait_exit(pid, 10000), 0);
    close(err_fd);
}

Test(stop, drain_timeout_0_waits_for_a_request_paused_past_the_tick, .timeout = 60)
{
    int port, err_fd;
    const char *args[] = {"--drain-timeout", "0", NULL};
    pid_t pid = spawn(PARK, args, &port, &err_fd);
    uint8_t req[1024];
    size_t n = ts_search_request("ring", req, sizeof req);
    int fd = ts_connect(port);
    cr_assert_eq(net_write_full(fd, req, n / 2), 0);
    usleep(100 * 1000);
    kill(pid, SIGTERM);
    usleep(500 * 1000); /* five of the workers' 100 ms ticks */
    cr_assert_eq(net_write_full(fd, req + n / 2, n - n / 2), 0);
    cr_assert(ts_answer_is(fd, "ring"), "0 means no drain limit: the request is finished");
    cr_assert_eq(ts_wait_exit(pid, 10000), 0);
    close(fd);
    close(err_fd);
}

/* --shutdown-delay: at SIGTERM, health checks say "draining" at once,
 * every other request is served as before for the delay, then the drain. */
static bool health_says(int port, const char *what)
{
    int fd = ts_connect(port);
    uint8_t buf[FRAME_ENCODED_HEADER_MAX + 64];
    const char *content = "{\"action\": \"health\"}";
    int n = frame_encode_header(buf, PROTO_TEXT_JSON, PROTO_UTF8, strlen(content));
    memcpy(buf + n, content, strlen(content));
    struct client_response resp;
    char err[256];
    bool ok = fd >= 0 && net_write_full(fd, buf, (size_t)n + strlen(content)) == 0 &&
              client_read_response(fd, 1 << 20, ts_deadline(), &resp, err, sizeof err) == 0;
    if (ok) {
        char want[64];
        snprintf(want, sizeof want, "{\"result\": \"%s\"}", what);
        ok = resp.length == strlen(want) && memcmp(resp.content, want, resp.length) == 0;
        client_response_free(&resp);
    }
    if (fd >= 0)
        close(fd);
    return ok;
}

Test(stop, shutdown_delay_says_draining_to_health_checks_and_serves_meanwhile, .timeout = 60)
{
    int port, err_fd;
    const char *args[] = {"--shutdown-delay", "1", NULL};
    pid_t pid = spawn(PARK, args, &port, &err_fd);
    cr_assert(health_says(port, "ok"));
    long long t0 = ts_now_ms();
    kill(pid, SIGTERM);
    cr_assert(ts_wait_for_line(err_fd, "draining", 5000));
    cr_assert(health_says(port, "draining"), "health checks hear the stop at once");
    int fd = ts_connect(port);
    cr_assert_geq(fd, 0, "new connections are still accepted during the delay");
    cr_assert(send_request(fd, "ring") && ts_answer_is(fd, "ring"), "and served");
    close(fd);
    int status;
    long long took = exit_after(pid, t0, &status);
    cr_assert_eq(status, 0);
    cr_assert_geq(took, 900, "the listener stays open for the delay (%lld ms)", took);
    cr_assert_lt(took, 3000, "then the drain, and the exit (%lld ms)", took);
    close(err_fd);
}
