/*
 * conn.c - a connection's life and the ledger of them all (see conn.h).
 */
#include "conn.h"
#include "monotime.h"
#include "tls.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const end_names[CONN_END_COUNT] = {
    [CONN_END_NORMAL] = "normal",
    [CONN_END_ERROR] = "error",
    [CONN_END_IDLE_TIMEOUT] = "idle_timeout",
    [CONN_END_READ_TIMEOUT] = "read_timeout",
    [CONN_END_WRITE_TIMEOUT] = "write_timeout",
    [CONN_END_HANDSHAKE_TIMEOUT] = "handshake_timeout",
    [CONN_END_SHED] = "shed",
    [CONN_END_CUT] = "cut",
};

const char *conn_end_name(enum conn_end why)
{
    return (unsigned)why < CONN_END_COUNT ? end_names[why] : "unknown";
}

/* --- the ledger --------------------------------------------------------------- */

int conn_ledger_init(struct conn_ledger *l, size_t budget)
{
    memset(l, 0, sizeof *l);
    atomic_init(&l->open, 0);
    atomic_init(&l->sources, 0);
    atomic_init(&l->held, 0);
    atomic_init(&l->deferred, 0);
    atomic_init(&l->deferred_total, 0);
    atomic_init(&l->handshaking, 0);
    l->budget = budget;
    for (int i = 0; i < CONN_END_COUNT; i++)
        atomic_init(&l->ended[i], 0);
    pthread_condattr_t attr;
    int rc = pthread_condattr_init(&attr);
    if (!rc) {
        /* The drain's deadline is on the monotonic clock. */
        rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        if (!rc)
            rc = pthread_cond_init(&l->empty, &attr);
        pthread_condattr_destroy(&attr);
    }
    if (!rc && (rc = pthread_mutex_init(&l->lock, NULL)) != 0)
        pthread_cond_destroy(&l->empty);
    if (rc) {
        errno = rc;
        return -1;
    }
    return 0;
}

void conn_ledger_destroy(struct conn_ledger *l)
{
    pthread_cond_destroy(&l->empty);
    pthread_mutex_destroy(&l->lock);
}

static void count_one_open(struct conn_ledger *l)
{
    atomic_fetch_add_explicit(&l->open, 1, memory_order_relaxed);
}

static void wake_waiters(struct conn_ledger *l)
{
    pthread_mutex_lock(&l->lock);
    pthread_cond_broadcast(&l->empty);
    pthread_mutex_unlock(&l->lock);
}

/* The last one out wakes a drain waiting for it. The lock is taken only
 * then, so a busy server pays one atomic per close. */
static void count_one_closed(struct conn_ledger *l)
{
    if (atomic_fetch_sub_explicit(&l->open, 1, memory_order_acq_rel) == 1)
        wake_waiters(l);
}

void conn_ledger_add_source(struct conn_ledger *l)
{
    atomic_fetch_add(&l->sources, 1);
}

void conn_ledger_source_done(struct conn_ledger *l)
{
    if (atomic_fetch_sub(&l->sources, 1) == 1)
        wake_waiters(l);
}

static bool empty(struct conn_ledger *l)
{
    return atomic_load(&l->sources) <= 0 && atomic_load(&l->open) <= 0;
}

bool conn_ledger_wait_empty(struct conn_ledger *l, const struct timespec *deadline)
{
    pthread_mutex_lock(&l->lock);
    int rc = 0;
    while (!empty(l) && rc != ETIMEDOUT) {
        if (deadline)
            rc = pthread_cond_timedwait(&l->empty, &l->lock, deadline);
        else
            pthread_cond_wait(&l->empty, &l->lock);
    }
    bool done = empty(l);
    pthread_mutex_unlock(&l->lock);
    return done;
}

long conn_ledger_open(struct conn_ledger *l)
{
    return atomic_load_explicit(&l->open, memory_order_relaxed);
}

size_t conn_ledger_held(struct conn_ledger *l)
{
    return atomic_load_explicit(&l->held, memory_order_relaxed);
}

bool conn_ledger_over_budget(struct conn_ledger *l)
{
    return l->budget > 0 && conn_ledger_held(l) > l->budget;
}

