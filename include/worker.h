/*
 * worker.h - one worker thread, and what a serve function may do with it.
 *
 * A worker pops a connection (conn.h) from the queue and serves it
 * through the serve function the server chose (app_conn_serve or
 * echo_conn_serve) for as long as the client keeps it busy. The moment
 * serving it would mean waiting for the client (for its next request,
 * the rest of a request or of a TLS handshake, or room to write an
 * answer), the serve function returns WORKER_WAIT and the worker parks
 * the connection in the poller, with what it holds, and goes back to the
 * queue. So no client, however slow or silent, holds a worker: a worker
 * only ever runs a connection that can make progress.
 *
 * The hot path has no hand-off: after an answer, when no other
 * connection waits in the queue for a worker, the worker first lingers a
 * few milliseconds (--linger) in recv() for the client's next request,
 * which a busy client sends well within that, and serves it at the cost
 * of one system call. A connection that reaches the queue while every
 * worker lingers calls one of them back at once (a signal ends its
 * recv). The same short wait applies to the rest of a request and to
 * room for an answer: a fast client never sees the poller.
 *
 * The worker alone closes and parks. A serve function reads and writes
 * through worker_read() and worker_writev(), which know how to wait, and
 * returns what the connection needs next; it never closes or parks.
 *
 * Without a poller (--no-park, the textbook thread-pool design), the same
 * calls block in the worker instead, up to the connection's deadline,
 * waking every WORKER_TICK_MS to see whether the server is stopping: there
 * a slow client does hold a worker.
 *
 * Fairness: a client that pipelines without pause always has a request
 * ready, so it would keep its worker forever. After WORKER_TURN_REQUESTS
 * requests or WORKER_TURN_MS, when other connections wait, the serve
 * function hands it back to the tail of the queue (worker_turn_over,
 * worker_requeue).
 *
 * Buffers: each worker lends its receive buffer to the connection it
 * serves and takes it back when the connection is put down with nothing
 * in it, so the hot path allocates nothing and an idle connection holds
 * no buffer. A connection put down with part of a request keeps those
 * bytes, in a buffer no larger than they need.
 *
 * What every worker shares (the queue, the poller, the stop flags) is one
 * struct worker_rules, the server's, shared by pointer.
 */
#ifndef ENCHUFE_WORKER_H
#define ENCHUFE_WORKER_H

#include "buf.h"
#include "conn.h"
#include "counters.h"
#include "latency.h"
#include "queue.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

struct poller;
struct worker;

/* What a serve function leaves the connection needing. */
enum worker_next {
    WORKER_WAIT,   /* to wait for its client: c->wait and c->want_write say for what,
                    * c->deadline_ms until when (the worker sets it for idle waits) */
    WORKER_CLOSE,  /* to be closed: c->end says why */
    WORKER_HANDED, /* nothing: it went back to the queue (worker_requeue) */
};

/* Serves c until it must wait, is over, or is handed back. */
typedef enum worker_next (*worker_serve_fn)(struct worker *w, struct conn *c, void *arg);

/* What every worker shares: how connections are served, which the server
 * sets once, and the stop flags. The server owns it (worker_rules_init,
 * then its fields), the pool and the workers share it by pointer. */
struct worker_rules {
    struct queue *queue;
    struct poller *poller; /* NULL: connections wait in their worker (--no-park) */
    int idle_timeout_ms;   /* the wait for a next request (0 = none) */
    int handshake_timeout_ms; /* a TLS handshake, from accept (0 = none) */
    int linger_ms;         /* with a poller: wait this long before parking (0: park at once) */
    worker_serve_fn serve;
    void *serve_arg;
    atomic_bool stopping;  /* answer what has arrived, then close */
    atomic_bool forced;    /* close everything at once */
    atomic_size_t busy;    /* workers holding a connection */
};

/* Aligned to a cache line: each worker bumps its own counters, and
 * neighbours sharing a line would slow each other down for nothing. */
