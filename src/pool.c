/*
 * pool.c - starting, stopping and waiting for the workers (see pool.h).
 *
 * `running` counts live workers under p->lock, and each worker signals
 * `exited` as it leaves, so that pool_wait can wait for them with a
 * deadline on the monotonic clock.
 */
#include "pool.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

struct pool_thread {
    struct pool *pool;
    struct worker *worker;
};

static void *thread_main(void *arg)
{
    struct pool_thread *t = arg;
    struct pool *p = t->pool;
    worker_run(t->worker);
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

static int start_one(struct pool *p, size_t i)
{
    struct worker *w = &p->workers[i];
    int rc = worker_init(w, p->rules);
    if (rc)
        return rc;
    p->threads[i] = (struct pool_thread){.pool = p, .worker = w};
    pthread_mutex_lock(&p->lock);
    p->running++;
    pthread_mutex_unlock(&p->lock);
    rc = pthread_create(&w->thread, NULL, thread_main, &p->threads[i]);
    if (rc) {
        pthread_mutex_lock(&p->lock);
        p->running--;
        pthread_mutex_unlock(&p->lock);
        worker_destroy(w);
    }
    return rc;
}

/* The queue's backlog hook: a connection is waiting and no worker is free
 * to pop it, so call back one worker lingering on an idle connection. */
static void call_back_one(void *arg)
{
    struct pool *p = arg;
    for (size_t i = 0; i < p->started; i++)
        if (worker_call_back(&p->workers[i]))
            return;
}

int pool_start(struct pool *p, size_t n, struct worker_rules *rules)
{
    memset(p, 0, sizeof *p);
    p->rules = rules;
    p->workers = aligned_alloc(_Alignof(struct worker), n * sizeof *p->workers);
    p->threads = calloc(n, sizeof *p->threads);
    int rc = p->workers && p->threads ? init_sync(p) : ENOMEM;
    if (rc) {
        free(p->workers);
        free(p->threads);
        errno = rc;
        return -1;
    }
    if (rules->linger_ms > 0)
        worker_install_call_back();
    for (size_t i = 0; i < n && rc == 0; i++)
        if ((rc = start_one(p, i)) == 0)
            p->started++;
    if (rc) {
        /* Undo: the caller's queue is closed so started workers exit. */
        queue_close(rules->queue);
        pool_join(p);
        errno = rc;
        return -1;
    }
    /* Only now: the hook reads `started`, which is final from here. */
    if (rules->linger_ms > 0)
        queue_set_backlog_hook(rules->queue, call_back_one, p);
    return 0;
}

void pool_quiesce(struct pool *p)
{
    /* A worker waiting in recv sees this within WORKER_TICK_MS; every
     * other one at its next request boundary; a lingering one at once. */
    atomic_store(&p->rules->stopping, true);
    for (size_t i = 0; i < p->started; i++)
        worker_call_back(&p->workers[i]);
}

void pool_force(struct pool *p)
{
    if (atomic_exchange(&p->rules->forced, true))
        return;
    pool_quiesce(p);
    for (size_t i = 0; i < p->started; i++)
        worker_cut(&p->workers[i]);
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
        pthread_join(p->workers[i].thread, NULL);
        worker_destroy(&p->workers[i]);
    }
    pthread_cond_destroy(&p->exited);
    pthread_mutex_destroy(&p->lock);
    free(p->workers);
    free(p->threads);
    p->workers = NULL;
    p->threads = NULL;
    p->started = 0;
}

uint64_t pool_total(struct pool *p, enum counter which)
{
    uint64_t n = 0;
    for (size_t i = 0; i < p->started; i++)
        n += worker_counter(&p->workers[i], which);
    return n;
}

uint64_t pool_requests(struct pool *p)
{
    uint64_t n = 0;
    for (int k = 0; k < COUNTER_ANSWERS_END; k++)
        n += pool_total(p, (enum counter)k);
    return n;
}

void pool_latency(struct pool *p, struct latency_sum *out)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < p->started; i++)
        latency_add(out, &p->workers[i].latency);
}

size_t pool_busy(struct pool *p)
{
    return atomic_load(&p->rules->busy);
}
