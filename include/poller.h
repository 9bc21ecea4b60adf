/*
 * poller.h - holds idle keep-alive connections between requests, so that
 * an idle connection costs a file descriptor, not a worker.
 *
 *   acceptor --> queue --> workers --(idle)--> poller --(readable)--> queue
 *
 * A worker that has answered a request and finds nothing more to read
 * parks the connection here instead of blocking in recv. One thread
 * watches every parked socket with epoll and puts each one back on the
 * work queue when its next request starts to arrive, or closes it when it
 * has been idle for the idle timeout.
 *
 * Idle timeouts cost O(1): every connection gets the same timeout, so the
 * order in which connections are parked is the order in which they
 * expire, and a linked list in park order (unlinked in O(1) on wake-up)
 * is all the timer needed.
 *
 * Ownership: a parked socket belongs to the poller until it is queued
 * again (then to the worker that pops it) or closed.
 *
 * Stopping: from poller_stop() on, parking is refused. The thread hands
 * every parked connection with bytes waiting to the workers (a stop
 * answers every request that had arrived), and those on which nothing
 * was ever read (a first request may be on its way); it closes the idle
 * ones, and tells the queue it is done producing.
 */
#ifndef ENCHUFE_POLLER_H
#define ENCHUFE_POLLER_H

#include "queue.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct poller;

struct tls_server;

/* Starts the poller thread for sockets numbered below max_fds. The
 * sockets it closes are closed through tls (tls_server_close; NULL: no
 * TLS). Returns NULL with errno set on failure. */
struct poller *poller_start(struct queue *q, int idle_timeout_ms, size_t max_fds,
                            struct tls_server *tls);

/* Hands an idle connection over; fresh says nothing has been read on it
 * yet. Returns 0, or -1 if the poller is stopping or cannot take it: the
 * caller still owns fd then. */
int poller_park(struct poller *p, int fd, bool fresh);

/* Says a socket the poller has seen before is about to be closed by its
 * owner, so that its number, reused, is added to the epoll set afresh.
 * Workers call it before closing a connection they took from the queue. */
void poller_forget(struct poller *p, int fd);

/* Asks the thread to stop (see above) and returns at once. Must come
 * before the queue is closed, since the thread pushes into it. */
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
    uint64_t dropped;     /* woken, then closed unserved: a stop ran out of time */
    size_t holding;       /* parked right now */
};
void poller_stats(struct poller *p, struct poller_stats *out);

#endif
