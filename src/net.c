/*
 * net.c - socket helpers: resolve, listen, connect, and whole-buffer I/O.
 *
 * Address families are handled here once, through getaddrinfo with
 * AF_UNSPEC, so no caller ever sees a sockaddr_in.
 */
#include "net.h"
#include "monotime.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Formats a sockaddr as HOST:PORT, bracketing IPv6 literals, or as
 * unix:PATH. */
static void format_sockaddr(const struct sockaddr *sa, socklen_t salen, char *out, size_t outlen)
{
    char host[NI_MAXHOST], port[NI_MAXSERV];
    if (sa->sa_family == AF_UNIX) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)sa;
        snprintf(out, outlen, "unix:%s", salen > offsetof(struct sockaddr_un, sun_path) && un->sun_path[0] ? un->sun_path : "(unnamed)");
        return;
    }
    if (getnameinfo(sa, salen, host, sizeof host, port, sizeof port,
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        snprintf(out, outlen, "?");
        return;
    }
    if (sa->sa_family == AF_INET6)
        snprintf(out, outlen, "[%s]:%s", host, port);
    else
        snprintf(out, outlen, "%s:%s", host, port);
}

/* Turns the errno values people meet most into a hint about the cause. */
const char *net_errno_hint(int err)
{
    switch (err) {
    case ECONNREFUSED: return " (is the server running on that port?)";
    case EADDRINUSE: return " (another process is using that port; try another --port)";
    case EADDRNOTAVAIL: return " (that address is not on this machine)";
    case ETIMEDOUT: return " (no answer in time; is the host up and reachable?)";
    case EHOSTUNREACH: return " (no route to that host)";
    case EACCES: return " (permission denied: ports below 1024 need privileges)";
    case ENOENT: return " (no such socket file: is the server running?)";
    case ECONNRESET: return " (the peer reset the connection)";
    case EPIPE: return " (the peer closed the connection)";
    default: return "";
    }
}

const char *net_unbracket(const char *host, char *out, size_t cap)
{
    size_t n = host ? strlen(host) : 0;
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']' && n - 2 < cap) {
        memcpy(out, host + 1, n - 2);
        out[n - 2] = '\0';
        return out;
    }
    return host;
}

static struct addrinfo *resolve(const char *host, const char *port, int passive,
                                char *err, size_t errlen)
{
    char bare[NI_MAXHOST];
    host = net_unbracket(host, bare, sizeof bare);
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = passive ? AI_PASSIVE : 0;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve %s port %s: %s", host ? host : "*", port,
                 gai_strerror(rc));
        return NULL;
    }
    return res;
}

