/*
 * poller.c - the epoll thread that holds idle connections (see poller.h).
 *
 * Locking: p->lock guards the park-order list, the per-fd entries and
 * `stopping`. Workers take it to park; the poller takes it to unlink what
 * woke or expired. queue_push, which may block while the queue is full,
 * is never called with the lock held, so a full queue can slow the poller
 * down but never deadlock it against a worker that is parking.
 */
#include "poller.h"
#include "monotime.h"
#include "log.h"
#include "net.h"
#include "tls.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_EVENTS 256

struct entry {
    int prev, next;   /* neighbours in park order, -1 at the ends */
    long long since;  /* when it was parked, ms */
    bool parked;
    bool in_set;      /* in the epoll set (one-shot, maybe disarmed) */
    bool fresh;       /* no request read on it yet: its first may be on the way */
};

struct poller {
    struct queue *queue;
    struct tls_server *tls; /* closes go through it (TLS state by fd) */
    int idle_timeout_ms;
    int epfd;
    int wake_fd; /* eventfd: written to stop the thread */
    pthread_t thread;
    pthread_mutex_t lock;
    struct entry *entries; /* indexed by fd */
    size_t max_fds;
    int head, tail; /* oldest and newest parked */
    size_t holding;
    bool stopping;
    atomic_uint_least64_t parked, woken, idle_closed, peer_closed, dropped;
};

/* --- the park-order list (call with p->lock held) ---------------------------- */

static void link_tail(struct poller *p, int fd)
{
    struct entry *e = &p->entries[fd];
    e->prev = p->tail;
    e->next = -1;
    e->since = monotime_ms();
    e->parked = true;
    if (p->tail >= 0)
        p->entries[p->tail].next = fd;
    else
        p->head = fd;
    p->tail = fd;
    p->holding++;
}

static void unlink_fd(struct poller *p, int fd)
{
    struct entry *e = &p->entries[fd];
    if (e->prev >= 0)
        p->entries[e->prev].next = e->next;
    else
        p->head = e->next;
    if (e->next >= 0)
        p->entries[e->next].prev = e->prev;
    else
        p->tail = e->prev;
    e->parked = false;
    p->holding--;
}

/* --- workers ------------------------------------------------------------------ */

int poller_park(struct poller *p, int fd, bool fresh)
{
    if (fd < 0 || (size_t)fd >= p->max_fds)
        return -1;
    /* One-shot: after it fires once, the socket stays in the set but
     * silent until it is parked again (MOD re-arms it, one system call). */
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT, .data.fd = fd};
    pthread_mutex_lock(&p->lock);
    int rc = -1;
    if (!p->stopping) {
        struct entry *e = &p->entries[fd];
        link_tail(p, fd);
        e->fresh = fresh;
        rc = epoll_ctl(p->epfd, e->in_set ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev);
        if (rc < 0 && e->in_set && errno == ENOENT) /* closed behind our back */
            rc = epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev);
        e->in_set = rc == 0;
        if (rc < 0)
            unlink_fd(p, fd);
    }
    pthread_mutex_unlock(&p->lock);
    if (rc < 0)
        return -1;
    atomic_fetch_add_explicit(&p->parked, 1, memory_order_relaxed);
    return 0;
}

void poller_forget(struct poller *p, int fd)
{
    if (fd >= 0 && (size_t)fd < p->max_fds) {
        pthread_mutex_lock(&p->lock);
        p->entries[fd].in_set = false; /* its close takes it out of the set */
        pthread_mutex_unlock(&p->lock);
    }
}

/* True if the peer has closed and sent nothing more: the connection can
 * be closed here, without waking a worker to find that out. */
static bool peer_gone(int fd)
{
    char byte;
    return recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

/* --- the poller thread ------------------------------------------------------- */

/* Milliseconds until the oldest parked connection expires. With none
 * parked, a full idle timeout: anything parked meanwhile expires later
 * than that, so parking never has to wake the poller to say so. */
static int next_expiry(struct poller *p)
{
    if (p->idle_timeout_ms <= 0)
        return -1;
    pthread_mutex_lock(&p->lock);
    long long wait = p->idle_timeout_ms;
    if (p->head >= 0) {
        wait = p->entries[p->head].since + p->idle_timeout_ms - monotime_ms();
        if (wait < 0)
            wait = 0;
    }
    pthread_mutex_unlock(&p->lock);
    return (int)wait;
}

/* Takes the sockets that woke off the list; returns how many are ready
 * for a worker. Those whose client simply went away are closed here. */
static int take_ready(struct poller *p, const struct epoll_event *ev, int n, int *ready)
{
    int k = 0, gone[MAX_EVENTS], ngone = 0;
    pthread_mutex_lock(&p->lock);
    for (int i = 0; i < n; i++) {
        int fd = ev[i].data.fd;
        if (fd == p->wake_fd) {
            uint64_t count;
            if (read(fd, &count, sizeof count) < 0) /* reset it; a stop is a flag */
                continue;
        } else if (p->entries[fd].parked) {
            unlink_fd(p, fd);
            bool hangup = ev[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR);
            if (hangup && peer_gone(fd)) {
                p->entries[fd].in_set = false;
                gone[ngone++] = fd;
            } else {
                ready[k++] = fd;
            }
        }
    }
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < ngone; i++)
        tls_server_close(p->tls, gone[i]);
    atomic_fetch_add_explicit(&p->peer_closed, (uint64_t)ngone, memory_order_relaxed);
    return k;
}

