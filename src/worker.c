/*
 * worker.c - one worker: pop a connection, serve it while it can make
 * progress, then close it or park it, repeat (see worker.h).
 *
 * Concurrency in one paragraph: the queue and the poller hand each
 * connection to exactly one worker at a time, and only that worker
 * touches it. A stop is a flag the worker reads when it would wait, so it
 * alone decides, with nothing read yet, whether a request is there to
 * serve. (Waking it by shutting the socket down would race a request
 * whose first bytes it had just read.) w->conn is written by the worker
 * and read by worker_cut() under w->lock, and a worker takes a connection
 * only under that lock after checking `forced`, so a forced stop either
 * sees the connection or makes the worker close it unserved.
 *
 * Each socket rule has one owner: in park mode a plain socket's receive
 * timeout is the linger, set here the first time the worker lingers on
 * it; without a poller it is the tick. Every other read or write on a
 * worker's socket either does not wait (MSG_DONTWAIT, or a TLS socket,
 * which is non-blocking) or waits in poll with its own deadline.
 */
#include "worker.h"
#include "log.h"
#include "monotime.h"
#include "net.h"
#include "poller.h"
#include "stream.h"

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

void worker_rules_init(struct worker_rules *r)
{
    memset(r, 0, sizeof *r);
    atomic_init(&r->stopping, false);
    atomic_init(&r->forced, false);
    atomic_init(&r->busy, 0);
}

int worker_init(struct worker *w, struct worker_rules *rules)
{
    memset(w, 0, sizeof *w);
    w->rules = rules;
    atomic_init(&w->lingering, false);
    atomic_init(&w->tid, 0);
    atomic_init(&w->calling, 0);
    return pthread_mutex_init(&w->lock, NULL);
}

