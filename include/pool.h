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

struct pool_thread; /* a worker and its pool: what each thread is given */

struct pool {
    struct worker_rules *rules; /* what every worker shares (the caller's) */
    struct worker *workers;
    struct pool_thread *threads;
    size_t started;
    pthread_mutex_t lock;
    pthread_cond_t exited;
    size_t running;
};

/* Starts n workers on rules, which the caller owns and keeps until
 * pool_join (worker_rules_init first). Returns 0, or -1 (errno) with none
 * left running. */
int pool_start(struct pool *p, size_t n, struct worker_rules *rules);

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
