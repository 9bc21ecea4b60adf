/*
 * poller.c - the epoll thread that holds waiting connections (see
 * poller.h).
 *
 * Locking: p->lock guards the two heaps, every parked connection's
 * poller fields (parked, in_epoll, timer, hold) and the flags. Workers
 * take it to park; the thread takes it to take connections out. A
 * connection is linked into the heaps under the lock, so an event for it
 * is handled only once it is parked, and armed in epoll (EPOLLONESHOT) by
 * its worker after the lock is released: an epoll_ctl under the lock made
 * it the server's most contended one (at 50 keep-alive connections on
 * 4 workers, 7% of the server's CPU went to waiting for it). Until the
 * worker is done arming, c->arming is set, and the thread, which may take
 * the connection out in the meantime (an event, a deadline, a shed, a
 * stop), waits for it to clear before it queues or closes the connection
 * (wait_armed). queue_push, which may block while the queue is full, and
 * conn_close are never called with the lock held.
 *
 * Every parked connection is in the timer heap, those without a deadline
 * with the largest key, so the heap's size is the number parked and a
 * stop can go through all of them.
 */
#include "poller.h"
#include "log.h"
#include "monotime.h"
#include "net.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_EVENTS 256

/* When nothing is parked the thread still wakes this often: a park whose
 * deadline is later than the thread's next wake-up needs no wake-up call,
 * and with the common deadlines (30 s) that is every park. */
#define MAX_SLEEP_MS 1000

#define NO_DEADLINE LLONG_MAX

/* While TLS handshakes wait for room to start, the thread looks for room
 * this often (workers free it by taking connections up, without a word). */
#define DEFERRED_LOOK_MS 10

/* ...and handshakes under way that have waited for their client this
 * long are closed to make room for them, the one that has waited longest
 * first, one per handshake waiting: else clients that stall mid-handshake
 * would keep every other TLS client out until --read-timeout. A handshake
 * the server has answered, whose client has its next flight to send, gets
 * long: 10,000 clients on one machine finish theirs over seconds (cut
 * sooner, oldest first, the crowd's clients never finished one). One whose
 * client has not finished its first flight, a second. In the heap of
 * handshakes they count from that much later. */
#define ANSWERED_HANDSHAKE_GRACE_MS 20000
#define UNANSWERED_HANDSHAKE_GRACE_MS 1000

struct poller {
    struct queue *queue;
    struct conn_ledger *ledger;
    int epfd;
    int wake_fd; /* eventfd: written to make the thread look again */
    pthread_t thread;
    pthread_mutex_t lock;
    struct heap timers; /* every parked connection, by deadline */
    struct heap holds;  /* those holding buffers, by when they began to */
    struct heap handshakes; /* ...except TLS handshakes under way: here, by grace end */
    struct deferred_list { /* TLS handshakes waiting for room to start, in order */
        struct conn *oldest, *newest;
        size_t n;
        bool newest_next; /* whom admit_deferred lets in next */
    } deferred;
    long long sleep_until; /* when the thread will wake up by itself */
    bool quiescing;     /* a stop has begun */
    bool swept;         /* ...and the thread has gone through what was parked */
    bool cutting;       /* close everything, refuse every park */
    bool quitting;      /* end the thread */
    bool shed_asked;    /* a park went over the budget */
    atomic_uint_least64_t parked, woken, peer_closed, expired;
};

static struct conn *conn_of_timer(struct heap_node *x)
{
    return (struct conn *)(void *)((char *)x - offsetof(struct conn, timer));
}

static struct conn *conn_of_hold(struct heap_node *x)
{
    return (struct conn *)(void *)((char *)x - offsetof(struct conn, hold));
}

static void wake(struct poller *p)
{
    uint64_t one = 1;
    while (write(p->wake_fd, &one, sizeof one) < 0 && errno == EINTR)
        ;
}

/* --- parked connections (call with p->lock held) ------------------------------ */

