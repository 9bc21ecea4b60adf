/*
 * queue.c - bounded, blocking FIFO of connections (see queue.h).
 *
 * Why a cap on wake-ups (queue_limit_wakes): on 2 cores with 50
 * keep-alive connections, 16 workers each woken for one connection took
 * 0.62 context switches per request and 16-24% more CPU per request than
 * 4 workers, which found the queue full when they came back (0.26); at
 * 16 connections, 16 workers (each lingering on one) cost less than 4.
 * Crowded, 16 workers with the cap behave as 4 (0.37-0.42); else as 16.
 * "Crowded" has a margin: without one, a connection queued again by the
 * poller before its worker was back in queue_pop kept 16 connections on
 * 16 workers crowded for good (3.6 system calls per request, not 2.3).
 */
#include "queue.h"
#include "monotime.h"

#include <errno.h>
#include <stdlib.h>

int queue_init(struct queue *q, size_t capacity)
{
    if (capacity == 0) {
        errno = EINVAL;
        return -1;
    }
    q->items = calloc(capacity, sizeof(struct conn *));
    if (!q->items)
        return -1;
    q->capacity = capacity;
    q->head = 0;
    q->count = 0;
    q->waiting = 0;
    q->idle = 0;
    q->signalled = 0;
    q->consumers = 0;
    q->wake_cap = 0;
    q->crowded_ms = 0;
    q->producers = 0;
    q->closed = false;
    atomic_init(&q->backlog, 0);
    q->on_backlog = NULL;
    q->on_backlog_arg = NULL;
    int rc = pthread_mutex_init(&q->lock, NULL);
    if (rc == 0 && (rc = pthread_cond_init(&q->not_full, NULL)) != 0)
        pthread_mutex_destroy(&q->lock);
    if (rc == 0 && (rc = pthread_cond_init(&q->not_empty, NULL)) != 0) {
        pthread_cond_destroy(&q->not_full);
        pthread_mutex_destroy(&q->lock);
    }
    if (rc != 0) {
        free(q->items);
        errno = rc;
        return -1;
    }
    return 0;
}

void queue_destroy(struct queue *q)
{
    pthread_cond_destroy(&q->not_empty);
    pthread_cond_destroy(&q->not_full);
    pthread_mutex_destroy(&q->lock);
    free(q->items);
    q->items = NULL;
}

/* Call with q->lock held, after count or signalled changed. */
static long publish_backlog(struct queue *q)
{
    long b = (long)q->count - (long)q->signalled;
    atomic_store_explicit(&q->backlog, b, memory_order_relaxed);
    return b;
}

/* The time a push goes by: only a queue with a cap asks the clock. */
static long long push_time(const struct queue *q)
{
    return q->wake_cap ? monotime_ms() : 0;
}

/* Call with q->lock held, after a push appended. Crowded: more
 * connections queued than poppers free to take them, by a margin (a
 * connection its worker has just parked can be queued again before that
 * worker is back; with no more connections than workers that must not
 * count). */
static void note_crowding(struct queue *q, long long now)
{
    if (q->wake_cap && q->count > q->idle + q->consumers / QUEUE_CROWD_MARGIN_DIV)
        q->crowded_ms = now;
}

/* Call with q->lock held: whether a push may wake a waiting popper (one
 * that no push has woken yet; while crowded, if fewer than the cap are
 * out of the wait). */
static bool may_wake(const struct queue *q, long long now)
{
    if (q->waiting <= q->signalled)
        return false;
    if (q->wake_cap == 0 || now - q->crowded_ms >= QUEUE_CROWDED_MS)
        return true;
    long out = (long)q->consumers - (long)q->waiting + (long)q->signalled;
    return out < (long)q->wake_cap;
}

/* Call with q->lock held, for one connection pushed. */
static void wake_one(struct queue *q, long long now)
{
    if (may_wake(q, now)) {
        q->signalled++;
        pthread_cond_signal(&q->not_empty);
    }
}

/* Call without the lock, after a push that left `backlog`. */
static void after_push(struct queue *q, long backlog)
{
    if (backlog > 0 && q->on_backlog)
        q->on_backlog(q->on_backlog_arg);
}

/* Call with q->lock held and room for one. */
static void append(struct queue *q, struct conn *c)
{
    q->items[(q->head + q->count) % q->capacity] = c;
    q->count++;
}

