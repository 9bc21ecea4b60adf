/*
 * stress_queue.c - the fd queue under many producers and consumers, for
 * ThreadSanitizer: every item delivered exactly once, close wakes all.
 */
#include "queue.h"
#include "stress.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#define PRODUCERS 6
#define CONSUMERS 6
#define PER_PRODUCER 20000
#define CAPACITY 8

static struct queue q;

/* The queue never looks inside a connection: numbers dressed as pointers. */
static struct conn *item_of(int n)
{
    return (struct conn *)(uintptr_t)(n + 1);
}
static atomic_int seen[PRODUCERS * PER_PRODUCER];
static atomic_int next_id;

static void *produce(void *arg)
{
    (void)arg;
    int id = atomic_fetch_add(&next_id, 1);
    for (int i = 0; i < PER_PRODUCER; i++)
        CHECK(queue_push(&q, item_of(id * PER_PRODUCER + i)) == 0, "push %d failed", i);
    return NULL;
}

static void *consume(void *arg)
{
    (void)arg;
    struct conn *c;
    while (queue_pop(&q, &c) == 0) {
        int item = (int)((uintptr_t)c - 1);
        CHECK(item >= 0 && item < PRODUCERS * PER_PRODUCER, "bad item %d", item);
        atomic_fetch_add(&seen[item], 1);
    }
    return NULL;
}

int main(void)
{
    CHECK(queue_init(&q, CAPACITY) == 0, "queue_init");
    pthread_t p[PRODUCERS], c[CONSUMERS];
    for (int i = 0; i < CONSUMERS; i++)
        pthread_create(&c[i], NULL, consume, NULL);
    for (int i = 0; i < PRODUCERS; i++)
        pthread_create(&p[i], NULL, produce, NULL);
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(p[i], NULL);
    queue_close(&q);
    for (int i = 0; i < CONSUMERS; i++)
        pthread_join(c[i], NULL);
    for (int i = 0; i < PRODUCERS * PER_PRODUCER; i++)
        CHECK(atomic_load(&seen[i]) == 1, "item %d delivered %d times", i, atomic_load(&seen[i]));
    queue_destroy(&q);
    printf("stress_queue: %d items through %d producers and %d consumers, each exactly once\n",
           PRODUCERS * PER_PRODUCER, PRODUCERS, CONSUMERS);
    return 0;
}
