/*
 * frame_io.c - sending a whole frame (see frame_io.h).
 */
#include "frame_io.h"
#include "frame.h"
#include "net.h"

#include <errno.h>
#include <sys/uio.h>

ssize_t frame_io_send(int fd, const char *content_type, const char *content_encoding,
                      const void *content, size_t length, long long deadline)
{
    uint8_t head[FRAME_ENCODED_HEADER_MAX];
    int n = frame_encode_header(head, content_type, content_encoding, length);
    if (n < 0) {
        errno = EINVAL;
        return -1;
    }
    struct iovec iov[2] = {{.iov_base = head, .iov_len = (size_t)n},
                           {.iov_base = (void *)content, .iov_len = length}};
    if (net_writev_until(fd, iov, 2, deadline) < 0)
        return -1;
    return (ssize_t)((size_t)n + length);
}