int net_resolve(const struct net_endpoint *ep, struct net_address *out, char *err,
                size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (ep->unix_path) {
        struct sockaddr_un *un = (struct sockaddr_un *)&out->ss;
        size_t n = strlen(ep->unix_path);
        if (n >= sizeof un->sun_path) {
            snprintf(err, errlen, "unix socket path too long: %s", ep->unix_path);
            return -1;
        }
        un->sun_family = AF_UNIX;
        memcpy(un->sun_path, ep->unix_path, n + 1);
        out->len = sizeof *un;
        return 0;
    }
    struct addrinfo *res = resolve(ep->host, ep->port, 0, err, errlen);
    if (!res)
        return -1;
    memcpy(&out->ss, res->ai_addr, res->ai_addrlen);
    out->len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

int net_connect_start(const struct net_address *addr)
{
    int fd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (addr->ss.ss_family != AF_UNIX)
        net_set_nodelay(fd);
    if (connect(fd, (const struct sockaddr *)&addr->ss, addr->len) < 0 && errno != EINPROGRESS) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int net_connect_result(int fd)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return errno;
    return err;
}

static int listen_on(const struct addrinfo *ai, int backlog, bool reuseport)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
        return -1;
    /* Lets a restarted server bind while old connections sit in TIME_WAIT. */
    int one = 1;
    /* An IPv6 listener takes IPv6 only, so that the same port can also be
     * bound on an IPv4 address of the same name. */
    if (ai->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    /* Several processes on one port: the kernel spreads new connections
     * across their listeners. */
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
        close(fd);
        return -1;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, backlog) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

/* Appends "; " and "<verb> <address>: <cause><hint>" to err (which may
 * already hold messages): every address tried is reported, so a user sees
 * why each failed. Leaves errno as it was. */
static void report_address(char *err, size_t errlen, const char *verb,
                           const struct addrinfo *ai, int e)
{
    char addr[NI_MAXHOST + NI_MAXSERV + 4];
    format_sockaddr(ai->ai_addr, ai->ai_addrlen, addr, sizeof addr);
    size_t used = strlen(err);
    if (used < errlen)
        snprintf(err + used, errlen - used, "%s%s %s: %s%s", used ? "; " : "", verb, addr,
                 strerror(e), net_errno_hint(e));
    errno = e;
}

/* Waits for a non-blocking connect to finish; returns 0 or -1 (errno). */
static int finish_connect(int fd, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int rc;
    do
        rc = poll(&p, 1, timeout_ms > 0 ? timeout_ms : -1);
    while (rc < 0 && errno == EINTR);
    if (rc == 0) {
        errno = ETIMEDOUT;
        return -1;
    }
    if (rc < 0)
        return -1;
    int soerr = 0;
    socklen_t len = sizeof soerr;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
        return -1;
    if (soerr != 0) {
        errno = soerr;
        return -1;
    }
    return 0;
}

static int connect_to(const struct addrinfo *ai, int timeout_ms)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                    ai->ai_protocol);
    if (fd < 0)
        return -1;
    int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (rc < 0 && errno == EINPROGRESS)
        rc = finish_connect(fd, timeout_ms);
    if (rc == 0)
        rc = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    if (rc < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int net_connect(const char *host, const char *port, int timeout_ms, char *err, size_t errlen)
{
    struct addrinfo *res = resolve(host, port, 0, err, errlen);
    if (!res)
        return -1;
    int fd = -1;
    err[0] = '\0';
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next)
        if ((fd = connect_to(ai, timeout_ms)) < 0)
            report_address(err, errlen, "cannot connect to", ai, errno);
    freeaddrinfo(res);
    return fd;
}

static int set_port(struct sockaddr *sa, int port)
{
    if (sa->sa_family == AF_INET)
        ((struct sockaddr_in *)sa)->sin_port = htons((uint16_t)port);
    else if (sa->sa_family == AF_INET6)
        ((struct sockaddr_in6 *)sa)->sin6_port = htons((uint16_t)port);
    return 0;
}

static int listen_inet(const struct net_endpoint *ep, int backlog, int *fds, int max, char *err,
                       size_t errlen)
{
    struct addrinfo *res = resolve(ep->host, ep->port, 1, err, errlen);
    if (!res)
        return -1;
    int n = 0, port = -1;
    err[0] = '\0';
    for (struct addrinfo *ai = res; ai && n < max; ai = ai->ai_next) {
        if (port > 0) /* port 0: every address on the port the first one got */
            set_port(ai->ai_addr, port);
        int fd = listen_on(ai, backlog, ep->reuseport);
        if (fd < 0) {
            report_address(err, errlen, "cannot listen on", ai, errno);
            continue;
        }
        fds[n++] = fd;
        port = net_local_port(fd);
    }
    freeaddrinfo(res);
    return n > 0 ? n : -1;
}

static int unix_address(const char *path, struct sockaddr_un *un, char *err, size_t errlen)
{
    memset(un, 0, sizeof *un);
    un->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof un->sun_path) {
        snprintf(err, errlen, "unix socket path too long (at most %zu bytes): %s",
                 sizeof un->sun_path - 1, path);
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(un->sun_path, path, strlen(path) + 1);
    return 0;
}

/* A socket file left by a server that died is removed; one that a live
 * server answers on, or a file that is no socket, is left alone. */
static int clear_stale_socket(const char *path, const struct sockaddr_un *un, char *err,
                              size_t errlen)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return 0; /* nothing there */
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "cannot listen on unix:%s: the file exists and is not a socket",
                 path);
        errno = EEXIST;
        return -1;
    }
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int rc = probe < 0 ? -1 : connect(probe, (const struct sockaddr *)un, sizeof *un);
    int saved = errno;
    if (probe >= 0)
        close(probe);
    if (rc == 0) {
        snprintf(err, errlen, "cannot listen on unix:%s: a server is already listening there",
                 path);
        errno = EADDRINUSE;
        return -1;
    }
    if (saved == ECONNREFUSED && unlink(path) == 0)
        return 0;
    snprintf(err, errlen, "cannot listen on unix:%s: %s", path, strerror(saved));
    errno = saved;
    return -1;
}