static void requeue(struct poller *p, const int *ready, int k)
{
    atomic_fetch_add_explicit(&p->woken, (uint64_t)k, memory_order_relaxed);
    int done = queue_push_many(p->queue, ready, k);
    for (int i = done; i < k; i++)
        tls_server_close(p->tls, ready[i]); /* the queue closed: a stop ran out of time */
    atomic_fetch_add_explicit(&p->dropped, (uint64_t)(k - done), memory_order_relaxed);
}

/* Closes what has been idle too long; when stopping, every parked
 * connection, except those on which nothing was ever read: their client
 * has just connected and its first request may be on the way, so they go
 * to the workers, who give it a moment (worker.h). */
static void close_expired(struct poller *p, bool all)
{
    int doomed[MAX_EVENTS], fresh[MAX_EVENTS];
    for (;;) {
        int k = 0, f = 0;
        long long now = monotime_ms();
        pthread_mutex_lock(&p->lock);
        while (p->head >= 0 && k + f < MAX_EVENTS &&
               (all || (p->idle_timeout_ms > 0 &&
                        p->entries[p->head].since + p->idle_timeout_ms <= now))) {
            int fd = p->head;
            if (all && p->entries[fd].fresh) {
                fresh[f++] = fd;
            } else {
                doomed[k++] = fd;
                p->entries[fd].in_set = false;
            }
            unlink_fd(p, fd);
        }
        pthread_mutex_unlock(&p->lock);
        if (!all) /* counted before the close a client could see */
            atomic_fetch_add_explicit(&p->idle_closed, (uint64_t)k, memory_order_relaxed);
        for (int i = 0; i < k; i++)
            tls_server_close(p->tls, doomed[i]); /* closing also takes it out of the epoll set */
        requeue(p, fresh, f);
        if (k + f < MAX_EVENTS)
            return;
    }
}

/* The stop: every parked connection whose client has sent something goes
 * to the workers, however recently it arrived (a stop answers every
 * request that had arrived); the others are idle, and are closed. epoll
 * already knows which are readable, so this costs no system call per
 * idle connection. */
static void hand_over_at_stop(struct poller *p, struct epoll_event *ev, int *ready)
{
    int n;
    do {
        do
            n = epoll_wait(p->epfd, ev, MAX_EVENTS, 0);
        while (n < 0 && errno == EINTR);
        requeue(p, ready, take_ready(p, ev, n > 0 ? n : 0, ready));
    } while (n == MAX_EVENTS);
    close_expired(p, true);
}

static void *poller_main(void *arg)
{
    struct poller *p = arg;
    struct epoll_event ev[MAX_EVENTS];
    int ready[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(p->epfd, ev, MAX_EVENTS, next_expiry(p));
        if (n < 0 && errno != EINTR) {
            log_error("poller: epoll_wait: %m");
            break;
        }
        requeue(p, ready, take_ready(p, ev, n > 0 ? n : 0, ready));
        /* Read after the eventfd was drained, so a stop whose wake-up that
         * drain swallowed is still seen. */
        pthread_mutex_lock(&p->lock);
        bool stopping = p->stopping;
        pthread_mutex_unlock(&p->lock);
        if (stopping)
            break;
        close_expired(p, false);
    }
    pthread_mutex_lock(&p->lock);
    p->stopping = true; /* also when epoll failed: refuse parks from here */
    pthread_mutex_unlock(&p->lock);
    hand_over_at_stop(p, ev, ready);
    queue_producer_done(p->queue);
    return NULL;
}

/* --- life cycle -------------------------------------------------------------- */

struct poller *poller_start(struct queue *q, int idle_timeout_ms, size_t max_fds,
                            struct tls_server *tls)
{
    struct poller *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    *p = (struct poller){.queue = q, .tls = tls, .idle_timeout_ms = idle_timeout_ms, .max_fds = max_fds,
                         .head = -1, .tail = -1, .epfd = -1, .wake_fd = -1};
    /* calloc: pages of the fd-indexed table cost memory only once touched. */
    p->entries = calloc(max_fds, sizeof *p->entries);
    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    p->wake_fd = eventfd(0, EFD_CLOEXEC);
    struct epoll_event wake = {.events = EPOLLIN, .data.fd = p->wake_fd};
    int rc = p->entries && p->epfd >= 0 && p->wake_fd >= 0 ? 0 : errno ? errno : ENOMEM;
    if (!rc && epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->wake_fd, &wake) < 0)
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
        free(p->entries);
        free(p);
        errno = rc;
        return NULL;
    }
    return p;
}

void poller_stop(struct poller *p)
{
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    pthread_mutex_unlock(&p->lock);
    uint64_t one = 1;
    while (write(p->wake_fd, &one, sizeof one) < 0 && errno == EINTR)
        ;
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
    free(p->entries);
    free(p);
}

void poller_stats(struct poller *p, struct poller_stats *out)
{
    out->parked = atomic_load_explicit(&p->parked, memory_order_relaxed);
    out->woken = atomic_load_explicit(&p->woken, memory_order_relaxed);
    out->idle_closed = atomic_load_explicit(&p->idle_closed, memory_order_relaxed);
    out->peer_closed = atomic_load_explicit(&p->peer_closed, memory_order_relaxed);
    out->dropped = atomic_load_explicit(&p->dropped, memory_order_relaxed);
    pthread_mutex_lock(&p->lock);
    out->holding = p->holding;
    pthread_mutex_unlock(&p->lock);
}
