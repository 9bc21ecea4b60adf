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
    enum pool_wait why;
    ssize_t n;
    while ((n = pool_conn_recv(conn, buf, sizeof buf, cfg->idle_timeout_ms, &why)) > 0) {
        struct iovec iov = {.iov_base = buf, .iov_len = (size_t)n};
        if (net_writev_until(fd, &iov, 1, net_deadline(cfg->write_timeout_ms)) < 0) {
            log_verbose("echo connection: send: %s", strerror(errno));
            return;
        }
    }
    if (why == POOL_IDLE_TIMEOUT)
        log_verbose("echo connection: idle timeout");
    else if (why == POOL_ERROR)
        log_verbose("echo connection: recv: %s", strerror(errno));
}
