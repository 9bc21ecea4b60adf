/*
 * json_alloc.c - jansson's allocations, with a per-thread record of the
 * one that failed (see json_alloc.h).
 */
#include "json_alloc.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

static _Thread_local bool failed;
static _Atomic(void *(*)(size_t)) source;

static void *watched_malloc(size_t n)
{
    void *(*from)(size_t) = atomic_load_explicit(&source, memory_order_relaxed);
    void *p = from ? from(n) : malloc(n);
    if (!p)
        failed = true;
    return p;
}

static pthread_once_t installed = PTHREAD_ONCE_INIT;

static void install(void)
{
    json_set_alloc_funcs(watched_malloc, free);
}

void json_alloc_watch(void)
{
    pthread_once(&installed, install);
    failed = false;
}

bool json_alloc_failed(void)
{
    return failed;
}

void json_alloc_set_source(void *(*from)(size_t))
{
    pthread_once(&installed, install);
    atomic_store(&source, from);
}
