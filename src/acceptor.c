/*
 * acceptor.c - accept loop: poll, accept4, make the connection, push it
 * to the queue (see acceptor.h); at a stop, the backlog is taken before
 * the listeners close.
 */
#include "acceptor.h"
#include "log.h"
#include "net.h"
#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* How long to pause when out of descriptors or memory, so a full fd table
 * does not turn the loop into a 100% CPU spin. */
#define ACCEPT_BACKOFF_MS 100

/* At a stop, at most this many connections are taken from the backlogs
 * (the kernel's default SOMAXCONN), so that clients connecting without
 * pause cannot keep the stop from closing the listeners. */
#define STOP_SWEEP_MAX 4096

/* Waits until a listener is readable (true, with ready[i] set for each)
 * or a stop is asked (false). */
static bool wait_listeners(struct acceptor *a, bool *ready)
{
    struct pollfd p[NET_MAX_LISTENERS + 1];
    for (int i = 0; i < a->nlisten; i++)
        p[i] = (struct pollfd){.fd = a->listen_fds[i], .events = POLLIN};
    p[a->nlisten] = (struct pollfd){.fd = a->wake[0], .events = POLLIN};
    int rc;
    do
        rc = poll(p, (nfds_t)a->nlisten + 1, -1);
    while (rc < 0 && errno == EINTR);
    for (int i = 0; i < a->nlisten; i++)
        ready[i] = p[i].revents != 0;
    return rc > 0 && !p[a->nlisten].revents;
}

/* Sleeps for ms unless a stop is asked first; returns false on a stop. */
static bool back_off(struct acceptor *a, int ms)
{
    struct pollfd p = {.fd = a->wake[0], .events = POLLIN};
    int rc;
    do
        rc = poll(&p, 1, ms);
    while (rc < 0 && errno == EINTR);
    return rc == 0;
}

static bool accept_error_is_transient(int err)
{
    /* The peer gave up between SYN and accept, or a signal arrived: just
     * go on. ECONNABORTED and the network errors Linux passes up from the
     * new socket (see accept(2)) are of this kind. */
    return err == EINTR || err == EAGAIN || err == ECONNABORTED || err == EPROTO ||
           err == ENETDOWN || err == ENOPROTOOPT || err == EHOSTDOWN || err == ENONET ||
           err == EHOSTUNREACH || err == EOPNOTSUPP || err == ENETUNREACH;
}

static void log_accepted(int fd)
{
    if (log_verbosity() >= 1) {
        char peer[128] = "?";
        net_peer_address(fd, peer, sizeof peer);
        log_info("Accepted connection from %s", peer);
    }
}

/* Pushes what a stop left in our hands; closes what the queue refuses
 * (it closed: the stop ran out of time). */
static void hand_off_all(struct acceptor *a, struct conn **conns, int n)
{
    int done = n > 0 ? queue_push_many(a->queue, conns, n) : 0;
    for (int i = done; i < n; i++)
        conn_close(conns[i], CONN_END_CUT);
    if (done < n)
        log_verbose("Closed %d accepted connections: the server is shutting down", n - done);
}

/* The connection of a socket accepted on listener i, with a TLS session
 * if the listener speaks TLS. NULL (the socket closed) if there was no
 * memory for it. */
static struct conn *connection_of(struct acceptor *a, int i, int fd)
{
    SSL *ssl = NULL;
    struct conn *c = NULL;
    if (!a->tls_listener[i] || (ssl = tls_server_session(a->tls, fd)) != NULL)
        c = conn_new(a->ledger, fd, ssl);
    if (c)
        return c;
    log_error("cannot take a connection: out of memory%s",
              a->tls_listener[i] ? " for its TLS session" : "");
    tls_session_close(ssl);
    close(fd);
    return NULL;
}

/* Returns false if a stop interrupted a push that waited for room: the
 * connection is then in *held, still ours. */
static bool hand_off(struct acceptor *a, struct conn *c, struct conn **held)
{
    if (queue_push_unless(a->queue, c, &a->stopping) == 0)
        return true;
    *held = c;
    return false;
}

/* Accepts every connection waiting in the backlog (one poll wake-up can
 * cover many). Returns false on a stop, with a socket whose push the stop
 * interrupted in *held. */