/* The file's permissions are set between bind and listen: before listen
 * a connect is refused, so no one gets in under the umask's mode. */
static int listen_unix(const char *path, mode_t mode, int backlog, char *err, size_t errlen)
{
    struct sockaddr_un un;
    if (unix_address(path, &un, err, errlen) < 0 || clear_stale_socket(path, &un, err, errlen) < 0)
        return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (const struct sockaddr *)&un, sizeof un) < 0) {
        int saved = errno;
        snprintf(err, errlen, "cannot listen on unix:%s: %s%s", path, strerror(saved),
                 net_errno_hint(saved));
        if (fd >= 0)
            close(fd);
        errno = saved;
        return -1;
    }
    const char *step = "setting its mode";
    int rc = mode ? chmod(path, mode) : 0;
    if (rc == 0) {
        step = "listen";
        rc = listen(fd, backlog);
    }
    if (rc < 0) {
        int saved = errno;
        snprintf(err, errlen, "cannot listen on unix:%s: %s: %s", path, step, strerror(saved));
        close(fd);
        unlink(path); /* we made it, a moment ago */
        errno = saved;
        return -1;
    }
    return fd;
}

int net_unix_identify(const char *path, struct net_unix_id *id)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return -1;
    id->dev = st.st_dev;
    id->ino = st.st_ino;
    return 0;
}

bool net_unix_unlink_if_ours(const char *path, const struct net_unix_id *id)
{
    struct net_unix_id now;
    if (net_unix_identify(path, &now) < 0 || now.dev != id->dev || now.ino != id->ino)
        return false;
    return unlink(path) == 0;
}

int net_listen(const char *host, const char *port, int backlog, char *err, size_t errlen)
{
    struct net_endpoint ep = {.host = host, .port = port};
    int fd;
    return net_listen_endpoint(&ep, backlog, &fd, 1, err, errlen) == 1 ? fd : -1;
}

int net_listen_endpoint(const struct net_endpoint *ep, int backlog, int *fds, int max,
                        char *err, size_t errlen)
{
    if (!ep->unix_path)
        return listen_inet(ep, backlog, fds, max, err, errlen);
    int fd = listen_unix(ep->unix_path, ep->unix_mode, backlog, err, errlen);
    if (fd < 0)
        return -1;
    fds[0] = fd;
    return 1;
}

int net_connect_endpoint(const struct net_endpoint *ep, int timeout_ms, char *err,
                         size_t errlen)
{
    if (!ep->unix_path)
        return net_connect(ep->host, ep->port, timeout_ms, err, errlen);
    struct sockaddr_un un;
    if (unix_address(ep->unix_path, &un, err, errlen) < 0)
        return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    /* A Unix connect waits while the server's backlog is full, bounded by
     * the socket's send timeout (unix(7)); it is put back afterwards. */
    if (fd >= 0 && timeout_ms > 0)
        net_set_send_timeout(fd, timeout_ms);
    if (fd < 0 || connect(fd, (const struct sockaddr *)&un, sizeof un) < 0) {
        int saved = errno == EAGAIN ? ETIMEDOUT : errno;
        snprintf(err, errlen, "cannot connect to unix:%s: %s%s", ep->unix_path,
                 strerror(saved), net_errno_hint(saved));
        if (fd >= 0)
            close(fd);
        errno = saved;
        return -1;
    }
    if (timeout_ms > 0)
        net_set_send_timeout(fd, 0);
    return fd;
}

long net_raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return -1;
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t want = rl.rlim_max == RLIM_INFINITY ? 1 << 20 : rl.rlim_max;
        struct rlimit raised = {want, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
            rl.rlim_cur = want;
    }
    return (long)rl.rlim_cur;
}

int net_local_port(int fd)
{
    struct sockaddr_storage ss = {0};
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    errno = EAFNOSUPPORT;
    return -1;
}

