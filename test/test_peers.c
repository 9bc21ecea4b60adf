/*
 * test_peers.c - nothing trusted from a server: enchufe-cli and
 * enchufe-bench against servers that trickle, send terminal control
 * sequences, or are not there at all. Each fake server is a thread on a
 * loopback port of its own.
 */
#include "app.h"
#include "frame.h"
#include "net.h"
#include "support.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct fake {
    int listen_fd;
    int port;
    const uint8_t *answer; /* sent after the request arrives */
    size_t len;
    int byte_gap_ms;       /* > 0: one byte at a time, this far apart */
    atomic_bool over;
    pthread_t thread;
};

static void *fake_main(void *arg)
{
    struct fake *f = arg;
    int fd = accept(f->listen_fd, NULL, NULL);
    if (fd < 0)
        return NULL;
    char req[4096];
    if (recv(fd, req, sizeof req, 0) <= 0) { /* the request, whatever it is */
        close(fd);
        return NULL;
    }
    for (size_t i = 0; i < f->len && !atomic_load(&f->over);) {
        size_t n = f->byte_gap_ms > 0 ? 1 : f->len - i;
        if (send(fd, f->answer + i, n, MSG_NOSIGNAL) <= 0)
            break;
        i += n;
        if (f->byte_gap_ms > 0)
            usleep((useconds_t)f->byte_gap_ms * 1000);
    }
    /* Keep the connection open until the test is done with it. */
    for (int i = 0; i < 200 && !atomic_load(&f->over); i++)
        usleep(50 * 1000);
    close(fd);
    return NULL;
}

static void fake_start(struct fake *f, const uint8_t *answer, size_t len, int byte_gap_ms)
{
    char err[256];
    *f = (struct fake){.answer = answer, .len = len, .byte_gap_ms = byte_gap_ms};
    atomic_init(&f->over, false);
    f->listen_fd = net_listen("127.0.0.1", "0", 8, err, sizeof err);
    cr_assert_geq(f->listen_fd, 0, "%s", err);
    f->port = net_local_port(f->listen_fd);
    pthread_create(&f->thread, NULL, fake_main, f);
}

static void fake_stop(struct fake *f)
{
    atomic_store(&f->over, true);
    shutdown(f->listen_fd, SHUT_RDWR); /* ends an accept still waiting */
    pthread_join(f->thread, NULL);
    close(f->listen_fd);
}

/* A whole framed answer with this JSON content. */
static size_t frame_of(const char *content, uint8_t *out, size_t cap)
{
    int n = frame_encode_header(out, PROTO_TEXT_JSON, PROTO_UTF8, strlen(content));
    cr_assert(n > 0 && (size_t)n + strlen(content) <= cap);
    memcpy(out + n, content, strlen(content));
    return (size_t)n + strlen(content);
}

Test(cli, timeout_bounds_the_whole_exchange_not_each_read, .timeout = 30)
{
    uint8_t answer[256];
    size_t len = frame_of("{\"result\": \"In the caves beneath the Misty Mountains.\"}", answer,
                          sizeof answer);
    struct fake f;
    fake_start(&f, answer, len, 200); /* a byte every 0.2 s: about 20 s in all */
    char out[2048];
    long long t0 = ts_now_ms();
    int rc = ts_run(out, sizeof out, "%s/enchufe-cli --port %d --timeout 1 search ring",
                    ts_bin_dir(), f.port);
    long long took = ts_now_ms() - t0;
    fake_stop(&f);
    cr_assert_eq(rc, 1, "exit 1 on a timeout: %s", out);
    cr_assert_lt(took, 2500, "--timeout 1 ends the exchange in about a second, not %lld ms",
                 took);
    cr_assert(strstr(out, "timed out"), "%s", out);
}

Test(cli, terminal_escapes_in_a_result_are_printed_escaped, .timeout = 30)
{
    uint8_t answer[512];
    /* JSON escapes: ESC ] 0 ; title BEL, ESC [ 2 J, a carriage return, a
     * C1 CSI (U+009B), then an emoji that must survive. */
    size_t len = frame_of("{\"result\": \"\\u001b]0;pwned\\u0007\\u001b[2J\\rX\\u009b1m "
                          "\\ud83d\\udc3e\"}",
                          answer, sizeof answer);
    struct fake f;
    fake_start(&f, answer, len, 0);
    char out[2048];
    int rc = ts_run(out, sizeof out, "%s/enchufe-cli --port %d --timeout 5 search x",
                    ts_bin_dir(), f.port);
    fake_stop(&f);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert_null(strchr(out, 0x1b), "no raw ESC reaches the terminal: %s", out);
    cr_assert_null(strchr(out, '\r'), "no raw carriage return: %s", out);
    cr_assert_null(strstr(out, "\xc2\x9b"), "no raw C1 control: %s", out);
    cr_assert(strstr(out, "Got result: \\x1b]0;pwned\\x07\\x1b[2J\\rX\\xc2\\x9b1m \xf0\x9f\x90\xbe"),
              "escaped visibly, emoji kept: %s", out);
}

