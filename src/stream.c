/*
 * stream.c - clear or TLS reads and writes with deadlines (see stream.h).
 */
#include "stream.h"
#include "net.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* TLS records carry at most 16 KiB: small pieces of a gathered write are
 * copied together up to that, so that a batch of answers goes out in few
 * records and few system calls. */
#define GATHER_BYTES 16384

/* The reason of this thread's last TLS failure (stream_last_error). */
static _Thread_local char last_error[256];

const char *stream_last_error(void)
{
    return last_error[0] ? last_error : "TLS protocol error";
}

/* OpenSSL's thread-local error queue must be empty before each call for
 * SSL_get_error to be right. Rather than clear it before every read and
 * write (which costs more than one would think), a failure takes its
 * reason out of the queue (stream_last_error) and leaves it empty. */
enum stream_step stream_tls_step(SSL *ssl, int rc)
{
    int saved = errno;
    int err = SSL_get_error(ssl, rc);
    if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE && err != SSL_ERROR_ZERO_RETURN)
        tls_last_error(last_error, sizeof last_error);
    switch (err) {
    case SSL_ERROR_WANT_READ:
        return STREAM_WAIT_READ;
    case SSL_ERROR_WANT_WRITE:
        return STREAM_WAIT_WRITE;
    case SSL_ERROR_ZERO_RETURN:
        return STREAM_EOF;
    case SSL_ERROR_SYSCALL:
        SSL_set_quiet_shutdown(ssl, 1);
        if (saved == 0) /* the peer closed without close_notify */
            return STREAM_EOF;
        errno = saved;
        return STREAM_FAIL;
    default:
        SSL_set_quiet_shutdown(ssl, 1);
        errno = EPROTO;
        return STREAM_FAIL;
    }
}

/* Waits for what OpenSSL asked; -1 past the deadline (ETIMEDOUT). */
static int wait_for(const struct stream *s, enum stream_step step, long long deadline)
{
    return net_wait_ready(s->fd, step == STREAM_WAIT_READ ? POLLIN : POLLOUT, deadline);
}

static ssize_t tls_read(const struct stream *s, void *buf, size_t len, bool wait,
                        long long deadline)
{
    for (;;) {
        size_t n = 0;
        errno = 0;
        int rc = SSL_read_ex(s->ssl, buf, len, &n);
        if (rc == 1)
            return (ssize_t)n;
        enum stream_step step = stream_tls_step(s->ssl, rc);
        if (step == STREAM_EOF)
            return 0;
        if (step == STREAM_FAIL)
            return -1;
        if (!wait) {
            errno = EAGAIN;
            return -1;
        }
        if (wait_for(s, step, deadline) < 0)
            return -1;
    }
}

ssize_t stream_read_until(const struct stream *s, void *buf, size_t len, long long deadline)
{
    if (!s->ssl)
        return net_recv_until(s->fd, buf, len, deadline);
    return tls_read(s, buf, len, true, deadline);
}

enum stream_read stream_read_full(const struct stream *s, void *buf, size_t n,
                                  long long deadline)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = stream_read_until(s, (char *)buf + got, n - got, deadline);
        if (r < 0)
            return STREAM_READ_ERR;
        if (r == 0) {
            if (got == 0)
                return STREAM_READ_EOF;
            errno = EPIPE;
            return STREAM_READ_ERR;
        }
        got += (size_t)r;
    }
    return STREAM_READ_OK;
}