void worker_destroy(struct worker *w)
{
    pthread_mutex_destroy(&w->lock);
    buf_free(&w->spare);
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

bool worker_stopping(const struct worker *w)
{
    return atomic_load(&w->rules->stopping);
}

/* --- lingering: a short wait for a client that is about to send ------------- */

/* Only when no connection waits for a worker (a queued one must not wait
 * behind a slow client), and not at a stop. And a client that once left
 * a worker lingering in vain in the middle of something (a request, a
 * handshake, an answer: it had to be parked) is not waited for again
 * there: a client that dribbles a byte now and then would otherwise cost
 * a worker a linger per byte. Between requests every client is. */
static bool may_linger(const struct worker *w, const struct conn *c)
{
    const struct worker_rules *r = w->rules;
    if (c->slow && c->wait != CONN_WAIT_IDLE)
        return false;
    return r->linger_ms > 0 && !atomic_load(&r->stopping) && queue_backlog(r->queue) <= 0;
}

/* Waits up to the linger for the socket to be ready for `events`, in
 * poll; the call-back signal ends the wait. True if it is. */
static bool linger_for(struct worker *w, struct conn *c, short events)
{
    struct pollfd p = {.fd = c->stream.fd, .events = events};
    int ready = 0;
    atomic_store(&w->lingering, true);
    /* Checked after the flag is up: a push from here on calls us back. */
    if (queue_backlog(w->rules->queue) <= 0 && !atomic_load(&w->rules->stopping))
        ready = poll(&p, 1, w->rules->linger_ms);
    atomic_store(&w->lingering, false);
    return ready > 0;
}

/* The read version: on a plain socket one blocking recv, whose receive
 * timeout is the linger, both waits and reads (one system call where
 * poll-then-recv would take two); on a TLS socket, poll then a read of
 * what OpenSSL makes of what came. -1 with EAGAIN if nothing did. */
static ssize_t linger_read(struct worker *w, struct conn *c, void *buf, size_t len)
{
    if (c->stream.ssl) {
        if (linger_for(w, c, POLLIN))
            return stream_read_now(&c->stream, buf, len);
        errno = EAGAIN;
        return -1;
    }
    if (!c->recv_timeout_set) {
        net_set_recv_timeout(c->stream.fd, w->rules->linger_ms);
        c->recv_timeout_set = true;
    }
    ssize_t n = -1;
    errno = EAGAIN;
    atomic_store(&w->lingering, true);
    if (queue_backlog(w->rules->queue) <= 0 && !atomic_load(&w->rules->stopping))
        n = recv(c->stream.fd, buf, len, 0);
    atomic_store(&w->lingering, false);
    if (n < 0 && (errno == EWOULDBLOCK || errno == EINTR))
        errno = EAGAIN; /* the linger ran out, or the worker was called back */
    return n;
}

/* --- waiting in the worker (--no-park) ------------------------------------------ */

/* The deadline of the wait c is in: between requests the idle timeout,
 * from now; otherwise the one its serve function set. */
static long long wait_deadline(const struct worker *w, const struct conn *c)
{
    if (c->wait == CONN_WAIT_IDLE)
        return monotime_deadline(w->rules->idle_timeout_ms);
    return c->deadline_ms;
}

/* A stop finds a connection whose client has not sent anything yet: it
 * was accepted before the stop, and its first request is most likely on
 * its way (a client sends it right after connecting), so it gets a moment
 * to arrive. A connection that has been served before gets none: it is
 * idle, and its client retries on a new connection. */
static ssize_t first_request_at_stop(struct conn *c, void *buf, size_t len)
{
    ssize_t n = stream_read_until(&c->stream, buf, len,
                                  monotime_deadline(CONN_FIRST_REQUEST_GRACE_MS));
    if (n < 0 && errno == ETIMEDOUT)
        errno = ESHUTDOWN;
    return n;
}

/* Nothing has arrived and the server is stopping: between requests that
 * ends the connection (ESHUTDOWN), within one it waits on. */
static bool done_at_stop(const struct conn *c)
{
    return c->wait == CONN_WAIT_IDLE;
}

/* Without a poller the worker blocks in recv on its own connection, but
 * never longer than a tick (SO_RCVTIMEO, set once per connection), so
 * that it sees a stop; a TLS socket is non-blocking and waits in poll. */
static ssize_t wait_in_worker(struct worker *w, struct conn *c, void *buf, size_t len)
{
    const struct worker_rules *r = w->rules;
    long long deadline = wait_deadline(w, c);
    if (!c->stream.ssl && !c->recv_timeout_set) {
        net_set_recv_timeout(c->stream.fd, WORKER_TICK_MS);
        c->recv_timeout_set = true;
    }
    for (;;) {
        if (atomic_load(&r->forced)) {
            errno = ECONNABORTED;
            return -1;
        }
        bool stopping = atomic_load(&r->stopping);
        ssize_t n;
        if (c->stream.ssl)
            n = stream_read_now(&c->stream, buf, len);
        else /* while stopping between requests, what has arrived and no more */
            n = recv(c->stream.fd, buf, len, stopping && done_at_stop(c) ? MSG_DONTWAIT : 0);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        if (stopping && done_at_stop(c)) {
            if (c->fresh)
                return first_request_at_stop(c, buf, len);
            errno = ESHUTDOWN;
            return -1;
        }
        if (deadline && monotime_ms() >= deadline) {
            errno = ETIMEDOUT;
            return -1;
        }
        if (c->stream.ssl) {
            struct pollfd p = {.fd = c->stream.fd, .events = POLLIN};
            poll(&p, 1, WORKER_TICK_MS);
        }
    }
}

/* --- reads and writes for serve functions ------------------------------------- */

static ssize_t read_in_park_mode(struct worker *w, struct conn *c, void *buf, size_t len,
                                 bool socket_was_empty)
{
    bool stopping = atomic_load(&w->rules->stopping);
    /* Bytes OpenSSL has already taken off the socket are there to read,
     * and epoll would never say so. A stop always looks once. */
    if (!socket_was_empty || stopping || stream_has_pending(&c->stream)) {
        ssize_t n = stream_read_now(&c->stream, buf, len);
        if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
            return n;
    }
    if (stopping) {
        errno = done_at_stop(c) && !c->fresh ? ESHUTDOWN : EAGAIN;
        return -1;
    }
    if (may_linger(w, c))
        return linger_read(w, c, buf, len);
    errno = EAGAIN;
    return -1;
}

ssize_t worker_read(struct worker *w, struct conn *c, void *buf, size_t len,
                    bool socket_was_empty)
{
    if (atomic_load(&w->rules->forced)) {
        errno = ECONNABORTED;
        return -1;
    }
    ssize_t n = w->rules->poller ? read_in_park_mode(w, c, buf, len, socket_was_empty)
                                 : wait_in_worker(w, c, buf, len);
    if (n > 0)
        c->fresh = false;
    return n;
}

static size_t iov_total(const struct iovec *iov, int iovcnt)
{
    size_t n = 0;
    for (int i = 0; i < iovcnt; i++)
        n += iov[i].iov_len;
    return n;
}

ssize_t worker_writev(struct worker *w, struct conn *c, struct iovec *iov, int iovcnt)
{
    size_t total = iov_total(iov, iovcnt);
    if (!w->rules->poller) {
        if (stream_writev_until(&c->stream, iov, iovcnt, c->write_deadline_ms) < 0)
            return -1;
        return (ssize_t)total;
    }
    size_t taken = 0;
    for (;;) {
        short wait_for = POLLOUT;
        ssize_t k = stream_writev_now(&c->stream, iov, iovcnt, taken, &wait_for);
        if (k < 0)
            return -1;
        taken += (size_t)k;
        if (taken == total)
            return (ssize_t)taken;
        if (!may_linger(w, c) || !linger_for(w, c, wait_for)) {
            c->want_write = wait_for == POLLOUT;
            return (ssize_t)taken;
        }
    }
}

/* --- turns --------------------------------------------------------------------- */

bool worker_turn_over(struct worker *w, unsigned answered)
{
    w->turn_requests += answered;
    if (queue_backlog(w->rules->queue) <= 0)
        return false;
    return w->turn_requests >= WORKER_TURN_REQUESTS ||
           monotime_ms() - w->turn_start_ms >= WORKER_TURN_MS;
}

/* --- buffers --------------------------------------------------------------------- */

/* A connection taken up: what it held stops counting against the budget
 * (the worker's own buffers never do), and it gets the worker's buffer if
 * it holds none. */
static void take_up(struct worker *w, struct conn *c)
{
    c->tls_buffers_freed = false; /* OpenSSL takes them again as it needs them */
    bool handshake_room = c->charged && c->wait == CONN_WAIT_HANDSHAKE;
    conn_uncharge(c);
    if (handshake_room && w->rules->poller)
        poller_handshake_taken_up(w->rules->poller);
    if (!c->in.data && w->spare.data)
        buf_move(&c->in, &w->spare);
}

/* Gives an emptied buffer back to the worker, unless it grew large for
 * one big request (buf_consume frees those) or the worker has one. */
static void give_back(struct worker *w, struct buf *b)
{
    b->len = 0;
    buf_consume(b, 0);
    if (!w->spare.data && b->data)
        buf_move(&w->spare, b);
    else
        buf_free(b);
}

/* A connection put down: an empty buffer goes back to the worker; a
 * partial request is kept in a buffer no larger than it needs (a client
 * that sent one byte then went quiet keeps one byte, not the worker's
 * 16 KiB). */
static void put_down(struct worker *w, struct conn *c)
{
    if (c->in.len == 0) {
        give_back(w, &c->in);
    } else if (c->in.cap > 2 * c->in.len) {
        struct buf fit = {0};
        if (buf_reserve_exact(&fit, c->in.len)) {
            memcpy(fit.data, buf_head(&c->in), c->in.len);
            fit.len = c->in.len;
            give_back(w, &c->in);
            c->in = fit;
        }
    }
    if (c->out.len == 0)
        buf_free(&c->out);
    if (conn_buffered(c) == 0)
        c->held_since_ms = 0;
    else if (c->held_since_ms == 0)
        c->held_since_ms = monotime_ms();
}

bool worker_requeue(struct worker *w, struct conn *c)
{
    put_down(w, c);
    if (queue_try_push(w->rules->queue, c) == 0)
        return true; /* in the queue: the worker that pops it owns it */
    take_up(w, c);
    return false;
}

/* --- the TLS handshake ------------------------------------------------------------- */

_Static_assert(TLS_FAIL_CLOSED + 1 == COUNTER_TLS_FAILURES, "one counter per tls_failure");

/* The counter of a handshake that failed for this reason. */
static enum counter failure_counter(enum tls_failure f)
{
    return (enum counter)(COUNTER_TLS_FAILED_FIRST + (int)f);
}

static enum worker_next handshake_failed(struct worker *w, struct conn *c,
                                         enum tls_failure why, const char *err)
{
    char peer[128] = "?";
    if (why == TLS_FAIL_TIMEOUT) { /* counted with the connection's end */
        c->end = CONN_END_HANDSHAKE_TIMEOUT;
        return WORKER_CLOSE;
    }
    worker_count(w, failure_counter(why), 1);
    if (why != TLS_FAIL_CLOSED || log_verbosity() >= 1) {
        net_peer_address(c->stream.fd, peer, sizeof peer);
        log_info("%s: TLS handshake failed: %s", peer, err);
    }
    c->end = CONN_END_ERROR;
    return WORKER_CLOSE;
}

static void handshake_done(struct worker *w, struct conn *c)
{
    worker_count(w, COUNTER_TLS_HANDSHAKES, 1);
    if (SSL_session_reused(c->stream.ssl))
        worker_count(w, COUNTER_TLS_RESUMED, 1);
    c->wait = CONN_WAIT_IDLE;
}

/* True once the client's first TLS record has arrived whole. Until then
 * the socket's low-water mark is that record's size, so that the
 * poller (or a linger) wakes for the rest of it, not for each byte. */
static bool first_record_arrived(struct conn *c)
{
    size_t missing = tls_first_record_missing(c->stream.fd);
    if (missing > 1 && net_set_recv_lowat(c->stream.fd, (int)missing) == 0)
        c->rcvlowat_set = true;
    return missing == 0;
}

/* Whether a TLS handshake not begun yet may begin. Not before its
 * client's ClientHello has arrived whole (lingering for it like a read):
 * begun, OpenSSL keeps its handshake state (CONN_TLS_HANDSHAKE) and
 * buffers, which a silent client, or one that sent half a hello, would
 * hold until --read-timeout; unbegun, it costs a socket and an empty
 * session. And not while the budget has no room for that state
 * (c->deferred: it waits in the poller, unbegun, for handshakes under way
 * to end): shedding those instead, oldest first, cut the very ones a
 * crowd's clients were about to finish, and 10,000 clients connecting at
 * once never finished one. */
static bool may_start_handshake(struct worker *w, struct conn *c)
{
    if (!first_record_arrived(c) &&
        (!may_linger(w, c) || !linger_for(w, c, POLLIN) || !first_record_arrived(c)))
        return false;
    c->deferred = !c->admitted && !conn_ledger_may_start_handshake(c->ledger);
    if (c->deferred)
        return false;
    if (c->rcvlowat_set) { /* OpenSSL reads whatever comes from here on */
        net_set_recv_lowat(c->stream.fd, 1);
        c->rcvlowat_set = false;
    }
    return true;
}

/* Runs a new TLS connection's handshake as far as the client lets it,
 * lingering like a read. True when it is done; otherwise *next says
 * what the connection needs (to wait, or to close). */
static bool handshake(struct worker *w, struct conn *c, enum worker_next *next)
{
    enum tls_failure why;
    char err[256];
    if (!w->rules->poller) { /* --no-park: the worker waits for it */
        long long deadline = w->rules->handshake_timeout_ms
                                 ? c->opened_ms + w->rules->handshake_timeout_ms : 0;
        if (stream_handshake(&c->stream, deadline, &why, err, sizeof err) < 0) {
            *next = handshake_failed(w, c, why, err);
            return false;
        }
        handshake_done(w, c);
        return true;
    }
    if (!stream_handshake_started(&c->stream) && !may_start_handshake(w, c)) {
        c->wait = CONN_WAIT_HANDSHAKE;
        c->want_write = false;
        *next = WORKER_WAIT;
        return false;
    }
    c->admitted = false;
    for (;;) {
        short wait_for;
        int rc = stream_handshake_step(&c->stream, &wait_for, &why, err, sizeof err);
        if (rc < 0) {
            *next = handshake_failed(w, c, why, err);
            return false;
        }
        if (rc == 1) {
            handshake_done(w, c);
            return true;
        }
        if (!may_linger(w, c) || !linger_for(w, c, wait_for)) {
            c->wait = CONN_WAIT_HANDSHAKE;
            c->want_write = wait_for == POLLOUT;
            *next = WORKER_WAIT;
            return false;
        }
    }
}

/* --- the loop ---------------------------------------------------------------- */

/* Takes c as the worker's connection, unless a forced stop came first. */
static bool claim(struct worker *w, struct conn *c)
{
    pthread_mutex_lock(&w->lock);
    bool ok = !atomic_load(&w->rules->forced);
    if (ok) {
        w->conn = c;
        w->turn_requests = 0;
        w->turn_start_ms = monotime_ms();
    }
    pthread_mutex_unlock(&w->lock);
    return ok;
}

static void release(struct worker *w)
{
    pthread_mutex_lock(&w->lock);
    w->conn = NULL;
    pthread_mutex_unlock(&w->lock);
}

/* Handshake first, then the serve function. */
static enum worker_next step(struct worker *w, struct conn *c)
{
    enum worker_next next;
    if (c->wait == CONN_WAIT_HANDSHAKE && !handshake(w, c, &next))
        return next;
    return w->rules->serve(w, c, w->rules->serve_arg);
}

/* The deadline of the wait a connection is parked for. */
static void set_deadline(const struct worker *w, struct conn *c)
{
    const struct worker_rules *r = w->rules;
    if (c->wait == CONN_WAIT_IDLE)
        c->deadline_ms = monotime_deadline(r->idle_timeout_ms);
    else if (c->wait == CONN_WAIT_HANDSHAKE)
        c->deadline_ms = r->handshake_timeout_ms ? c->opened_ms + r->handshake_timeout_ms : 0;
}

/* Parks c; false if the poller refused it (errno: the server is stopping
 * and c is idle, or a forced stop, or no memory). */
static bool park(struct worker *w, struct conn *c)
{
    if (!w->rules->poller) { /* a serve function that waits in the worker never asks */
        errno = EINVAL;
        return false;
    }
    c->expired = false;
    if (c->wait != CONN_WAIT_IDLE)
        c->slow = true;
    set_deadline(w, c);
    /* OpenSSL's record buffers go back unless they hold bytes: a session
     * waiting idle or for its client's next handshake flight keeps none
     * (10,000 clients connecting at once would otherwise be charged
     * 34 KiB each against --max-buffered while their handshakes wait,
     * and shed before they finish). */
    c->tls_buffers_freed = stream_park(&c->stream);
    put_down(w, c);
    return poller_park(w->rules->poller, c) == 0;
}

/* How a connection the poller refused ends. */
static enum conn_end refusal_end(const struct worker_rules *r, int why)
{
    if (atomic_load(&r->forced) || why == ECANCELED)
        return CONN_END_CUT;
    if (why == ENOBUFS) {
        log_verbose("buffered bytes at --max-buffered: closing a connection that would hold "
                    "more");
        return CONN_END_SHED;
    }
    return CONN_END_ERROR;
}

static void serve_conn(struct worker *w, struct conn *c)
{
    struct worker_rules *r = w->rules;
    if (!claim(w, c)) {
        conn_close(c, CONN_END_CUT);
        return;
    }
    atomic_fetch_add(&r->busy, 1);
    take_up(w, c);
    enum worker_next next;
    for (;;) {
        next = step(w, c);
        if (next != WORKER_WAIT || park(w, c))
            break;
        /* Refused: at a stop an idle connection is closed, after one more
         * look for a request that arrived since (a stop answers those). */
        int why = errno;
        take_up(w, c);
        if (atomic_load(&r->forced) || why != ESHUTDOWN) {
            c->end = refusal_end(r, why);
            next = WORKER_CLOSE;
            break;
        }
    }
    release(w);
    atomic_fetch_sub(&r->busy, 1);
    if (next == WORKER_CLOSE) {
        give_back(w, &c->in); /* a closed connection's unread bytes go with it */
        conn_close(c, atomic_load(&r->forced) ? CONN_END_CUT : c->end);
    }
}

void worker_run(struct worker *w)
{
    struct conn *c;
    atomic_store(&w->tid, (int)gettid());
    while (queue_pop(w->rules->queue, &c) == 0)
        serve_conn(w, c);
    /* The thread id may be reused once the thread is gone: no caller may
     * still be about to signal it. */
    atomic_store(&w->tid, 0);
    while (atomic_load(&w->calling) > 0)
        sched_yield();
}

/* worker_call_back's signal interrupts the lingering recv or poll
 * (EINTR); the handler itself has nothing to do. */
static void on_call_back(int sig)
{
    (void)sig;
}

static pid_t process_id;

/* tgkill itself rather than pthread_kill, which blocks and restores every
 * signal and asks the process id around it (four system calls for one,
 * on a path taken for a tenth of the requests when connections outnumber
 * the workers). What pthread_kill's lock guards against, a thread gone
 * and its id reused, `calling` does: the worker does not end while a
 * caller is between reading its id and signalling. */
bool worker_call_back(struct worker *w)
{
    atomic_fetch_add(&w->calling, 1);
    bool was = atomic_exchange(&w->lingering, false);
    int tid = atomic_load(&w->tid);
    if (was && tid > 0)
        syscall(SYS_tgkill, process_id, tid, WORKER_CALL_BACK_SIGNAL);
    atomic_fetch_sub(&w->calling, 1);
    return was;
}

void worker_install_call_back(void)
{
    process_id = getpid();
    /* No SA_RESTART: the recv must end, not resume. */
    struct sigaction sa = {.sa_handler = on_call_back};
    sigemptyset(&sa.sa_mask);
    sigaction(WORKER_CALL_BACK_SIGNAL, &sa, NULL);
}

bool worker_cut(struct worker *w)
{
    pthread_mutex_lock(&w->lock);
    bool held = w->conn != NULL;
    if (held)
        shutdown(w->conn->stream.fd, SHUT_RDWR);
    pthread_mutex_unlock(&w->lock);
    return held;
}
