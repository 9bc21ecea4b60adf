/*
 * conn.h - one client connection, from accept to close.
 *
 * A struct conn owns everything about one connection: the socket, its
 * TLS session, the bytes of a request read only in part, the bytes of
 * answers the client has not taken yet, and the deadline of whatever it
 * is waiting for. The acceptor makes it; it travels by pointer through
 * the queue, the workers and the poller (as epoll's data.ptr); and
 * conn_close() is the one way to end it.
 *
 * Who may touch it: exactly one owner at a time, and the hand-offs
 * (queue push and pop, poller park and wake, both under a lock) order
 * every access. The owner is the acceptor until it queues the connection,
 * then the worker that pops it, then the poller while it is parked, then
 * a worker again. Only the owner reads or writes any field, except that
 * a forced stop may shut a worker's socket down under it (worker.c says
 * how that is locked), and that a worker parking it arms its socket in
 * epoll after handing it to the poller (poller.c: `arming`).
 *
 * Buffers are held only while needed: `in` while a request is partial
 * (or pipelined requests wait), `out` while an answer is partly written.
 * A connection parked with either counts its bytes against the ledger's
 * budget (--max-buffered), so that thousands of slow clients cannot make
 * the server keep more than that.
 *
 * The ledger is what every connection shares: how many are open (a drain
 * waits for none), how each one ended, and the bytes held against the
 * budget.
 */
#ifndef ENCHUFE_CONN_H
#define ENCHUFE_CONN_H

#include "buf.h"
#include "heap.h"
#include "stream.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <time.h>

/* At a stop, how long a connection on which nothing has been read yet
 * may take to send its first request (it connected before the stop). */
#define CONN_FIRST_REQUEST_GRACE_MS 1000

/* What a connection waits for when it is not in a worker: it says which
 * deadline applies and what happens when it passes. */
enum conn_wait {
    CONN_WAIT_HANDSHAKE, /* the rest of a TLS handshake (--read-timeout from accept) */
    CONN_WAIT_IDLE,      /* the next request (--idle-timeout) */
    CONN_WAIT_REQUEST,   /* the rest of a request (--read-timeout from its first byte) */
    CONN_WAIT_WRITE,     /* room to write the rest of an answer (--write-timeout) */
    CONN_WAIT_CLOSE,     /* after an error answer: the client's close (a second) */
};

/* How a connection ended: the reasons the stats and metrics count. */
enum conn_end {
    CONN_END_NORMAL,            /* the client closed, or the server after its last answer */
    CONN_END_ERROR,             /* a reset, an I/O error, a failed TLS handshake */
    CONN_END_IDLE_TIMEOUT,      /* no request within --idle-timeout */
    CONN_END_READ_TIMEOUT,      /* a request not whole within --read-timeout */
    CONN_END_WRITE_TIMEOUT,     /* an answer not taken within --write-timeout */
    CONN_END_HANDSHAKE_TIMEOUT, /* a TLS handshake not done within --read-timeout */
    CONN_END_SHED,              /* held buffers longest when --max-buffered was reached */
    CONN_END_CUT,               /* a stop ran out of time (or a second signal) */
    CONN_END_COUNT
};

/* The name of a reason, as the stats answer and the metrics spell it. */
const char *conn_end_name(enum conn_end why);

struct conn_ledger {
    atomic_long open;            /* connections open */
    atomic_int sources;          /* threads that may still open one */
    atomic_size_t held;          /* bytes held by connections outside a worker */
    atomic_size_t handshaking;   /* ...of which by TLS handshakes under way */
    atomic_long deferred;        /* TLS handshakes waiting for room to start */
    atomic_uint_least64_t deferred_total; /* ...and all that ever did */
    size_t budget;               /* the most they may hold (--max-buffered) */
    atomic_uint_least64_t ended[CONN_END_COUNT];
    pthread_mutex_t lock;        /* for conn_ledger_wait_empty */
    pthread_cond_t empty;
};

int conn_ledger_init(struct conn_ledger *l, size_t budget);
void conn_ledger_destroy(struct conn_ledger *l);

/* A thread that may still open connections (the acceptor) says so, and
 * says when it is done, so that a drain waits for what it has yet to hand
 * over. */
void conn_ledger_add_source(struct conn_ledger *l);
void conn_ledger_source_done(struct conn_ledger *l);

/* Waits until nothing is open and no source is left, or the absolute
 * CLOCK_MONOTONIC deadline passes (NULL: none). True if so. */
bool conn_ledger_wait_empty(struct conn_ledger *l, const struct timespec *deadline);

long conn_ledger_open(struct conn_ledger *l);
size_t conn_ledger_held(struct conn_ledger *l);
bool conn_ledger_over_budget(struct conn_ledger *l);

/* Whether `bytes` more may be held: not if that would go past the budget
 * by more than a quarter of it. */