ssize_t stream_read_now(const struct stream *s, void *buf, size_t len)
{
    if (s->ssl)
        return tls_read(s, buf, len, false, 0);
    ssize_t n;
    do
        n = recv(s->fd, buf, len, MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    return n;
}

bool stream_has_pending(const struct stream *s)
{
    return s->ssl && SSL_has_pending(s->ssl);
}

bool stream_handshake_started(const struct stream *s)
{
    return s->ssl && !SSL_in_before(s->ssl);
}

bool stream_handshake_answered(const struct stream *s)
{
    return s->ssl && SSL_get_state(s->ssl) != TLS_ST_BEFORE;
}

bool stream_park(const struct stream *s)
{
    /* Refuses, harmlessly, if bytes are held: a record read in part, or
     * one not yet sent. */
    return !s->ssl || SSL_free_buffers(s->ssl) == 1;
}

/* Writes one whole buffer: OpenSSL must be called again with the same
 * bytes until it has taken them all. */
static int tls_write(const struct stream *s, const void *buf, size_t len, long long deadline)
{
    while (len > 0) {
        size_t n = 0;
        errno = 0;
        int rc = SSL_write_ex(s->ssl, buf, len, &n);
        if (rc == 1) {
            buf = (const char *)buf + n;
            len -= n;
            continue;
        }
        enum stream_step step = stream_tls_step(s->ssl, rc);
        if (step == STREAM_EOF) {
            errno = EPIPE;
            return -1;
        }
        if (step == STREAM_FAIL || wait_for(s, step, deadline) < 0)
            return -1;
    }
    return 0;
}

/* Small pieces are copied together; a piece as large as a record or
 * larger goes out from where it is. */
static int tls_writev(const struct stream *s, const struct iovec *iov, int iovcnt,
                      long long deadline)
{
    char gather[GATHER_BYTES];
    size_t used = 0;
    for (int i = 0; i < iovcnt; i++) {
        const char *p = iov[i].iov_base;
        size_t left = iov[i].iov_len;
        if (used + left > sizeof gather && used > 0) {
            if (tls_write(s, gather, used, deadline) < 0)
                return -1;
            used = 0;
        }
        if (left >= sizeof gather) {
            if (tls_write(s, p, left, deadline) < 0)
                return -1;
            continue;
        }
        memcpy(gather + used, p, left);
        used += left;
    }
    return used > 0 ? tls_write(s, gather, used, deadline) : 0;
}

/* iov[0..iovcnt) from byte skip on, into out (at most iovcnt entries);
 * returns how many entries. */
static int iov_from(const struct iovec *iov, int iovcnt, size_t skip, struct iovec *out)
{
    int n = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (skip >= iov[i].iov_len) {
            skip -= iov[i].iov_len;
            continue;
        }
        out[n++] = (struct iovec){.iov_base = (char *)iov[i].iov_base + skip,
                                  .iov_len = iov[i].iov_len - skip};
        skip = 0;
    }
    return n;
}

static ssize_t plain_writev_now(int fd, struct iovec *v, int n, short *wait_for)
{
    struct msghdr msg = {.msg_iov = v, .msg_iovlen = (size_t)n};
    size_t taken = 0;
    while (msg.msg_iovlen > 0) {
        /* sendmsg rather than writev: only send* takes MSG_NOSIGNAL. */
        ssize_t k = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            *wait_for = POLLOUT;
            break;
        }
        if (k < 0)
            return -1;
        taken += (size_t)k;
        while (msg.msg_iovlen > 0 && (size_t)k >= msg.msg_iov->iov_len) {
            k -= (ssize_t)msg.msg_iov->iov_len;
            msg.msg_iov++;
            msg.msg_iovlen--;
        }
        if (msg.msg_iovlen > 0) {
            msg.msg_iov->iov_base = (char *)msg.msg_iov->iov_base + k;
            msg.msg_iov->iov_len -= (size_t)k;
        }
    }
    return (ssize_t)taken;
}

/* One SSL_write of buf, whole or not at all: 1, 0 (wait: *wait_for) or
 * -1. */
static int tls_write_now(const struct stream *s, const void *buf, size_t len, short *wait_for)
{
    size_t n = 0;
    errno = 0;
    if (SSL_write_ex(s->ssl, buf, len, &n) == 1)
        return 1;
    enum stream_step step = stream_tls_step(s->ssl, 0);
    if (step == STREAM_WAIT_READ || step == STREAM_WAIT_WRITE) {
        *wait_for = step == STREAM_WAIT_READ ? POLLIN : POLLOUT;
        return 0;
    }
    if (step == STREAM_EOF)
        errno = EPIPE;
    return -1;
}

/* As tls_writev, without waiting: small pieces gathered into records. */
static ssize_t tls_writev_now(const struct stream *s, const struct iovec *v, int n,
                              short *wait_for)
{
    char gather[GATHER_BYTES];
    size_t taken = 0;
    int i = 0;
    while (i < n) {
        const void *chunk = v[i].iov_base;
        size_t len = v[i].iov_len;
        int next = i + 1;
        if (len < sizeof gather) { /* gather this piece and those after it that fit */
            len = 0;
            for (next = i; next < n && (len == 0 || len + v[next].iov_len <= sizeof gather) &&
                           v[next].iov_len < sizeof gather; next++) {
                memcpy(gather + len, v[next].iov_base, v[next].iov_len);
                len += v[next].iov_len;
            }
            chunk = gather;
        }
        int rc = tls_write_now(s, chunk, len, wait_for);
        if (rc < 0)
            return -1;
        if (rc == 0)
            break;
        taken += len;
        i = next;
    }
    return (ssize_t)taken;
}