bool conn_ledger_may_hold(struct conn_ledger *l, size_t bytes)
{
    return l->budget == 0 || bytes == 0 || conn_ledger_held(l) + bytes <= l->budget + l->budget / 4;
}

size_t conn_ledger_handshake_limit(const struct conn_ledger *l)
{
    /* Half of it: the other half is for the other holders (requests read
     * in part, answers not taken: a crowd's handshakes must not make the
     * poller shed those), and for what handshakes begun at the same
     * moment hold (each worker may begin one while the others park
     * theirs). */
    return l->budget / 2;
}

size_t conn_ledger_handshaking(struct conn_ledger *l)
{
    return atomic_load_explicit(&l->handshaking, memory_order_relaxed);
}

bool conn_ledger_room_for_handshake(struct conn_ledger *l)
{
    return l->budget == 0 ||
           conn_ledger_handshaking(l) + CONN_TLS_HANDSHAKE <= conn_ledger_handshake_limit(l);
}

bool conn_ledger_may_start_handshake(struct conn_ledger *l)
{
    return l->budget == 0 ||
           (atomic_load_explicit(&l->deferred, memory_order_relaxed) == 0 &&
            conn_ledger_room_for_handshake(l));
}

uint64_t conn_ledger_ended(struct conn_ledger *l, enum conn_end why)
{
    return atomic_load_explicit(&l->ended[why], memory_order_relaxed);
}

/* --- one connection ------------------------------------------------------------- */

struct conn *conn_new(struct conn_ledger *ledger, int fd, SSL *ssl)
{
    struct conn *c = malloc(sizeof *c);
    if (!c)
        return NULL;
    *c = (struct conn){.stream = {.fd = fd, .ssl = ssl}, .ledger = ledger,
                       .opened_ms = monotime_ms(), .fresh = true,
                       .wait = ssl ? CONN_WAIT_HANDSHAKE : CONN_WAIT_IDLE};
    heap_node_init(&c->timer);
    heap_node_init(&c->hold);
    atomic_init(&c->arming, false);
    count_one_open(ledger);
    return c;
}

void conn_charge(struct conn *c, size_t bytes)
{
    c->charged = bytes;
    atomic_fetch_add_explicit(&c->ledger->held, bytes, memory_order_relaxed);
    if (c->wait == CONN_WAIT_HANDSHAKE)
        atomic_fetch_add_explicit(&c->ledger->handshaking, bytes, memory_order_relaxed);
}

void conn_uncharge(struct conn *c)
{
    if (c->charged == 0)
        return;
    atomic_fetch_sub_explicit(&c->ledger->held, c->charged, memory_order_relaxed);
    if (c->wait == CONN_WAIT_HANDSHAKE)
        atomic_fetch_sub_explicit(&c->ledger->handshaking, c->charged, memory_order_relaxed);
    c->charged = 0;
}

void conn_close(struct conn *c, enum conn_end why)
{
    struct conn_ledger *l = c->ledger;
    /* Counted before the close a client could see, and before the count
     * of open ones drops: whoever sees either must see why it ended. */
    atomic_fetch_add_explicit(&l->ended[why], 1, memory_order_relaxed);
    conn_uncharge(c);
    tls_session_close(c->stream.ssl);
    close(c->stream.fd);
    buf_free(&c->in);
    buf_free(&c->out);
    free(c);
    count_one_closed(l);
}

size_t conn_buffered(const struct conn *c)
{
    size_t tls = 0;
    if (c->stream.ssl && !c->tls_buffers_freed)
        tls += CONN_TLS_BUFFERS;
    if (c->wait == CONN_WAIT_HANDSHAKE && stream_handshake_started(&c->stream))
        tls += CONN_TLS_HANDSHAKE;
    return c->in.cap + c->out.cap + tls;
}

bool conn_keep_unsent(struct conn *c, const struct iovec *iov, int iovcnt, size_t skip)
{
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    if (skip >= total)
        return true;
    if (!buf_reserve_exact(&c->out, c->out.len + total - skip))
        return false;
    for (int i = 0; i < iovcnt; i++) {
        size_t n = iov[i].iov_len;
        if (skip >= n) {
            skip -= n;
            continue;
        }
        memcpy(buf_tail(&c->out), (const char *)iov[i].iov_base + skip, n - skip);
        c->out.len += n - skip;
        skip = 0;
    }
    return true;
}
