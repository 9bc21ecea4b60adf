/*
 * pool.c - worker threads: pop a socket, serve it, close it, repeat.
 *
 * Concurrency in one paragraph: the queue hands each socket to exactly one
 * worker, and only that worker reads it. A stop is a flag the worker
 * reads at its next receive-timeout tick, so it alone decides, with
 * nothing read yet, whether a request is there to serve. (Waking it by
 * shutting the socket down would race a request whose first bytes it had
 * just read.) A worker's slot fd is written by the worker and read by pool_force()
 * under slot->lock, and cleared before close(), so a forced stop can only
 * shut down a socket the worker still holds. `stopping` and `forced` are
 * atomics; `running` counts live workers under p->lock so that pool_wait
 * can wait for them with a deadline.
 */
#include "pool.h"
#include "buf.h"
#include "net.h"

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
    int fd; /* -1 when the worker holds no connection */
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

ssize_t pool_conn_recv(struct pool_conn *c, void *buf, size_t len, int idle_timeout_ms,
                       enum pool_wait *why)
{
    long long deadline = idle_timeout_ms > 0 ? net_now_ms() + idle_timeout_ms : 0;
    for (;;) {
        bool stopping = atomic_load(&c->pool->stopping);
        if (stopping && atomic_load(&c->pool->forced)) {
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

static void set_slot_fd(struct pool_conn *c, int fd)
{
    pthread_mutex_lock(&c->lock);
    c->fd = fd;
    pthread_mutex_unlock(&c->lock);
}

static void serve_one(struct pool_conn *c, int fd)
{
    struct pool *p = c->pool;
    bool handed_on = false;
    if (!atomic_load(&p->forced)) {
        atomic_fetch_add(&p->busy, 1);
        set_slot_fd(c, fd);
        handed_on = p->serve(c, p->ctx);
        set_slot_fd(c, -1);
        atomic_fetch_sub(&p->busy, 1);
    }
    if (!handed_on) {
        pool_conn_count(c, STAT_CLOSED, 1);
        close(fd);
    }
}

static void *worker_main(void *arg)
{
    struct pool_conn *c = arg;
    struct pool *p = c->pool;
    int fd;
    while (queue_pop(p->queue, &fd) == 0)
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

int pool_start(struct pool *p, size_t n, struct queue *q, pool_serve_fn serve, void *ctx)
{
    *p = (struct pool){.queue = q, .serve = serve, .ctx = ctx, .nworkers = n};
    atomic_init(&p->stopping, false);
    atomic_init(&p->forced, false);
    atomic_init(&p->busy, 0);
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
        queue_close(q);
        pool_join(p);
        errno = rc;
        return -1;
    }
    return 0;
}

void pool_quiesce(struct pool *p)
{
    /* Every waiting worker sees this within POOL_TICK_MS. */
    atomic_store(&p->stopping, true);
}

void pool_force(struct pool *p)
{
    atomic_store(&p->forced, true);
    pool_quiesce(p);
    for (size_t i = 0; i < p->started; i++) {
        struct pool_conn *c = &p->slots[i];
        pthread_mutex_lock(&c->lock);
        if (c->fd >= 0)
            shutdown(c->fd, SHUT_RDWR);
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
