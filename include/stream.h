/*
 * stream.h - reads and writes on a connection, in clear or in TLS, with
 * the deadlines of net.h.
 *
 * A stream is a socket and, for TLS, its SSL object (tls.h). Every call
 * behaves the same either way: a read returns bytes, 0 at the end of the
 * stream, or -1 with errno; a write sends everything or fails. In TLS the
 * socket is non-blocking, OpenSSL says what it waits for (to read or to
 * write, in either call), and the call waits for that in poll, never
 * past its deadline. A TLS failure that leaves the connection unusable
 * (a protocol error, a reset) marks it so that closing it sends nothing
 * more.
 */
#ifndef ENCHUFE_STREAM_H
#define ENCHUFE_STREAM_H

#include "tls.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

struct stream {
    int fd;
    SSL *ssl; /* NULL: in clear */
};

/* The most iovecs stream_writev_now takes at once. */
#define STREAM_IOV_MAX 256

/* Reads up to len bytes, waiting no later than the absolute monotime_ms()
 * deadline (0 = none; ETIMEDOUT). A TLS error is EPROTO. */
ssize_t stream_read_until(const struct stream *s, void *buf, size_t len, long long deadline);

/* Result of stream_read_full: three outcomes, never a short count. */
enum stream_read {
    STREAM_READ_OK = 0,   /* all n bytes arrived */
    STREAM_READ_EOF = 1,  /* the peer closed before sending a single byte */
    STREAM_READ_ERR = -1, /* error (errno set; the end after some bytes is EPIPE) */
};

/* Reads exactly n bytes by the deadline (0 = none; ETIMEDOUT). */
enum stream_read stream_read_full(const struct stream *s, void *buf, size_t n,
                                  long long deadline);

/* Reads what is there now, never waiting: -1 with EAGAIN if nothing (in
 * TLS, also when only part of a record has arrived). */
ssize_t stream_read_now(const struct stream *s, void *buf, size_t len);

/* True if bytes already read from the socket wait in OpenSSL, where poll
 * cannot see them: such a connection must be read, not parked. */
bool stream_has_pending(const struct stream *s);

/* The connection is about to wait (parked): OpenSSL's record buffers
 * (about 34 KiB) are given back, unless they hold bytes. True if the
 * session holds none now (or the stream is in clear). */
bool stream_park(const struct stream *s);

/* True once a TLS handshake has taken its first step (OpenSSL then holds
 * its state until it ends). */
bool stream_handshake_started(const struct stream *s);

/* True once the server has read its client's first flight (the
 * ClientHello) whole and answered it. */
bool stream_handshake_answered(const struct stream *s);

/* Writes what the socket takes now of iov[0..iovcnt), from byte `skip`
 * on, never waiting. Returns the bytes it took (in TLS, those of whole
 * records OpenSSL accepted); fewer than were left means the socket is
 * full, and *wait_for says what to wait for before the next try (POLLOUT,
 * or POLLIN when TLS must read first). -1 on an error (errno). A TLS
 * write that had to stop must be retried with the same bytes first, so
 * the caller keeps what was not taken and offers it again. */
ssize_t stream_writev_now(const struct stream *s, const struct iovec *iov, int iovcnt,
                          size_t skip, short *wait_for);

/* Writes all of iov by the deadline (0 = none). iov is modified. */
int stream_writev_until(const struct stream *s, struct iovec *iov, int iovcnt,
                        long long deadline);
int stream_write_until(const struct stream *s, const void *buf, size_t len, long long deadline);

/* Says that nothing more will be written: close_notify in TLS (one try),
 * then a FIN. Reading goes on. */
void stream_end_write(const struct stream *s);

/* What a failed SSL call (rc, its return value) waits for, or how it
 * ended. On STREAM_FAIL errno says what (EPROTO: a TLS error, whose
 * reason stream_last_error gives) and the session is marked to close
 * without sending anything more; OpenSSL's error queue is left empty.
 * For callers that drive OpenSSL from their own event loop. */
enum stream_step { STREAM_WAIT_READ, STREAM_WAIT_WRITE, STREAM_EOF, STREAM_FAIL };
enum stream_step stream_tls_step(SSL *ssl, int rc);

/* After a read or write failed with EPROTO: OpenSSL's reason, in words. */
const char *stream_last_error(void);

/* Runs the TLS handshake as far as it goes without waiting: 1 when it is
 * done, 0 when it waits for the peer (*wait_for: POLLIN or POLLOUT), -1
 * when it failed, with *why saying why and a line in err. */
int stream_handshake_step(const struct stream *s, short *wait_for, enum tls_failure *why,
                          char *err, size_t errlen);

/* Runs the TLS handshake (either side, as the SSL object was set up) by
 * the deadline. Returns 0, or -1 with *why saying why and a line in err. */
int stream_handshake(const struct stream *s, long long deadline, enum tls_failure *why,
                     char *err, size_t errlen);

#endif
