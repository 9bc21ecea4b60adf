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
#include <sys/socket.h>

#define ECHO_CHUNK 16384

void echo_conn_serve(struct pool_conn *conn, void *ctx)
{
    const struct serve_ctx *sc = ctx;
    int fd = pool_conn_fd(conn);
    char buf[ECHO_CHUNK];
    bool echoed_all = false; /* the last read did not fill buf */
    enum pool_wait why;
    ssize_t n;
    while ((n = pool_conn_next(conn, buf, sizeof buf, echoed_all, &why)) > 0) {
        pool_conn_count(conn, STAT_BYTES_IN, (uint64_t)n);
        struct iovec iov = {.iov_base = buf, .iov_len = (size_t)n};
        if (net_writev_until(fd, &iov, 1, net_deadline(sc->cfg->write_timeout_ms)) < 0) {
            log_verbose("echo connection: send: %s", strerror(errno));
            return;
        }
        pool_conn_count(conn, STAT_BYTES_OUT, (uint64_t)n);
        echoed_all = (size_t)n < sizeof buf;
    }
    if (why == POOL_IDLE_TIMEOUT)
        log_verbose("echo connection: idle timeout");
}
