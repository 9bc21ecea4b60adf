/*
 * worker.c - one worker: pop a socket, serve it, close or park it, repeat
 * (see worker.h).
 *
 * Concurrency in one paragraph: the queue hands each socket to exactly one
 * worker, and only that worker reads it. A stop is a flag the worker
 * reads between requests, so it alone decides, with nothing read yet,
 * whether a request is there to serve. (Waking it by shutting the socket
 * down would race a request whose first bytes it had just read.) The
 * worker's fd is written by the worker and read by worker_cut() under
 * w->lock, and a worker takes a socket only under that lock after
 * checking `forced`, so a forced stop either sees the socket or makes the
 * worker close it unserved.
 */
#include "worker.h"
#include "log.h"
#include "monotime.h"
#include "net.h"
#include "poller.h"
#include "tls.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int worker_init(struct worker *w, struct worker_rules *rules)
{
    memset(w, 0, sizeof *w);
    w->rules = rules;
    w->stream.fd = -1;
    atomic_init(&w->lingering, false);
    return pthread_mutex_init(&w->lock, NULL);
}

void worker_destroy(struct worker *w)
{
    pthread_mutex_destroy(&w->lock);
    buf_free(&w->buf);
}

const struct stream *worker_stream(const struct worker *w)
{
    return &w->stream;
}

struct buf *worker_buf(struct worker *w)
{
    return &w->buf;
}

void worker_count(struct worker *w, enum counter which, uint64_t n)
{
    atomic_fetch_add_explicit(&w->counters[which], n, memory_order_relaxed);
}

void worker_record_latency(struct worker *w, uint64_t ns)
{
    latency_record(&w->latency, ns);
}

uint64_t worker_counter(struct worker *w, enum counter which)
{
    return atomic_load_explicit(&w->counters[which], memory_order_relaxed);
}

/* --- waiting for the next request ------------------------------------------ */

/* Without a poller the worker blocks in recv on its own connection, but
 * never longer than a tick (SO_RCVTIMEO, set here once per connection),
 * so that it sees a stop. This is the only blocking recv on a worker's
 * socket: every other read polls with its own deadline (net_recv_until),
 * so the tick changes nothing anywhere else. */
static ssize_t wait_in_worker_tls(struct worker *w, void *buf, size_t len,
                                  enum worker_wait *why);

static ssize_t wait_in_worker(struct worker *w, void *buf, size_t len, enum worker_wait *why)
{
    const struct worker_rules *r = w->rules;
    if (w->stream.ssl)
        return wait_in_worker_tls(w, buf, len, why);
    if (!w->timeout_set) {
        net_set_recv_timeout(w->stream.fd, WORKER_TICK_MS);
        w->timeout_set = true;
    }
    long long deadline = monotime_deadline(r->idle_timeout_ms);
    for (;;) {
        bool stopping = atomic_load(&r->stopping);
        if (atomic_load(&r->forced)) {
            *why = WORKER_STOPPING;
            return -1;
        }
        /* While stopping, answer what the client already sent, no more. */
        ssize_t n = recv(w->stream.fd, buf, len, stopping ? MSG_DONTWAIT : 0);
        if (n >= 0) {
            *why = WORKER_REQUEST;
            return n;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            *why = WORKER_ERROR;
            return -1;
        }
        if (stopping) {
            *why = WORKER_STOPPING;
            return -1;
        }
        if (deadline && monotime_ms() >= deadline) {
            *why = WORKER_IDLE_TIMEOUT;
            return -1;
        }
    }
}

/* A read that does not wait; nothing there yet is WORKER_STOPPING (the
 * caller only asks when it would otherwise park, or may not). */
static ssize_t read_now(struct worker *w, void *buf, size_t len, enum worker_wait *why)
{
    ssize_t n = stream_read_now(&w->stream, buf, len);
    if (n >= 0)
        *why = WORKER_REQUEST;
    else
        *why = errno == EAGAIN || errno == EWOULDBLOCK ? WORKER_STOPPING : WORKER_ERROR;
    return n;
}

/* The same wait for a TLS connection: its socket is non-blocking (tls.h),
 * so the worker waits for a tick in poll, then reads what OpenSSL makes
 * of what arrived (part of a record is still nothing). */
static ssize_t wait_in_worker_tls(struct worker *w, void *buf, size_t len,
                                  enum worker_wait *why)
{
    const struct worker_rules *r = w->rules;
    long long deadline = monotime_deadline(r->idle_timeout_ms);
    for (;;) {
        if (atomic_load(&r->forced)) {
            *why = WORKER_STOPPING;
            return -1;
        }
        bool stopping = atomic_load(&r->stopping);
        ssize_t n = read_now(w, buf, len, why);
        if (*why != WORKER_STOPPING)
            return n;
        if (stopping)
            return -1;
        if (deadline && monotime_ms() >= deadline) {
            *why = WORKER_IDLE_TIMEOUT;
            return -1;
        }
        struct pollfd p = {.fd = w->stream.fd, .events = POLLIN};
        poll(&p, 1, WORKER_TICK_MS);
    }
}

