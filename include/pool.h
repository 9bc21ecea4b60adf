/*
 * pool.h - a fixed pool of worker threads serving sockets from the queue.
 *
 * Each worker pops a socket, owns it until it closes it, and serves it with
 * blocking calls through the serve function it was given (app or echo).
 *
 * Between requests a worker blocks in recv() on its socket, with a
 * receive timeout (SO_RCVTIMEO) of POOL_TICK_MS, which whoever hands the
 * socket to the pool must have set (the server sets it on its listener,
 * and accepted sockets inherit it): each time it ticks with nothing read,
 * the worker checks whether the server is stopping or the connection has
 * been idle too long. Nothing else ever touches the socket, so a stop can
 * never cut a request that has begun to arrive, and the steady state costs
 * one recv and one send per request.
 *
 * Stopping has two steps. pool_quiesce() lets every request in progress
 * finish: a worker waiting between requests closes its connection at its
 * next tick unless a request has arrived, which it answers first; one
 * mid-request closes after its response. pool_force() cuts every
 * connection at once (shutdown(SHUT_RDWR)); the server calls it when the
 * drain timeout passes.
 */
#ifndef ENCHUFE_POOL_H
#define ENCHUFE_POOL_H

#include "queue.h"
#include "stats.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct buf;
struct pool_conn; /* one worker's current connection */

/* Serves the worker's connection. Returns true if it handed the socket on
 * (parked it with the poller); false, and the worker closes it. */
typedef bool (*pool_serve_fn)(struct pool_conn *conn, void *ctx);

struct pool {
    struct queue *queue;
    pool_serve_fn serve;
    void *ctx;
    struct pool_conn *slots;
    size_t nworkers;
    size_t started;
    atomic_bool stopping;
    atomic_bool forced;
    atomic_size_t busy; /* workers holding a connection */
    pthread_mutex_t lock;
    pthread_cond_t exited;
    size_t running;
};

/* Starts n workers. Returns 0, or -1 (errno) with none left running. */
int pool_start(struct pool *p, size_t n, struct queue *q, pool_serve_fn serve, void *ctx);

void pool_quiesce(struct pool *p);
void pool_force(struct pool *p);

/* Waits until every worker has exited or the absolute CLOCK_MONOTONIC
 * deadline passes (NULL: no deadline). Returns true if they all exited.
 * Workers exit once the queue is closed and empty. */
bool pool_wait(struct pool *p, const struct timespec *deadline);

/* Joins the workers (call after they exited or were forced) and frees. */
void pool_join(struct pool *p);

/* The socket the worker is serving. */
int pool_conn_fd(const struct pool_conn *c);

/* The worker's receive buffer. A connection is only put down (parked or
 * closed) between requests, with nothing buffered, so one buffer per
 * worker serves every connection it takes, and an idle connection holds
 * none. Freed with the pool. */
struct buf *pool_conn_buf(struct pool_conn *c);

/* Adds n to one of the worker's counters (serve functions call it). */
void pool_conn_count(struct pool_conn *c, enum stat_counter which, uint64_t n);

/* A counter summed over every worker. */
uint64_t pool_total(struct pool *p, enum stat_counter which);

/* Requests answered so far (every answer and error answer). */
uint64_t pool_requests(struct pool *p);

/* How often a worker waiting for a request checks for a stop. */
#define POOL_TICK_MS 100

enum pool_wait {
    POOL_REQUEST,      /* bytes (or end of stream) arrived */
    POOL_IDLE_TIMEOUT, /* nothing arrived within the idle timeout */
    POOL_STOPPING,     /* the server is stopping and nothing arrived */
    POOL_ERROR,        /* recv failed (errno set) */
};

/* Reads the first bytes of the next request on the worker's connection,
 * waiting at most idle_timeout_ms (0 = no limit). Returns the byte count
 * (0 at end of stream) with *why = POOL_REQUEST, or -1 with *why saying
 * why not. Serve functions call it between requests. */
ssize_t pool_conn_recv(struct pool_conn *c, void *buf, size_t len, int idle_timeout_ms,
                       enum pool_wait *why);

#endif
