/*
 * slot.h - one of enchufe-bench's connections: connect without waiting,
 * run the TLS handshake, send a batch of requests, read and check each
 * answer, and count what went wrong.
 *
 * A slot never decides what to send next: each call returns what became
 * of it, and the thread that owns it (loadgen.c) hands it the next request
 * or lets it wait. In keep-alive mode a slot keeps its socket for the
 * whole run; in per-connection mode it opens one for each batch and
 * closes it after the answers, as the tutorial's client does.
 */
#ifndef ENCHUFE_BENCH_SLOT_H
#define ENCHUFE_BENCH_SLOT_H

#include "frame.h"
#include "net.h"
#include "run.h"

#include <openssl/ssl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum slot_state { S_CLOSED, S_CONNECTING, S_HANDSHAKE, S_IDLE, S_SENDING, S_READING };

/* What a slot call left: the thread acts on the last two. */
enum slot_outcome {
    SLOT_WAITING, /* for the network (or, closed, for the thread's sweep) */
    SLOT_IDLE,    /* no request: its batch was answered, or it connected without one */
    SLOT_FAILED,  /* closed, its request dropped: error and dropped say why */
};

/* What a thread's slots share: the run's settings and the thread's counts. */
struct slot_home {
    const struct bench_config *cfg;
    const struct net_address *addr;
    int epfd;
    struct bench_result res;        /* this thread's measurements */
    atomic_uint_least64_t progress; /* res.completed, for the progress line */
};

struct slot {
    int fd;
    SSL *ssl;             /* with --tls */
    SSL_SESSION *session; /* --tls-resume: the last connection's, to resume */
    enum slot_state state;
    bool has_request; /* a request is assigned (possibly waiting to connect) */
    bool want_out;    /* EPOLLOUT is in the interest set */
    unsigned next;    /* position in the mix of the next request to send */
    unsigned first;   /* ... of the first request of the batch in flight */
    unsigned depth;   /* requests in the batch (the pipeline depth) */
    unsigned done;    /* of those, answered */
    const uint8_t *out; /* the batch's bytes: one request's, or sendbuf */
    size_t out_len;
    uint8_t *sendbuf; /* the requests of a batch, back to back (pipelining) */
    size_t sent;
    uint8_t *buf;
    size_t len, cap;
    struct frame_decoder dec;
    uint64_t origin;  /* latency runs from here: the send, or when it was due */
    uint64_t connect_start;
    uint64_t deadline;
    uint64_t answered; /* answers this slot got, warmup included */
    uint64_t conn_answers; /* answers on the current connection */
    bool retried;     /* the batch in flight was sent again once already */
    enum bench_error error; /* SLOT_FAILED: what went wrong */
    bool dropped;     /* SLOT_FAILED: a request was assigned */
    int idle_next;    /* rate mode: next idle slot, -1 at the end */
    bool in_idle;     /* rate mode: on the thread's idle stack */
};

/* Allocates the slot's buffers: answer_cap for answers, batch_cap (0 for
 * no pipelining) for a batch's requests. Returns 0 or -1. */
int slot_init(struct slot *s, size_t answer_cap, size_t batch_cap);
void slot_free(struct slot *s);

/* Room for the largest right answer and a little more; with pipelining,
 * for several answers at once. */
size_t slot_answer_capacity(const struct bench_config *cfg);
/* The bytes of the largest batch: pipeline times the longest request. */
size_t slot_batch_capacity(const struct bench_config *cfg);

/* Starts a non-blocking connect. */
enum slot_outcome slot_open(struct slot_home *h, struct slot *s);
/* Assigns depth requests, the next of the mix, whose latency runs from
 * origin, and starts them: at once on an idle connection, or once one is
 * open (a closed slot connects). */
enum slot_outcome slot_request(struct slot_home *h, struct slot *s, unsigned depth,
                               uint64_t origin);
/* An epoll event on the slot's socket. */
enum slot_outcome slot_on_event(struct slot_home *h, struct slot *s, uint32_t events);
/* Fails the slot if it waits for the network past its deadline. */
enum slot_outcome slot_check_deadline(struct slot_home *h, struct slot *s, uint64_t now);
/* Closes the connection as a client does (TLS: close_notify). */
void slot_close(struct slot_home *h, struct slot *s);

/* A request is assigned and waits for the network. */
bool slot_busy(const struct slot *s);
/* Requests sent or due on this slot and not yet answered. */
unsigned slot_unanswered(const struct slot *s);

#endif