ssize_t stream_writev_now(const struct stream *s, const struct iovec *iov, int iovcnt,
                          size_t skip, short *wait_for)
{
    struct iovec v[STREAM_IOV_MAX];
    if (iovcnt > STREAM_IOV_MAX) {
        errno = EINVAL;
        return -1;
    }
    int n = iov_from(iov, iovcnt, skip, v);
    if (!s->ssl)
        return plain_writev_now(s->fd, v, n, wait_for);
    return tls_writev_now(s, v, n, wait_for);
}

int stream_writev_until(const struct stream *s, struct iovec *iov, int iovcnt,
                        long long deadline)
{
    if (!s->ssl)
        return net_writev_until(s->fd, iov, iovcnt, deadline);
    return tls_writev(s, iov, iovcnt, deadline);
}

int stream_write_until(const struct stream *s, const void *buf, size_t len, long long deadline)
{
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    return stream_writev_until(s, &iov, 1, deadline);
}

void stream_end_write(const struct stream *s)
{
    if (s->ssl && SSL_is_init_finished(s->ssl)) {
        ERR_clear_error();
        SSL_shutdown(s->ssl);
        ERR_clear_error();
    }
    shutdown(s->fd, SHUT_WR);
}

/* Why a handshake that OpenSSL refused failed, in words and in kind. */
static enum tls_failure why_refused(SSL *ssl, int err, char *out, size_t outlen)
{
    unsigned long e = ERR_peek_last_error();
    int reason = ERR_GET_REASON(e);
    long verify = SSL_get_verify_result(ssl);
    char what[256];
    tls_last_error(what, sizeof what);
    if (verify != X509_V_OK) {
        snprintf(out, outlen, "certificate verify failed: %s",
                 X509_verify_cert_error_string(verify));
        return TLS_FAIL_VERIFY;
    }
    if (reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE ||
        reason == SSL_R_CERTIFICATE_VERIFY_FAILED ||
        reason == SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED ||
        reason == SSL_R_SSLV3_ALERT_BAD_CERTIFICATE ||
        reason == SSL_R_TLSV1_ALERT_UNKNOWN_CA) {
        snprintf(out, outlen, "%s", what);
        return TLS_FAIL_VERIFY;
    }
    if (err == SSL_ERROR_SYSCALL) {
        snprintf(out, outlen, "%s", errno ? strerror(errno) : "the peer closed the connection");
        return TLS_FAIL_CLOSED;
    }
    bool in_clear = reason == SSL_R_WRONG_VERSION_NUMBER || reason == SSL_R_HTTP_REQUEST ||
                    reason == SSL_R_UNKNOWN_PROTOCOL || reason == SSL_R_PACKET_LENGTH_TOO_LONG;
    snprintf(out, outlen, "%s%s", what[0] ? what : "TLS protocol error",
             in_clear ? " (not TLS: a client in clear on the TLS port?)" : "");
    return TLS_FAIL_PROTOCOL;
}

int stream_handshake_step(const struct stream *s, short *wait_for, enum tls_failure *why,
                          char *err, size_t errlen)
{
    ERR_clear_error();
    errno = 0;
    int rc = SSL_do_handshake(s->ssl);
    if (rc == 1)
        return 1;
    int e = SSL_get_error(s->ssl, rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        *wait_for = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
        return 0;
    }
    if (e == SSL_ERROR_ZERO_RETURN) {
        *why = TLS_FAIL_CLOSED;
        snprintf(err, errlen, "the peer closed the connection");
    } else {
        *why = why_refused(s->ssl, e, err, errlen);
    }
    SSL_set_quiet_shutdown(s->ssl, 1);
    return -1;
}

int stream_handshake(const struct stream *s, long long deadline, enum tls_failure *why,
                     char *err, size_t errlen)
{
    short wait_for;
    int rc;
    while ((rc = stream_handshake_step(s, &wait_for, why, err, errlen)) == 0) {
        if (net_wait_ready(s->fd, wait_for, deadline) == 0)
            continue;
        *why = errno == ETIMEDOUT ? TLS_FAIL_TIMEOUT : TLS_FAIL_CLOSED;
        snprintf(err, errlen, "%s",
                 errno == ETIMEDOUT ? "the handshake timed out" : strerror(errno));
        SSL_set_quiet_shutdown(s->ssl, 1);
        return -1;
    }
    return rc == 1 ? 0 : -1;
}
