/*
 * stress_queue.c - the fd queue under many producers and consumers, for
 * ThreadSanitizer: every item delivered exactly once, close wakes all.
 * Twice: without a cap on wake-ups, and with one (queue_limit_wakes),
 * where a push may leave consumers asleep: there every item must still
 * be delivered before the queue closes (a close wakes every consumer,
 * and would hide an item that no consumer was coming back for).
 */
#include "monotime.h"
#include "queue.h"
#include "stress.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>

#define PRODUCERS 6
#define CONSUMERS 6
#define PER_PRODUCER 20000
#define BATCH 5 /* queue_push_many's, in the second round */
#define CAPACITY 8
#define TOTAL (PRODUCERS * PER_PRODUCER)
#define DELIVERY_WAIT_MS 60000

static struct queue q;
static bool batched;

/* The queue never looks inside a connection: numbers dressed as pointers. */
static struct conn *item_of(int n)
{
    return (struct conn *)(uintptr_t)(n + 1);
}
static atomic_int seen[TOTAL];
static atomic_int delivered;
static atomic_int next_id;

static void *produce(void *arg)
{
    (void)arg;
    int id = atomic_fetch_add(&next_id, 1);
    for (int i = 0; i < PER_PRODUCER;) {
        if (!batched) {
            CHECK(queue_push(&q, item_of(id * PER_PRODUCER + i)) == 0, "push %d failed", i);
            i++;
            continue;
        }
        struct conn *batch[BATCH];
        for (int k = 0; k < BATCH; k++)
            batch[k] = item_of(id * PER_PRODUCER + i + k);
        CHECK(queue_push_many(&q, batch, BATCH) == BATCH, "push of %d.. failed", i);
        i += BATCH;
    }
    return NULL;
}

static void *consume(void *arg)
{
    (void)arg;
    struct conn *c;
    unsigned n = 0;
    while (queue_pop(&q, &c) == 0) {
        int item = (int)((uintptr_t)c - 1);
        CHECK(item >= 0 && item < TOTAL, "bad item %d", item);
        atomic_fetch_add(&seen[item], 1);
        atomic_fetch_add(&delivered, 1);
        if (++n % 64 == 0) /* now and then busy, as a worker serving a request */
            usleep(50);
    }
    return NULL;
}

static void run_round(size_t wake_cap, bool batch)
{
    CHECK(queue_init(&q, CAPACITY) == 0, "queue_init");
    queue_limit_wakes(&q, CONSUMERS, wake_cap);
    batched = batch;
    atomic_store(&next_id, 0);
    atomic_store(&delivered, 0);
    for (int i = 0; i < TOTAL; i++)
        atomic_store(&seen[i], 0);
    pthread_t p[PRODUCERS], c[CONSUMERS];
    for (int i = 0; i < CONSUMERS; i++)
        pthread_create(&c[i], NULL, consume, NULL);
    for (int i = 0; i < PRODUCERS; i++)
        pthread_create(&p[i], NULL, produce, NULL);
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(p[i], NULL);
    long long deadline = monotime_deadline(DELIVERY_WAIT_MS);
    while (atomic_load(&delivered) < TOTAL && monotime_ms() < deadline)
        usleep(1000);
    CHECK(atomic_load(&delivered) == TOTAL, "wake cap %zu: %d of %d items delivered before the "
          "close, %zu left in the queue", wake_cap, atomic_load(&delivered), TOTAL,
          queue_length(&q));
    queue_close(&q);
    for (int i = 0; i < CONSUMERS; i++)
        pthread_join(c[i], NULL);
    for (int i = 0; i < TOTAL; i++)
        CHECK(atomic_load(&seen[i]) == 1, "item %d delivered %d times", i, atomic_load(&seen[i]));
    queue_destroy(&q);
    printf("stress_queue: %d items through %d producers (%s) and %d consumers, wake cap %zu "
           "(0: none): each exactly once, all before the close\n", TOTAL, PRODUCERS,
           batch ? "in batches of 5" : "one at a time", CONSUMERS, wake_cap);
}

int main(void)
{
    run_round(0, false);
    run_round(2, true);
    run_round(2, false);
    return 0;
}
