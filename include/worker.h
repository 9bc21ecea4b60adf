/*
 * worker.h - one worker thread, and what a serve function may do with it.
 *
 * A worker pops a socket from the queue, owns it until it closes or parks
 * it, and serves it with blocking calls through the serve function the
 * server chose (app_conn_serve or echo_conn_serve). The worker alone
 * closes and parks: a serve function reads and writes, asks for the next
 * request with worker_next(), and returns; no handler can forget a step
 * of either.
 *
 * Between requests, worker_next() decides how to wait. With a poller (the
 * default), a connection with nothing to read is parked there and the
 * worker goes back to the queue, so a worker is only busy inside a
 * request. Without one (--no-park), the worker waits in recv() on its own
 * connection, and wakes every WORKER_TICK_MS to see whether the server is
 * stopping or the connection has idled out.
 *
 * What every worker shares (the queue, the poller, the stop flags, the
 * cut count) is a struct worker_rules that the pool owns.
 */
#ifndef ENCHUFE_WORKER_H
#define ENCHUFE_WORKER_H

#include "buf.h"
#include "counters.h"
#include "queue.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct poller;
struct worker;

/* Serves the worker's connection until it is over or parked; the worker
 * then closes it, or leaves it to the poller. */
typedef void (*worker_serve_fn)(struct worker *w, void *arg);

struct worker_rules {
    struct queue *queue;
    struct poller *poller; /* NULL: idle connections wait in their worker */
    int idle_timeout_ms;   /* that wait's limit (0 = none) */
    worker_serve_fn serve;
    void *serve_arg;
    atomic_bool stopping;  /* answer what has arrived, then close */
    atomic_bool forced;    /* close everything at once */
    atomic_size_t busy;    /* workers holding a connection */
    atomic_uint_least64_t cut; /* connections cut, or closed unserved, by a force */
};

/* Aligned to a cache line: each worker bumps its own counters, and
 * neighbours sharing a line would slow each other down for nothing. */
struct worker {
    _Alignas(64) pthread_t thread;
    pthread_mutex_t lock;  /* guards fd against worker_cut */
    struct worker_rules *rules;
    int fd;                /* -1 when the worker holds no connection */
    bool tick_set;         /* fd has the WORKER_TICK_MS receive timeout */
    bool parked;           /* fd went to the poller: not ours to close */
    atomic_uint_least64_t counters[COUNTER_COUNT];
    struct buf buf;        /* the receive buffer, lent to each connection */
};

/* How often a worker waiting in recv (no poller) checks for a stop. */
#define WORKER_TICK_MS 100

int worker_init(struct worker *w, struct worker_rules *rules);
void worker_destroy(struct worker *w);

/* The thread's loop: pops and serves sockets until the queue is closed
 * and empty. */
void worker_run(struct worker *w);

/* A forced stop: shuts the worker's connection down under it, so its
 * blocking calls return. True if it held one. */
bool worker_cut(struct worker *w);

/* One of the worker's counters. */
uint64_t worker_counter(struct worker *w, enum counter which);

/* --- for serve functions ------------------------------------------------- */

/* The socket being served. */
int worker_fd(const struct worker *w);

/* The worker's receive buffer. A connection is only put down (parked or
 * closed) between requests, with nothing buffered, so one buffer per
 * worker serves every connection it takes, and an idle connection holds
 * none. */
struct buf *worker_buf(struct worker *w);

/* Adds n to one of the worker's counters. */
void worker_count(struct worker *w, enum counter which, uint64_t n);

enum worker_wait {
    WORKER_REQUEST,      /* bytes (or end of stream) arrived */
    WORKER_PARKED,       /* nothing to read: the poller owns the connection now */
    WORKER_IDLE_TIMEOUT, /* nothing arrived within the idle timeout */
    WORKER_STOPPING,     /* the server is stopping and nothing had arrived */
    WORKER_ERROR,        /* recv failed (errno set) */
};

/* Between requests: reads the first bytes of the next request into buf.
 * Returns the byte count (0 at end of stream) with *why = WORKER_REQUEST,
 * or -1 with *why saying why not; after WORKER_PARKED the serve function
 * must return without touching the socket. socket_was_empty says the
 * caller's last read returned less than it asked for, so the socket held
 * nothing more then: with a poller the read is left to epoll, which costs
 * nothing if no byte came since. While the server is stopping, it answers
 * what has arrived and no more: nothing there means WORKER_STOPPING. */
ssize_t worker_next(struct worker *w, void *buf, size_t len, bool socket_was_empty,
                    enum worker_wait *why);

#endif
