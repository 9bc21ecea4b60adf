/*
 * app_conn.c - the worker's side of one application connection.
 *
 * Bytes flow one way: socket -> buffer -> frame decoder -> app handler ->
 * frame encoder -> socket. The buffer holds the bytes of the current frame
 * and anything the client pipelined after it; it only grows to what the
 * decoder says the frame needs, which the decoder has already checked
 * against --max-content, so a hostile length never commits memory.
 *
 * Time is bounded at every step: the wait for a request by the idle
 * timeout, the whole request (not each read) by the read timeout, so a
 * client dribbling a byte at a time cannot hold the worker, and the whole
 * response by the write timeout.
 *
 * Pipelined requests already in the buffer are all answered before the
 * next read, and their answers leave together (outbox.h). A client that
 * keeps its pipeline full gets a turn, not the worker: when its turn is
 * over (worker_turn_over), reads stop at the end of the current request,
 * and once the buffer is empty the connection goes back to the queue.
 */
#include "app_conn.h"
#include "app.h"
#include "buf.h"
#include "frame.h"
#include "log.h"
#include "monotime.h"
#include "net.h"
#include "outbox.h"
#include "stream.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* After an error answer, how much of what the client still sends we read
 * and drop, and for how long, so that closing does not reset the
 * connection before the client has read the answer. */
#define LINGER_BYTES ((size_t)256 << 10)
#define LINGER_MS 1000

struct app_conn {
    struct worker *worker;
    const struct app_conn_config *cfg;
    const struct stream *s; /* the socket, and its TLS state */
    long long request_deadline; /* when the current request must be in */
    bool answered;       /* a request was answered in this turn */
    bool last_read_full; /* the last recv filled the buffer: more may wait */
    uint64_t last_read_ns;  /* when the last bytes were read */
    uint64_t frame_start_ns; /* when the current request's first byte was read */
    bool turn_over;      /* other connections wait: hand this one back soon */
    struct frame_decoder decoder;
    struct buf *in;      /* the worker's buffer (worker_buf) */
    struct outbox *out;  /* answers not sent yet */
    char peer[128]; /* filled at the start in verbose mode, else on first error */
};

/* The client's address, for messages. getpeername costs a system call,
 * so it is only made when something is going to be printed. */
static const char *peer(struct app_conn *c)
{
    if (c->peer[0] == '\0' && net_peer_address(c->s->fd, c->peer, sizeof c->peer) < 0)
        strcpy(c->peer, "?");
    return c->peer;
}

static void trace(const char *what, struct app_conn *c, const char *ctype, const char *cenc,
                  const void *content, size_t len);

/* Sends every answer waiting in the outbox; false if the client is gone. */
static bool flush(struct app_conn *c)
{
    if (c->out->n == 0)
        return true;
    ssize_t n = outbox_send(c->out, c->s, monotime_deadline(c->cfg->write_timeout_ms));
    if (n >= 0) {
        uint64_t now = monotime_ns();
        for (int i = 0; i < c->out->n; i++) {
            const struct app_response *r = &c->out->answers[i].resp;
            worker_count(c->worker, r->kind, 1);
            worker_record_latency(c->worker, now - c->out->answers[i].started_ns);
            log_verbose("Sent response to %s: %s, %zu bytes%s%s", c->peer, r->content_type,
                        r->length, r->error ? ", error " : "", r->error ? r->error : "");
        }
        worker_count(c->worker, COUNTER_BYTES_OUT, (uint64_t)n);
    } else {
        log_verbose("%s: send: %s", c->peer, strerror(errno));
    }
    outbox_clear(c->out);
    return n >= 0;
}

/* Queues an answer (sending the outbox first if it is full); takes what
 * resp owns. False if the client is gone. */
static bool queue_answer(struct app_conn *c, struct app_response *resp)
{
    trace("sending to", c, resp->content_type, resp->content_encoding, resp->content,
          resp->length);
    if (outbox_full(c->out) && !flush(c))
        return false;
    return outbox_add(c->out, resp, c->frame_start_ns) == 0;
}

