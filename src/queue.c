/*
 * queue.c - bounded, blocking FIFO of connections (see queue.h).
 */
#include "queue.h"

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

/* Call with q->lock held, after count or waiting changed. */
static long publish_backlog(struct queue *q)
{
    long b = (long)q->count - (long)q->waiting;
    atomic_store_explicit(&q->backlog, b, memory_order_relaxed);
    return b;
}

/* Call without the lock, after a push that left `backlog`. */
static void after_push(struct queue *q, long backlog)
{
    if (backlog > 0 && q->on_backlog)
        q->on_backlog(q->on_backlog_arg);
}

/* Call with q->lock held and room for one. */
static long append(struct queue *q, struct conn *c)
{
    q->items[(q->head + q->count) % q->capacity] = c;
    q->count++;
    return publish_backlog(q);
}

/* Pushes one connection, waiting for room while `wait` and not *cancel. */
static int push_one(struct queue *q, struct conn *c, bool wait, const atomic_bool *cancel)
{
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
    long backlog = append(q, c);
    pthread_cond_signal(&q->not_empty);
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
    pthread_mutex_lock(&q->lock);
    while (done < n) {
        while (q->count == q->capacity && !q->closed)
            pthread_cond_wait(&q->not_full, &q->lock);
        if (q->closed)
            break;
        int batch = 0;
        while (done < n && q->count < q->capacity) {
            backlog = append(q, conns[done++]);
            batch++;
        }
        /* One wake-up per connection (a signal that finds no waiter left
         * costs nothing): a broadcast would wake every waiting worker to
         * fight over the lock, and most would find the queue empty again
         * and go back to sleep. */
        for (int k = 0; k < batch; k++)
            pthread_cond_signal(&q->not_empty);
    }
    pthread_mutex_unlock(&q->lock);
    after_push(q, backlog);
    return done;
}

int queue_pop(struct queue *q, struct conn **c)
{
    pthread_mutex_lock(&q->lock);
    while (q->count == 0 && !q->closed) {
        q->waiting++;
        publish_backlog(q);
        pthread_cond_wait(&q->not_empty, &q->lock);
        q->waiting--;
    }
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
