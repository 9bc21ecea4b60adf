/*
 * net.h - socket helpers with one contract each.
 *
 * Every function that can fail returns -1 and leaves errno set, except the
 * address-resolving ones (net_listen, net_connect), which also write a
 * one-line message into a caller-provided buffer because a resolver error
 * has no errno. The caller decides whether and how to report it.
 *
 * All sends use MSG_NOSIGNAL: a peer that vanished yields EPIPE, never a
 * SIGPIPE that would kill the process.
 */
#ifndef ENCHUFE_NET_H
#define ENCHUFE_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

/* Where a server listens or a client connects: a Unix socket path, or a
 * host (name or address; an IPv6 literal may be in brackets) and port. */
struct net_endpoint {
    const char *host;
    const char *port;
    const char *unix_path; /* when set, host and port are ignored */
    mode_t unix_mode;      /* a listener's file permissions (0: as the umask gives) */
    bool reuseport;        /* a TCP listener shares its port (SO_REUSEPORT) */
};

/* Binds and listens on the first address of host:port that takes it
 * (port "0" picks an ephemeral port). Returns the listening fd or -1 with
 * a message in err. */
int net_listen(const char *host, const char *port, int backlog, char *err, size_t errlen);

#define NET_MAX_LISTENERS 8

/* Listens on every address the endpoint resolves to (a name such as
 * localhost may give 127.0.0.1 and ::1), all on one port: with port "0"
 * the first gets a free port and the others take the same. Writes the
 * fds to fds and returns how many, or -1 with a message in err naming
 * each address that failed. A Unix socket path gives one listener; a
 * stale socket file there (no server answers) is replaced, a live one is
 * refused. */
int net_listen_endpoint(const struct net_endpoint *ep, int backlog, int *fds, int max,
                        char *err, size_t errlen);

/* Which file a Unix socket path names now (device and inode), so that a
 * server removes at its stop only the socket file it made, not one that
 * another server has put there since. */
struct net_unix_id {
    dev_t dev;
    ino_t ino;
};
int net_unix_identify(const char *path, struct net_unix_id *id);

/* Unlinks path if it is still the file identified by id; true if it did. */
bool net_unix_unlink_if_ours(const char *path, const struct net_unix_id *id);

/* A hint about the likely cause of the errno values people meet most
 * (" (is the server running on that port?)"), or "". */
const char *net_errno_hint(int err);

/* Connects to the endpoint (see net_connect); Unix paths too. */
int net_connect_endpoint(const struct net_endpoint *ep, int timeout_ms, char *err,
                         size_t errlen);

/* A resolved address to connect to, again and again (load generators). */
struct net_address {
    struct sockaddr_storage ss;
    socklen_t len;
};

/* The first address the endpoint resolves to (a Unix path, or host and
 * port). 0, or -1 with a message in err. */
int net_resolve(const struct net_endpoint *ep, struct net_address *out, char *err,
                size_t errlen);

/* Starts a connect without waiting: a non-blocking socket, TCP_NODELAY
 * for TCP, connected or connecting (EINPROGRESS: wait for POLLOUT, then
 * net_connect_result). -1 if it failed at once (errno). */
int net_connect_start(const struct net_address *addr);

/* Once a connecting socket is writable: 0 if it connected, or the errno
 * of why not. */
int net_connect_result(int fd);

/* Copies host without the brackets of an IPv6 literal ("[::1]" -> "::1"). */
const char *net_unbracket(const char *host, char *out, size_t cap);

/* Connects to host:port, trying every resolved address in turn, each for
 * at most timeout_ms (0 = the kernel's own timeout). Returns a blocking
 * fd or -1 with a message in err naming the address and the cause. */
int net_connect(const char *host, const char *port, int timeout_ms, char *err, size_t errlen);

/* Raises this process's open-file soft limit to the hard limit (every
 * connection is a descriptor). Returns the soft limit now in force, or -1. */
long net_raise_fd_limit(void);

/* The port a socket is bound to, or -1. */
int net_local_port(int fd);

/* Formats the local address of fd as "HOST:PORT" ("[HOST]:PORT" for IPv6). */
int net_local_address(int fd, char *out, size_t outlen);

/* Formats the peer address of fd the same way. */
int net_peer_address(int fd, char *out, size_t outlen);

/* SO_RCVTIMEO / SO_SNDTIMEO in milliseconds; 0 means wait forever. A
 * blocking call that times out fails with EAGAIN/EWOULDBLOCK. */
int net_set_recv_timeout(int fd, int timeout_ms);

/* SO_RCVLOWAT: poll, epoll and a blocking recv wait for this many bytes. */
int net_set_recv_lowat(int fd, int bytes);
int net_set_send_timeout(int fd, int timeout_ms);

/* Disables Nagle: our messages are written whole with one writev, so
 * waiting to coalesce them only adds latency. */
int net_set_nodelay(int fd);

/* TCP_NOTSENT_LOWAT: a send takes no more than `bytes` beyond what the
 * peer's window lets out (EAGAIN instead), and the socket is writable
 * again when less than that waits. Without it the kernel grows the send
 * queue to megabytes for a peer that does not read. */
int net_set_unsent_limit(int fd, int bytes);

/* Writes all n bytes / all iovecs, retrying EINTR and short writes.
 * Returns 0 or -1 (errno set). iov is modified. */
int net_write_full(int fd, const void *buf, size_t n);
int net_writev_full(int fd, struct iovec *iov, int iovcnt);

/* recv() that retries EINTR and waits for data no later than the
 * absolute deadline (a monotime_ms() point; 0 = none); fails with
 * ETIMEDOUT when it passes. It never blocks in recv itself (it waits in
 * poll), so a receive timeout on the socket changes nothing. */
ssize_t net_recv_until(int fd, void *buf, size_t len, long long deadline);

/* Waits until fd is ready for events (POLLIN, POLLOUT) or the absolute
 * deadline passes (ETIMEDOUT; 0 = no deadline). EINTR is retried. */
int net_wait_ready(int fd, short events, long long deadline);

/* Like net_writev_full, but the whole write must finish by the deadline
 * (0 = none): a peer that reads a byte now and then cannot stretch it.
 * Like net_recv_until, it waits in poll, never in a blocking send. */
int net_writev_until(int fd, struct iovec *iov, int iovcnt, long long deadline);

#endif
