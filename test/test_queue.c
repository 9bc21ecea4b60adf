/*
 * test_queue.c - the bounded connection queue: order, capacity, blocking,
 * close, and exactly-once delivery under many producers and consumers.
 *
 * The queue never looks inside a connection, so the items here are
 * numbers dressed as pointers (item(), number()).
 */
#include "queue.h"
#include "support.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

static struct conn *item(int n)
{
    return (struct conn *)(uintptr_t)(n + 1);
}

static int number(const struct conn *c)
{
    return (int)((uintptr_t)c - 1);
}

static int push_n(struct queue *q, int n)
{
    return queue_push(q, item(n));
}

/* Pops into *n; the queue's result. */
static int pop_n(struct queue *q, int *n)
{
    struct conn *c = NULL;
    int rc = queue_pop(q, &c);
    if (rc == 0)
        *n = number(c);
    return rc;
}

static void pause_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

Test(queue, pops_in_fifo_order)
{
    struct queue q;
    cr_assert_eq(queue_init(&q, 8), 0);
    for (int round = 0; round < 3; round++) { /* wraps around the ring */
        for (int i = 0; i < 6; i++)
            cr_assert_eq(push_n(&q, 100 * round + i), 0);
        for (int i = 0; i < 6; i++) {
            int fd;
            cr_assert_eq(pop_n(&q, &fd), 0);
            cr_assert_eq(fd, 100 * round + i, "expected %d first, got %d", 100 * round + i, fd);
        }
    }
    queue_destroy(&q);
}

Test(queue, refuses_zero_capacity)
{
    struct queue q;
    cr_assert_eq(queue_init(&q, 0), -1);
}

struct blocked {
    struct queue *q;
    int value;
    atomic_bool done;
    int rc;
};

static void *push_one(void *arg)
{
    struct blocked *b = arg;
    b->rc = push_n(b->q, b->value);
    atomic_store(&b->done, true);
    return NULL;
}

static void *pop_one(void *arg)
{
    struct blocked *b = arg;
    b->rc = pop_n(b->q, &b->value);
    atomic_store(&b->done, true);
    return NULL;
}

Test(queue, push_blocks_while_full_until_a_pop, .timeout = 10)
{
    struct queue q;
    queue_init(&q, 2);
    push_n(&q, 1);
    push_n(&q, 2);
    cr_assert_eq(queue_length(&q), 2);
    struct blocked b = {.q = &q, .value = 3};
    pthread_t t;
    pthread_create(&t, NULL, push_one, &b);
    pause_ms(100);
    cr_assert_not(atomic_load(&b.done), "a push into a full queue must wait");
    int fd;
    pop_n(&q, &fd);
    pthread_join(t, NULL);
    cr_assert_eq(b.rc, 0);
    cr_assert_eq(queue_length(&q), 2);
    queue_destroy(&q);
}

Test(queue, pop_blocks_while_empty_until_a_push, .timeout = 10)
{
    struct queue q;
    queue_init(&q, 2);
    struct blocked b = {.q = &q};
    pthread_t t;
    pthread_create(&t, NULL, pop_one, &b);
    pause_ms(100);
    cr_assert_not(atomic_load(&b.done), "a pop from an empty queue must wait");
    push_n(&q, 42);
    pthread_join(t, NULL);
    cr_assert_eq(b.rc, 0);
    cr_assert_eq(b.value, 42);
    queue_destroy(&q);
}

Test(queue, close_wakes_blocked_pushers_and_poppers, .timeout = 10)
{
    struct queue empty, full;
    queue_init(&empty, 1);
    queue_init(&full, 1);
    push_n(&full, 7);
    struct blocked popper = {.q = &empty}, pusher = {.q = &full, .value = 8};
    pthread_t t1, t2;
    pthread_create(&t1, NULL, pop_one, &popper);
    pthread_create(&t2, NULL, push_one, &pusher);
    pause_ms(50);
    queue_close(&empty);
    queue_close(&full);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    cr_assert_eq(popper.rc, -1, "pop on a closed empty queue fails");
    cr_assert_eq(pusher.rc, -1, "push on a closed queue fails (the caller keeps the connection)");
    queue_destroy(&empty);
    queue_destroy(&full);
}

Test(queue, drains_what_is_left_after_close)
{
    struct queue q;
    queue_init(&q, 4);
    push_n(&q, 1);
    push_n(&q, 2);
    queue_close(&q);
    int fd;
    cr_assert_eq(push_n(&q, 3), -1);
    cr_assert_eq(pop_n(&q, &fd), 0);
    cr_assert_eq(fd, 1);
    cr_assert_eq(pop_n(&q, &fd), 0);
    cr_assert_eq(fd, 2);
    cr_assert_eq(pop_n(&q, &fd), -1);
    queue_destroy(&q);
}

#define PRODUCERS 4
#define CONSUMERS 4
#define PER_PRODUCER 20000

struct mpmc {
    struct queue q;
    atomic_int seen[PRODUCERS * PER_PRODUCER];
    atomic_int next_producer;
};

static void *produce(void *arg)
{
    struct mpmc *m = arg;
    int id = atomic_fetch_add(&m->next_producer, 1);
    for (int i = 0; i < PER_PRODUCER; i++)
        push_n(&m->q, id * PER_PRODUCER + i);
    return NULL;
}

static void *consume(void *arg)
{
    struct mpmc *m = arg;
    int got;
    while (pop_n(&m->q, &got) == 0)
        atomic_fetch_add(&m->seen[got], 1);
    return NULL;
}

Test(queue, delivers_every_item_exactly_once_under_contention, .timeout = 60)
{
    struct mpmc *m = calloc(1, sizeof *m);
    queue_init(&m->q, 16);
    pthread_t p[PRODUCERS], c[CONSUMERS];
    for (int i = 0; i < CONSUMERS; i++)
        pthread_create(&c[i], NULL, consume, m);
    for (int i = 0; i < PRODUCERS; i++)
        pthread_create(&p[i], NULL, produce, m);
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(p[i], NULL);
    queue_close(&m->q);
    for (int i = 0; i < CONSUMERS; i++)
        pthread_join(c[i], NULL);
    for (int i = 0; i < PRODUCERS * PER_PRODUCER; i++)
        cr_assert_eq(atomic_load(&m->seen[i]), 1, "item %d delivered %d times", i,
                     atomic_load(&m->seen[i]));
    queue_destroy(&m->q);
    free(m);
}