static bool accept_pending(struct acceptor *a, int i, bool *failing, struct conn **held)
{
    while (!atomic_load(&a->stopping)) {
        /* The listener is non-blocking: when the backlog is empty, or a
         * client gave up between poll and accept, accept says EAGAIN. */
        int fd = accept4(a->listen_fds[i], NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0) {
            if (*failing)
                log_info("accept works again");
            *failing = false;
            atomic_fetch_add(&a->accepted, 1);
            log_accepted(fd);
            struct conn *c = connection_of(a, i, fd);
            if (c && !hand_off(a, c, held))
                return false;
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return true;
        if (accept_error_is_transient(errno))
            continue;
        if (!*failing)
            log_error("accept: %s%s; retrying every %d ms", strerror(errno),
                      errno == EMFILE || errno == ENFILE ? " (raise the open file limit)" : "",
                      ACCEPT_BACKOFF_MS);
        *failing = true;
        return back_off(a, ACCEPT_BACKOFF_MS);
    }
    return false; /* the stop's own sweep takes the rest */
}

/* Takes what waits in the backlogs, up to max connections, into conns:
 * their clients connected before the stop and may have sent whole
 * requests. */
static int sweep_backlogs(struct acceptor *a, struct conn **conns, int max)
{
    int n = 0;
    for (int i = 0; i < a->nlisten; i++) {
        while (n < max) {
            int fd = accept4(a->listen_fds[i], NULL, NULL, SOCK_CLOEXEC);
            if (fd < 0 && errno == EINTR)
                continue;
            if (fd < 0)
                break; /* empty (EAGAIN), or out of descriptors: leave the rest */
            atomic_fetch_add(&a->accepted, 1);
            log_accepted(fd);
            struct conn *c = connection_of(a, i, fd);
            if (c)
                conns[n++] = c;
        }
    }
    return n;
}

/* The stop: take the backlogs, close the listeners (the kernel refuses
 * new connections from here on), then queue what was taken. */
static void stop_accepting(struct acceptor *a, struct conn *held)
{
    struct conn **conns = malloc((STOP_SWEEP_MAX + 1) * sizeof(struct conn *));
    int n = 0;
    if (held) {
        if (conns)
            conns[n++] = held;
        else
            conn_close(held, CONN_END_CUT);
    }
    if (conns && a->take_backlog && !queue_is_closed(a->queue))
        n += sweep_backlogs(a, conns + n, STOP_SWEEP_MAX);
    for (int i = 0; i < a->nlisten; i++)
        close(a->listen_fds[i]);
    hand_off_all(a, conns, n);
    free(conns);
    queue_producer_done(a->queue);
    conn_ledger_source_done(a->ledger);
}

static void *acceptor_main(void *arg)
{
    struct acceptor *a = arg;
    bool failing = false; /* report a run of the same failure once */
    bool ready[NET_MAX_LISTENERS] = {false};
    struct conn *held = NULL;
    bool running = true;
    while (running && wait_listeners(a, ready))
        for (int i = 0; running && i < a->nlisten; i++)
            if (ready[i])
                running = accept_pending(a, i, &failing, &held);
    stop_accepting(a, held);
    return NULL;
}

int acceptor_start(struct acceptor *a, const int *listen_fds, const bool *tls_listener, int n,
                   struct queue *q, bool take_backlog, struct tls_server *tls,
                   struct conn_ledger *ledger)
{
    if (n < 1 || n > NET_MAX_LISTENERS) {
        errno = EINVAL;
        return -1;
    }
    a->nlisten = n;
    a->tls = tls;
    a->ledger = ledger;
    for (int i = 0; i < n; i++) {
        a->listen_fds[i] = listen_fds[i];
        a->tls_listener[i] = tls && tls_listener && tls_listener[i];
    }
    a->queue = q;
    a->take_backlog = take_backlog;
    atomic_init(&a->stopping, false);
    atomic_init(&a->accepted, 0);
    if (pipe2(a->wake, O_CLOEXEC) < 0)
        return -1;
    for (int i = 0; i < n; i++) {
        int flags = fcntl(listen_fds[i], F_GETFL);
        if (flags < 0 || fcntl(listen_fds[i], F_SETFL, flags | O_NONBLOCK) < 0)
            goto fail;
    }
    queue_add_producer(q);
    conn_ledger_add_source(ledger);
    int rc = pthread_create(&a->thread, NULL, acceptor_main, a);
    if (rc) {
        conn_ledger_source_done(ledger);
        queue_producer_done(q);
        errno = rc;
        goto fail;
    }
    return 0;
fail:;
    int saved = errno;
    close(a->wake[0]);
    close(a->wake[1]);
    errno = saved;
    return -1;
}

int acceptor_listener(const struct acceptor *a, int i)
{
    return i >= 0 && i < a->nlisten ? a->listen_fds[i] : -1;
}

void acceptor_stop(struct acceptor *a)
{
    atomic_store(&a->stopping, true);
    char byte = 1;
    while (write(a->wake[1], &byte, 1) < 0 && errno == EINTR)
        ;
    queue_wake_pushers(a->queue); /* a push waiting for room gives up */
}

void acceptor_join(struct acceptor *a)
{
    pthread_join(a->thread, NULL);
    close(a->wake[0]);
    close(a->wake[1]);
}
