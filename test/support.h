/*
 * support.h - helpers shared by the Criterion suites and the plain-C
 * stress programs (which run under ThreadSanitizer, where Criterion
 * cannot). Nothing here asserts; callers check the results.
 */
#ifndef ENCHUFE_TEST_SUPPORT_H
#define ENCHUFE_TEST_SUPPORT_H

#include "client.h"
#include "server.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Every socket a test opens gives up after this long: ts_io_timeout_ms,
 * TEST_IO_TIMEOUT_MS unless a program sets it (the stress programs run
 * under ThreadSanitizer, many times slower, and their --no-park rounds
 * make clients wait for a worker as long as others keep theirs). */
#define TEST_IO_TIMEOUT_MS 5000
extern int ts_io_timeout_ms;

/* Starts an in-process server on 127.0.0.1, port 0, into *srv. Returns
 * its port or -1. */
int ts_start(struct server **srv, struct server_config *cfg);

/* A blocking loopback connection with ts_io_timeout_ms timeouts, or -1. */
int ts_connect(int port);

/* Builds proto-header + header_json + content into out; returns the size. */
size_t ts_frame(uint8_t *out, size_t cap, const char *header_json, const void *content,
                size_t len);

/* Writes a whole search request for value at buf (as bytes, to send in
 * pieces or back to back); returns its size, 0 if it does not fit. */
size_t ts_search_request(const char *value, uint8_t *buf, size_t cap);

/* Reads one answer on fd; true if it is the right one for a search of
 * value. */
bool ts_answer_is(int fd, const char *value);

/* Writes len bytes on fd from a thread of its own (so that the caller can
 * read meanwhile); rc is net_write_full's. */
struct ts_writer {
    int fd;
    const void *data;
    size_t len;
    int rc;
};
void *ts_write_all(void *writer);

/* Sends a search request for value and reads the response; 0 or -1. */
int ts_search(int fd, const char *value, struct client_response *resp);
int ts_search_on(const struct stream *s, const char *value, struct client_response *resp);

/* True if the response is text/json with exactly this content. */
bool ts_content_is(const struct client_response *resp, const char *content);

/* The expected content for a search value (hit, or no match). */
void ts_expected_search(const char *value, char *out, size_t cap);

/* Starts bin_dir/enchufe-server with extra args (NULL-terminated) and
 * reads its stderr until "Listening on". Returns the pid and sets *port
 * (0 for a Unix socket) and *err_fd (the read end of its stderr), or
 * returns -1. The server is killed if the test process dies. */
pid_t ts_spawn_server(const char *bin_dir, const char *const extra[], int *port, int *err_fd);

/* The same, with one resource limit (setrlimit) lowered in the child
 * before exec: RLIMIT_NOFILE, RLIMIT_AS... resource -1 sets none. */
pid_t ts_spawn_server_limited(const char *bin_dir, const char *const extra[], int resource,
                              unsigned long limit, int *port, int *err_fd);

/* Sends a request whose header is header_json and content is content. */
int ts_send_raw(int fd, const char *header_json, const void *content, size_t len);

/* Reads one response and returns its "error" code in code (or ""). */
int ts_read_error_code(int fd, char *code, size_t cap);

/* True if the server closed fd (recv returns 0 or a reset) within timeout_ms. */
bool ts_closed_within(int fd, int timeout_ms);

/* Kinds of connection ts_mixed_connection makes, hostile and normal. */
#define TS_MIXED_KINDS 7

/* One connection of kind n % TS_MIXED_KINDS: a one-shot request, a
 * keep-alive run, a malformed header, a reset mid-request, a too-large
 * request, a half-close after a request, or connect-and-leave. Returns
 * false if a normal request got a wrong answer. */
bool ts_mixed_connection(int port, int n);

/* Number of open fds and VmRSS (KiB) of a process, from /proc. */
int ts_proc_fds(pid_t pid);
long ts_proc_rss_kib(pid_t pid);
/* CPU time (user + system) used by a process, in milliseconds. */
long ts_proc_cpu_ms(pid_t pid);

/* Reads lines from fd until one contains needle or timeout_ms passes. */
bool ts_wait_for_line(int fd, const char *needle, int timeout_ms);

/* Waits for pid to exit within timeout_ms (then SIGKILLs it); returns its
 * exit status, or -1 if it had to be killed or died of a signal. */
int ts_wait_exit(pid_t pid, int timeout_ms);

/* The directory holding the built binaries (ENCHUFE_BIN, default "bin"). */
const char *ts_bin_dir(void);

/* Runs a shell command (killed after 30 s), captures its stdout and
 * stderr into out, and returns its exit status (-1 if it died). */
int ts_run(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A file of the test PKI that tools/make_test_certs.sh made (in
 * ENCHUFE_TLS_DIR, default build/tls): "ca.pem", "server.pem", ... The
 * path stays valid until eight more calls. */
const char *ts_tls_path(const char *name);

/* Has cfg serve TLS as well, on a port of its own (port 0), with the test
 * server certificate. */
void ts_tls_config(struct server_config *cfg);

/* A client context that trusts the test CA and presents the certificate
 * NAME.pem / NAME.key ("client", "stranger"), or none (NULL). */
SSL_CTX *ts_tls_client(const char *name);

/* Connects to 127.0.0.1:port and runs the handshake (name "localhost").
 * 0, or -1 with a message in err. */
int ts_tls_open(SSL_CTX *ctx, int port, struct stream *out, char *err, size_t errlen);

/* jansson's allocations fail from now on: only the one after n that
 * succeed (n >= 0), as when memory is short for a moment, or every one
 * (n < 0); until ts_json_allocations_restore(). */
void ts_json_allocation_fails(int n);
void ts_json_allocations_restore(void);

/* Milliseconds on the monotonic clock. */
long long ts_now_ms(void);

/* A client exchange's deadline: ts_io_timeout_ms from now. */
long long ts_deadline(void);

#endif
