/*
 * support.c - test helpers (see support.h).
 */
#include "support.h"
#include "app.h"
#include "net.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

long long ts_now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

int ts_start(struct server *srv, struct server_config *cfg)
{
    char err[256];
    cfg->host = "127.0.0.1";
    cfg->port = "0";
    if (server_start(srv, cfg, err, sizeof err) < 0) {
        fprintf(stderr, "ts_start: %s\n", err);
        return -1;
    }
    return server_port(srv);
}

int ts_connect(int port)
{
    char p[16], err[256];
    snprintf(p, sizeof p, "%d", port);
    int fd = net_connect("127.0.0.1", p, TEST_IO_TIMEOUT_MS, err, sizeof err);
    if (fd < 0)
        return -1;
    net_set_recv_timeout(fd, TEST_IO_TIMEOUT_MS);
    net_set_send_timeout(fd, TEST_IO_TIMEOUT_MS);
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
    char *content = client_search_content("search", value);
    char err[256];
    int rc = client_exchange(fd, APP_TEXT_JSON, APP_UTF8, content, strlen(content),
                             FRAME_DEFAULT_MAX_CONTENT, resp, err, sizeof err);
    free(content);
    return rc;
}

bool ts_content_is(const struct client_response *resp, const char *content)
{
    return strcmp(resp->header.content_type, APP_TEXT_JSON) == 0 &&
           resp->length == strlen(content) && memcmp(resp->content, content, resp->length) == 0;
}

void ts_expected_search(const char *value, char *out, size_t cap)
{
    const char *answer = app_search(value);
    if (answer)
        snprintf(out, cap, "{\"result\": \"%s\"}", answer);
    else
        snprintf(out, cap, "{\"result\": \"No match for '%s'.\"}", value);
}

const char *ts_bin_dir(void)
{
    const char *dir = getenv("ENCHUFE_BIN");
    return dir && *dir ? dir : "bin";
}

bool ts_wait_for_line(int fd, const char *needle, int timeout_ms)
{
    char line[512];
    size_t len = 0;
    long long deadline = ts_now_ms() + timeout_ms;
    while (ts_now_ms() < deadline) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)(deadline - ts_now_ms())) <= 0)
            continue;
        char c;
        if (read(fd, &c, 1) != 1)
            return false;
        if (c != '\n' && len < sizeof line - 1) {
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

/* Reads the "Listening on HOST:PORT" line and returns PORT. */
static int read_listening_port(int fd)
{
    char line[512];
    size_t len = 0;
    long long deadline = ts_now_ms() + TEST_IO_TIMEOUT_MS;
    while (ts_now_ms() < deadline && len < sizeof line - 1) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        if (read(fd, line + len, 1) != 1)
            return -1;
        if (line[len] != '\n') {
            len++;
            continue;
        }
        line[len] = '\0';
        len = 0;
        const char *at = strstr(line, "Listening on ");
        const char *colon = at ? strrchr(at, ':') : NULL;
        if (colon)
            return atoi(colon + 1);
    }
    return -1;
}

pid_t ts_spawn_server(const char *bin_dir, const char *const extra[], int *port, int *err_fd)
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
        dup2(pipefd[1], STDERR_FILENO);
        execv(path, (char *const *)argv);
        _exit(127);
    }
    close(pipefd[1]);
    if (pid < 0 || (*port = read_listening_port(pipefd[0])) <= 0) {
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