Test(cli, a_parser_error_quoting_raw_bytes_is_escaped, .timeout = 30)
{
    /* A header that is not JSON and carries a raw ESC: jansson's error
     * text quotes it. */
    static const uint8_t answer[] = "\x00\x0a{\x1b[2J\x1b]0;x";
    struct fake f;
    fake_start(&f, answer, sizeof answer - 1, 0);
    char out[2048];
    int rc = ts_run(out, sizeof out, "%s/enchufe-cli --port %d --timeout 5 search x",
                    ts_bin_dir(), f.port);
    fake_stop(&f);
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, "bad response"), "%s", out);
    cr_assert_null(strchr(out, 0x1b), "no raw ESC in the error: %s", out);
}

/* A port nothing listens on: bound, then closed. */
static int closed_port(void)
{
    char err[256];
    int fd = net_listen("127.0.0.1", "0", 1, err, sizeof err);
    int port = net_local_port(fd);
    close(fd);
    return port;
}

Test(bench, a_request_count_run_against_a_refused_port_ends, .timeout = 30)
{
    char out[2048];
    long long t0 = ts_now_ms();
    int rc = ts_run(out, sizeof out, "%s/enchufe-bench -q -n 5 --port %d", ts_bin_dir(),
                    closed_port());
    long long took = ts_now_ms() - t0;
    cr_assert_eq(rc, 1, "nothing connected: exit 1: %s", out);
    cr_assert_lt(took, 5000, "the run ends, in %lld ms", took);
    cr_assert(strstr(out, "cannot connect") && strstr(out, "Connection refused"), "%s", out);
}

Test(bench, a_timed_run_where_nothing_connects_stops_and_says_why, .timeout = 30)
{
    char out[2048];
    long long t0 = ts_now_ms();
    int rc = ts_run(out, sizeof out, "%s/enchufe-bench -q -d 20 -c 8 --port %d", ts_bin_dir(),
                    closed_port());
    long long took = ts_now_ms() - t0;
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert_lt(took, 5000, "no 20 s of refused connects: it stops in %lld ms", took);
    cr_assert(strstr(out, "cannot connect to 127.0.0.1:"), "%s", out);
}

/* The tutorial's own server closes after each answer. A keep-alive
 * client's next request then meets a closed connection: the bench sends
 * it again, once, on a new connection, and counts it as retried, not as
 * an error. */
struct one_shot_server {
    int listen_fd;
    atomic_bool over;
    pthread_t thread;
};

static void *one_shot_main(void *arg)
{
    struct one_shot_server *o = arg;
    uint8_t answer[256];
    size_t len = frame_of("{\"result\": \"Follow the white rabbit. \xf0\x9f\x90\xb0\"}", answer,
                          sizeof answer);
    while (!atomic_load(&o->over)) {
        int fd = accept(o->listen_fd, NULL, NULL);
        if (fd < 0)
            break;
        char req[4096];
        struct frame_decoder d;
        struct frame f;
        size_t got = 0;
        frame_decoder_init(&d, 1 << 20);
        ssize_t n;
        while ((n = recv(fd, req + got, sizeof req - got, 0)) > 0) {
            got += (size_t)n;
            if (frame_decode(&d, (uint8_t *)req, got, &f) == FRAME_COMPLETE) {
                send(fd, answer, len, MSG_NOSIGNAL);
                break;
            }
        }
        close(fd);
    }
    return NULL;
}

Test(bench, a_keepalive_request_meeting_a_closed_connection_is_retried_once, .timeout = 30)
{
    char err[256], out[4096];
    struct one_shot_server o = {.listen_fd = net_listen("127.0.0.1", "0", 16, err, sizeof err)};
    cr_assert_geq(o.listen_fd, 0, "%s", err);
    atomic_init(&o.over, false);
    pthread_create(&o.thread, NULL, one_shot_main, &o);
    int rc = ts_run(out, sizeof out, "%s/enchufe-bench -q --json -c 1 -t 1 -n 20 --port %d",
                    ts_bin_dir(), net_local_port(o.listen_fd));
    atomic_store(&o.over, true);
    shutdown(o.listen_fd, SHUT_RDWR);
    pthread_join(o.thread, NULL);
    close(o.listen_fd);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "\"requests\": 20,"), "all 20 answered: %s", out);
    cr_assert(strstr(out, "\"retried\": 19,"), "each after the first retried once: %s", out);
    cr_assert(strstr(out, "\"closed\": 0"), "and none counted as an error: %s", out);
}
