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
#include "poller.h"
#include "server.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#define ECHO_CHUNK 16384

/* Reads the next bytes to echo: > 0 bytes, 0 to close, -1 to park. */
static ssize_t next_chunk(struct pool_conn *conn, const struct serve_ctx *sc, char *buf,
                          size_t len, bool may_skip_read)
{
    enum pool_wait why;
    if (!sc->poller) {
        ssize_t n = pool_conn_recv(conn, buf, len, sc->cfg->idle_timeout_ms, &why);
        if (why == POOL_IDLE_TIMEOUT)
            log_verbose("echo connection: idle timeout");
        return n > 0 ? n : 0;
    }
    if (may_skip_read)
        return -1; /* the last read took all there was: let epoll say when */
    ssize_t n;
    do
        n = recv(pool_conn_fd(conn), buf, len, MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return -1;
    return n > 0 ? n : 0;
}

bool echo_conn_serve(struct pool_conn *conn, void *ctx)
{
    const struct serve_ctx *sc = ctx;
    int fd = pool_conn_fd(conn);
    char buf[ECHO_CHUNK];
    bool echoed_all = false; /* the last read did not fill buf */
    ssize_t n;
    while ((n = next_chunk(conn, sc, buf, sizeof buf, echoed_all)) > 0) {
        pool_conn_count(conn, STAT_BYTES_IN, (uint64_t)n);
        struct iovec iov = {.iov_base = buf, .iov_len = (size_t)n};
        if (net_writev_until(fd, &iov, 1, net_deadline(sc->cfg->write_timeout_ms)) < 0) {
            log_verbose("echo connection: send: %s", strerror(errno));
            break;
        }
        pool_conn_count(conn, STAT_BYTES_OUT, (uint64_t)n);
        echoed_all = (size_t)n < sizeof buf;
    }
    if (n < 0 && poller_park(sc->poller, fd) == 0)
        return true;
    if (sc->poller)
        poller_forget(sc->poller, fd);
    return false;
}
