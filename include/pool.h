/*
 * pool.h - a fixed pool of worker threads serving sockets from the queue.
 *
 * Each worker pops a socket, owns it until it closes or parks it, and
 * serves it with blocking calls through the serve function it was given
 * (app or echo). The pool alone closes and parks: a serve function only
 * returns, so no handler can forget a step of either.
 *
 * Between requests a serve function asks pool_conn_next() for the first
 * bytes of the next request. With a poller (the default), a connection
 * with nothing to read is parked there and the worker goes back to the
 * queue, so a worker is only busy inside a request. Without one
 * (--no-park), the worker waits in recv() on its own connection, waking
 * every POOL_TICK_MS to see whether the server is stopping or the
 * connection has idled out.
 *
 * Stopping has two steps. pool_quiesce(): a worker between requests
 * answers what the client already sent, then closes instead of waiting or
 * parking; one mid-request closes after its response. pool_force() cuts
 * every connection at once (shutdown(SHUT_RDWR)) and closes unserved any
 * that is popped afterwards; the server calls it when the drain timeout
 * passes or a second signal arrives.
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
struct poller;
struct pool_conn; /* one worker's current connection */

/* Serves the worker's connection until it is over or parked; the pool
 * then closes it, or leaves it to the poller. */
typedef void (*pool_serve_fn)(struct pool_conn *conn, void *ctx);

struct pool_config {
    size_t workers;
    struct queue *queue;
    struct poller *poller; /* NULL: idle connections wait in their worker */
    int idle_timeout_ms;   /* that wait's limit (0 = none) */
    pool_serve_fn serve;
    void *ctx;
};

struct pool {
    struct pool_config cfg;
    struct pool_conn *slots;
    size_t started;
    atomic_bool stopping;
    atomic_bool forced;
    atomic_size_t busy;        /* workers holding a connection */
    atomic_uint_least64_t cut; /* connections pool_force cut or closed unserved */
    pthread_mutex_t lock;
    pthread_cond_t exited;
    size_t running;
};

/* Starts the workers. Returns 0, or -1 (errno) with none left running. */
int pool_start(struct pool *p, const struct pool_config *cfg);

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

/* How often a worker waiting in recv (no poller) checks for a stop. */
#define POOL_TICK_MS 100

enum pool_wait {
    POOL_REQUEST,      /* bytes (or end of stream) arrived */
    POOL_PARKED,       /* nothing to read: the poller owns the connection now */
    POOL_IDLE_TIMEOUT, /* nothing arrived within the idle timeout */
    POOL_STOPPING,     /* the server is stopping and nothing had arrived */
    POOL_ERROR,        /* recv failed (errno set) */
};

/* Between requests: reads the first bytes of the next request into buf.
 * Returns the byte count (0 at end of stream) with *why = POOL_REQUEST,
 * or -1 with *why saying why not; after POOL_PARKED the serve function
 * must return without touching the socket. socket_was_empty says the
 * caller's last read returned less than it asked for, so the socket held
 * nothing more then: with a poller the read is left to epoll, which costs
 * nothing if no byte came since. */
ssize_t pool_conn_next(struct pool_conn *c, void *buf, size_t len, bool socket_was_empty,
                       enum pool_wait *why);

#endif