bool conn_ledger_may_hold(struct conn_ledger *l, size_t bytes);

/* What TLS handshakes under way may hold in all (a little under the
 * budget); whether there is room for one more handshake's state
 * (CONN_TLS_HANDSHAKE) within it; and whether one may start now: there is
 * room, and none waits for room before it. Only handshakes count here:
 * other holders (stalled clients) do not keep a handshake from beginning,
 * they are shed when the total goes over the budget. */
size_t conn_ledger_handshake_limit(const struct conn_ledger *l);
size_t conn_ledger_handshaking(struct conn_ledger *l);
bool conn_ledger_room_for_handshake(struct conn_ledger *l);
bool conn_ledger_may_start_handshake(struct conn_ledger *l);
uint64_t conn_ledger_ended(struct conn_ledger *l, enum conn_end why);

struct conn {
    struct stream stream;   /* the socket, and its TLS session (NULL: in clear) */
    struct conn_ledger *ledger;
    struct buf in;          /* read, not yet consumed: a partial (or pipelined) request */
    struct buf out;         /* answer bytes not yet taken by the client */
    long long opened_ms;    /* when it was accepted (monotime_ms) */
    long long deadline_ms;  /* when the current wait ends (0: never) */
    long long request_deadline_ms; /* the request being read must be whole by then */
    long long write_deadline_ms;   /* what is in `out` must be written by then */
    long long held_since_ms;       /* since when it holds buffers (0: it holds none) */
    uint64_t request_start_ns;     /* when the current request's first byte was read */
    size_t charged;         /* bytes counted in ledger->held (and in ->handshaking
                             * if it waits in one: its wait does not change
                             * while it is counted) */
    size_t drained;         /* after an error answer: bytes read and dropped */
    struct heap_node timer; /* the poller's heap of deadlines */
    struct heap_node hold;  /* the poller's heap of buffer holders, oldest first */
    enum conn_wait wait;    /* what it waits for when not in a worker */
    enum conn_end end;      /* why it is being closed, once it is */
    bool want_write;        /* ...and whether that is room to write (else bytes) */
    bool fresh;             /* nothing read on it yet */
    bool expired;           /* the poller found its deadline passed */
    bool closing;           /* an error answer was sent: drain, then close */
    bool in_epoll;          /* registered in the poller's epoll set */
    bool parked;            /* held by the poller now */
    atomic_bool arming;     /* parked, and its worker is still arming it in epoll
                             * (poller.c): the poller waits for that to end
                             * before it hands the connection on or closes it */
    bool recv_timeout_set;  /* its SO_RCVTIMEO is the worker's wait (worker.c) */
    bool tls_buffers_freed; /* parked with its OpenSSL record buffers given back */
    bool deferred;          /* its TLS handshake waits for room to start (poller.c) */
    bool admitted;          /* ...and the poller has let it start */
    struct conn *deferred_older, *deferred_newer; /* the poller's list of those */
    bool rcvlowat_set;      /* its SO_RCVLOWAT waits for the first TLS record (worker.c) */
    bool slow;              /* it once made a worker wait in vain: no more lingering on
                             * it but between requests (worker.c) */
};

/* A new connection for an accepted socket; ssl is its TLS session (or
 * NULL), which it now owns. Returns NULL if memory ran out (the socket
 * and session are still the caller's). */
struct conn *conn_new(struct conn_ledger *ledger, int fd, SSL *ssl);

/* Closes the socket (with close_notify first, when a TLS session is in a
 * state to send one, never waiting), frees everything the connection
 * holds, counts why it ended, and frees it. */
void conn_close(struct conn *c, enum conn_end why);

/* What OpenSSL keeps for a session in the middle of a record (one read in
 * part, one not yet sent): a read and a write buffer of a record each. A
 * parked session gives them back when they hold nothing (stream_park):
 * idle, or waiting for the client's next handshake flight. */
#define CONN_TLS_BUFFERS ((size_t)34 << 10)

/* What OpenSSL keeps for a handshake under way besides them (the message
 * buffer, 16 KiB, and the handshake's state): 10,000 waiting for their
 * clients' next flight took 37 KiB each, 10,000 idle sessions 15 KiB. */
#define CONN_TLS_HANDSHAKE ((size_t)24 << 10)

/* What a parked connection keeps: its buffers, its TLS session's unless
 * they were given back, and a handshake's state once it has begun. */
size_t conn_buffered(const struct conn *c);

/* Counts `bytes` held by c, parked, against its ledger (with the
 * handshakes' if it waits in one); and takes back what it was counted. */
void conn_charge(struct conn *c, size_t bytes);
void conn_uncharge(struct conn *c);

/* Keeps in out what the socket did not take of an answer: iov[0..iovcnt)
 * from byte `skip` on. False if memory ran out. */
bool conn_keep_unsent(struct conn *c, const struct iovec *iov, int iovcnt, size_t skip);

#endif
