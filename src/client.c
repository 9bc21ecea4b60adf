/*
 * client.c - request/response exchange for clients.
 *
 * Works the same against our server (which keeps the connection open) and
 * the original one (which closes after its answer): we read exactly one
 * frame and never wait for end of stream.
 */
#include "client.h"
#include "frame_io.h"
#include "log.h"
#include "net.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

/* Reads one frame into resp->raw; returns 0 or -1 with err set. */
static int read_frame(int fd, size_t max_content, long long deadline,
                      struct client_response *resp, char *err, size_t errlen)
{
    struct frame_decoder dec;
    struct frame f;
    enum frame_status st;
    memset(resp, 0, sizeof *resp);
    frame_decoder_init(&dec, max_content);
    while ((st = frame_decode(&dec, buf_head(&resp->raw), resp->raw.len, &f)) == FRAME_NEED_MORE) {
        if (!buf_reserve(&resp->raw, frame_decoder_wanted(&dec))) {
            snprintf(err, errlen, "out of memory for a %zu-byte response",
                     frame_decoder_wanted(&dec));
            return -1;
        }
        /* Read no further than this frame: the rest is not ours. */
        size_t want = frame_decoder_wanted(&dec) - resp->raw.len;
        ssize_t n = net_recv_until(fd, buf_tail(&resp->raw), want, deadline);
        if (n > 0) {
            resp->raw.len += (size_t)n;
            continue;
        }
        if (n == 0)
            snprintf(err, errlen, "the server closed the connection %s",
                     resp->raw.len ? "in the middle of its response" : "without answering");
        else if (errno == ETIMEDOUT || errno == EAGAIN || errno == EWOULDBLOCK)
            snprintf(err, errlen, "timed out waiting for the %s",
                     resp->raw.len ? "rest of the response" : "response");
        else
            snprintf(err, errlen, "reading the response: %s", strerror(errno));
        return -1;
    }
    if (st != FRAME_COMPLETE) {
        snprintf(err, errlen, "bad response (%s): %s", proto_error_code(frame_status_error(st)), dec.error);
        return -1;
    }
    resp->header = f.header;
    resp->content = f.content;
    resp->length = f.header.content_length;
    return 0;
}

int client_read_response(int fd, size_t max_content, long long deadline,
                         struct client_response *resp, char *err, size_t errlen)
{
    if (read_frame(fd, max_content, deadline, resp, err, errlen) == 0) {
        log_trace_message("received from", "server", buf_head(&resp->raw),
                          resp->raw.len - resp->length, resp->content, resp->length);
        return 0;
    }
    client_response_free(resp); /* nothing to hand back on failure */
    return -1;
}

int client_exchange(int fd, const char *content_type, const char *content_encoding,
                    const void *content, size_t length, size_t max_content, long long deadline,
                    struct client_response *resp, char *err, size_t errlen)
{
    memset(resp, 0, sizeof *resp);
    if (log_verbosity() >= 2) {
        uint8_t head[FRAME_ENCODED_HEADER_MAX];
        int n = frame_encode_header(head, content_type, content_encoding, length);
        if (n > 0)
            log_trace_message("sending to", "server", head, (size_t)n, content, length);
    }
    if (frame_io_send(fd, content_type, content_encoding, content, length, deadline) < 0) {
        int e = errno;
        snprintf(err, errlen, "sending the request: %s%s", e == ETIMEDOUT ? "timed out" : strerror(e),
                 e == EPIPE || e == ECONNRESET ? " (the server closed the connection)" : "");
        return -1;
    }
    return client_read_response(fd, max_content, deadline, resp, err, errlen);
}

void client_response_free(struct client_response *resp)
{
    buf_free(&resp->raw);
}

char *client_search_content(const char *action, const char *value)
{
    json_t *req = json_pack("{s:s, s:s}", "action", action, "value", value);
    if (!req)
        return NULL;
    char *text = json_dumps(req, 0);
    json_decref(req);
    return text;
}
