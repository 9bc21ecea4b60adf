/*
 * echo_conn.c - the tutorial's first server: send back what arrives.
 *
 * An echo stream has no request boundaries, so each read is a "request"
 * for the worker's rules: bytes that have arrived are echoed, even during
 * a stop, and the connection waits or closes when nothing more has. What
 * the client does not read back at once waits in the connection (at most
 * one chunk: nothing more is read until it is out), so a client that
 * sends without reading costs ECHO_CHUNK bytes, and no worker.
 */
#include "echo_conn.h"
#include "log.h"
#include "monotime.h"

#include <errno.h>
#include <string.h>
#include <sys/uio.h>

#define ECHO_CHUNK 16384

static enum worker_next close_for(struct conn *c, enum conn_end why)
{
    c->end = why;
    return WORKER_CLOSE;
}

/* Writes iov, which is the connection's own `out` or not; true when the
 * socket took all of it. Otherwise *next says what the connection needs:
 * to wait for room (the rest is kept in `out`), or to close. */
static bool write_all(struct worker *w, struct conn *c, const struct iovec *iov, bool from_out,
                      enum worker_next *next)
{
    struct iovec v = *iov;
    ssize_t taken = worker_writev(w, c, &v, 1);
    if (taken < 0) {
        log_verbose("echo connection: send: %s", strerror(errno));
        *next = close_for(c, errno == ETIMEDOUT ? CONN_END_WRITE_TIMEOUT : CONN_END_ERROR);
        return false;
    }
    worker_count(w, COUNTER_BYTES_OUT, (uint64_t)taken);
    if ((size_t)taken == iov->iov_len)
        return true;
    if (from_out) {
        buf_consume(&c->out, (size_t)taken);
    } else if (!conn_keep_unsent(c, iov, 1, (size_t)taken)) {
        *next = close_for(c, CONN_END_ERROR);
        return false;
    }
    c->wait = CONN_WAIT_WRITE;
    c->deadline_ms = c->write_deadline_ms;
    *next = WORKER_WAIT;
    return false;
}

/* Nothing read: why not. */
static enum worker_next nothing_read(struct conn *c, ssize_t n)
{
    if (n == 0)
        return close_for(c, CONN_END_NORMAL);
    switch (errno) {
    case EAGAIN:
        return WORKER_WAIT;
    case ESHUTDOWN:
        return close_for(c, CONN_END_NORMAL);
    case ETIMEDOUT:
        log_verbose("echo connection: idle timeout");
        return close_for(c, CONN_END_IDLE_TIMEOUT);
    case ECONNABORTED:
        return close_for(c, CONN_END_CUT);
    default:
        log_verbose("echo connection: recv: %s", strerror(errno));
        return close_for(c, CONN_END_ERROR);
    }
}

enum worker_next echo_conn_serve(struct worker *w, struct conn *c, void *arg)
{
    const struct echo_conn_config *cfg = arg;
    char buf[ECHO_CHUNK];
    enum worker_next next;
    if (c->out.len > 0) { /* what an earlier call could not write */
        struct iovec unsent = {.iov_base = buf_head(&c->out), .iov_len = c->out.len};
        if (!write_all(w, c, &unsent, true, &next))
            return next;
        buf_consume(&c->out, c->out.len);
    }
    bool echoed_all = false; /* the last read did not fill buf */
    for (;;) {
        c->wait = CONN_WAIT_IDLE;
        ssize_t n = worker_read(w, c, buf, sizeof buf, echoed_all);
        if (n <= 0)
            return nothing_read(c, n);
        worker_count(w, COUNTER_BYTES_IN, (uint64_t)n);
        echoed_all = (size_t)n < sizeof buf;
        struct iovec chunk = {.iov_base = buf, .iov_len = (size_t)n};
        c->write_deadline_ms = monotime_deadline(cfg->write_timeout_ms);
        if (!write_all(w, c, &chunk, false, &next))
            return next;
        /* A client streaming without pause gets a turn, not the worker. */
        if (worker_turn_over(w, 1) && worker_requeue(w, c))
            return WORKER_HANDED;
    }
}
