/*
 * echo_conn.c - the tutorial's first server: send back what arrives.
 *
 * An echo stream has no request boundaries, so each read is a "request"
 * for the worker's rules: bytes that have arrived are echoed, even during
 * a stop, and the connection closes or parks when nothing more has. Every
 * chunk is echoed before the next read, so nothing is held when the
 * connection is handed back at the end of its turn.
 */
#include "echo_conn.h"
#include "log.h"
#include "monotime.h"
#include "stream.h"

#include <errno.h>
#include <string.h>
#include <sys/uio.h>

#define ECHO_CHUNK 16384

void echo_conn_serve(struct worker *w, void *arg)
{
    const struct echo_conn_config *cfg = arg;
    const struct stream *s = worker_stream(w);
    char buf[ECHO_CHUNK];
    bool echoed_all = false; /* the last read did not fill buf */
    enum worker_wait why;
    ssize_t n;
    while ((n = worker_next(w, buf, sizeof buf, echoed_all, &why)) > 0) {
        worker_count(w, COUNTER_BYTES_IN, (uint64_t)n);
        if (stream_write_until(s, buf, (size_t)n, monotime_deadline(cfg->write_timeout_ms)) < 0) {
            log_verbose("echo connection: send: %s", strerror(errno));
            return;
        }
        worker_count(w, COUNTER_BYTES_OUT, (uint64_t)n);
        echoed_all = (size_t)n < sizeof buf;
        /* A client streaming without pause gets a turn, not the worker. */
        if (worker_turn_over(w, 1) && worker_requeue(w))
            return;
    }
    if (why == WORKER_IDLE_TIMEOUT)
        log_verbose("echo connection: idle timeout");
}
