/*
 * acceptor.h - the thread that accepts connections and queues them.
 *
 * It only accepts and hands off; it never reads a byte. Each accepted
 * socket becomes a connection (conn.h), with a TLS session when it came
 * from a TLS listener, and the connection is what it queues. When the
 * queue is full it waits (backpressure: the kernel's listen backlog
 * absorbs the burst).
 *
 * Ownership: acceptor_start() takes the listening sockets; the acceptor
 * closes them when it stops. A connection it made belongs to it until a
 * push succeeds (then to the worker that pops it). While it runs it
 * counts as an open connection in the ledger, so that a drain waits for
 * what it has yet to hand over.
 *
 * Stopping: acceptor_stop() asks, without waiting. The thread then takes
 * every connection already waiting in the listen backlog (their clients
 * may have sent whole requests, which a stop answers), closes the
 * listeners, so that from then on the kernel refuses new connections,
 * queues what it took, and tells the queue it is done producing.
 */
#ifndef ENCHUFE_ACCEPTOR_H
#define ENCHUFE_ACCEPTOR_H

#include "conn.h"
#include "net.h"
#include "queue.h"

struct tls_server;

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

struct acceptor {
    int listen_fds[NET_MAX_LISTENERS]; /* one per address listened on */
    int nlisten;
    bool tls_listener[NET_MAX_LISTENERS]; /* its sockets speak TLS */
    struct tls_server *tls; /* makes their TLS sessions (tls.h) */
    struct conn_ledger *ledger;
    int wake[2]; /* self-pipe: a byte on wake[1] stops the loop */
    struct queue *queue;
    pthread_t thread;
    bool take_backlog; /* at the stop, accept what waits in the backlog */
    atomic_bool stopping;
    atomic_ulong accepted;
};

/* Starts the thread on n listening sockets, which it now owns; a socket
 * accepted on listener i where tls_listener[i] (NULL: none) gets a TLS
 * session from tls. Its connections are counted in ledger. With
 * take_backlog false the stop leaves the backlog alone (a socket handed
 * over by systemd: the next process takes it). Returns 0, or -1 (errno);
 * the caller still owns the sockets then. */
int acceptor_start(struct acceptor *a, const int *listen_fds, const bool *tls_listener, int n,
                   struct queue *q, bool take_backlog, struct tls_server *tls,
                   struct conn_ledger *ledger);

/* The i-th listening socket (for its address), or -1 past the last. Only
 * while the acceptor runs. */
int acceptor_listener(const struct acceptor *a, int i);

/* Asks the thread to stop (see above) and returns at once. */
void acceptor_stop(struct acceptor *a);

/* Waits for a stopped acceptor's thread to end. */
void acceptor_join(struct acceptor *a);

#endif
