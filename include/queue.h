/*
 * queue.h - the bounded FIFO of accepted sockets between the acceptor and
 * the workers.
 *
 * One mutex guards a fixed ring of ints; two condition variables say "not
 * full" (the acceptor waits on it: backpressure) and "not empty" (workers
 * wait on it). queue_close() wakes every waiter: pushers fail at once,
 * poppers drain what is left and then fail.
 *
 * Ownership: after a successful queue_push the socket belongs to whoever
 * pops it; if the push fails, the caller still owns it and must close it.
 */
#ifndef ENCHUFE_QUEUE_H
#define ENCHUFE_QUEUE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

struct queue {
    pthread_mutex_t lock;
    pthread_cond_t not_full;
    pthread_cond_t not_empty;
    int *items;
    size_t capacity;
    size_t head; /* next to pop */
    size_t count;
    bool closed;
};

/* Returns 0, or -1 (errno) if memory or a pthread object is missing. */
int queue_init(struct queue *q, size_t capacity);
void queue_destroy(struct queue *q);

/* Blocks while the queue is full. Returns 0, or -1 once it is closed. */
int queue_push(struct queue *q, int fd);

/* Pushes n sockets in order, taking the lock once for as many as fit,
 * and waking as many workers. Blocks while full. Returns how many were
 * pushed: fewer than n only if the queue closed (the rest are still the
 * caller's). */
int queue_push_many(struct queue *q, const int *fds, int n);

/* Blocks while the queue is empty. Returns 0, or -1 once it is closed
 * and empty. */
int queue_pop(struct queue *q, int *fd);

void queue_close(struct queue *q);

/* How many sockets are waiting right now (for stats and tests). */
size_t queue_length(struct queue *q);

#endif
