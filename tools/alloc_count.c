/*
 * alloc_count.c - counts a process's heap allocations, for the bench and
 * the tests (LD_PRELOAD=build/alloc_count.so, made from tools/alloc_count.c).
 *
 *   ALLOC_COUNT_FILE=/tmp/counts LD_PRELOAD=build/alloc_count.so PROGRAM...
 *
 * malloc, calloc, realloc, posix_memalign, aligned_alloc and memalign are
 * counted and passed on to the allocator that would have served them
 * (glibc's for enchufe-server, jemalloc for Debian's redis-server), so
 * any program can be measured the same way. The count lives in the
 * 8-byte file ALLOC_COUNT_FILE names (created and mapped shared at
 * start), so another process reads it while the program runs: the bench
 * reads it before and after a window and divides by the requests the
 * server answered in between. Every thread adds to the one counter
 * (atomically), which costs the measured program a little: measure CPU
 * in a run without this library.
 */

#include <dlfcn.h>
#include <malloc.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void *(*next_malloc)(size_t);
static void *(*next_calloc)(size_t, size_t);
static void *(*next_realloc)(void *, size_t);
static void (*next_free)(void *);
static int (*next_posix_memalign)(void **, size_t, size_t);
static void *(*next_aligned_alloc)(size_t, size_t);
static void *(*next_memalign)(size_t, size_t);

static _Atomic uint64_t local_count;
static _Atomic uint64_t *count = &local_count;

/* dlsym may allocate before the real functions are known: it gets bytes
 * from here, which free() then recognises and ignores. */
static _Alignas(16) unsigned char early[4096];
static size_t early_used;

static void *early_alloc(size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (early_used + n > sizeof early)
        return NULL;
    void *p = early + early_used;
    early_used += n;
    return p;
}

static int is_early(const void *p)
{
    return (const unsigned char *)p >= early && (const unsigned char *)p < early + sizeof early;
}

static void resolve(void)
{
    static int resolving;
    if (next_malloc || resolving)
        return;
    resolving = 1;
    next_calloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
    next_realloc = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
    next_free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
    next_posix_memalign = (int (*)(void **, size_t, size_t))dlsym(RTLD_NEXT, "posix_memalign");
    next_aligned_alloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "aligned_alloc");
    next_memalign = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "memalign");
    next_malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
    resolving = 0;
}

static void counted(void)
{
    atomic_fetch_add_explicit(count, 1, memory_order_relaxed);
}

__attribute__((constructor)) static void map_count_file(void)
{
    resolve();
    const char *path = getenv("ALLOC_COUNT_FILE");
    if (!path)
        return;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    if (ftruncate(fd, sizeof(uint64_t)) == 0) {
        void *p = mmap(NULL, sizeof(uint64_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p != MAP_FAILED) {
            atomic_store((_Atomic uint64_t *)p, atomic_load(&local_count));
            count = p;
        }
    }
    close(fd);
}

void *malloc(size_t n)
{
    resolve();
    if (!next_malloc)
        return early_alloc(n);
    counted();
    return next_malloc(n);
}

void *calloc(size_t n, size_t size)
{
    resolve();
    if (!next_calloc) {
        if (size && n > SIZE_MAX / size)
            return NULL;
        return early_alloc(n * size); /* static: already zero */
    }
    counted();
    return next_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
    resolve();
    if (is_early(p) || !next_realloc) {
        void *q = malloc(n);
        if (q && p) {
            size_t room = (size_t)(early + sizeof early - (unsigned char *)p);
            memcpy(q, p, n < room ? n : room);
        }
        return q;
    }
    counted();
    return next_realloc(p, n);
}

void free(void *p)
{
    if (!p || is_early(p))
        return;
    resolve();
    next_free(p);
}

int posix_memalign(void **out, size_t align, size_t n)
{
    resolve();
    counted();
    return next_posix_memalign(out, align, n);
}

void *aligned_alloc(size_t align, size_t n)
{
    resolve();
    counted();
    return next_aligned_alloc(align, n);
}

void *memalign(size_t align, size_t n)
{
    resolve();
    counted();
    return next_memalign(align, n);
}
