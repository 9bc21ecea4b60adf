/*
 * support.c - test helpers (see support.h).
 */
#include "support.h"
#include "answers.h"
#include "app.h"
#include "frame.h"
#include "frame_io.h"
#include "json_alloc.h"
#include "net.h"

#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int ts_io_timeout_ms = TEST_IO_TIMEOUT_MS;

long long ts_now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

long long ts_deadline(void)
{
    return ts_now_ms() + ts_io_timeout_ms;
}

int ts_start(struct server **srv, struct server_config *cfg)
{
    char err[256];
    cfg->host = "127.0.0.1";
    cfg->port = "0";
    if (!(*srv = server_start(cfg, err, sizeof err))) {
        fprintf(stderr, "ts_start: %s\n", err);
        return -1;
    }
    return server_port(*srv);
}

int ts_connect(int port)
{
    char p[16], err[256];
    snprintf(p, sizeof p, "%d", port);
    int fd = net_connect("127.0.0.1", p, ts_io_timeout_ms, err, sizeof err);
    if (fd < 0)
        return -1;
    net_set_recv_timeout(fd, ts_io_timeout_ms);
    net_set_send_timeout(fd, ts_io_timeout_ms);
    return fd;
}

size_t ts_frame(uint8_t *out, size_t cap, const char *header_json, const void *content,
                size_t len)
{
    size_t h = strlen(header_json);
    if (2 + h + len > cap)
        abort();
    out[0] = (uint8_t)(h >> 8);
    out[1] = (uint8_t)h;
    memcpy(out + 2, header_json, h);
    if (len)
        memcpy(out + 2 + h, content, len);
    return 2 + h + len;
}

int ts_search(int fd, const char *value, struct client_response *resp)
{
    struct stream s = {.fd = fd};
    return ts_search_on(&s, value, resp);
}

int ts_search_on(const struct stream *s, const char *value, struct client_response *resp)
{
    char *content = client_search_content("search", value);
    char err[256];
    int rc = client_exchange_on(s, PROTO_TEXT_JSON, PROTO_UTF8, content, strlen(content),
                             FRAME_DEFAULT_MAX_CONTENT, ts_deadline(), resp, err, sizeof err);
    free(content);
    return rc;
}

size_t ts_search_request(const char *value, uint8_t *buf, size_t cap)
{
    char *content = client_search_content("search", value);
    size_t len = strlen(content);
    uint8_t head[FRAME_ENCODED_HEADER_MAX];
    int n = frame_encode_header(head, PROTO_TEXT_JSON, PROTO_UTF8, len);
    size_t total = n > 0 ? (size_t)n + len : 0;
    if (total == 0 || total > cap) {
        free(content);
        return 0;
    }
    memcpy(buf, head, (size_t)n);
    memcpy(buf + n, content, len);
    free(content);
    return total;
}

bool ts_answer_is(int fd, const char *value)
{
    struct client_response resp;
    char err[256], expected[256];
    if (client_read_response(fd, 1 << 20, ts_deadline(), &resp, err, sizeof err) < 0)
        return false;
    ts_expected_search(value, expected, sizeof expected);
    bool ok = ts_content_is(&resp, expected);
    client_response_free(&resp);
    return ok;
}

void *ts_write_all(void *writer)
{
    struct ts_writer *w = writer;
    w->rc = net_write_full(w->fd, w->data, w->len);
    return NULL;
}

bool ts_content_is(const struct client_response *resp, const char *content)
{
    return strcmp(resp->header.content_type, PROTO_TEXT_JSON) == 0 &&
           resp->length == strlen(content) && memcmp(resp->content, content, resp->length) == 0;
}

void ts_expected_search(const char *value, char *out, size_t cap)
{
    size_t len = 0;
    const char *content = answers_find(answers_builtin(), value, strlen(value), &len);
    if (content)
        snprintf(out, cap, "%.*s", (int)len, content);
    else
        snprintf(out, cap, "{\"result\": \"No match for '%s'.\"}", value);
}

const char *ts_bin_dir(void)
{
    const char *dir = getenv("ENCHUFE_BIN");
    return dir && *dir ? dir : "bin";
}

/* Reads fd a byte at a time (so nothing after the line is consumed) until
 * a line containing needle; copies it to line. False at EOF or timeout. */
