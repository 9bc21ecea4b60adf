/*
 * outbox.h - the answers waiting to go out on one connection.
 *
 * A client that pipelines sends several requests before it reads; the
 * server answers every complete request it already holds and sends the
 * answers together, one writev for the lot (in TLS, few records), rather
 * than one system call each. The caller flushes before any read that may
 * wait (the client may be waiting for these answers before it sends more)
 * and when the outbox is full: OUTBOX_ANSWERS answers or OUTBOX_BYTES
 * bytes, so an answer never waits long and memory stays bounded. (It
 * lives on the worker's stack while a connection is served, about 50
 * KiB; what the socket does not take goes to the connection, conn.h.)
 */
#ifndef ENCHUFE_OUTBOX_H
#define ENCHUFE_OUTBOX_H

#include "app.h"
#include "frame.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#define OUTBOX_ANSWERS 64
#define OUTBOX_BYTES ((size_t)64 << 10)

struct outbox {
    int n;
    size_t bytes;
    struct outbox_answer {
        uint8_t head[FRAME_ENCODED_HEADER_MAX]; /* proto-header and JSON header */
        size_t head_len;
        struct app_response resp; /* its content, owned until sent */
        uint64_t started_ns;      /* when its request's first byte was read */
    } answers[OUTBOX_ANSWERS];
};

void outbox_init(struct outbox *o);

/* Where the next answer is written, in place (the outbox must not be
 * full); outbox_commit() then queues it. started_ns is when its request
 * began to arrive (for its service time). commit returns 0, or -1 if
 * the answer's header cannot be encoded (the answer is then still the
 * caller's to free). */
struct app_response *outbox_next(struct outbox *o);
int outbox_commit(struct outbox *o, uint64_t started_ns);

bool outbox_full(const struct outbox *o);

/* The queued answers as iovecs (two each: header, content), for one
 * writev; iov must have room for 2 * OUTBOX_ANSWERS. Returns how many.
 * The answers stay queued, for the caller to count once they are sent;
 * outbox_clear() then frees them. */
int outbox_iov(const struct outbox *o, struct iovec *iov);

void outbox_clear(struct outbox *o);

#endif
