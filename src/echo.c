/*
 * echo.c - the tutorial's first server: send back what arrives.
 *
 * An echo stream has no request boundaries, so each recv is a "request"
 * for the pool's shutdown rules: bytes that already arrived are echoed,
 * then the connection closes.
 */
#include "echo.h"
#include "log.h"
#include "net.h"
#include "server.h"

#include <errno.h>
#include <string.h>

#define ECHO_CHUNK 16384

void echo_conn_serve(struct pool_conn *conn, void *ctx)
{
    const struct server_config *cfg = ctx;
    int fd = pool_conn_fd(conn);
    char buf[ECHO_CHUNK];
    enum pool_wait w;
    while ((w = pool_conn_wait(conn, cfg->idle_timeout_ms)) == POOL_REQUEST) {
        ssize_t n = net_recv(fd, buf, sizeof buf);
        if (n == 0)
            return;
        if (n < 0) {
            log_verbose("echo connection: recv: %s", strerror(errno));
            return;
        }
        struct iovec iov = {.iov_base = buf, .iov_len = (size_t)n};
        if (net_writev_until(fd, &iov, 1, net_deadline(cfg->write_timeout_ms)) < 0) {
            log_verbose("echo connection: send: %s", strerror(errno));
            return;
        }
    }
    if (w == POOL_IDLE_TIMEOUT)
        log_verbose("echo connection: idle timeout");
}
