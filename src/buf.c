/*
 * buf.c - growable receive buffer (see buf.h).
 */
#include "buf.h"

#include <stdlib.h>
#include <string.h>

#define BUF_MIN 16384
/* A buffer grown for one large frame is freed once it is empty, so an idle
 * connection never holds more than this. */
#define BUF_KEEP_MAX ((size_t)64 << 10)

bool buf_reserve(struct buf *b, size_t want)
{
    return buf_reserve_exact(b, want < BUF_MIN ? BUF_MIN : want);
}

bool buf_reserve_exact(struct buf *b, size_t want)
{
    if (b->start + want <= b->cap)
        return true;
    if (b->start > 0) { /* the consumed front makes the room */
        memmove(b->data, b->data + b->start, b->len);
        b->start = 0;
        if (want <= b->cap)
            return true;
    }
    uint8_t *p = realloc(b->data, want);
    if (!p)
        return false;
    b->data = p;
    b->cap = want;
    return true;
}

void buf_consume(struct buf *b, size_t n)
{
    b->len -= n;
    b->start += n;
    if (b->len > 0)
        return;
    b->start = 0;
    if (b->cap > BUF_KEEP_MAX)
        buf_free(b);
}

void buf_move(struct buf *to, struct buf *b)
{
    *to = *b;
    *b = (struct buf){0};
}

void buf_free(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->start = 0;
    b->len = 0;
    b->cap = 0;
}
