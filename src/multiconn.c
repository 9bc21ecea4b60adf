/*
 * multiconn.c - many echo connections, one thread, one poll() loop.
 *
 * Each connection is non-blocking: poll() says which sockets can take more
 * bytes (POLLOUT) and which have bytes for us (POLLIN), so no connection
 * waits for another. This is what the tutorial's selectors-based client
 * does, in C.
 */
#include "multiconn.h"
#include "monotime.h"
#include "log.h"
#include "net.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *const messages[] = {"Message 1 from client.", "Message 2 from client."};
#define MESSAGES_LEN 44 /* both messages, back to back */

struct mc_conn {
    int fd;
    size_t sent;     /* bytes of the messages sent so far */
    size_t received; /* bytes echoed back so far */
    char back[MESSAGES_LEN];
    const char *failure; /* NULL while fine */
};

static bool finished(const struct mc_conn *c)
{
    return c->fd < 0;
}

static void finish(struct mc_conn *c, int id, const char *failure)
{
    c->failure = failure;
    if (!failure && memcmp(c->back, messages[0], 22) != 0)
        c->failure = "the bytes that came back differ from those sent";
    if (!failure && memcmp(c->back + 22, messages[1], 22) != 0)
        c->failure = "the bytes that came back differ from those sent";
    printf("Connection %d: sent %zu bytes, received %zu bytes: %s\n", id, c->sent, c->received,
           c->failure ? c->failure : "ok");
    log_verbose("Closing connection %d", id);
    close(c->fd);
    c->fd = -1;
}

/* Sends the rest of the current message (the two go out one at a time). */
static void send_some(struct mc_conn *c, int id)
{
    size_t msg = c->sent < 22 ? 0 : 1, off = c->sent - msg * 22;
    log_verbose("Sending '%s' to connection %d", messages[msg] + off, id);
    ssize_t n = send(c->fd, messages[msg] + off, 22 - off, MSG_NOSIGNAL);
    if (n > 0)
        c->sent += (size_t)n;
    else if (n < 0 && errno != EAGAIN && errno != EINTR)
        finish(c, id, strerror(errno));
}

static void receive_some(struct mc_conn *c, int id)
{
    ssize_t n = recv(c->fd, c->back + c->received, MESSAGES_LEN - c->received, 0);
    if (n > 0) {
        c->received += (size_t)n;
        if (c->received == MESSAGES_LEN)
            finish(c, id, NULL);
    } else if (n == 0) {
        finish(c, id, "the server closed the connection early");
    } else if (errno != EAGAIN && errno != EINTR) {
        finish(c, id, strerror(errno));
    }
}

static int open_all(struct mc_conn *conns, int n, const struct net_endpoint *ep,
                    long long deadline)
{
    for (int i = 0; i < n; i++) {
        char err[512];
        log_verbose("Starting connection %d", i + 1);
        long long left = deadline ? deadline - monotime_ms() : 0;
        if (deadline && left <= 0) {
            snprintf(err, sizeof err, "timed out before connecting");
            conns[i].fd = -1;
        } else {
            conns[i].fd = net_connect_endpoint(ep, (int)left, err, sizeof err);
        }
        if (conns[i].fd < 0) {
            fprintf(stderr, "enchufe-cli: connection %d: %s\n", i + 1, err);
            while (i-- > 0)
                close(conns[i].fd);
            return -1;
        }
        fcntl(conns[i].fd, F_SETFL, fcntl(conns[i].fd, F_GETFL) | O_NONBLOCK);
    }
    return 0;
}

/* One round of poll(); returns how many connections are still open. */
static int poll_round(struct mc_conn *conns, struct pollfd *pfds, int n, int wait_ms)
{
    int open = 0;
    for (int i = 0; i < n; i++) {
        pfds[i].fd = conns[i].fd; /* poll ignores negative fds */
        pfds[i].events = POLLIN | (conns[i].sent < MESSAGES_LEN ? POLLOUT : 0);
        pfds[i].revents = 0;
    }
    if (poll(pfds, (nfds_t)n, wait_ms) < 0 && errno != EINTR)
        return -1;
    for (int i = 0; i < n; i++) {
        if (!finished(&conns[i]) && (pfds[i].revents & POLLOUT))
            send_some(&conns[i], i + 1);
        if (!finished(&conns[i]) && (pfds[i].revents & (POLLIN | POLLHUP | POLLERR)))
            receive_some(&conns[i], i + 1);
        open += !finished(&conns[i]);
    }
    return open;
}

int multiconn_run(const struct net_endpoint *ep, int n, long long deadline)
{
    struct mc_conn *conns = calloc((size_t)n, sizeof *conns);
    struct pollfd *pfds = calloc((size_t)n, sizeof *pfds);
    int rc = -1;
    if (!conns || !pfds || open_all(conns, n, ep, deadline) < 0)
        goto out;
    int open = n;
    while (open > 0 && (!deadline || monotime_ms() < deadline))
        open = poll_round(conns, pfds, n, deadline ? (int)(deadline - monotime_ms()) : -1);
    for (int i = 0; i < n; i++)
        if (!finished(&conns[i]))
            finish(&conns[i], i + 1, "timed out");
    int ok = 0;
    for (int i = 0; i < n; i++)
        ok += conns[i].failure == NULL;
    printf("%d of %d connections got every byte back\n", ok, n);
    rc = ok == n ? 0 : -1;
out:
    free(conns);
    free(pfds);
    return rc;
}
