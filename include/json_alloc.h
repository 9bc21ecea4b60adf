/*
 * json_alloc.h - knowing for certain that a JSON parse failed for want of
 * memory.
 *
 * jansson reports some failed allocations as syntax errors (a string it
 * could not copy reads as "string or '}' expected"), so its error cannot
 * tell a client's bad JSON from the server's lack of memory. Its
 * allocations go through here instead, and a failed one is remembered,
 * per thread, until the next parse begins.
 */
#ifndef ENCHUFE_JSON_ALLOC_H
#define ENCHUFE_JSON_ALLOC_H

#include <stdbool.h>
#include <stddef.h>

/* Before a parse: routes jansson's allocations here (once per process)
 * and forgets this thread's earlier failures. */
void json_alloc_watch(void);

/* True if an allocation failed in this thread since json_alloc_watch(). */
bool json_alloc_failed(void);

/* Tests: where the allocations come from (NULL: malloc), to make them
 * fail. */
void json_alloc_set_source(void *(*source)(size_t));

#endif
