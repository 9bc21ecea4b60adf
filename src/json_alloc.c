/*
 * json_alloc.c - the memory of JSON parses (see json_alloc.h).
 *
 * The arena is a bump allocator: each block carries its size in a
 * 16-byte prefix (so resize can copy it), freeing one is a no-op, and
 * begin empties the whole arena at once. It is made on a thread's first
 * parse and freed when the thread ends.
 */
#include "json_alloc.h"

#include <jansson.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_ALIGN ((size_t)16)

struct arena {
    size_t used;
    alignas(16) unsigned char mem[JSON_ARENA_BYTES];
};

static _Thread_local struct arena *arena;  /* this thread's, once made */
static _Thread_local bool arena_on;        /* between begin and end */
static _Thread_local bool failed;
static _Thread_local unsigned long overflows;
static _Atomic(void *(*)(size_t)) source;

static pthread_key_t arena_key; /* frees a thread's arena when it ends */

static bool in_arena(const void *p)
{
    const unsigned char *b = p;
    return arena && b >= arena->mem && b < arena->mem + sizeof arena->mem;
}

/* n bytes from the arena, or NULL if it has no room (or is off). */
static void *arena_take(size_t n)
{
    if (!arena_on || !arena)
        return NULL;
    size_t need = ARENA_ALIGN + ((n + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1));
    if (n > sizeof arena->mem || need > sizeof arena->mem - arena->used)
        return NULL;
    unsigned char *block = arena->mem + arena->used;
    arena->used += need;
    memcpy(block, &n, sizeof n);
    return block + ARENA_ALIGN;
}

static size_t arena_size_of(const void *p)
{
    size_t n;
    memcpy(&n, (const unsigned char *)p - ARENA_ALIGN, sizeof n);
    return n;
}

void *json_alloc_take(size_t n)
{
    void *p = arena_take(n);
    if (p)
        return p;
    overflows++;
    if (!(p = malloc(n)))
        failed = true;
    return p;
}

void *json_alloc_resize(void *p, size_t n)
{
    if (!p)
        return json_alloc_take(n);
    if (!in_arena(p)) { /* already on the heap: it grows there */
        void *q = realloc(p, n);
        if (!q)
            failed = true;
        return q;
    }
    size_t old = arena_size_of(p);
    if (n <= old)
        return p;
    void *q = json_alloc_take(n);
    if (q)
        memcpy(q, p, old);
    return q;
}

void json_alloc_give(void *p)
{
    if (!in_arena(p))
        free(p);
}

/* jansson's allocations: the test source if one is set, else as above. */
static void *watched_malloc(size_t n)
{
    void *(*from)(size_t) = atomic_load_explicit(&source, memory_order_relaxed);
    if (!from)
        return json_alloc_take(n);
    void *p = from(n);
    if (!p)
        failed = true;
    return p;
}

static void free_arena(void *a)
{
    free(a);
}

static pthread_once_t installed = PTHREAD_ONCE_INIT;

static void install(void)
{
    json_set_alloc_funcs(watched_malloc, json_alloc_give);
    (void)pthread_key_create(&arena_key, free_arena);
}

void json_alloc_watch(void)
{
    pthread_once(&installed, install);
    failed = false;
    arena_on = false;
}

bool json_alloc_arena_begin(void)
{
    json_alloc_watch();
    if (!arena && (arena = malloc(sizeof *arena)) != NULL)
        (void)pthread_setspecific(arena_key, arena);
    if (arena) {
        arena->used = 0;
        arena_on = true;
    }
    return arena_on;
}

void json_alloc_arena_end(void)
{
    arena_on = false;
}

bool json_alloc_failed(void)
{
    return failed;
}

bool json_alloc_out_of_memory(const json_error_t *e)
{
    /* A failed allocation is known for certain (jansson reports some as
     * syntax errors); besides, jansson says so with its own code, or,
     * when it cannot even set up its reader, returns with the error text
     * still empty. */
    return failed || json_error_code(e) == json_error_out_of_memory || e->text[0] == '\0';
}

unsigned long json_alloc_overflows(void)
{
    return overflows;
}

void json_alloc_set_source(void *(*from)(size_t))
{
    pthread_once(&installed, install);
    atomic_store(&source, from);
}
