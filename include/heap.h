/*
 * heap.h - a binary min-heap of intrusive nodes: what expires next, in
 * O(1), with insert, remove and re-key in O(log n).
 *
 * The poller keeps its timers in one (libuv does the same with its
 * heap-inl.h): a node is embedded in the object it times (struct conn),
 * carries its key (a deadline) and its own index in the heap, so that an
 * object can be taken out of the middle of the heap without a search.
 * The heap owns nothing but its array of pointers; it takes no lock.
 */
#ifndef ENCHUFE_HEAP_H
#define ENCHUFE_HEAP_H

#include <stdbool.h>
#include <stddef.h>

struct heap_node {
    long long key;
    size_t index; /* where it is in the heap's array; HEAP_NOWHERE when out */
};

#define HEAP_NOWHERE ((size_t)-1)

struct heap {
    struct heap_node **items;
    size_t n, cap;
};

static inline void heap_node_init(struct heap_node *x)
{
    x->key = 0;
    x->index = HEAP_NOWHERE;
}

static inline bool heap_node_in(const struct heap_node *x)
{
    return x->index != HEAP_NOWHERE;
}

void heap_init(struct heap *h);
void heap_free(struct heap *h);

/* Adds x with key. Returns 0, or -1 if the array could not grow (x is
 * then left out). */
int heap_push(struct heap *h, struct heap_node *x, long long key);

/* Takes x out of the heap (it must be in). */
void heap_remove(struct heap *h, struct heap_node *x);

/* The node with the smallest key, or NULL when empty. */
static inline struct heap_node *heap_min(const struct heap *h)
{
    return h->n ? h->items[0] : NULL;
}

/* Gives every node the key new_key(node, arg) returns, then restores the
 * heap in O(n) (for a change to many keys at once). */
void heap_rekey(struct heap *h, long long (*new_key)(struct heap_node *x, void *arg), void *arg);

#endif
