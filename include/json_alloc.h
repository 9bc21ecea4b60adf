/*
 * json_alloc.h - the memory of JSON parses: a per-thread arena on the
 * request path, and knowing for certain that a parse failed for want of
 * memory.
 *
 * A request's header and content are parsed into short-lived nodes that
 * die before the next request: from begin to end those come from this
 * thread's arena (one block, made once per thread and reused; a parse
 * that outgrows it goes on with malloc), so a request costs no heap
 * allocation. jansson's allocations come through here in every thread.
 *
 * jansson reports some failed allocations as syntax errors (a string it
 * could not copy reads as "string or '}' expected"), so its error cannot
 * tell a client's bad JSON from the server's lack of memory: a failed
 * allocation is remembered, per thread, until the next parse begins.
 */
#ifndef ENCHUFE_JSON_ALLOC_H
#define ENCHUFE_JSON_ALLOC_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* The arena's size: a tutorial request takes about 1 KiB of it. */
#define JSON_ARENA_BYTES ((size_t)8 << 10)

/* Before a parse that is not on the request path (a data file): routes
 * jansson's allocations here (once per process) and forgets this
 * thread's earlier failures; they come from malloc. */
void json_alloc_watch(void);

/* Before and after a parse on the request path: as json_alloc_watch(),
 * and the allocations in between come from this thread's arena, which
 * begin empties. What was parsed stays valid after end, until the next
 * begin in this thread; freeing it is harmless. Only what the parse
 * allocates may come from the arena, not anything kept past the next
 * begin (so nothing is dumped or built between begin and end). begin
 * returns false if this thread has no arena (no memory to make one):
 * then malloc serves. */
bool json_alloc_arena_begin(void);
void json_alloc_arena_end(void);

/* True if an allocation failed in this thread since the parse began. */
bool json_alloc_failed(void);

/* True if a jansson parse that failed (error e), begun in this thread
 * after json_alloc_watch() or json_alloc_arena_begin(), failed for want
 * of memory rather than because of the bytes. */
bool json_alloc_out_of_memory(const json_error_t *e);

/* Memory for a parser other than jansson, between begin and end: the
 * arena, or malloc beyond it (never the test source below). take returns
 * NULL only if malloc does; resize keeps the contents like realloc. */
void *json_alloc_take(size_t n);
void *json_alloc_resize(void *p, size_t n);
void json_alloc_give(void *p);

/* Tests: where jansson's allocations come from (NULL: the arena and
 * malloc), to make them fail; the arena is then left out. */
void json_alloc_set_source(void *(*source)(size_t));

/* Tests: heap allocations this thread's parses made beyond the arena
 * since the process started. */
unsigned long json_alloc_overflows(void);

#endif