/* Half-closes, then reads and drops what the client is still sending for
 * a short while: closing with unread data would send a reset, and the
 * client's kernel could discard our error answer before it is read. */
static void linger_close(struct app_conn *c)
{
    char sink[4096];
    size_t dropped = 0;
    long long deadline = monotime_deadline(LINGER_MS);
    stream_end_write(c->s);
    /* What arrives now is only drained, so it is read raw, not decrypted. */
    while (dropped < LINGER_BYTES) {
        ssize_t n = net_recv_until(c->s->fd, sink, sizeof sink, deadline);
        if (n <= 0)
            break;
        dropped += (size_t)n;
    }
}

/* The stream can no longer be trusted: say why, then close. */
static void answer_error(struct app_conn *c, enum proto_error e, const char *message)
{
    struct app_response resp;
    log_verbose("%s: %s: %s", c->peer, proto_error_code(e), message);
    if (app_error_response(e, message, &resp) == 0 && queue_answer(c, &resp) && flush(c))
        linger_close(c);
    app_response_free(&resp);
}

static void answer_read_failure(struct app_conn *c, ssize_t n)
{
    char msg[96];
    if (n == 0) {
        log_verbose("%s closed the connection in the middle of a request", c->peer);
    } else if (errno == ETIMEDOUT) {
        snprintf(msg, sizeof msg, "the request did not arrive within %g s",
                 c->cfg->read_timeout_ms / 1000.0);
        answer_error(c, PROTO_ERR_TIMEOUT, msg);
    } else {
        log_verbose("%s: recv: %s", c->peer, strerror(errno));
    }
}

/* Reads whatever has arrived of the current request; false when the
 * connection is over. */
static bool read_more(struct app_conn *c)
{
    size_t want = frame_decoder_wanted(&c->decoder);
    if (!buf_reserve(c->in, want)) {
        char msg[96];
        snprintf(msg, sizeof msg, "the server has no memory for a %zu-byte request now", want);
        log_error("%s: out of memory for a %zu-byte request", peer(c), want);
        answer_error(c, PROTO_ERR_NO_MEMORY, msg);
        return false;
    }
    if (c->request_deadline == 0)
        c->request_deadline = monotime_deadline(c->cfg->read_timeout_ms);
    /* At the end of a turn, read no further than this request, so that
     * the buffer empties and the connection can be handed back whole. */
    size_t room = c->turn_over ? want - c->in->len : buf_room(c->in);
    ssize_t n = stream_read_until(c->s, buf_tail(c->in), room, c->request_deadline);
    if (n <= 0) {
        answer_read_failure(c, n);
        return false;
    }
    c->in->len += (size_t)n;
    c->last_read_full = (size_t)n == room;
    c->last_read_ns = monotime_ns();
    worker_count(c->worker, COUNTER_BYTES_IN, (uint64_t)n);
    return true;
}

/* -v -v: the message as it went over the wire. */
static void trace(const char *what, struct app_conn *c, const char *ctype, const char *cenc,
                  const void *content, size_t len)
{
    if (log_verbosity() < 2)
        return;
    uint8_t head[FRAME_ENCODED_HEADER_MAX];
    int n = frame_encode_header(head, ctype, cenc, len);
    if (n > 0)
        log_trace_message(what, peer(c), head, (size_t)n, content, len);
}

static bool answer_request(struct app_conn *c, const struct frame *req)
{
    struct app_response resp;
    if (log_verbosity() >= 2) /* as received: the header the client wrote */
        log_trace_message("received from", peer(c), buf_head(c->in),
                          req->size - req->header.content_length, req->content,
                          req->header.content_length);
    log_verbose("Received request from %s: %s, %zu bytes", c->peer, req->header.content_type,
                req->header.content_length);
    int rc = app_handle_request(req, &c->cfg->server, &resp);
    if (rc < 0) {
        app_response_free(&resp);
        log_error("%s: out of memory answering a request", peer(c));
        answer_error(c, PROTO_ERR_NO_MEMORY, "the server ran out of memory answering");
        return false;
    }
    bool queued = queue_answer(c, &resp);
    app_response_free(&resp);
    return queued;
}