static bool find_line(int fd, const char *needle, int timeout_ms, char *line, size_t cap)
{
    size_t len = 0;
    long long deadline = ts_now_ms() + timeout_ms;
    while (ts_now_ms() < deadline) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)(deadline - ts_now_ms())) <= 0)
            continue;
        char c;
        if (read(fd, &c, 1) != 1)
            return false;
        if (c != '\n' && len < cap - 1) {
            line[len++] = c;
            continue;
        }
        line[len] = '\0';
        len = 0;
        if (strstr(line, needle))
            return true;
    }
    return false;
}

bool ts_wait_for_line(int fd, const char *needle, int timeout_ms)
{
    char line[512];
    return find_line(fd, needle, timeout_ms, line, sizeof line);
}

/* Reads the "Listening on HOST:PORT" line and returns PORT. */
static int read_listening_port(int fd)
{
    char line[512];
    if (!find_line(fd, "Listening on ", TEST_IO_TIMEOUT_MS, line, sizeof line))
        return -1;
    if (strstr(line, "Listening on unix:"))
        return 0; /* a Unix socket: no port */
    const char *colon = strrchr(line, ':');
    return colon ? atoi(colon + 1) : -1;
}

pid_t ts_spawn_server(const char *bin_dir, const char *const extra[], int *port, int *err_fd)
{
    return ts_spawn_server_limited(bin_dir, extra, -1, 0, port, err_fd);
}

pid_t ts_spawn_server_limited(const char *bin_dir, const char *const extra[], int resource,
                              unsigned long limit, int *port, int *err_fd)
{
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return -1;
    char path[512];
    snprintf(path, sizeof path, "%s/enchufe-server", bin_dir);
    const char *argv[32] = {path, "--port", "0"};
    size_t argc = 3;
    for (size_t i = 0; extra && extra[i] && argc < 31; i++)
        argv[argc++] = extra[i];
    argv[argc] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        /* If the test dies (a failed assertion ends its process), the
         * server dies with it instead of living on, holding the runner's
         * pipes open. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(pipefd[1], STDERR_FILENO);
        struct rlimit rl = {limit, limit};
        if (resource >= 0 && setrlimit(resource, &rl) < 0)
            _exit(126);
        execv(path, (char *const *)argv);
        _exit(127);
    }
    close(pipefd[1]);
    if (pid < 0 || (*port = read_listening_port(pipefd[0])) < 0) {
        if (pid > 0)
            ts_wait_exit(pid, 0);
        close(pipefd[0]);
        return -1;
    }
    *err_fd = pipefd[0];
    return pid;
}

int ts_wait_exit(pid_t pid, int timeout_ms)
{
    long long deadline = ts_now_ms() + timeout_ms;
    int status;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        if (r < 0)
            return -1;
        if (ts_now_ms() >= deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        struct timespec ten_ms = {0, 10 * 1000 * 1000};
        nanosleep(&ten_ms, NULL);
    }
}

int ts_send_raw(int fd, const char *header_json, const void *content, size_t len)
{
    size_t cap = 2 + strlen(header_json) + len;
    uint8_t *buf = malloc(cap);
    size_t n = ts_frame(buf, cap, header_json, content, len);
    int rc = net_write_full(fd, buf, n);
    free(buf);
    return rc;
}

int ts_read_error_code(int fd, char *code, size_t cap)
{
    struct client_response resp;
    char err[256];
    code[0] = '\0';
    if (client_read_response(fd, 1 << 20, ts_deadline(), &resp, err, sizeof err) < 0)
        return -1;
    const char *key = "\"error\": \"";
    const char *at = memmem(resp.content, resp.length, key, strlen(key));
    if (at) {
        at += strlen(key);
        size_t n = 0;
        while (n + 1 < cap && at + n < (const char *)resp.content + resp.length && at[n] != '"')
            n++;
        memcpy(code, at, n);
        code[n] = '\0';
    }
    client_response_free(&resp);
    return 0;
}

bool ts_closed_within(int fd, int timeout_ms)
{
    long long deadline = ts_now_ms() + timeout_ms;
    char buf[4096];
    while (ts_now_ms() < deadline) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)(deadline - ts_now_ms())) <= 0)
            continue;
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return true;
    }
    return false;
}

int ts_proc_fds(pid_t pid)
{
    char cmd[64];
    snprintf(cmd, sizeof cmd, "ls /proc/%d/fd | wc -l", (int)pid);
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p && fscanf(p, "%d", &n) != 1)
        n = -1;
    if (p)
        pclose(p);
    return n;
}

long ts_proc_rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

long ts_proc_cpu_ms(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* Fields after the command name, which may hold spaces: skip to ')'. */
    const char *p = strrchr(buf, ')');
    unsigned long utime, stime;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime,
                     &stime) != 2)
        return -1;
    return (long)((utime + stime) * 1000 / (unsigned long)sysconf(_SC_CLK_TCK));
}