struct worker {
    _Alignas(64) pthread_t thread;
    pthread_mutex_t lock;  /* guards conn against worker_cut */
    struct worker_rules *rules;
    struct conn *conn;     /* the connection it serves (NULL: none) */
    atomic_bool lingering; /* in recv or poll waiting for a client: may be called back */
    atomic_int tid;        /* the thread's id, for tgkill (0 until it runs) */
    atomic_int calling;    /* callers signalling it now: its thread waits them out */
    unsigned turn_requests;  /* answered since this worker took the connection */
    long long turn_start_ms; /* when it took it */
    atomic_uint_least64_t counters[COUNTER_COUNT];
    struct latency latency; /* service times of the answers it sent */
    struct buf spare;      /* the receive buffer it lends to each connection */
};

/* How often a worker waiting in recv (no poller) checks for a stop. */
#define WORKER_TICK_MS 100

/* A turn on one connection, when other connections wait. */
#define WORKER_TURN_REQUESTS 64
#define WORKER_TURN_MS 2

/* Sets the flags; the caller fills in the rest. */
void worker_rules_init(struct worker_rules *r);

int worker_init(struct worker *w, struct worker_rules *rules);
void worker_destroy(struct worker *w);

/* The thread's loop: pops and serves connections until the queue is
 * closed and empty. */
void worker_run(struct worker *w);

/* A forced stop: shuts the worker's connection down under it, so its
 * blocking calls return. True if it held one. */
bool worker_cut(struct worker *w);

/* One of the worker's counters. */
uint64_t worker_counter(struct worker *w, enum counter which);

/* Calls the worker back if it is lingering on a connection (it parks it
 * and goes to the queue). True if it was. */
bool worker_call_back(struct worker *w);

/* The signal that ends a lingering recv. SIGURG: its default action is to
 * be ignored, so a stray one harms no other thread; we use no out-of-band
 * data, its other meaning. */
#define WORKER_CALL_BACK_SIGNAL SIGURG

/* Installs the signal's (empty) handler, without SA_RESTART. Once per
 * process, before workers start; worker threads must not block it. */
void worker_install_call_back(void);

/* --- for serve functions ------------------------------------------------- */

/* Adds n to one of the worker's counters. */
void worker_count(struct worker *w, enum counter which, uint64_t n);

/* Records one answer's service time: from the first byte of its request
 * read to the last byte of the answer written. */
void worker_record_latency(struct worker *w, uint64_t ns);

/* Reads what the client has sent into buf. c->wait says what is being
 * read: CONN_WAIT_IDLE between requests, CONN_WAIT_REQUEST (or
 * CONN_WAIT_CLOSE) within one, with c->deadline_ms its deadline.
 * socket_was_empty says the caller's last read returned less than it
 * asked for, so the socket held nothing more then: the first try is then
 * left to the wait, which costs nothing if bytes came since.
 *
 * Returns the byte count, 0 at the end of the stream, or -1 with errno:
 *   EAGAIN      nothing came (after the linger, when there is one): return
 *               WORKER_WAIT, and the connection waits in the poller;
 *   ESHUTDOWN   the server is stopping and no next request has arrived;
 *   ETIMEDOUT   (--no-park) the deadline passed;
 *   ECONNABORTED a forced stop;
 *   anything else: the read failed. */
ssize_t worker_read(struct worker *w, struct conn *c, void *buf, size_t len,
                    bool socket_was_empty);

/* Writes iov (which may be modified). Returns the bytes the socket took:
 * fewer than iov holds means it is full and the client slow; keep the
 * rest (conn_keep_unsent), set c->write_deadline_ms if it is not set,
 * and return WORKER_WAIT with CONN_WAIT_WRITE (c->want_write is set
 * here). -1 on an error (errno). Without a poller it writes everything,
 * waiting up to c->write_deadline_ms (ETIMEDOUT). */
ssize_t worker_writev(struct worker *w, struct conn *c, struct iovec *iov, int iovcnt);

/* After `answered` more requests on this connection: true if its turn is
 * over (WORKER_TURN_REQUESTS or WORKER_TURN_MS, and other connections
 * wait in the queue). */
bool worker_turn_over(struct worker *w, unsigned answered);

/* Hands the connection, which holds nothing, back to the tail of the
 * queue: true if it went (return WORKER_HANDED without touching it),
 * false if the queue had no room (go on serving). */
bool worker_requeue(struct worker *w, struct conn *c);

/* True while the server is stopping. */
bool worker_stopping(const struct worker *w);

#endif
