/*
 * queue.h - the bounded FIFO of connections between the acceptor (and the
 * poller) and the workers.
 *
 * One mutex guards a fixed ring of connection pointers; two condition variables say "not
 * full" (the acceptor waits on it: backpressure) and "not empty" (workers
 * wait on it). queue_close() wakes every waiter: pushers fail at once,
 * poppers drain what is left and then fail.
 *
 * The threads that push (the acceptor, the poller) register as producers;
 * when the last of them says it is done, the queue closes by itself, so
 * the workers drain everything that was pushed and then exit, and a stop
 * needs no one to wait for the producers before closing it. queue_close()
 * is the other way to close it: at once, failing pushes still waiting (a
 * stop that has run out of time).
 *
 * Ownership: after a successful queue_push the connection belongs to
 * whoever pops it; if the push fails, the caller still owns it and must
 * close it. The queue never looks inside a connection.
 */
#ifndef ENCHUFE_QUEUE_H
#define ENCHUFE_QUEUE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

struct conn;

struct queue {
    pthread_mutex_t lock;
    pthread_cond_t not_full;
    pthread_cond_t not_empty;
    struct conn **items;
    size_t capacity;
    size_t head; /* next to pop */
    size_t count;
    size_t waiting;   /* poppers blocked in queue_pop */
    size_t signalled; /* ...of which a push has woken this many, not yet out */
    size_t idle;      /* poppers in queue_pop, waiting or not */
    size_t producers; /* registered and not done yet */
    bool closed;
    atomic_long backlog; /* count - signalled, published under the lock */
    size_t consumers;    /* see queue_limit_wakes */
    size_t wake_cap;     /* 0: no limit */
    long long crowded_ms; /* when a push last found it crowded (queue.c) */
    void (*on_backlog)(void *arg); /* see queue_set_backlog_hook */
    void *on_backlog_arg;
};

/* Returns 0, or -1 (errno) if memory or a pthread object is missing. */
int queue_init(struct queue *q, size_t capacity);
void queue_destroy(struct queue *q);

/* Blocks while the queue is full. Returns 0, or -1 once it is closed. */
int queue_push(struct queue *q, struct conn *c);

/* Pushes without waiting: -1 if the queue is full or closed (the caller
 * keeps c). */
int queue_try_push(struct queue *q, struct conn *c);

/* The same, except that a wait for room ends, failing with ECANCELED,
 * once *cancel is true and queue_wake_pushers() has been called. */
int queue_push_unless(struct queue *q, struct conn *c, const atomic_bool *cancel);

/* Wakes every push waiting for room, so that it looks at its cancel flag
 * again. */
void queue_wake_pushers(struct queue *q);

/* Pushes n connections in order, taking the lock once for as many as fit,
 * and waking as many workers. Blocks while full. Returns how many were
 * pushed: fewer than n only if the queue closed (the rest are still the
 * caller's). */
int queue_push_many(struct queue *q, struct conn *const *conns, int n);

/* Blocks while the queue is empty. Returns 0, or -1 once it is closed
 * and empty. */
int queue_pop(struct queue *q, struct conn **c);

void queue_close(struct queue *q);

/* A thread that will push registers before it starts; when it will push
 * no more it says so, and the last one to do so closes the queue. */
void queue_add_producer(struct queue *q);
void queue_producer_done(struct queue *q);

/* Connections queued beyond the poppers already woken for one: > 0 means
 * a pushed connection will wait for a worker to come back. Read without the
 * lock (a snapshot, good for a decision that is retried). */
long queue_backlog(struct queue *q);
/* How long a queue counts as crowded after a push found more connections
 * queued than poppers in queue_pop, by more than a quarter of the
 * consumers. */
#define QUEUE_CROWDED_MS 100
#define QUEUE_CROWD_MARGIN_DIV 4
/* Of `consumers` poppers, while the queue is crowded, a push wakes a
 * waiting one only while fewer than `cap` are out of the wait (popping,
 * or busy with what they popped, and coming back for more): the rest
 * sleep on, and those out find the queue full when they come back
 * instead of going to sleep and being woken for each connection. For
 * consumers that never wait on anything but the CPU (workers with a
 * poller). Call before anything pushes; cap 0 (the default): no limit. */
void queue_limit_wakes(struct queue *q, size_t consumers, size_t cap);

/* Calls fn(arg) after any push that leaves a backlog, outside the lock:
 * the pool uses it to call back a worker that is lingering on an idle
 * connection. Set before anything pushes. */
void queue_set_backlog_hook(struct queue *q, void (*fn)(void *arg), void *arg);

/* True once the queue has closed (pushes fail). */
bool queue_is_closed(struct queue *q);

/* How many connections are waiting right now (for stats and tests). */
size_t queue_length(struct queue *q);

#endif
