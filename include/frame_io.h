/*
 * frame_io.h - a whole frame onto a socket: the encoder's header and the
 * content in one writev (so a message never leaves as three small
 * packets), bounded by a deadline. Shared by the server and the client;
 * the codec itself (frame.h) does no I/O.
 */
#ifndef ENCHUFE_FRAME_IO_H
#define ENCHUFE_FRAME_IO_H

#include <stddef.h>
#include <sys/types.h>

/* Sends one whole message, finishing by the absolute monotime_ms()
 * deadline (0 = none). Returns the bytes sent, or -1 (errno; EINVAL if
 * a header string is too long to encode, ETIMEDOUT at the deadline). */
ssize_t frame_io_send(int fd, const char *content_type, const char *content_encoding,
                      const void *content, size_t length, long long deadline);

/* The same on a stream (in clear or TLS). */
struct stream;
ssize_t frame_io_send_on(const struct stream *s, const char *content_type,
                         const char *content_encoding, const void *content, size_t length,
                         long long deadline);

#endif
