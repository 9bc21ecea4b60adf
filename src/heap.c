/*
 * heap.c - binary min-heap of intrusive nodes (see heap.h).
 */
#include "heap.h"

#include <stdlib.h>

#define HEAP_MIN_CAP 64

void heap_init(struct heap *h)
{
    *h = (struct heap){0};
}

void heap_free(struct heap *h)
{
    free(h->items);
    *h = (struct heap){0};
}

static void place(struct heap *h, size_t i, struct heap_node *x)
{
    h->items[i] = x;
    x->index = i;
}

static void sift_up(struct heap *h, size_t i)
{
    struct heap_node *x = h->items[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h->items[parent]->key <= x->key)
            break;
        place(h, i, h->items[parent]);
        i = parent;
    }
    place(h, i, x);
}

static void sift_down(struct heap *h, size_t i)
{
    struct heap_node *x = h->items[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= h->n)
            break;
        if (child + 1 < h->n && h->items[child + 1]->key < h->items[child]->key)
            child++;
        if (x->key <= h->items[child]->key)
            break;
        place(h, i, h->items[child]);
        i = child;
    }
    place(h, i, x);
}

int heap_push(struct heap *h, struct heap_node *x, long long key)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : HEAP_MIN_CAP;
        struct heap_node **items = realloc(h->items, cap * sizeof(struct heap_node *));
        if (!items)
            return -1;
        h->items = items;
        h->cap = cap;
    }
    x->key = key;
    place(h, h->n++, x);
    sift_up(h, h->n - 1);
    return 0;
}

void heap_remove(struct heap *h, struct heap_node *x)
{
    size_t i = x->index;
    x->index = HEAP_NOWHERE;
    struct heap_node *last = h->items[--h->n];
    if (i == h->n)
        return;
    place(h, i, last);
    /* The last node may belong above or below the hole it fills. */
    if (i > 0 && h->items[(i - 1) / 2]->key > last->key)
        sift_up(h, i);
    else
        sift_down(h, i);
}

void heap_rekey(struct heap *h, long long (*new_key)(struct heap_node *x, void *arg), void *arg)
{
    for (size_t i = 0; i < h->n; i++)
        h->items[i]->key = new_key(h->items[i], arg);
    for (size_t i = h->n / 2; i-- > 0;)
        sift_down(h, i);
}
