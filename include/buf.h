/*
 * buf.h - a growable byte buffer for bytes read from a socket: the current
 * frame and anything after it.
 */
#ifndef ENCHUFE_BUF_H
#define ENCHUFE_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf {
    uint8_t *data;
    size_t len; /* bytes held */
    size_t cap; /* bytes allocated */
};

/* Makes room for at least `want` bytes in all (at least a small minimum,
 * so that a read can take several pipelined frames at once). */
bool buf_reserve(struct buf *b, size_t want);

/* Drops the first n bytes, keeping what follows; gives a large buffer
 * back once it is empty. */
void buf_consume(struct buf *b, size_t n);

void buf_free(struct buf *b);

#endif
