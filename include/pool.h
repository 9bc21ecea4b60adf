/*
 * pool.h - a fixed pool of worker threads (worker.h) serving sockets from
 * the queue: starting them, stopping them, waiting for them, and summing
 * their counters.
 *
 * Stopping has two steps. pool_quiesce(): a worker between requests
 * answers what the client already sent, then closes instead of waiting or
 * parking; one mid-request goes on with it. pool_force() cuts every
 * connection at once (shutdown(SHUT_RDWR)) and makes the workers close
 * unserved whatever they pop afterwards; the server calls it when the
 * drain timeout passes or a second signal arrives. Workers exit once the
 * queue is closed and empty.
 */
#ifndef ENCHUFE_POOL_H
#define ENCHUFE_POOL_H

#include "counters.h"
#include "queue.h"
#include "worker.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct pool_config {
    size_t workers;
    struct queue *queue;
    struct poller *poller; /* NULL: connections wait in their worker (--no-park) */
    int idle_timeout_ms;   /* the wait for a next request (0 = none) */
    int linger_ms;         /* with a poller: how long a worker waits before parking */
    int handshake_timeout_ms; /* a TLS handshake's limit (0 = none) */
    worker_serve_fn serve;
    void *serve_arg;
};

struct pool {
    struct worker_rules rules; /* first: a worker finds its pool from it */
    struct worker *workers;
    size_t started;
    pthread_mutex_t lock;
    pthread_cond_t exited;
    size_t running;
};

/* Starts the workers. Returns 0, or -1 (errno) with none left running. */
int pool_start(struct pool *p, const struct pool_config *cfg);

void pool_quiesce(struct pool *p);
void pool_force(struct pool *p);

/* Waits until every worker has exited or the absolute CLOCK_MONOTONIC
 * deadline passes (NULL: no deadline). Returns true if they all exited. */
bool pool_wait(struct pool *p, const struct timespec *deadline);

/* Joins the workers (call after they exited or were forced) and frees. */
void pool_join(struct pool *p);

/* A counter summed over every worker. */
uint64_t pool_total(struct pool *p, enum counter which);

/* Requests answered so far (every answer and error answer). */
uint64_t pool_requests(struct pool *p);

/* Every worker's service-time histogram, added up. */
void pool_latency(struct pool *p, struct latency_sum *out);

/* Workers holding a connection now. */
size_t pool_busy(struct pool *p);

#endif