/* Decodes, answers and consumes one request whose first bytes are in the
 * buffer; false when the connection is over. */
static bool serve_next(struct app_conn *c)
{
    struct frame req;
    enum frame_status st;
    while ((st = frame_decode(&c->decoder, buf_head(c->in), c->in->len, &req)) == FRAME_NEED_MORE)
        if (!flush(c) || !read_more(c)) /* the client may wait for these answers */
            return false;
    if (st != FRAME_COMPLETE) {
        answer_error(c, frame_status_error(st), c->decoder.error);
        return false;
    }
    bool ok = answer_request(c, &req);
    buf_consume(c->in, req.size);
    /* A request pipelined behind it began to arrive with the last read. */
    c->frame_start_ns = c->last_read_ns;
    c->answered = true;
    c->turn_over = c->turn_over || worker_turn_over(c->worker, 1);
    return ok;
}

/* A TLS handshake record (type 22, version 3.x) where a request should
 * start. Read as our framing it would announce a 5.6 KiB JSON header
 * whose first byte is a control character, never a valid request, and
 * waiting for all of it would hold the worker until the read timeout. */
static bool looks_like_tls(const struct app_conn *c)
{
    const uint8_t *b = buf_head(c->in);
    return !c->s->ssl && c->in->len >= 3 && b[0] == 0x16 && b[1] == 0x03 && b[2] <= 0x04;
}

enum boundary {
    NEXT_REQUEST, /* bytes of the next request are in the buffer */
    HANDED_ON,    /* parked in the poller, or back in the queue */
    CLOSE,        /* end of stream, idle timeout, stop or error */
};

/* Between requests: is there a next one to serve now? */
static enum boundary at_boundary(struct app_conn *c)
{
    c->request_deadline = 0;
    if (c->in->len > 0)
        return NEXT_REQUEST; /* pipelined: already here, no trip to the poller */
    if (!flush(c) || !buf_reserve(c->in, FRAME_PROTO_HEADER_LEN))
        return CLOSE;
    if (c->turn_over && worker_requeue(c->worker))
        return HANDED_ON;
    enum worker_wait why;
    size_t room = buf_room(c->in);
    ssize_t n = worker_next(c->worker, buf_tail(c->in), room,
                            c->answered && !c->last_read_full, &why);
    if (why == WORKER_PARKED)
        return HANDED_ON;
    if (why == WORKER_IDLE_TIMEOUT)
        log_verbose("%s: idle timeout", c->peer);
    else if (why == WORKER_ERROR)
        log_verbose("%s: recv: %s", c->peer, strerror(errno));
    if (n <= 0)
        return CLOSE;
    c->in->len = (size_t)n;
    if (looks_like_tls(c)) {
        log_info("%s: a TLS handshake on a port in clear: closing (TLS is served on "
                 "the --tls-port)", peer(c));
        return CLOSE;
    }
    c->last_read_full = (size_t)n == room;
    c->last_read_ns = c->frame_start_ns = monotime_ns();
    worker_count(c->worker, COUNTER_BYTES_IN, (uint64_t)n);
    c->request_deadline = monotime_deadline(c->cfg->read_timeout_ms);
    return NEXT_REQUEST;
}

void app_conn_serve(struct worker *w, void *arg)
{
    struct outbox out; /* not in c: its initializer would clear all of it, every time */
    outbox_init(&out);
    struct app_conn c = {.worker = w, .cfg = arg, .s = worker_stream(w), .in = worker_buf(w),
                         .out = &out};
    frame_decoder_init(&c.decoder, c.cfg->max_content);
    if (log_verbosity() >= 1)
        peer(&c);
    enum boundary b;
    while ((b = at_boundary(&c)) == NEXT_REQUEST && serve_next(&c))
        ;
    outbox_clear(&out); /* the client went away with answers pending */
    c.in->len = 0;        /* a closed connection's unread bytes go with it */
    buf_consume(c.in, 0);
    if (b != HANDED_ON)
        log_verbose("Closing connection to %s", c.peer);
}
