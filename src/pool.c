/*
 * pool.c - worker threads: pop a socket, serve it, close or park it,
 * repeat.
 *
 * Concurrency in one paragraph: the queue hands each socket to exactly one
 * worker, and only that worker reads it. A stop is a flag the worker
 * reads between requests, so it alone decides, with nothing read yet,
 * whether a request is there to serve. (Waking it by shutting the socket
 * down would race a request whose first bytes it had just read.) A
 * worker's slot fd is written by the worker and read by pool_force() under
 * slot->lock, and a worker takes a socket only under that lock after
 * checking `forced`, so a forced stop either sees the socket or makes the
 * worker close it unserved. `stopping` and `forced` are atomics; `running`
 * counts live workers under p->lock so that pool_wait can wait for them
 * with a deadline.
 */
#include "pool.h"
#include "buf.h"
#include "net.h"
#include "poller.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Aligned to a cache line: each worker bumps its own request counter, and
 * neighbours sharing a line would slow each other down for nothing. */
struct pool_conn {
    _Alignas(64) pthread_t thread;
    pthread_mutex_t lock;
    struct pool *pool;
    int fd;          /* -1 when the worker holds no connection */
    bool tick_set;   /* the fd has the POOL_TICK_MS receive timeout */
    bool parked;     /* the fd went to the poller: not ours to close */
    atomic_uint_least64_t counters[STAT_COUNT];
    struct buf buf; /* the worker's receive buffer, lent to each connection */
};

struct buf *pool_conn_buf(struct pool_conn *c)
{
    return &c->buf;
}

void pool_conn_count(struct pool_conn *c, enum stat_counter which, uint64_t n)
{
    atomic_fetch_add_explicit(&c->counters[which], n, memory_order_relaxed);
}

uint64_t pool_total(struct pool *p, enum stat_counter which)
{
    uint64_t n = 0;
    for (size_t i = 0; i < p->started; i++)
        n += atomic_load_explicit(&p->slots[i].counters[which], memory_order_relaxed);
    return n;
}

uint64_t pool_requests(struct pool *p)
{
    uint64_t n = 0;
    for (int k = STAT_SEARCH_HIT; k < STAT_BYTES_IN; k++)
        n += pool_total(p, (enum stat_counter)k);
    return n;
}

int pool_conn_fd(const struct pool_conn *c)
{
    return c->fd;
}

/* --- waiting for the next request ------------------------------------------ */

/* Without a poller the worker blocks in recv on its own connection, but
 * never longer than a tick (SO_RCVTIMEO, set here once per connection),
 * so that it sees a stop. This is the only blocking recv on a worker's
 * socket: every other read polls with its own deadline (net_recv_until),
 * so the tick changes nothing anywhere else. */
static ssize_t wait_in_worker(struct pool_conn *c, void *buf, size_t len, enum pool_wait *why)
{
    if (!c->tick_set) {
        net_set_recv_timeout(c->fd, POOL_TICK_MS);
        c->tick_set = true;
    }
    int idle_ms = c->pool->cfg.idle_timeout_ms;
    long long deadline = idle_ms > 0 ? net_now_ms() + idle_ms : 0;
    for (;;) {
        bool stopping = atomic_load(&c->pool->stopping);
        if (atomic_load(&c->pool->forced)) {
            *why = POOL_STOPPING;
            return -1;
        }
        /* While stopping, answer what the client already sent, no more. */
        ssize_t n = recv(c->fd, buf, len, stopping ? MSG_DONTWAIT : 0);
        if (n >= 0) {
            *why = POOL_REQUEST;
            return n;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            *why = POOL_ERROR;
            return -1;
        }
        if (stopping) {
            *why = POOL_STOPPING;
            return -1;
        }
        if (deadline && net_now_ms() >= deadline) {
            *why = POOL_IDLE_TIMEOUT;
            return -1;
        }
    }
}

/* A read that does not wait: what recv says, with EINTR retried. */
static ssize_t read_now(int fd, void *buf, size_t len, enum pool_wait *why)
{
    ssize_t n;
    do
        n = recv(fd, buf, len, MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n >= 0)
        *why = POOL_REQUEST;
    else
        *why = errno == EAGAIN || errno == EWOULDBLOCK ? POOL_STOPPING : POOL_ERROR;
    return n;
}

ssize_t pool_conn_next(struct pool_conn *c, void *buf, size_t len, bool socket_was_empty,
                       enum pool_wait *why)
{
    struct pool *p = c->pool;
    if (atomic_load(&p->forced)) {
        *why = POOL_STOPPING;
        return -1;
    }
    if (!p->cfg.poller)
        return wait_in_worker(c, buf, len, why);
    if (!socket_was_empty) {
        ssize_t n = read_now(c->fd, buf, len, why);
        if (*why != POOL_STOPPING) /* bytes, end of stream or an error */
            return n;
    }
    if (poller_park(p->cfg.poller, c->fd) == 0) {
        c->parked = true;
        *why = POOL_PARKED;
        return -1;
    }
    /* Refused: the server is stopping. A request that arrived since the
     * last read must still be answered, so look once more. */
    return read_now(c->fd, buf, len, why);
}

/* --- the workers ------------------------------------------------------------ */