int net_local_address(int fd, char *out, size_t outlen)
{
    struct sockaddr_storage ss = {0};
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    format_sockaddr((struct sockaddr *)&ss, len, out, outlen);
    return 0;
}

int net_peer_address(int fd, char *out, size_t outlen)
{
    struct sockaddr_storage ss = {0};
    socklen_t len = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    format_sockaddr((struct sockaddr *)&ss, len, out, outlen);
    return 0;
}

static int set_timeout(int fd, int option, int timeout_ms)
{
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (suseconds_t)(timeout_ms % 1000) * 1000};
    return setsockopt(fd, SOL_SOCKET, option, &tv, sizeof tv);
}

int net_set_recv_timeout(int fd, int timeout_ms)
{
    return set_timeout(fd, SO_RCVTIMEO, timeout_ms);
}

int net_set_recv_lowat(int fd, int bytes)
{
    return setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &bytes, sizeof bytes);
}

int net_set_send_timeout(int fd, int timeout_ms)
{
    return set_timeout(fd, SO_SNDTIMEO, timeout_ms);
}

int net_set_nodelay(int fd)
{
    int one = 1;
    return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int net_set_unsent_limit(int fd, int bytes)
{
    return setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &bytes, sizeof bytes);
}

int net_write_full(int fd, const void *buf, size_t n)
{
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = n};
    return net_writev_full(fd, &iov, 1);
}

static int send_all(int fd, struct iovec *iov, int iovcnt, bool blocking, long long deadline);

int net_writev_full(int fd, struct iovec *iov, int iovcnt)
{
    return send_all(fd, iov, iovcnt, true, 0);
}

int net_wait_ready(int fd, short events, long long deadline)
{
    struct pollfd p = {.fd = fd, .events = events};
    for (;;) {
        long long left = deadline ? deadline - monotime_ms() : -1;
        if (deadline && left <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        int rc = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
        if (rc > 0)
            return 0;
        if (rc < 0 && errno != EINTR)
            return -1;
    }
}

ssize_t net_recv_until(int fd, void *buf, size_t len, long long deadline)
{
    /* Never a blocking recv: what a blocking call does depends on socket
     * options (SO_RCVTIMEO) that another module may have set, while
     * poll's wait is this call's own. */
    for (;;) {
        /* Try first: the bytes are usually already here, and then the
         * read costs one system call, not two. */
        ssize_t n = recv(fd, buf, len, MSG_DONTWAIT);
        if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            return n;
        if (errno != EINTR && net_wait_ready(fd, POLLIN, deadline) < 0)
            return -1;
    }
}

/* Drops n sent bytes from the front of the message's iovecs. */
static void advance(struct msghdr *msg, size_t n)
{
    while (msg->msg_iovlen > 0 && n >= msg->msg_iov->iov_len) {
        n -= msg->msg_iov->iov_len;
        msg->msg_iov++;
        msg->msg_iovlen--;
    }
    if (msg->msg_iovlen > 0) {
        msg->msg_iov->iov_base = (char *)msg->msg_iov->iov_base + n;
        msg->msg_iov->iov_len -= n;
    }
}

/* Sends every iovec: blocking (bounded only by the socket's own send
 * timeout), or without blocking and waiting in poll until the deadline
 * (0 = none). */
static int send_all(int fd, struct iovec *iov, int iovcnt, bool blocking, long long deadline)
{
    /* sendmsg rather than writev: only send* takes MSG_NOSIGNAL. */
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)iovcnt};
    int flags = MSG_NOSIGNAL | (blocking ? 0 : MSG_DONTWAIT);
    advance(&msg, 0);
    while (msg.msg_iovlen > 0) {
        ssize_t n = sendmsg(fd, &msg, flags);
        if (n >= 0) {
            advance(&msg, (size_t)n);
            continue;
        }
        if (errno == EINTR)
            continue;
        if (blocking || (errno != EAGAIN && errno != EWOULDBLOCK))
            return -1;
        if (net_wait_ready(fd, POLLOUT, deadline) < 0)
            return -1;
    }
    return 0;
}

int net_writev_until(int fd, struct iovec *iov, int iovcnt, long long deadline)
{
    /* Never a blocking send, for the same reason as in net_recv_until. */
    return send_all(fd, iov, iovcnt, false, deadline);
}