/* The heap a connection holding buffers is in while it is parked. */
static struct heap *hold_heap(struct poller *p, const struct conn *c)
{
    return c->wait == CONN_WAIT_HANDSHAKE ? &p->handshakes : &p->holds;
}

static void defer(struct poller *p, struct conn *c)
{
    struct deferred_list *d = &p->deferred;
    c->deferred_older = d->newest;
    c->deferred_newer = NULL;
    if (d->newest)
        d->newest->deferred_newer = c;
    else
        d->oldest = c;
    d->newest = c;
    d->n++;
    atomic_fetch_add_explicit(&p->ledger->deferred, 1, memory_order_relaxed);
    /* Once per handshake: let in, it begins (its ClientHello is there). */
    atomic_fetch_add_explicit(&p->ledger->deferred_total, 1, memory_order_relaxed);
}

static void undefer(struct poller *p, struct conn *c)
{
    struct deferred_list *d = &p->deferred;
    if (c->deferred_older)
        c->deferred_older->deferred_newer = c->deferred_newer;
    else
        d->oldest = c->deferred_newer;
    if (c->deferred_newer)
        c->deferred_newer->deferred_older = c->deferred_older;
    else
        d->newest = c->deferred_older;
    d->n--;
    atomic_fetch_sub_explicit(&p->ledger->deferred, 1, memory_order_relaxed);
}

/* Takes c out of the heaps (and the deferred list). It may still be
 * armed in epoll: the caller either knows it fired (one-shot), or
 * disarms it. */
static void unlink_conn(struct poller *p, struct conn *c)
{
    heap_remove(&p->timers, &c->timer);
    if (c->deferred)
        undefer(p, c);
    else if (heap_node_in(&c->hold))
        heap_remove(hold_heap(p, c), &c->hold);
    c->parked = false;
}

/* Takes a connection out of the epoll set, for one that did not fire and
 * is going back to a worker: a later event must not name it. The thread
 * calls it without the lock, once c is out of the heaps and armed: c is
 * the thread's alone then. */
static void disarm(struct poller *p, struct conn *c)
{
    if (c->in_epoll && epoll_ctl(p->epfd, EPOLL_CTL_DEL, c->stream.fd, NULL) == 0)
        c->in_epoll = false;
}

static bool may_park(const struct poller *p, const struct conn *c)
{
    if (p->cutting || p->quitting)
        return false;
    /* At a stop, an idle connection is closed, not kept: unless nothing
     * has been read on it yet, and its first request may be on its way. */
    return !p->quiescing || c->wait != CONN_WAIT_IDLE || c->fresh;
}

static long long deadline_at_stop(const struct conn *c, long long deadline)
{
    if (c->wait != CONN_WAIT_IDLE || !c->fresh)
        return deadline;
    long long grace = monotime_ms() + CONN_FIRST_REQUEST_GRACE_MS;
    return deadline < grace ? deadline : grace;
}

/* What c is armed for. One-shot: after it fires once, the socket stays
 * in the set but silent until it is parked again (MOD re-arms it, one
 * system call). A client that hangs up on an idle connection is seen
 * (RDHUP); one that half-closes while we write to it is still reading,
 * so a write waits only for room (or an error). */
static uint32_t events_awaited(const struct conn *c)
{
    return (c->want_write ? EPOLLOUT : EPOLLIN | EPOLLRDHUP) | EPOLLONESHOT;
}

/* Arms c in epoll, without the lock (its worker, once c is linked).
 * Reads only c's socket: the thread may take c out meanwhile. */
static int arm(struct poller *p, struct conn *c, bool was_in_epoll, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    int fd = c->stream.fd;
    int rc = epoll_ctl(p->epfd, was_in_epoll ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev);
    if (rc < 0 && was_in_epoll && errno == ENOENT) /* not in the set after all */
        rc = epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev);
    return rc;
}

/* The thread's side: waits until the worker that parked c has armed it
 * (or found it could not). That is a few instructions after its
 * epoll_ctl returns, unless the scheduler took its CPU away right there:
 * then the worker gets it back. */
