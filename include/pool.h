/*
 * pool.h - a fixed pool of worker threads serving sockets from the queue.
 *
 * Each worker pops a socket, owns it until it closes it, and serves it with
 * blocking calls through the serve function it was given (app or echo).
 *
 * Stopping has two steps. pool_quiesce() lets every request in progress
 * finish: a worker waiting between requests wakes (an eventfd) and closes
 * its connection unless a request already arrived, which it answers
 * first; one mid-request closes after its response. pool_force() cuts
 * every connection at once (shutdown(SHUT_RDWR)); the server calls it when
 * the drain timeout passes.
 */
#ifndef ENCHUFE_POOL_H
#define ENCHUFE_POOL_H

#include "queue.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

struct pool_conn; /* one worker's current connection */

typedef void (*pool_serve_fn)(struct pool_conn *conn, void *ctx);

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
    int wake_fd;        /* eventfd, readable once stopping */
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

enum pool_wait {
    POOL_REQUEST,      /* bytes (or end of stream) arrived: read them */
    POOL_IDLE_TIMEOUT, /* nothing arrived within the idle timeout */
    POOL_STOPPING,     /* the server is stopping and nothing arrived */
};

/* Waits for the next request on the worker's connection (0 = no timeout).
 * Serve functions call it between requests instead of blocking in recv,
 * so that a stopping server can wake them. */
enum pool_wait pool_conn_wait(struct pool_conn *c, int idle_timeout_ms);

#endif
