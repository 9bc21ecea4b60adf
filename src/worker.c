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
#include "monotime.h"
#include "net.h"
#include "poller.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int worker_init(struct worker *w, struct worker_rules *rules)
{
    memset(w, 0, sizeof *w);
    w->rules = rules;
    w->fd = -1;
    return pthread_mutex_init(&w->lock, NULL);
}

void worker_destroy(struct worker *w)
{
    pthread_mutex_destroy(&w->lock);
    buf_free(&w->buf);
}

int worker_fd(const struct worker *w)
{
    return w->fd;
}

struct buf *worker_buf(struct worker *w)
{
    return &w->buf;
}

void worker_count(struct worker *w, enum counter which, uint64_t n)
{
    atomic_fetch_add_explicit(&w->counters[which], n, memory_order_relaxed);
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
static ssize_t wait_in_worker(struct worker *w, void *buf, size_t len, enum worker_wait *why)
{
    const struct worker_rules *r = w->rules;
    if (!w->tick_set) {
        net_set_recv_timeout(w->fd, WORKER_TICK_MS);
        w->tick_set = true;
    }
    long long deadline = monotime_deadline(r->idle_timeout_ms);
    for (;;) {
        bool stopping = atomic_load(&r->stopping);
        if (atomic_load(&r->forced)) {
            *why = WORKER_STOPPING;
            return -1;
        }
        /* While stopping, answer what the client already sent, no more. */
        ssize_t n = recv(w->fd, buf, len, stopping ? MSG_DONTWAIT : 0);
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

/* A read that does not wait: what recv says, with EINTR retried; nothing
 * there yet is WORKER_STOPPING (the caller only asks when it would
 * otherwise park, or may not). */
static ssize_t read_now(int fd, void *buf, size_t len, enum worker_wait *why)
{
    ssize_t n;
    do
        n = recv(fd, buf, len, MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n >= 0)
        *why = WORKER_REQUEST;
    else
        *why = errno == EAGAIN || errno == EWOULDBLOCK ? WORKER_STOPPING : WORKER_ERROR;
    return n;
}

ssize_t worker_next(struct worker *w, void *buf, size_t len, bool socket_was_empty,
                    enum worker_wait *why)
{
    const struct worker_rules *r = w->rules;
    if (atomic_load(&r->forced)) {
        *why = WORKER_STOPPING;
        return -1;
    }
    if (!r->poller)
        return wait_in_worker(w, buf, len, why);
    if (!socket_was_empty) {
        ssize_t n = read_now(w->fd, buf, len, why);
        if (*why != WORKER_STOPPING) /* bytes, end of stream or an error */
            return n;
    }
    if (poller_park(r->poller, w->fd) == 0) {
        w->parked = true;
        *why = WORKER_PARKED;
        return -1;
    }
    /* Refused: the server is stopping. A request that arrived since the
     * last read must still be answered, so look once more. */
    return read_now(w->fd, buf, len, why);
}

/* --- the loop ---------------------------------------------------------------- */

/* Takes fd as the worker's connection, unless a forced stop came first. */
static bool claim(struct worker *w, int fd)
{
    pthread_mutex_lock(&w->lock);
    bool ok = !atomic_load(&w->rules->forced);
    if (ok) {
        w->fd = fd;
        w->tick_set = false;
        w->parked = false;
    }
    pthread_mutex_unlock(&w->lock);
    return ok;
}

static void release(struct worker *w)
{
    pthread_mutex_lock(&w->lock);
    w->fd = -1;
    pthread_mutex_unlock(&w->lock);
}

static void serve_one(struct worker *w, int fd)
{
    struct worker_rules *r = w->rules;
    if (claim(w, fd)) {
        atomic_fetch_add(&r->busy, 1);
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
    close(fd);
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
    bool held = w->fd >= 0 && shutdown(w->fd, SHUT_RDWR) == 0;
    pthread_mutex_unlock(&w->lock);
    return held;
}