/* Pushes one connection, waiting for room while `wait` and not *cancel. */
static int push_one(struct queue *q, struct conn *c, bool wait, const atomic_bool *cancel)
{
    long long now = push_time(q);
    pthread_mutex_lock(&q->lock);
    while (wait && q->count == q->capacity && !q->closed && !(cancel && atomic_load(cancel)))
        pthread_cond_wait(&q->not_full, &q->lock);
    if (q->closed || q->count == q->capacity) {
        /* Read under the lock: a producer may close the queue the moment
         * it is released. */
        int err = q->closed ? EPIPE : wait ? ECANCELED : EAGAIN;
        pthread_mutex_unlock(&q->lock);
        errno = err;
        return -1;
    }
    append(q, c);
    note_crowding(q, now);
    wake_one(q, now);
    long backlog = publish_backlog(q);
    pthread_mutex_unlock(&q->lock);
    after_push(q, backlog);
    return 0;
}

int queue_push(struct queue *q, struct conn *c)
{
    return push_one(q, c, true, NULL);
}

int queue_try_push(struct queue *q, struct conn *c)
{
    return push_one(q, c, false, NULL);
}

int queue_push_unless(struct queue *q, struct conn *c, const atomic_bool *cancel)
{
    return push_one(q, c, true, cancel);
}

void queue_wake_pushers(struct queue *q)
{
    pthread_mutex_lock(&q->lock);
    pthread_cond_broadcast(&q->not_full);
    pthread_mutex_unlock(&q->lock);
}

int queue_push_many(struct queue *q, struct conn *const *conns, int n)
{
    int done = 0;
    long backlog = 0;
    long long now = push_time(q);
    pthread_mutex_lock(&q->lock);
    while (done < n) {
        while (q->count == q->capacity && !q->closed)
            pthread_cond_wait(&q->not_full, &q->lock);
        if (q->closed)
            break;
        int batch = 0;
        while (done < n && q->count < q->capacity) {
            append(q, conns[done++]);
            batch++;
        }
        note_crowding(q, now);
        /* One wake-up per connection at most: a broadcast would wake
         * every waiting worker to fight over the lock, and most would
         * find the queue empty again and go back to sleep. */
        for (int k = 0; k < batch; k++)
            wake_one(q, now);
        backlog = publish_backlog(q);
    }
    pthread_mutex_unlock(&q->lock);
    after_push(q, backlog);
    return done;
}

int queue_pop(struct queue *q, struct conn **c)
{
    pthread_mutex_lock(&q->lock);
    q->idle++;
    while (q->count == 0 && !q->closed) {
        q->waiting++;
        pthread_cond_wait(&q->not_empty, &q->lock);
        q->waiting--;
        if (q->signalled > 0) { /* this one, or (spuriously woken) one still to come */
            q->signalled--;
            publish_backlog(q);
        }
    }
    q->idle--;
    if (q->count == 0) {
        publish_backlog(q);
        pthread_mutex_unlock(&q->lock);
        return -1;
    }
    *c = q->items[q->head];
    q->head = (q->head + 1) % q->capacity;
    q->count--;
    publish_backlog(q);
    pthread_cond_signal(&q->not_full);
    pthread_mutex_unlock(&q->lock);
    return 0;
}

/* Call with q->lock held. */
static void close_locked(struct queue *q)
{
    q->closed = true;
    pthread_cond_broadcast(&q->not_full);
    pthread_cond_broadcast(&q->not_empty);
}

void queue_close(struct queue *q)
{
    pthread_mutex_lock(&q->lock);
    close_locked(q);
    pthread_mutex_unlock(&q->lock);
}

void queue_add_producer(struct queue *q)
{
    pthread_mutex_lock(&q->lock);
    q->producers++;
    pthread_mutex_unlock(&q->lock);
}

void queue_producer_done(struct queue *q)
{
    pthread_mutex_lock(&q->lock);
    if (q->producers > 0 && --q->producers == 0)
        close_locked(q);
    pthread_mutex_unlock(&q->lock);
}

long queue_backlog(struct queue *q)
{
    return atomic_load_explicit(&q->backlog, memory_order_relaxed);
}

void queue_limit_wakes(struct queue *q, size_t consumers, size_t cap)
{
    pthread_mutex_lock(&q->lock);
    q->consumers = consumers;
    q->wake_cap = cap < consumers ? cap : 0;
    pthread_mutex_unlock(&q->lock);
}

void queue_set_backlog_hook(struct queue *q, void (*fn)(void *arg), void *arg)
{
    q->on_backlog = fn;
    q->on_backlog_arg = arg;
}

bool queue_is_closed(struct queue *q)
{
    pthread_mutex_lock(&q->lock);
    bool closed = q->closed;
    pthread_mutex_unlock(&q->lock);
    return closed;
}

size_t queue_length(struct queue *q)
{
    pthread_mutex_lock(&q->lock);
    size_t n = q->count;
    pthread_mutex_unlock(&q->lock);
    return n;
}