static bool search_ok(int fd, const char *value)
{
    struct client_response resp;
    char expected[256];
    ts_expected_search(value, expected, sizeof expected);
    if (ts_search(fd, value, &resp) < 0)
        return false;
    bool ok = ts_content_is(&resp, expected);
    client_response_free(&resp);
    return ok;
}

bool ts_mixed_connection(int port, int n)
{
    int fd = ts_connect(port);
    if (fd < 0)
        return false;
    bool ok = true;
    char code[64];
    switch (n % TS_MIXED_KINDS) {
    case 0:
        ok = search_ok(fd, "ring");
        break;
    case 1:
        for (int i = 0; i < 5 && ok; i++)
            ok = search_ok(fd, "neo");
        break;
    case 2:
        ts_send_raw(fd, "{nope", NULL, 0);
        ts_read_error_code(fd, code, sizeof code);
        break;
    case 3: {
        struct linger lg = {1, 0}; /* close with a reset, mid-request */
        net_write_full(fd, "\x00\x40{\"by", 6);
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        break;
    }
    case 4:
        ts_send_raw(fd,
                    "{\"byteorder\": \"little\", \"content-type\": \"b\", "
                    "\"content-encoding\": \"b\", \"content-length\": 99999999}",
                    NULL, 0);
        ts_read_error_code(fd, code, sizeof code);
        break;
    case 5: {
        char *content = client_search_content("search", "x");
        frame_io_send(fd, PROTO_TEXT_JSON, PROTO_UTF8, content, strlen(content), 0);
        free(content);
        shutdown(fd, SHUT_WR);
        struct client_response resp;
        char err[128];
        ok = client_read_response(fd, 1 << 20, ts_deadline(), &resp, err, sizeof err) == 0;
        client_response_free(&resp);
        break;
    }
    default:
        break;
    }
    close(fd);
    return ok;
}

int ts_run(char *out, size_t cap, const char *fmt, ...)
{
    char cmd[1024], full[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    snprintf(full, sizeof full, "timeout 30 %s 2>&1", cmd);
    FILE *p = popen(full, "r");
    if (!p)
        return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

const char *ts_tls_path(const char *name)
{
    static char paths[8][512];
    static atomic_uint next;
    char *out = paths[atomic_fetch_add(&next, 1) % 8];
    const char *dir = getenv("ENCHUFE_TLS_DIR");
    snprintf(out, sizeof paths[0], "%s/%s", dir && *dir ? dir : "build/tls", name);
    return out;
}

void ts_tls_config(struct server_config *cfg)
{
    cfg->tls_port = "0";
    cfg->tls.cert_file = ts_tls_path("server.pem");
    cfg->tls.key_file = ts_tls_path("server.key");
}

SSL_CTX *ts_tls_client(const char *name)
{
    char cert[64], key[64], err[256];
    struct tls_client_config cfg = {.ca_file = ts_tls_path("ca.pem")};
    if (name) {
        snprintf(cert, sizeof cert, "%s.pem", name);
        snprintf(key, sizeof key, "%s.key", name);
        cfg.cert_file = ts_tls_path(cert);
        cfg.key_file = ts_tls_path(key);
    }
    SSL_CTX *ctx = tls_client_context(&cfg, err, sizeof err);
    if (!ctx)
        fprintf(stderr, "ts_tls_client: %s\n", err);
    return ctx;
}

int ts_tls_open(SSL_CTX *ctx, int port, struct stream *out, char *err, size_t errlen)
{
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    struct net_endpoint ep = {.host = "127.0.0.1", .port = p};
    struct client_tls tls = {.ctx = ctx, .server_name = "localhost"};
    return client_open(&ep, &tls, ts_deadline(), out, err, errlen);
}

/* --- failing allocations ------------------------------------------------------ */

static _Atomic int allocations_left; /* that succeed before the one that fails */

static void *fail_one(size_t n)
{
    return atomic_fetch_sub(&allocations_left, 1) == 0 ? NULL : malloc(n);
}

static void *fail_all(size_t n)
{
    (void)n;
    return NULL;
}

void ts_json_allocation_fails(int n)
{
    atomic_store(&allocations_left, n);
    json_alloc_set_source(n < 0 ? fail_all : fail_one);
}

void ts_json_allocations_restore(void)
{
    json_alloc_set_source(NULL);
}
