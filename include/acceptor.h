/*
 * acceptor.h - the thread that accepts connections and queues them.
 *
 * It only accepts and hands off; it never reads a byte. When the queue is
 * full it waits (backpressure: the kernel's listen backlog absorbs the
 * burst). acceptor_stop() wakes it through a pipe and joins it.
 */
#ifndef ENCHUFE_ACCEPTOR_H
#define ENCHUFE_ACCEPTOR_H

#include "queue.h"

#include <pthread.h>
#include <stdatomic.h>

#define ACCEPTOR_MAX_LISTENERS 8

struct acceptor {
    int listen_fds[ACCEPTOR_MAX_LISTENERS]; /* one per address listened on */
    int nlisten;
    int wake[2]; /* self-pipe: a byte on wake[1] stops the loop */
    struct queue *queue;
    pthread_t thread;
    atomic_ulong accepted;
};

int acceptor_start(struct acceptor *a, const int *listen_fds, int n, struct queue *q);
void acceptor_stop(struct acceptor *a);

#endif
