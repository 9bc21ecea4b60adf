/*
 * buf.h - a growable byte buffer for bytes read from a socket: the current
 * frame and anything after it.
 *
 * The bytes held are data[start, start + len). Consuming a frame moves
 * `start` on, without copying: a read of many pipelined frames is served
 * front to back at no cost, and the rest is moved to the front only when
 * room is needed (buf_reserve).
 */
#ifndef ENCHUFE_BUF_H
#define ENCHUFE_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf {
    uint8_t *data;
    size_t start; /* where the bytes held begin */
    size_t len;   /* bytes held */
    size_t cap;   /* bytes allocated */
};

/* Makes room for at least `want` bytes held in all, from the first one
 * held (at least a small minimum, so that a read can take several
 * pipelined frames at once). */
bool buf_reserve(struct buf *b, size_t want);

/* The same without the minimum: a buffer that grows only to what it must
 * hold (the bytes a parked connection keeps). */
bool buf_reserve_exact(struct buf *b, size_t want);

/* Gives the buffer's memory to *to (which holds none), leaving b empty. */
void buf_move(struct buf *to, struct buf *b);

/* The first byte held; where the next read's bytes go, and how many fit. */
static inline uint8_t *buf_head(const struct buf *b)
{
    return b->data + b->start;
}
static inline uint8_t *buf_tail(const struct buf *b)
{
    return b->data + b->start + b->len;
}
static inline size_t buf_room(const struct buf *b)
{
    return b->cap - b->start - b->len;
}

/* Drops the first n bytes held; gives a large buffer back once it is
 * empty. */
void buf_consume(struct buf *b, size_t n);

void buf_free(struct buf *b);

#endif
