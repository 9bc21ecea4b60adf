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
 * default), the worker first lingers: when no other connection is waiting
 * in the queue for a worker, it waits a few milliseconds (--linger) in
 * recv() for the client's next request, which a busy client sends well
 * within that, and serves it without a trip through the poller (one
 * system call, no thread hop). With nothing by then, or with connections
 * waiting in the queue, it parks the connection in the poller and goes
 * back to the queue, so an idle client never holds a worker for long. A
 * connection that reaches the queue while every worker lingers calls one
 * of them back at once (a signal ends its recv). Without a poller
 * (--no-park), the worker waits in recv() on its own connection, and
 * wakes every WORKER_TICK_MS to see whether the server is stopping or the
 * connection has idled out.
 *
 * Fairness: a client that pipelines without pause always has a request
 * ready, so it would keep its worker forever. After WORKER_TURN_REQUESTS
 * requests or WORKER_TURN_MS, when other connections wait, the serve
 * function hands it back to the tail of the queue (worker_turn_over,
 * worker_requeue).
 *
 * TLS: a socket from a TLS listener arrives with its SSL object (tls.h);
 * the worker runs the handshake when it takes the socket, by the read
 * timeout, so a client that stalls it holds a worker no longer than one
 * that stalls a request. Parked TLS connections keep their SSL object
 * in the table; one with decrypted bytes still in OpenSSL is never
 * parked (poll could not see them).
 *
 * What every worker shares (the queue, the poller, the stop flags, the
 * cut count) is a struct worker_rules that the pool owns.
 */
#ifndef ENCHUFE_WORKER_H
#define ENCHUFE_WORKER_H

#include "buf.h"
#include "counters.h"
#include "latency.h"
#include "queue.h"
#include "stream.h"

#include <pthread.h>
#include <signal.h>
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
    int linger_ms;         /* with a poller: wait this long before parking (0: park at once) */
    struct tls_server *tls; /* TLS state by socket (NULL: no TLS listener) */
    int handshake_timeout_ms; /* a TLS handshake's limit (0 = none) */
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
    pthread_mutex_t lock;  /* guards stream.fd against worker_cut */
    struct worker_rules *rules;
    struct stream stream;  /* the connection: its socket (-1 when the worker holds */
                           /* none) and its TLS state if it came from a TLS listener */
    bool timeout_set;      /* fd has its receive timeout (the tick, or the linger) */
    bool parked;           /* fd went to the poller or the queue: not ours to close */
    bool fresh;            /* nothing read on fd yet since the worker took it */
    atomic_bool lingering; /* in recv waiting for the next request: may be called back */
    unsigned turn_requests;  /* answered since this worker took the connection */
    long long turn_start_ms; /* when it took it */
    atomic_uint_least64_t counters[COUNTER_COUNT];
    struct latency latency; /* service times of the answers it sent */
    struct buf buf;        /* the receive buffer, lent to each connection */
};

/* How often a worker waiting in recv (no poller) checks for a stop. */
#define WORKER_TICK_MS 100

/* At a stop, how long a connection on which nothing has been read yet
 * may take to send its first request (it connected before the stop). */
#define WORKER_FIRST_REQUEST_GRACE_MS 1000

/* A turn on one connection, when other connections wait. */
#define WORKER_TURN_REQUESTS 64
#define WORKER_TURN_MS 2

int worker_init(struct worker *w, struct worker_rules *rules);
void worker_destroy(struct worker *w);

/* The thread's loop: pops and serves sockets until the queue is closed
 * and empty. */
void worker_run(struct worker *w);

/* A forced stop: counts the worker's connection as cut and shuts it down
 * under it, so its blocking calls return. True if it held one. */
bool worker_cut(struct worker *w);

/* One of the worker's counters. */
uint64_t worker_counter(struct worker *w, enum counter which);

/* Calls the worker back if it is lingering on an idle connection (it
 * parks it and goes to the queue). True if it was. */
bool worker_call_back(struct worker *w);

/* The signal that ends a lingering recv. SIGURG: its default action is to
 * be ignored, so a stray one harms no other thread; we use no out-of-band
 * data, its other meaning. */
#define WORKER_CALL_BACK_SIGNAL SIGURG

/* Installs the signal's (empty) handler, without SA_RESTART. Once per
 * process, before workers start; worker threads must not block it. */
void worker_install_call_back(void);

/* --- for serve functions ------------------------------------------------- */

/* The connection being served: its socket, and its TLS state (the
 * handshake is done before the serve function is called). */
const struct stream *worker_stream(const struct worker *w);

/* The worker's receive buffer. A connection is only put down (parked or
 * closed) between requests, with nothing buffered, so one buffer per
 * worker serves every connection it takes, and an idle connection holds
 * none. */
struct buf *worker_buf(struct worker *w);

/* Adds n to one of the worker's counters. */
void worker_count(struct worker *w, enum counter which, uint64_t n);

/* Records one answer's service time: from the first byte of its request
 * read to the last byte of the answer written. */
void worker_record_latency(struct worker *w, uint64_t ns);

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

/* After `answered` more requests on this connection: true if its turn is
 * over (WORKER_TURN_REQUESTS or WORKER_TURN_MS, and other connections
 * wait in the queue). */
bool worker_turn_over(struct worker *w, unsigned answered);

/* Hands the connection back to the tail of the queue, with nothing of it
 * buffered: true if it went (the serve function must then return without
 * touching it), false if the queue had no room (go on serving). */
bool worker_requeue(struct worker *w);

#endif
