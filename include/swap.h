/*
 * swap.h - a value that many threads read and that a rare writer replaces
 * whole (the search answers, the TLS context, on a reload): readers never
 * see a half-made value, and the old one is handed back to be freed only
 * when no reader can still be using it.
 *
 * How: readers take one of SWAP_STRIPES mutexes, each on its own cache
 * line, chosen once per thread (a worker gets a stripe of its own up to
 * SWAP_STRIPES workers), so the read side costs an uncontended lock and
 * unlock on a line no other thread touches. The writer publishes the new
 * value, then takes and drops every stripe in turn: a reader that began
 * before the publication holds its stripe, and is waited for; one that
 * begins after it sees the new value. That is the grace period of RCU,
 * with locks a sanitizer can follow. A read section must be short and
 * never wait on a client: the writer waits for it.
 */
#ifndef ENCHUFE_SWAP_H
#define ENCHUFE_SWAP_H

#include <pthread.h>
#include <stdatomic.h>

#define SWAP_STRIPES 64

struct swap {
    _Atomic(void *) current;
    pthread_mutex_t writer; /* one replacement at a time */
    struct swap_stripe {
        _Alignas(64) pthread_mutex_t lock;
    } stripes[SWAP_STRIPES];
};

/* Returns 0, or -1 (errno) if a mutex could not be made. */
int swap_init(struct swap *s, void *initial);
/* Returns the current value, for the caller to free. */
void *swap_destroy(struct swap *s);

/* The value, valid until swap_read_end(s, stripe) with the stripe it gave. */
void *swap_read_begin(struct swap *s, int *stripe);
void swap_read_end(struct swap *s, int stripe);

/* Publishes next and returns the value it replaced once no reader can be
 * using it any more (the caller frees it). */
void *swap_replace(struct swap *s, void *next);

/* The current value, for a reader that keeps its own reference to it
 * (such as an SSL_CTX an SSL object holds) or only reads a field a
 * replacement never changes: within a read section, or by the writer. */
void *swap_peek(struct swap *s);

#endif