/* Waits up to the linger for the client's next request, in one blocking
 * recv whose receive timeout is the linger (set once per connection: the
 * same rule as the tick, for the other mode). Returns > 0 bytes or 0 at
 * end of stream (WORKER_REQUEST), or -1: WORKER_ERROR, or WORKER_PARKED
 * meaning "nothing came: park it" (the linger ran out, or the worker was
 * called back by worker_call_back's signal). */
static ssize_t linger_tls(struct worker *w, void *buf, size_t len, enum worker_wait *why);

static ssize_t linger(struct worker *w, void *buf, size_t len, enum worker_wait *why)
{
    if (w->stream.ssl)
        return linger_tls(w, buf, len, why);
    if (!w->timeout_set) {
        net_set_recv_timeout(w->stream.fd, w->rules->linger_ms);
        w->timeout_set = true;
    }
    atomic_store(&w->lingering, true);
    ssize_t n = -1;
    errno = EAGAIN;
    /* Checked after the flag is up: a push from here on calls us back. */
    if (queue_backlog(w->rules->queue) <= 0 && !atomic_load(&w->rules->stopping))
        n = recv(w->stream.fd, buf, len, 0);
    atomic_store(&w->lingering, false);
    if (n >= 0) {
        *why = WORKER_REQUEST;
        return n;
    }
    *why = errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? WORKER_PARKED
                                                                     : WORKER_ERROR;
    return -1;
}

/* The linger of a TLS connection: a wait in poll (which the call-back
 * signal ends just the same), then a read of what came. */
static ssize_t linger_tls(struct worker *w, void *buf, size_t len, enum worker_wait *why)
{
    struct pollfd p = {.fd = w->stream.fd, .events = POLLIN};
    int ready = 0;
    atomic_store(&w->lingering, true);
    if (queue_backlog(w->rules->queue) <= 0 && !atomic_load(&w->rules->stopping))
        ready = poll(&p, 1, w->rules->linger_ms);
    atomic_store(&w->lingering, false);
    if (ready > 0) {
        ssize_t n = read_now(w, buf, len, why);
        if (*why != WORKER_STOPPING)
            return n;
    }
    *why = WORKER_PARKED;
    return -1;
}

/* Whether to linger rather than park at once: only when no connection
 * waits for a worker (a queued one must not wait behind an idle client). */
static bool may_linger(const struct worker *w)
{
    const struct worker_rules *r = w->rules;
    return r->linger_ms > 0 && !atomic_load(&r->stopping) && queue_backlog(r->queue) <= 0;
}

/* A stop finds a connection whose client has not sent anything yet: it
 * was accepted before the stop, and its first request is most likely on
 * its way (a client sends it right after connecting), so it gets a moment
 * to arrive. A connection that has been served before gets none: it is
 * idle, and its client retries on a new connection. */
static ssize_t first_request_at_stop(struct worker *w, void *buf, size_t len,
                                     enum worker_wait *why)
{
    ssize_t n = stream_read_until(&w->stream, buf, len,
                                  monotime_deadline(WORKER_FIRST_REQUEST_GRACE_MS));
    if (n >= 0)
        *why = WORKER_REQUEST;
    else
        *why = errno == ETIMEDOUT ? WORKER_STOPPING : WORKER_ERROR;
    return n;
}

/* What the first read of a connection found, or a stop's verdict on an
 * empty socket: a fresh connection at a stop gets its grace. */
static ssize_t settle(struct worker *w, ssize_t n, void *buf, size_t len, enum worker_wait *why)
{
    bool fresh = w->fresh;
    if (*why == WORKER_REQUEST)
        w->fresh = false;
    if (*why == WORKER_STOPPING && fresh && !atomic_load(&w->rules->forced))
        return first_request_at_stop(w, buf, len, why);
    return n;
}

static ssize_t next_request(struct worker *w, void *buf, size_t len, bool socket_was_empty,
                            enum worker_wait *why);

ssize_t worker_next(struct worker *w, void *buf, size_t len, bool socket_was_empty,
                    enum worker_wait *why)
{
    ssize_t n = next_request(w, buf, len, socket_was_empty, why);
    return settle(w, n, buf, len, why);
}

static ssize_t next_request(struct worker *w, void *buf, size_t len, bool socket_was_empty,
                            enum worker_wait *why)
{
    const struct worker_rules *r = w->rules;
    if (atomic_load(&r->forced)) {
        *why = WORKER_STOPPING;
        return -1;
    }
    if (!r->poller)
        return wait_in_worker(w, buf, len, why);
    /* Bytes OpenSSL has already taken off the socket are there to read,
     * and epoll would never say so. */
    if (!socket_was_empty || stream_has_pending(&w->stream)) {
        ssize_t n = read_now(w, buf, len, why);
        if (*why != WORKER_STOPPING) /* bytes, end of stream or an error */
            return n;
    }
    if (may_linger(w)) {
        ssize_t n = linger(w, buf, len, why);
        if (*why != WORKER_PARKED)
            return n;
    }
    stream_park(&w->stream);
    if (poller_park(r->poller, w->stream.fd, w->fresh) == 0) {
        w->parked = true;
        *why = WORKER_PARKED;
        return -1;
    }
    /* Refused: the server is stopping. A request that arrived since the
     * last read must still be answered, so look once more. */
    return read_now(w, buf, len, why);
}

