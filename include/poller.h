/*
 * poller.h - holds the connections that wait for their client, so that a
 * slow, silent or idle client costs a parked connection, never a worker.
 *
 *   acceptor --> queue --> workers --(would wait)--> poller --(ready)--> queue
 *
 * A worker parks a connection here the moment serving it would mean
 * waiting for the client: for its next request, for the rest of a request
 * or of a TLS handshake, or for room to write an answer the client is
 * slow to read (conn.h, enum conn_wait). One thread watches every parked
 * socket with one epoll set, whose events carry the connection itself
 * (data.ptr), and puts each back on the queue as soon as it can make
 * progress.
 *
 * Deadlines are kept in a min-heap (heap.h): the poller sleeps until the
 * earliest one, and a connection whose deadline passes is ended for its
 * reason (the idle, read, write or handshake timeout), except a request
 * read only in part, which goes back to a worker flagged `expired` so
 * that its client is told (a `timeout` answer).
 *
 * Buffers: a parked connection that holds a partial request or unsent
 * answers counts them against the ledger's budget (--max-buffered). When
 * the connections outside the workers hold more than that, the poller
 * closes those that have held buffers longest (a second heap), counted as
 * shed, until they fit again. It may be a few milliseconds late, and
 * clients that stall by the thousand can park many times that fast, so a
 * park that would go past the budget by a quarter more is refused.
 *
 * Ownership: a parked connection belongs to the poller until it is queued
 * again (then to the worker that pops it) or closed. Only the poller's
 * thread takes a connection out of the poller, and whatever it takes out
 * is also out of the epoll set (fired once, or removed), so no later
 * epoll event can name a connection that has moved on or been freed.
 *
 * Stopping: poller_quiesce() starts the stop. The thread hands every
 * parked connection with bytes waiting to the workers (a stop answers
 * every request that has arrived), closes the idle ones, and keeps
 * the rest until they finish or expire: requests read in part, answers
 * being written, handshakes, and connections on which nothing has been
 * read yet (their first request may be on its way: they get
 * CONN_FIRST_REQUEST_GRACE_MS). From then on it refuses to park an idle
 * connection. poller_cut() closes everything it holds and refuses every
 * park (a stop out of time); poller_stop() ends the thread, which then
 * tells the queue it is done producing.
 */
#ifndef ENCHUFE_POLLER_H
#define ENCHUFE_POLLER_H

#include "conn.h"
#include "queue.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct poller;

/* Starts the poller thread. Returns NULL with errno set on failure. */
struct poller *poller_start(struct queue *q, struct conn_ledger *ledger);

/* Hands a connection over: c->wait, c->want_write and c->deadline_ms say
 * what it waits for and until when. Returns 0, or -1 if the poller will
 * not take it, errno saying why: ESHUTDOWN (stopping, and c is idle),
 * ECANCELED (cut), ENOBUFS (what c holds would take the buffers too far
 * past the budget), ENOMEM. The caller still owns c then. */
int poller_park(struct poller *p, struct conn *c);

/* A worker took up a TLS handshake under way, whose room counts no
 * more: wakes the thread if handshakes wait for room to begin. */
void poller_handshake_taken_up(struct poller *p);

/* Starts the stop (see above) and returns at once. */
void poller_quiesce(struct poller *p);

/* Closes every parked connection (counted as cut) and refuses every park
 * from now on. Returns at once; the thread does it. */
void poller_cut(struct poller *p);

/* Ends the thread, once nothing is parked (after a drain, or a cut). Must
 * come before the queue is closed, since the thread pushes into it. */
void poller_stop(struct poller *p);

/* Waits for a stopped poller's thread to end. */
void poller_join(struct poller *p);

/* Frees a stopped poller, once no worker can call poller_park any more. */
void poller_free(struct poller *p);

struct poller_stats {
    uint64_t parked;      /* times a connection was parked */
    uint64_t woken;       /* times one went back to the queue */
    uint64_t idle_closed; /* closed at the idle timeout */
    uint64_t peer_closed; /* closed here because the client had gone */
    uint64_t expired;     /* deadlines that passed, whatever the wait */
    uint64_t shed;        /* closed to keep buffers within the budget */
    size_t holding;       /* parked right now */
    size_t holding_buffers; /* ... of which hold buffers (a partial request, unsent
                             * answers, a TLS handshake under way) */
};
void poller_stats(struct poller *p, struct poller_stats *out);

#endif