static void wait_armed(struct conn *c)
{
    while (atomic_load_explicit(&c->arming, memory_order_acquire))
        sched_yield();
}

/* Links c into the heaps and charges what it holds to the budget. */
static int link_conn(struct poller *p, struct conn *c)
{
    long long deadline = c->deadline_ms ? c->deadline_ms : NO_DEADLINE;
    if (p->quiescing)
        c->deadline_ms = deadline = deadline_at_stop(c, deadline);
    if (heap_push(&p->timers, &c->timer, deadline) < 0)
        return -1;
    long long key = c->held_since_ms;
    if (c->wait == CONN_WAIT_HANDSHAKE)
        key += stream_handshake_answered(&c->stream) ? ANSWERED_HANDSHAKE_GRACE_MS
                                                     : UNANSWERED_HANDSHAKE_GRACE_MS;
    if (c->deferred) {
        defer(p, c);
    } else if (conn_buffered(c) > 0 && heap_push(hold_heap(p, c), &c->hold, key) < 0) {
        heap_remove(&p->timers, &c->timer);
        return -1;
    }
    c->parked = true;
    return 0;
}

/* --- workers ------------------------------------------------------------------ */

/* The arming failed (no memory for epoll's entry): c goes back to its
 * worker, unless the thread has taken it out meanwhile, and then it is
 * the thread's (it queues or closes it, as it would have). */
static int arm_failed(struct poller *p, struct conn *c)
{
    int err = errno;
    pthread_mutex_lock(&p->lock);
    c->in_epoll = false;
    bool ours = c->parked;
    if (ours)
        unlink_conn(p, c);
    atomic_store_explicit(&c->arming, false, memory_order_release);
    pthread_mutex_unlock(&p->lock);
    if (!ours)
        return 0;
    errno = err;
    return -1;
}

int poller_park(struct poller *p, struct conn *c)
{
    bool call = false, arming = false;
    int err = 0;
    bool was_in_epoll = c->in_epoll;
    uint32_t events = events_awaited(c);
    pthread_mutex_lock(&p->lock);
    if (!may_park(p, c))
        err = p->cutting || p->quitting ? ECANCELED : ESHUTDOWN;
    else if (!conn_ledger_may_hold(p->ledger, conn_buffered(c)))
        err = ENOBUFS;
    else if (link_conn(p, c) < 0)
        err = ENOMEM;
    if (!err) {
        size_t held = conn_buffered(c);
        if (held) {
            conn_charge(c, held);
            if (conn_ledger_over_budget(p->ledger) && !p->shed_asked)
                call = p->shed_asked = true;
        }
        /* A handshake waiting for room needs the thread to make some (and
         * waits for room, not bytes: it is not armed); and the thread
         * sleeps until its next deadline: an earlier one must wake it. */
        if (c->deferred)
            call = true;
        else
            arming = c->in_epoll = true;
        atomic_store_explicit(&c->arming, arming, memory_order_relaxed);
        if (c->timer.key < p->sleep_until) {
            p->sleep_until = c->timer.key;
            call = true;
        }
    }
    pthread_mutex_unlock(&p->lock);
    if (call)
        wake(p);
    if (err) {
        errno = err;
        return -1;
    }
    if (arming) {
        if (arm(p, c, was_in_epoll, events) < 0)
            return arm_failed(p, c);
        /* From here on c is the thread's: not a field more. */
        atomic_store_explicit(&c->arming, false, memory_order_release);
    }
    atomic_fetch_add_explicit(&p->parked, 1, memory_order_relaxed);
    return 0;
}

void poller_handshake_taken_up(struct poller *p)
{
    if (atomic_load_explicit(&p->ledger->deferred, memory_order_relaxed) > 0)
        wake(p);
}

/* --- the poller thread ------------------------------------------------------- */

/* True if the client has closed and sent nothing more: the connection
 * can be closed here, without waking a worker to find that out. */
