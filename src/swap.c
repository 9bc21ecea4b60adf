/*
 * swap.c - a value replaced whole under readers (see swap.h).
 */
#include "swap.h"

#include <errno.h>

int swap_init(struct swap *s, void *initial)
{
    atomic_init(&s->current, initial);
    int rc = pthread_mutex_init(&s->writer, NULL);
    for (int i = 0; rc == 0 && i < SWAP_STRIPES; i++)
        if ((rc = pthread_mutex_init(&s->stripes[i].lock, NULL)) != 0)
            while (i-- > 0)
                pthread_mutex_destroy(&s->stripes[i].lock);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    return 0;
}

void *swap_destroy(struct swap *s)
{
    for (int i = 0; i < SWAP_STRIPES; i++)
        pthread_mutex_destroy(&s->stripes[i].lock);
    pthread_mutex_destroy(&s->writer);
    return atomic_load(&s->current);
}

/* The calling thread's stripe: threads take them in turn, once. */
static int my_stripe(void)
{
    static atomic_uint next;
    static _Thread_local int stripe = -1;
    if (stripe < 0)
        stripe = (int)(atomic_fetch_add_explicit(&next, 1, memory_order_relaxed) % SWAP_STRIPES);
    return stripe;
}

void *swap_read_begin(struct swap *s, int *stripe)
{
    *stripe = my_stripe();
    pthread_mutex_lock(&s->stripes[*stripe].lock);
    return atomic_load_explicit(&s->current, memory_order_acquire);
}

void swap_read_end(struct swap *s, int stripe)
{
    pthread_mutex_unlock(&s->stripes[stripe].lock);
}

void *swap_replace(struct swap *s, void *next)
{
    pthread_mutex_lock(&s->writer);
    void *old = atomic_exchange_explicit(&s->current, next, memory_order_acq_rel);
    /* The grace period: every reader that could have loaded old holds
     * its stripe until it is done with it. */
    for (int i = 0; i < SWAP_STRIPES; i++) {
        pthread_mutex_lock(&s->stripes[i].lock);
        pthread_mutex_unlock(&s->stripes[i].lock);
    }
    pthread_mutex_unlock(&s->writer);
    return old;
}

void *swap_peek(struct swap *s)
{
    return atomic_load_explicit(&s->current, memory_order_acquire);
}