/* Takes fd as the worker's connection, unless a forced stop came first. */
static bool claim(struct pool_conn *c, int fd)
{
    pthread_mutex_lock(&c->lock);
    bool ok = !atomic_load(&c->pool->forced);
    if (ok) {
        c->fd = fd;
        c->tick_set = false;
        c->parked = false;
    }
    pthread_mutex_unlock(&c->lock);
    return ok;
}

static void release(struct pool_conn *c)
{
    pthread_mutex_lock(&c->lock);
    c->fd = -1;
    pthread_mutex_unlock(&c->lock);
}

static void serve_one(struct pool_conn *c, int fd)
{
    struct pool *p = c->pool;
    if (claim(c, fd)) {
        atomic_fetch_add(&p->busy, 1);
        p->cfg.serve(c, p->cfg.ctx);
        release(c);
        atomic_fetch_sub(&p->busy, 1);
        if (c->parked)
            return;
    } else {
        atomic_fetch_add(&p->cut, 1);
    }
    /* Its number, reused by the next accept, must be added to the epoll
     * set afresh. */
    if (p->cfg.poller)
        poller_forget(p->cfg.poller, fd);
    pool_conn_count(c, STAT_CLOSED, 1);
    close(fd);
}

static void *worker_main(void *arg)
{
    struct pool_conn *c = arg;
    struct pool *p = c->pool;
    int fd;
    while (queue_pop(p->cfg.queue, &fd) == 0)
        serve_one(c, fd);
    pthread_mutex_lock(&p->lock);
    p->running--;
    pthread_cond_broadcast(&p->exited);
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

static int init_sync(struct pool *p)
{
    pthread_condattr_t attr;
    int rc = pthread_condattr_init(&attr);
    if (rc)
        return rc;
    /* pool_wait's deadline is on the monotonic clock: wall-clock jumps
     * must not shorten or stretch a drain. */
    rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (!rc)
        rc = pthread_cond_init(&p->exited, &attr);
    pthread_condattr_destroy(&attr);
    if (!rc && (rc = pthread_mutex_init(&p->lock, NULL)) != 0)
        pthread_cond_destroy(&p->exited);
    return rc;
}

int pool_start(struct pool *p, const struct pool_config *cfg)
{
    size_t n = cfg->workers;
    *p = (struct pool){.cfg = *cfg};
    atomic_init(&p->stopping, false);
    atomic_init(&p->forced, false);
    atomic_init(&p->busy, 0);
    atomic_init(&p->cut, 0);
    p->slots = aligned_alloc(64, n * sizeof *p->slots);
    if (p->slots)
        memset(p->slots, 0, n * sizeof *p->slots);
    int rc = p->slots ? init_sync(p) : ENOMEM;
    if (rc) {
        free(p->slots);
        errno = rc;
        return -1;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        struct pool_conn *c = &p->slots[i];
        c->pool = p;
        c->fd = -1;
        pthread_mutex_init(&c->lock, NULL);
        pthread_mutex_lock(&p->lock);
        p->running++;
        pthread_mutex_unlock(&p->lock);
        rc = pthread_create(&c->thread, NULL, worker_main, c);
        if (rc) {
            pthread_mutex_lock(&p->lock);
            p->running--;
            pthread_mutex_unlock(&p->lock);
            pthread_mutex_destroy(&c->lock);
        } else {
            p->started++;
        }
    }
    if (rc) {
        /* Undo: the caller's queue is closed so started workers exit. */
        queue_close(cfg->queue);
        pool_join(p);
        errno = rc;
        return -1;
    }
    return 0;
}

void pool_quiesce(struct pool *p)
{
    /* A worker waiting in recv sees this within POOL_TICK_MS; every other
     * one at its next request boundary. */
    atomic_store(&p->stopping, true);
}

void pool_force(struct pool *p)
{
    if (atomic_exchange(&p->forced, true))
        return; /* once: the cut count counts each connection once */
    pool_quiesce(p);
    for (size_t i = 0; i < p->started; i++) {
        struct pool_conn *c = &p->slots[i];
        pthread_mutex_lock(&c->lock);
        if (c->fd >= 0 && shutdown(c->fd, SHUT_RDWR) == 0)
            atomic_fetch_add(&p->cut, 1);
        pthread_mutex_unlock(&c->lock);
    }
}

bool pool_wait(struct pool *p, const struct timespec *deadline)
{
    pthread_mutex_lock(&p->lock);
    int rc = 0;
    while (p->running > 0 && rc != ETIMEDOUT) {
        if (deadline)
            rc = pthread_cond_timedwait(&p->exited, &p->lock, deadline);
        else
            pthread_cond_wait(&p->exited, &p->lock);
    }
    bool done = p->running == 0;
    pthread_mutex_unlock(&p->lock);
    return done;
}

void pool_join(struct pool *p)
{
    for (size_t i = 0; i < p->started; i++) {
        pthread_join(p->slots[i].thread, NULL);
        pthread_mutex_destroy(&p->slots[i].lock);
        buf_free(&p->slots[i].buf);
    }
    pthread_cond_destroy(&p->exited);
    pthread_mutex_destroy(&p->lock);
    free(p->slots);
    p->slots = NULL;
    p->started = 0;
}