static bool peer_gone(int fd)
{
    char byte;
    return recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

/* How long to sleep: until the earliest deadline, at most MAX_SLEEP_MS. */
static int next_timeout(struct poller *p)
{
    long long now = monotime_ms();
    pthread_mutex_lock(&p->lock);
    struct heap_node *first = heap_min(&p->timers);
    long long until = now + MAX_SLEEP_MS;
    if (first && first->key < until)
        until = first->key;
    if (p->deferred.n && until > now + DEFERRED_LOOK_MS)
        until = now + DEFERRED_LOOK_MS;
    if (p->cutting || p->quitting || p->shed_asked || (p->quiescing && !p->swept))
        until = now;
    p->sleep_until = until;
    pthread_mutex_unlock(&p->lock);
    return until > now ? (int)(until - now) : 0;
}

/* Takes the connections that woke out of the poller: those ready for a
 * worker into ready (returns how many), those whose client simply went
 * away into gone. */
static int take_ready(struct poller *p, const struct epoll_event *ev, int n,
                      struct conn **ready, struct conn **gone, int *ngone)
{
    int k = 0;
    *ngone = 0;
    pthread_mutex_lock(&p->lock);
    for (int i = 0; i < n; i++) {
        struct conn *c = ev[i].data.ptr;
        if (!c) {
            uint64_t count;
            if (read(p->wake_fd, &count, sizeof count) < 0) /* reset it; the flags say why */
                continue;
        } else if (c->parked) {
            unlink_conn(p, c);
            bool hangup = ev[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR);
            if (hangup && c->wait == CONN_WAIT_IDLE && peer_gone(c->stream.fd))
                gone[(*ngone)++] = c;
            else
                ready[k++] = c;
        }
    }
    pthread_mutex_unlock(&p->lock);
    return k;
}

/* -v: a line for each connection the poller ends, as the workers log
 * theirs (getpeername costs a system call: only then). */
static void log_end(const struct conn *c, enum conn_end why)
{
    static const char *const words[CONN_END_COUNT] = {
        [CONN_END_NORMAL] = "the client went away, or the stop closes idle connections",
        [CONN_END_ERROR] = "an error",
        [CONN_END_IDLE_TIMEOUT] = "idle timeout",
        [CONN_END_READ_TIMEOUT] = "read timeout",
        [CONN_END_WRITE_TIMEOUT] = "write timeout: the client does not take its answers",
        [CONN_END_HANDSHAKE_TIMEOUT] = "TLS handshake timeout",
        [CONN_END_SHED] = "buffered bytes over --max-buffered, and it held them longest",
        [CONN_END_CUT] = "the stop ran out of time",
    };
    if (log_verbosity() < 1)
        return;
    char peer[128] = "?";
    net_peer_address(c->stream.fd, peer, sizeof peer);
    log_info("%s: closing: %s", peer, words[why]);
}

static void close_all(struct conn **conns, int n, enum conn_end why)
{
    for (int i = 0; i < n; i++) {
        wait_armed(conns[i]);
        log_end(conns[i], why);
        conn_close(conns[i], why);
    }
}

static void requeue(struct poller *p, struct conn **ready, int k)
{
    if (k == 0)
        return;
    for (int i = 0; i < k; i++)
        wait_armed(ready[i]);
    atomic_fetch_add_explicit(&p->woken, (uint64_t)k, memory_order_relaxed);
    int done = queue_push_many(p->queue, ready, k);
    /* The queue closed: a stop ran out of time. */
    close_all(ready + done, k - done, CONN_END_CUT);
}

static void handle_events(struct poller *p, const struct epoll_event *ev, int n)
{
    struct conn *ready[MAX_EVENTS], *gone[MAX_EVENTS];
    int ngone;
    int k = take_ready(p, ev, n, ready, gone, &ngone);
    atomic_fetch_add_explicit(&p->peer_closed, (uint64_t)ngone, memory_order_relaxed);
    close_all(gone, ngone, CONN_END_NORMAL);
    requeue(p, ready, k);
}

/* What a passed deadline means for a connection. A request read in part
 * goes back to a worker, which tells the client; an idle connection at a
 * stop was closed for the stop, not for its idleness. */
static enum conn_end end_of_wait(const struct conn *c, bool stopping)
{
    switch (c->wait) {
    case CONN_WAIT_HANDSHAKE:
        return CONN_END_HANDSHAKE_TIMEOUT;
    case CONN_WAIT_IDLE:
        return c->fresh || !stopping ? CONN_END_IDLE_TIMEOUT : CONN_END_NORMAL;
    case CONN_WAIT_WRITE:
        return CONN_END_WRITE_TIMEOUT;
    case CONN_WAIT_CLOSE: /* the error answer had its second: it counts as what caused it */
        return c->end;
    case CONN_WAIT_REQUEST:
        break;
    }
    return CONN_END_NORMAL;
}

/* Ends what has expired, a batch at a time (the lock is not held while
 * closing or queueing). */
static void expire(struct poller *p)
{
    struct conn *doomed[MAX_EVENTS], *told[MAX_EVENTS];
    for (;;) {
        int k = 0, t = 0;
        long long now = monotime_ms();
        pthread_mutex_lock(&p->lock);
        struct heap_node *first;
        while (k + t < MAX_EVENTS && (first = heap_min(&p->timers)) && first->key <= now) {
            struct conn *c = conn_of_timer(first);
            unlink_conn(p, c);
            c->expired = true;
            if (c->wait == CONN_WAIT_REQUEST) {
                told[t++] = c;
            } else {
                doomed[k++] = c;
            }
        }
        bool stopping = p->quiescing;
        pthread_mutex_unlock(&p->lock);
        atomic_fetch_add_explicit(&p->expired, (uint64_t)(k + t), memory_order_relaxed);
        for (int i = 0; i < t; i++) { /* going back to a worker: out of the epoll set */
            wait_armed(told[i]);
            disarm(p, told[i]);
        }
        for (int i = 0; i < k; i++) { /* closing takes it out of the epoll set */
            wait_armed(doomed[i]);
            enum conn_end why = end_of_wait(doomed[i], stopping);
            log_end(doomed[i], why);
            conn_close(doomed[i], why);
        }
        requeue(p, told, t);
        if (k + t < MAX_EVENTS)
            return;
    }
}

/* Room made at a time for handshakes waiting to begin: no more than this
 * many are let in at once anyway (one thread's batch), and the rest of
 * the handshakes under way are left alone until more are needed. */
#define ROOM_MADE_FOR 16

/* What shed() has closed so far in one batch. */
struct shed_tally {
    int closed;
    size_t freed, freed_handshaking;
};

/* The hold node of the next connection to close; NULL for none.
 * Over the budget: the one that has held buffers longest, TLS handshakes
 * under way last (a crowd's must not be the ones cut). Else, if
 * handshakes wait for room and there is none for as many as have been
 * closed plus one (ROOM_MADE_FOR at most): the handshake under way whose
 * grace ended first, if it has. */
static struct heap_node *next_to_shed(struct poller *p, const struct shed_tally *t,
                                      long long now)
{
    struct conn_ledger *l = p->ledger;
    if (l->budget == 0)
        return NULL;
    if (conn_ledger_held(l) - t->freed > l->budget)
        return p->holds.n ? heap_min(&p->holds) : heap_min(&p->handshakes);
    size_t wanted = p->deferred.n < ROOM_MADE_FOR ? p->deferred.n : ROOM_MADE_FOR;
    struct heap_node *first = heap_min(&p->handshakes);
    if ((size_t)t->closed < wanted && first && first->key <= now &&
        conn_ledger_handshaking(l) - t->freed_handshaking + wanted * CONN_TLS_HANDSHAKE >
            conn_ledger_handshake_limit(l))
        return first;
    return NULL;
}

/* Over the budget, or handshakes waiting for room: closes connections
 * holding buffers (see next_to_shed). */
static void shed(struct poller *p)
{
    struct conn *doomed[MAX_EVENTS];
    for (;;) {
        struct shed_tally t = {0};
        long long now = monotime_ms();
        pthread_mutex_lock(&p->lock);
        p->shed_asked = false;
        struct heap_node *next;
        while (t.closed < MAX_EVENTS && (next = next_to_shed(p, &t, now))) {
            struct conn *c = conn_of_hold(next);
            unlink_conn(p, c);
            t.freed += c->charged;
            if (c->wait == CONN_WAIT_HANDSHAKE)
                t.freed_handshaking += c->charged;
            doomed[t.closed++] = c;
        }
        pthread_mutex_unlock(&p->lock);
        if (t.closed > 0)
            log_verbose("buffered bytes over --max-buffered, or TLS handshakes waiting for "
                        "room: closing %d connections that held buffers longest", t.closed);
        close_all(doomed, t.closed, CONN_END_SHED);
        if (t.closed < MAX_EVENTS)
            return;
    }
}

/* Lets deferred TLS handshakes start as far as there is room, the newest
 * and the oldest in turn: the newest, because a client that has just come
 * is still there and quick (good clients arriving behind a crowd of slow
 * or hostile handshakes are not queued behind all of it), the oldest so
 * that none waits for ever. Each is charged what a handshake holds until
 * a worker takes it up, so that the room is not given twice before they
 * park again. */
static void admit_deferred(struct poller *p)
{
    struct conn *ready[MAX_EVENTS];
    struct conn_ledger *l = p->ledger;
    struct deferred_list *d = &p->deferred;
    int k = 0;
    pthread_mutex_lock(&p->lock);
    while (k < MAX_EVENTS && d->n > 0 && conn_ledger_room_for_handshake(l)) {
        struct conn *c = d->newest_next ? d->newest : d->oldest;
        d->newest_next = !d->newest_next;
        unlink_conn(p, c);
        c->deferred = false;
        c->admitted = true;
        conn_charge(c, CONN_TLS_HANDSHAKE);
        ready[k++] = c;
    }
    pthread_mutex_unlock(&p->lock);
    requeue(p, ready, k);
}

/* The stop's sweep, on what was parked when it began: connections whose
 * client has sent something go to the workers (epoll already knows which,
 * so this costs no system call per idle connection); idle ones expire at
 * once (expire() closes them next); the first request of a fresh one gets
 * its grace. */
static long long key_at_stop(struct heap_node *x, void *now)
{
    struct conn *c = conn_of_timer(x);
    if (c->wait == CONN_WAIT_IDLE && !c->fresh)
        return *(long long *)now;
    return deadline_at_stop(c, x->key);
}

static void sweep_at_stop(struct poller *p, struct epoll_event *ev)
{
    int n;
    do {
        do
            n = epoll_wait(p->epfd, ev, MAX_EVENTS, 0);
        while (n < 0 && errno == EINTR);
        handle_events(p, ev, n > 0 ? n : 0);
    } while (n == MAX_EVENTS);
    long long now = monotime_ms();
    pthread_mutex_lock(&p->lock);
    heap_rekey(&p->timers, key_at_stop, &now);
    p->swept = true;
    pthread_mutex_unlock(&p->lock);
}

/* A cut: everything parked is closed, as cut. */
static void close_everything(struct poller *p)
{
    struct conn *doomed[MAX_EVENTS];
    for (;;) {
        int k = 0;
        pthread_mutex_lock(&p->lock);
        struct heap_node *first;
        while (k < MAX_EVENTS && (first = heap_min(&p->timers))) {
            struct conn *c = conn_of_timer(first);
            unlink_conn(p, c);
            doomed[k++] = c;
        }
        pthread_mutex_unlock(&p->lock);
        close_all(doomed, k, CONN_END_CUT);
        if (k < MAX_EVENTS)
            return;
    }
}

static void *poller_main(void *arg)
{
    struct poller *p = arg;
    struct epoll_event ev[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(p->epfd, ev, MAX_EVENTS, next_timeout(p));
        if (n < 0 && errno != EINTR) {
            log_error("poller: epoll_wait: %m");
            break;
        }
        handle_events(p, ev, n > 0 ? n : 0);
        /* Read after the eventfd was drained, so a request whose wake-up
         * that drain swallowed is still seen. */
        pthread_mutex_lock(&p->lock);
        bool quitting = p->quitting, cutting = p->cutting;
        bool sweep = p->quiescing && !p->swept, shedding = p->shed_asked;
        pthread_mutex_unlock(&p->lock);
        if (quitting)
            break;
        if (cutting) {
            close_everything(p);
            continue;
        }
        if (sweep)
            sweep_at_stop(p, ev);
        expire(p);
        bool deferring = atomic_load_explicit(&p->ledger->deferred, memory_order_relaxed) > 0;
        if (shedding || deferring || conn_ledger_over_budget(p->ledger))
            shed(p);
        if (deferring)
            admit_deferred(p);
    }
    pthread_mutex_lock(&p->lock);
    p->cutting = true; /* also when epoll failed: refuse parks from here */
    pthread_mutex_unlock(&p->lock);
    close_everything(p);
    queue_producer_done(p->queue);
    return NULL;
}

/* --- life cycle -------------------------------------------------------------- */

struct poller *poller_start(struct queue *q, struct conn_ledger *ledger)
{
    struct poller *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    *p = (struct poller){.queue = q, .ledger = ledger, .epfd = -1, .wake_fd = -1};
    heap_init(&p->timers);
    heap_init(&p->holds);
    heap_init(&p->handshakes);
    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    p->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct epoll_event w = {.events = EPOLLIN, .data.ptr = NULL};
    int rc = p->epfd >= 0 && p->wake_fd >= 0 ? 0 : errno ? errno : ENOMEM;
    if (!rc && epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->wake_fd, &w) < 0)
        rc = errno;
    if (!rc)
        rc = pthread_mutex_init(&p->lock, NULL);
    if (!rc)
        queue_add_producer(q);
    if (!rc && (rc = pthread_create(&p->thread, NULL, poller_main, p)) != 0) {
        queue_producer_done(q);
        pthread_mutex_destroy(&p->lock);
    }
    if (rc) {
        if (p->epfd >= 0)
            close(p->epfd);
        if (p->wake_fd >= 0)
            close(p->wake_fd);
        free(p);
        errno = rc;
        return NULL;
    }
    return p;
}