bool worker_turn_over(struct worker *w, unsigned answered)
{
    w->turn_requests += answered;
    if (queue_backlog(w->rules->queue) <= 0)
        return false;
    return w->turn_requests >= WORKER_TURN_REQUESTS ||
           monotime_ms() - w->turn_start_ms >= WORKER_TURN_MS;
}

bool worker_requeue(struct worker *w)
{
    if (queue_try_push(w->rules->queue, w->stream.fd) < 0)
        return false;
    w->parked = true; /* in the queue: the worker that pops it owns it */
    return true;
}

/* worker_call_back's signal interrupts the lingering recv (EINTR); the
 * handler itself has nothing to do. */
static void on_call_back(int sig)
{
    (void)sig;
}

bool worker_call_back(struct worker *w)
{
    if (!atomic_exchange(&w->lingering, false))
        return false;
    pthread_kill(w->thread, WORKER_CALL_BACK_SIGNAL);
    return true;
}

void worker_install_call_back(void)
{
    /* No SA_RESTART: the recv must end, not resume. */
    struct sigaction sa = {.sa_handler = on_call_back};
    sigemptyset(&sa.sa_mask);
    sigaction(WORKER_CALL_BACK_SIGNAL, &sa, NULL);
}

/* --- the loop ---------------------------------------------------------------- */

/* Takes fd as the worker's connection, unless a forced stop came first. */
static bool claim(struct worker *w, int fd)
{
    pthread_mutex_lock(&w->lock);
    bool ok = !atomic_load(&w->rules->forced);
    if (ok) {
        w->stream = (struct stream){.fd = fd, .ssl = tls_server_session(w->rules->tls, fd)};
        w->timeout_set = false;
        w->parked = false;
        w->turn_requests = 0;
        w->turn_start_ms = monotime_ms();
        w->fresh = true;
    }
    pthread_mutex_unlock(&w->lock);
    return ok;
}

static void release(struct worker *w)
{
    pthread_mutex_lock(&w->lock);
    w->stream = (struct stream){.fd = -1};
    pthread_mutex_unlock(&w->lock);
}

_Static_assert(TLS_FAIL_CLOSED + 1 == COUNTER_TLS_FAILURES, "one counter per tls_failure");

/* The counter of a handshake that failed for this reason. */
static enum counter failure_counter(enum tls_failure f)
{
    return (enum counter)(COUNTER_TLS_FAILED_FIRST + (int)f);
}

/* A new TLS connection's handshake, bounded like a request. True if it
 * is done (or the connection is not TLS). */
static bool handshake(struct worker *w)
{
    SSL *ssl = w->stream.ssl;
    if (!ssl || SSL_is_init_finished(ssl))
        return true;
    enum tls_failure why;
    char err[256], peer[128] = "?";
    long long deadline = monotime_deadline(w->rules->handshake_timeout_ms);
    if (stream_handshake(&w->stream, deadline, &why, err, sizeof err) == 0) {
        worker_count(w, COUNTER_TLS_HANDSHAKES, 1);
        if (SSL_session_reused(ssl))
            worker_count(w, COUNTER_TLS_RESUMED, 1);
        return true;
    }
    worker_count(w, failure_counter(why), 1);
    if (why != TLS_FAIL_CLOSED || log_verbosity() >= 1) {
        net_peer_address(w->stream.fd, peer, sizeof peer);
        log_info("%s: TLS handshake failed: %s", peer, err);
    }
    return false;
}

static void serve_one(struct worker *w, int fd)
{
    struct worker_rules *r = w->rules;
    if (claim(w, fd)) {
        atomic_fetch_add(&r->busy, 1);
        if (handshake(w))
            r->serve(w, r->serve_arg);
        release(w);
        atomic_fetch_sub(&r->busy, 1);
        if (w->parked)
            return;
    } else {
        atomic_fetch_add(&r->cut, 1);
    }
    /* Its number, reused by the next accept, must be added to the epoll
     * set afresh. */
    if (r->poller)
        poller_forget(r->poller, fd);
    worker_count(w, COUNTER_CLOSED, 1);
    tls_server_close(r->tls, fd);
}

void worker_run(struct worker *w)
{
    int fd;
    while (queue_pop(w->rules->queue, &fd) == 0)
        serve_one(w, fd);
}

bool worker_cut(struct worker *w)
{
    pthread_mutex_lock(&w->lock);
    bool held = w->stream.fd >= 0;
    /* Counted before the shutdown: the worker may exit the moment its
     * socket is shut, and whoever waits for it must see the count. */
    if (held) {
        atomic_fetch_add(&w->rules->cut, 1);
        shutdown(w->stream.fd, SHUT_RDWR);
    }
    pthread_mutex_unlock(&w->lock);
    return held;
}
