/*
 * frame_io.c - sending a whole frame (see frame_io.h).
 */
#include "frame_io.h"
#include "frame.h"
#include "stream.h"

#include <errno.h>
#include <sys/uio.h>

ssize_t frame_io_send(int fd, const char *content_type, const char *content_encoding,
                      const void *content, size_t length, long long deadline)
{
    struct stream s = {.fd = fd};
    return frame_io_send_on(&s, content_type, content_encoding, content, length, deadline);
}

ssize_t frame_io_send_on(const struct stream *s, const char *content_type,
                         const char *content_encoding, const void *content, size_t length,
                         long long deadline)
{
    uint8_t head[FRAME_ENCODED_HEADER_MAX];
    int n = frame_encode_header(head, content_type, content_encoding, length);
    if (n < 0) {
        errno = EINVAL;
        return -1;
    }
    struct iovec iov[2] = {{.iov_base = head, .iov_len = (size_t)n},
                           {.iov_base = (void *)content, .iov_len = length}};
    if (stream_writev_until(s, iov, 2, deadline) < 0)
        return -1;
    return (ssize_t)((size_t)n + length);
}