/* Sets a flag under the lock and wakes the thread to act on it. */
static void tell(struct poller *p, bool *flag)
{
    pthread_mutex_lock(&p->lock);
    *flag = true;
    pthread_mutex_unlock(&p->lock);
    wake(p);
}

void poller_quiesce(struct poller *p)
{
    tell(p, &p->quiescing);
}

void poller_cut(struct poller *p)
{
    tell(p, &p->cutting);
}

void poller_stop(struct poller *p)
{
    tell(p, &p->quitting);
}

void poller_join(struct poller *p)
{
    pthread_join(p->thread, NULL);
}

void poller_free(struct poller *p)
{
    pthread_mutex_destroy(&p->lock);
    close(p->epfd);
    close(p->wake_fd);
    heap_free(&p->timers);
    heap_free(&p->holds);
    heap_free(&p->handshakes);
    free(p);
}

void poller_stats(struct poller *p, struct poller_stats *out)
{
    out->parked = atomic_load_explicit(&p->parked, memory_order_relaxed);
    out->woken = atomic_load_explicit(&p->woken, memory_order_relaxed);
    out->peer_closed = atomic_load_explicit(&p->peer_closed, memory_order_relaxed);
    out->expired = atomic_load_explicit(&p->expired, memory_order_relaxed);
    out->idle_closed = conn_ledger_ended(p->ledger, CONN_END_IDLE_TIMEOUT);
    out->shed = conn_ledger_ended(p->ledger, CONN_END_SHED);
    pthread_mutex_lock(&p->lock);
    out->holding = p->timers.n;
    out->holding_buffers = p->holds.n + p->handshakes.n;
    pthread_mutex_unlock(&p->lock);
}
