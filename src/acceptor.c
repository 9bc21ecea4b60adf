/*
 * acceptor.c - accept loop: poll, accept4, push to the queue.
 */
#include "acceptor.h"
#include "log.h"
#include "net.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* How long to pause when out of descriptors or memory, so a full fd table
 * does not turn the loop into a 100% CPU spin. */
#define ACCEPT_BACKOFF_MS 100

/* Waits until a listener is readable (true, with ready[i] set for each)
 * or a stop is asked (false). */
static bool wait_listeners(struct acceptor *a, bool *ready)
{
    struct pollfd p[ACCEPTOR_MAX_LISTENERS + 1];
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

static void hand_off(struct acceptor *a, int fd)
{
    atomic_fetch_add(&a->accepted, 1);
    if (log_verbosity() >= 1) {
        char peer[128] = "?";
        net_peer_address(fd, peer, sizeof peer);
        log_info("Accepted connection from %s", peer);
    }
    if (queue_push(a->queue, fd) < 0) {
        /* The queue closed under us (shutdown): the socket is still ours. */
        log_verbose("Closing connection: server is shutting down");
        close(fd);
    }
}

/* Accepts every connection waiting in the backlog (one poll wake-up can
 * cover many). Returns false if a stop was asked while backing off. */
static bool accept_pending(struct acceptor *a, int listen_fd, bool *failing)
{
    for (;;) {
        /* The listener is non-blocking: when the backlog is empty, or a
         * client gave up between poll and accept, accept says EAGAIN. */
        int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0) {
            if (*failing)
                log_info("accept works again");
            *failing = false;
            hand_off(a, fd);
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
}

static void *acceptor_main(void *arg)
{
    struct acceptor *a = arg;
    bool failing = false; /* report a run of the same failure once */
    bool ready[ACCEPTOR_MAX_LISTENERS] = {false};
    while (wait_listeners(a, ready))
        for (int i = 0; i < a->nlisten; i++)
            if (ready[i] && !accept_pending(a, a->listen_fds[i], &failing))
                return NULL;
    return NULL;
}

int acceptor_start(struct acceptor *a, const int *listen_fds, int n, struct queue *q)
{
    if (n < 1 || n > ACCEPTOR_MAX_LISTENERS) {
        errno = EINVAL;
        return -1;
    }
    a->nlisten = n;
    for (int i = 0; i < n; i++)
        a->listen_fds[i] = listen_fds[i];
    a->queue = q;
    atomic_init(&a->accepted, 0);
    if (pipe2(a->wake, O_CLOEXEC) < 0)
        return -1;
    for (int i = 0; i < n; i++) {
        int flags = fcntl(listen_fds[i], F_GETFL);
        if (flags < 0 || fcntl(listen_fds[i], F_SETFL, flags | O_NONBLOCK) < 0)
            goto fail;
    }
    int rc = pthread_create(&a->thread, NULL, acceptor_main, a);
    if (rc) {
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

void acceptor_stop(struct acceptor *a)
{
    char byte = 1;
    while (write(a->wake[1], &byte, 1) < 0 && errno == EINTR)
        ;
    pthread_join(a->thread, NULL);
    close(a->wake[0]);
    close(a->wake[1]);
}
