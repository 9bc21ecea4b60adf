/*
 * test_alloc.c - a request costs the server no heap allocation.
 *
 * The real binary runs under LD_PRELOAD=build/alloc_count.so
 * (tools/alloc_count.c), which counts every malloc, calloc, realloc and
 * aligned allocation of the process into a file. After a warm-up (each
 * worker makes its parse arena once, the connections their buffers),
 * each kind of request is sent a few thousand times on keep-alive
 * connections, one at a time and pipelined, and the count read before
 * and after: a change that brings an allocation back onto the request
 * path fails here, by name. (Before the fast reader: 11 per search.)
 */
#include "frame.h"
#include "support.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define ALLOC_LIB "build/alloc_count.so"
#define PIPELINE 32

static pid_t server_pid = -1;
static int server_err = -1, port;
static char count_path[64];
static volatile uint64_t *count;

static void start_counted_server(void)
{
    cr_assert_eq(access(ALLOC_LIB, R_OK), 0, ALLOC_LIB " is missing: make " ALLOC_LIB);
    char lib[4096];
    cr_assert_not_null(realpath(ALLOC_LIB, lib));
    snprintf(count_path, sizeof count_path, "/tmp/enchufe-allocs-%d", (int)getpid());
    int fd = open(count_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    cr_assert(fd >= 0 && ftruncate(fd, sizeof(uint64_t)) == 0);
    void *p = mmap(NULL, sizeof(uint64_t), PROT_READ, MAP_SHARED, fd, 0);
    cr_assert_neq(p, MAP_FAILED);
    close(fd);
    count = p;
    setenv("ALLOC_COUNT_FILE", count_path, 1);
    setenv("LD_PRELOAD", lib, 1);
    static const char *const extra[] = {"--workers", "2", NULL};
    server_pid = ts_spawn_server(ts_bin_dir(), extra, &port, &server_err);
    unsetenv("LD_PRELOAD");
    unsetenv("ALLOC_COUNT_FILE");
    cr_assert(server_pid > 0, "the server did not start under " ALLOC_LIB);
    cr_assert_gt(*count, 0, "the counter saw the server's start-up allocations");
}

static void stop_counted_server(void)
{
    if (server_pid > 0) {
        kill(server_pid, SIGTERM);
        ts_wait_exit(server_pid, 10000);
    }
    if (server_err >= 0)
        close(server_err);
    unlink(count_path);
}

TestSuite(alloc, .init = start_counted_server, .fini = stop_counted_server, .timeout = 60);

struct kind {
    const char *name, *header_type, *header_encoding, *content;
};

static const struct kind kinds[] = {
    {"search hit", "text/json", "utf-8", "{\"action\": \"search\", \"value\": \"morpheus\"}"},
    {"search hit, UTF-8", "text/json", "utf-8",
     "{\"action\": \"search\", \"value\": \"\xf0\x9f\x90\xb6\"}"},
    {"search miss", "text/json", "utf-8", "{\"action\": \"search\", \"value\": \"neo\"}"},
    {"search with an escape (jansson reads it)", "text/json", "utf-8",
     "{\"action\": \"search\", \"value\": \"r\\u0069ng\"}"},
    {"invalid action", "text/json", "utf-8", "{\"action\": \"find\", \"value\": \"x\"}"},
    {"bad request (a number for the value)", "text/json", "utf-8",
     "{\"action\": \"search\", \"value\": 7}"},
    {"health", "text/json", "utf-8", "{\"action\": \"health\"}"},
    {"binary", "binary/custom-client-binary-type", "binary", "findneo-and-more"},
};

/* One request of the kind as bytes; returns its length. */
static size_t request_bytes(const struct kind *k, uint8_t *out, size_t cap)
{
    char header[256];
    size_t len = strlen(k->content);
    snprintf(header, sizeof header,
             "{\"byteorder\": \"little\", \"content-type\": \"%s\", \"content-encoding\": "
             "\"%s\", \"content-length\": %zu}",
             k->header_type, k->header_encoding, len);
    return ts_frame(out, cap, header, k->content, len);
}

/* Sends n requests of the kind back to back and reads the n answers. */
static void exchange(int fd, const struct kind *k, int n)
{
    uint8_t one[512], in[1 << 16];
    size_t len = request_bytes(k, one, sizeof one);
    for (int i = 0; i < n; i++)
        cr_assert_eq(send(fd, one, len, MSG_NOSIGNAL), (ssize_t)len);
    size_t have = 0;
    long long deadline = ts_now_ms() + 10000;
    for (int got = 0; got < n;) {
        struct frame_decoder d;
        struct frame f;
        frame_decoder_init(&d, sizeof in);
        enum frame_status st = frame_decode(&d, in, have, &f);
        if (st == FRAME_COMPLETE) {
            cr_assert_str_eq(f.header.content_type, strcmp(k->header_type, "text/json") == 0
                                                        ? "text/json"
                                                        : "binary/custom-server-binary-type");
            memmove(in, in + f.size, have - f.size);
            have -= f.size;
            got++;
            continue;
        }
        cr_assert_eq(st, FRAME_NEED_MORE, "%s: a bad answer", k->name);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        cr_assert_gt(poll(&p, 1, (int)(deadline - ts_now_ms())), 0, "%s: no answer", k->name);
        ssize_t r = recv(fd, in + have, sizeof in - have, 0);
        cr_assert_gt(r, 0, "%s: the server closed", k->name);
        have += (size_t)r;
    }
}

/* Each kind, one at a time and PIPELINE deep, on two connections. */
static uint64_t requests_of(const struct kind *k, int fds[2], int rounds)
{
    uint64_t sent = 0;
    for (int r = 0; r < rounds; r++)
        for (int c = 0; c < 2; c++) {
            exchange(fds[c], k, 1);
            exchange(fds[c], k, PIPELINE);
            sent += 1 + PIPELINE;
        }
    return sent;
}

Test(alloc, no_request_allocates_on_the_server)
{
    int fds[2] = {ts_connect(port), ts_connect(port)};
    cr_assert(fds[0] >= 0 && fds[1] >= 0);
    size_t n = sizeof kinds / sizeof kinds[0];
    for (size_t i = 0; i < n; i++) /* warm: arenas, buffers */
        requests_of(&kinds[i], fds, 4);
    bool clean = true;
    for (size_t i = 0; i < n; i++) {
        uint64_t before = *count;
        uint64_t sent = requests_of(&kinds[i], fds, 30);
        uint64_t allocations = *count - before;
        cr_log_info("%s: %llu allocations for %llu requests", kinds[i].name,
                    (unsigned long long)allocations, (unsigned long long)sent);
        /* A request that allocates shows as one per request or more;
         * the few allowed here are the server's own (a timer's rare
         * growth), not any request's. */
        if (allocations * 100 > sent) {
            cr_log_error("%s: %.2f allocations per request", kinds[i].name,
                         (double)allocations / (double)sent);
            clean = false;
        }
    }
    cr_assert(clean, "some requests allocate (see above)");
    close(fds[0]);
    close(fds[1]);
}
