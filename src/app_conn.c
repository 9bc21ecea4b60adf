/*
 * app_conn.c - the worker's side of one application connection.
 *
 * Bytes flow one way: socket -> buffer -> frame decoder -> app handler ->
 * frame encoder -> socket. The buffer (the connection's `in`) holds the
 * bytes of the current frame and anything the client pipelined after it;
 * it grows step by step toward what the decoder says the frame needs,
 * which the decoder has already checked against --max-content, so a
 * hostile length never commits memory the client has not sent.
 *
 * A call serves the connection for as long as the client keeps it busy
 * and returns as soon as it would have to wait: for the next request, the
 * rest of one, or room to write answers. Everything needed to go on is in
 * the connection (the partial request in `in`, unsent answers in `out`,
 * the request's deadline), so the next call, in whatever worker, resumes
 * where this one stopped. Time is bounded at every step: the wait for a
 * request by the idle timeout, the whole request (not each read) by the
 * read timeout, so a client dribbling a byte at a time gets a `timeout`
 * answer, and the answers by the write timeout.
 *
 * Pipelined requests already in the buffer are all answered before the
 * next read, and their answers leave together (outbox.h). A client that
 * keeps its pipeline full gets a turn, not the worker: when its turn is
 * over (worker_turn_over), reads stop at the end of the current request,
 * and once the buffer is empty the connection goes back to the queue. No
 * request is read while answers wait to be written, so a client that
 * never reads costs one outbox of answers, no more.
 */
#include "app_conn.h"
#include "app.h"
#include "buf.h"
#include "frame.h"
#include "log.h"
#include "monotime.h"
#include "net.h"
#include "outbox.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* After an error answer, how much of what the client still sends we read
 * and drop, and for how long, so that closing does not reset the
 * connection before the client has read the answer. */
#define DRAIN_BYTES ((size_t)256 << 10)
#define DRAIN_MS 1000

/* A slow client's buffer starts at this (see reserve_for). */
#define SLOW_GROWTH_MIN ((size_t)16 << 10)

struct app_conn {
    struct worker *worker;
    struct conn *c;
    const struct app_conn_config *cfg;
    enum worker_next next; /* once a step says stop: what the connection needs */
    bool answered;         /* a request was answered in this call */
    bool last_read_full;   /* the last read filled the room: more may wait */
    uint64_t last_read_ns; /* when the last bytes were read */
    bool turn_over;        /* other connections wait: hand this one back soon */
    struct frame_decoder decoder;
    struct outbox *out;    /* answers not sent yet */
    char peer[128]; /* filled at the start in verbose mode, else on first error */
};

/* The client's address, for messages. getpeername costs a system call,
 * so it is only made when something is going to be printed. */
static const char *peer(struct app_conn *a)
{
    if (a->peer[0] == '\0' && net_peer_address(a->c->stream.fd, a->peer, sizeof a->peer) < 0)
        strcpy(a->peer, "?");
    return a->peer;
}

/* Ends this call with what the connection needs; returns false, so that
 * a step can `return stop(...)`. */
static bool stop(struct app_conn *a, enum worker_next next)
{
    a->next = next;
    return false;
}

static bool close_for(struct app_conn *a, enum conn_end why)
{
    a->c->end = why;
    return stop(a, WORKER_CLOSE);
}

static void trace(const char *what, struct app_conn *a, const char *ctype, const char *cenc,
                  const void *content, size_t len);

/* --- writing ------------------------------------------------------------------ */

static bool write_failed(struct app_conn *a)
{
    log_verbose("%s: send: %s", a->peer, strerror(errno));
    return close_for(a, errno == ETIMEDOUT ? CONN_END_WRITE_TIMEOUT : CONN_END_ERROR);
}

/* The socket took `taken` of what was offered: the rest waits in the
 * connection for room, by the write timeout. */
static bool wait_to_write(struct app_conn *a, const struct iovec *iov, int n, size_t taken)
{
    struct conn *c = a->c;
    if (!conn_keep_unsent(c, iov, n, taken)) {
        log_error("%s: out of memory keeping an answer the client is slow to read", peer(a));
        return close_for(a, CONN_END_ERROR);
    }
    c->wait = CONN_WAIT_WRITE;
    c->deadline_ms = c->write_deadline_ms;
    return stop(a, WORKER_WAIT);
}

/* Counts the outbox's answers as sent (they are the client's now, whole
 * or in the connection's `out`). */
static void count_sent(struct app_conn *a, size_t bytes)
{
    uint64_t now = monotime_ns();
    for (int i = 0; i < a->out->n; i++) {
        const struct app_response *r = &a->out->answers[i].resp;
        worker_count(a->worker, r->kind, 1);
        worker_record_latency(a->worker, now - a->out->answers[i].started_ns);
        log_verbose("Sent response to %s: %s, %zu bytes%s%s", a->peer, r->content_type,
                    r->length, r->error ? ", error " : "", r->error ? r->error : "");
    }
    worker_count(a->worker, COUNTER_BYTES_OUT, bytes);
}

/* Sends every answer waiting in the outbox; false if the connection must
 * wait for room (what was not taken is kept) or is over. */
static bool flush(struct app_conn *a)
{
    if (a->out->n == 0)
        return true;
    struct iovec iov[2 * OUTBOX_ANSWERS];
    int n = outbox_iov(a->out, iov);
    if (a->c->out.len > 0) { /* behind answers still waiting for room */
        count_sent(a, 0);
        bool ok = wait_to_write(a, iov, n, 0);
        outbox_clear(a->out);
        return ok;
    }
    a->c->write_deadline_ms = monotime_deadline(a->cfg->write_timeout_ms);
    ssize_t taken = worker_writev(a->worker, a->c, iov, n);
    bool ok = true;
    if (taken < 0) {
        ok = write_failed(a);
    } else {
        count_sent(a, (size_t)taken);
        if ((size_t)taken < a->out->bytes) {
            n = outbox_iov(a->out, iov); /* as it was: the write may have moved it */
            ok = wait_to_write(a, iov, n, (size_t)taken);
        }
    }
    outbox_clear(a->out);
    return ok;
}

/* Writes what an earlier call could not; false if it must wait still. */
static bool flush_unsent(struct app_conn *a)
{
    struct conn *c = a->c;
    if (c->out.len == 0)
        return true;
    struct iovec iov = {.iov_base = buf_head(&c->out), .iov_len = c->out.len};
    ssize_t taken = worker_writev(a->worker, c, &iov, 1);
    if (taken < 0)
        return write_failed(a);
    worker_count(a->worker, COUNTER_BYTES_OUT, (uint64_t)taken);
    buf_consume(&c->out, (size_t)taken);
    if (c->out.len > 0) {
        c->wait = CONN_WAIT_WRITE;
        c->deadline_ms = c->write_deadline_ms;
        return stop(a, WORKER_WAIT);
    }
    return true;
}

/* The outbox's next answer, to be written in place (sending the outbox
 * first if it is full); NULL if the connection cannot go on now. *room
 * is false if the socket took no more: the answer joins those waiting. */
static struct app_response *next_answer(struct app_conn *a, bool *room)
{
    *room = true;
    if (outbox_full(a->out) && !(*room = flush(a)) && a->next != WORKER_WAIT)
        return NULL;
    return outbox_next(a->out);
}

/* Queues the answer written at next_answer(). False if the connection
 * cannot go on now. */
static bool commit_answer(struct app_conn *a, bool room)
{
    const struct app_response *resp = outbox_next(a->out);
    trace("sending to", a, resp->content_type, resp->content_encoding, resp->content,
          resp->length);
    if (outbox_commit(a->out, a->c->request_start_ns) < 0) {
        app_response_free(outbox_next(a->out));
        log_error("%s: an answer's header could not be encoded", peer(a));
        return close_for(a, CONN_END_ERROR);
    }
    /* The socket is full: this answer joins those waiting, and the call
     * ends. */
    return room || flush(a);
}

/* Queues an answer made elsewhere; takes what resp owns. */
static bool add_answer(struct app_conn *a, struct app_response *resp)
{
    bool room;
    struct app_response *slot = next_answer(a, &room);
    if (!slot)
        return false;
    app_response_move(slot, resp);
    return commit_answer(a, room);
}

/* --- closing after an error ------------------------------------------------- */

/* Half-closed, the connection reads and drops what the client is still
 * sending for a short while: closing with unread data would send a
 * reset, and the client's kernel could discard our error answer before
 * it is read. */
static bool drain(struct app_conn *a)
{
    struct conn *c = a->c;
    char sink[4096];
    c->wait = CONN_WAIT_CLOSE;
    while (c->drained < DRAIN_BYTES) {
        ssize_t n = worker_read(a->worker, c, sink, sizeof sink, false);
        if (n > 0) {
            c->drained += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EAGAIN)
            return stop(a, WORKER_WAIT);
        break; /* the client closed, or the second is over */
    }
    return close_for(a, c->end); /* what the error answer said */
}

/* The answer is out: say that nothing more will be written, then drain. */
static bool start_drain(struct app_conn *a)
{
    struct conn *c = a->c;
    stream_end_write(&c->stream);
    c->wait = CONN_WAIT_CLOSE;
    c->deadline_ms = monotime_deadline(DRAIN_MS);
    c->drained = 0;
    return drain(a);
}

/* The stream can no longer be trusted: say why, then close (counted as
 * `why` ended it). */
static bool answer_error(struct app_conn *a, enum proto_error e, const char *message,
                         enum conn_end why)
{
    struct app_response resp;
    struct conn *c = a->c;
    log_verbose("%s: %s: %s", a->peer, proto_error_code(e), message);
    c->closing = true;
    c->end = why;
    buf_consume(&c->in, c->in.len); /* nothing more of it will be read */
    bool ok = app_error_response(e, message, &resp) == 0 && add_answer(a, &resp) && flush(a);
    app_response_free(&resp);
    if (!ok)
        return false;
    return start_drain(a);
}

/* An answer said the connection ends with it: send what is queued, then
 * close as after an error (the rest of what the client sends is dropped). */
static bool close_after_answers(struct app_conn *a)
{
    struct conn *c = a->c;
    c->closing = true;
    c->end = CONN_END_NORMAL;
    buf_consume(&c->in, c->in.len);
    if (!flush(a))
        return false;
    return start_drain(a);
}

/* --- reading -------------------------------------------------------------------- */

static bool answer_timeout(struct app_conn *a)
{
    char msg[96];
    snprintf(msg, sizeof msg, "the request did not arrive within %g s",
             a->cfg->read_timeout_ms / 1000.0);
    return answer_error(a, PROTO_ERR_TIMEOUT, msg, CONN_END_READ_TIMEOUT);
}

/* A read within a request failed, or found nothing yet. */
static bool read_failed(struct app_conn *a, ssize_t n)
{
    if (n == 0) {
        log_verbose("%s closed the connection in the middle of a request", a->peer);
        return close_for(a, CONN_END_NORMAL);
    }
    if (errno == EAGAIN)
        return stop(a, WORKER_WAIT);
    if (errno == ETIMEDOUT)
        return answer_timeout(a);
    log_verbose("%s: recv: %s", a->peer, strerror(errno));
    return close_for(a, errno == ECONNABORTED ? CONN_END_CUT : CONN_END_ERROR);
}

/* Room for what the frame needs: all of it at once (only address space
 * until the client sends the bytes; a connection that has to wait for
 * them keeps only what it was sent, worker.h), so that a request too large
 * for the memory there is gets its answer at once. But a slow client's
 * buffer grows in steps, doubling what it holds: one that sends a byte
 * now and then would otherwise have a megabyte mapped and unmapped for
 * each, and the threads' page-table lock would pass it around. */
static bool reserve_for(struct app_conn *a, size_t want)
{
    struct buf *in = &a->c->in;
    size_t step = in->len < SLOW_GROWTH_MIN / 2 ? SLOW_GROWTH_MIN : 2 * in->len;
    if (buf_reserve(in, a->c->slow && step < want ? step : want))
        return true;
    char msg[96];
    snprintf(msg, sizeof msg, "the server has no memory for a %zu-byte request now", want);
    log_error("%s: out of memory for a %zu-byte request", peer(a), want);
    return answer_error(a, PROTO_ERR_NO_MEMORY, msg, CONN_END_ERROR);
}

/* Reads whatever has arrived of the current request; false when the call
 * must end (wait for more, or close). */
static bool read_more(struct app_conn *a)
{
    struct conn *c = a->c;
    size_t want = frame_decoder_wanted(&a->decoder);
    if (!reserve_for(a, want))
        return false;
    if (c->request_deadline_ms == 0)
        c->request_deadline_ms = monotime_deadline(a->cfg->read_timeout_ms);
    c->wait = CONN_WAIT_REQUEST;
    c->deadline_ms = c->request_deadline_ms;
    /* At the end of a turn, read no further than this request, so that
     * the buffer empties and the connection can be handed back whole. */
    size_t room = buf_room(&c->in);
    if (a->turn_over && want > c->in.len && want - c->in.len < room)
        room = want - c->in.len;
    ssize_t n = worker_read(a->worker, c, buf_tail(&c->in), room, !a->last_read_full);
    if (n <= 0)
        return read_failed(a, n);
    c->in.len += (size_t)n;
    a->last_read_full = (size_t)n == room;
    a->last_read_ns = monotime_ns();
    worker_count(a->worker, COUNTER_BYTES_IN, (uint64_t)n);
    return true;
}

/* -v -v: the message as it went over the wire. */
static void trace(const char *what, struct app_conn *a, const char *ctype, const char *cenc,
                  const void *content, size_t len)
{
    if (log_verbosity() < 2)
        return;
    uint8_t head[FRAME_ENCODED_HEADER_MAX];
    int n = frame_encode_header(head, ctype, cenc, len);
    if (n > 0)
        log_trace_message(what, peer(a), head, (size_t)n, content, len);
}

static bool answer_request(struct app_conn *a, const struct frame *req)
{
    struct buf *in = &a->c->in;
    if (log_verbosity() >= 2) /* as received: the header the client wrote */
        log_trace_message("received from", peer(a), buf_head(in),
                          req->size - req->header.content_length, req->content,
                          req->header.content_length);
    log_verbose("Received request from %s: %s, %zu bytes", a->peer, req->header.content_type,
                req->header.content_length);
    /* Written where it waits to go out: no copy of it. */
    bool room;
    struct app_response *resp = next_answer(a, &room);
    if (!resp)
        return false;
    if (app_handle_request(req, &a->cfg->server, resp) < 0) {
        app_response_free(resp);
        log_error("%s: out of memory answering a request", peer(a));
        return answer_error(a, PROTO_ERR_NO_MEMORY, "the server ran out of memory answering",
                            CONN_END_ERROR);
    }
    bool close_after = resp->close_after;
    bool queued = commit_answer(a, room);
    if (queued && close_after)
        return close_after_answers(a);
    return queued;
}

/* Decodes, answers and consumes one request whose first bytes are in the
 * buffer; false when the call must end. */
static bool serve_next(struct app_conn *a)
{
    struct conn *c = a->c;
    struct frame req;
    enum frame_status st;
    while ((st = frame_decode(&a->decoder, buf_head(&c->in), c->in.len, &req)) ==
           FRAME_NEED_MORE)
        if (!flush(a) || !read_more(a)) /* the client may wait for these answers */
            return false;
    if (st != FRAME_COMPLETE)
        return answer_error(a, frame_status_error(st), a->decoder.error, CONN_END_ERROR);
    bool ok = answer_request(a, &req);
    if (!c->closing) /* closing dropped everything read */
        buf_consume(&c->in, req.size);
    c->request_deadline_ms = 0;
    /* A request pipelined behind it began to arrive with the last read. */
    c->request_start_ns = a->last_read_ns;
    a->answered = true;
    a->turn_over = a->turn_over || worker_turn_over(a->worker, 1);
    return ok;
}

/* A TLS handshake record (type 22, version 3.x) where a request should
 * start. Read as our framing it would announce a 5.6 KiB JSON header
 * whose first byte is a control character, never a valid request, and
 * waiting for all of it would only wait for the read timeout. */
static bool looks_like_tls(const struct conn *c)
{
    const uint8_t *b = buf_head(&c->in);
    return !c->stream.ssl && c->in.len >= 3 && b[0] == 0x16 && b[1] == 0x03 && b[2] <= 0x04;
}

/* Between requests, nothing read: why not. */
static bool no_next_request(struct app_conn *a, ssize_t n)
{
    if (n == 0)
        return close_for(a, CONN_END_NORMAL);
    switch (errno) {
    case EAGAIN:
        return stop(a, WORKER_WAIT);
    case ESHUTDOWN:
        return close_for(a, CONN_END_NORMAL);
    case ETIMEDOUT:
        log_verbose("%s: idle timeout", a->peer);
        return close_for(a, CONN_END_IDLE_TIMEOUT);
    case ECONNABORTED:
        return close_for(a, CONN_END_CUT);
    default:
        log_verbose("%s: recv: %s", a->peer, strerror(errno));
        return close_for(a, CONN_END_ERROR);
    }
}

/* Between requests: is there a next one to serve now? */
static bool next_request_here(struct app_conn *a)
{
    struct conn *c = a->c;
    if (c->in.len > 0) /* pipelined, or resumed: its deadline runs on */
        return true;
    if (!flush(a))
        return false;
    if (a->turn_over && worker_requeue(a->worker, c))
        return stop(a, WORKER_HANDED);
    if (!buf_reserve(&c->in, FRAME_PROTO_HEADER_LEN))
        return close_for(a, CONN_END_ERROR);
    c->wait = CONN_WAIT_IDLE;
    size_t room = buf_room(&c->in);
    ssize_t n = worker_read(a->worker, c, buf_tail(&c->in), room,
                            a->answered && !a->last_read_full);
    if (n <= 0)
        return no_next_request(a, n);
    c->in.len = (size_t)n;
    if (looks_like_tls(c)) {
        log_info("%s: a TLS handshake on a port in clear: closing (TLS is served on "
                 "the --tls-port)", peer(a));
        return close_for(a, CONN_END_ERROR);
    }
    a->last_read_full = (size_t)n == room;
    a->last_read_ns = c->request_start_ns = monotime_ns();
    worker_count(a->worker, COUNTER_BYTES_IN, (uint64_t)n);
    c->request_deadline_ms = monotime_deadline(a->cfg->read_timeout_ms);
    return true;
}

/* Picks up where an earlier call stopped; false if there is nothing more
 * to do in this one. */
static bool resume(struct app_conn *a)
{
    struct conn *c = a->c;
    if (c->expired) /* the rest of the request did not come in time */
        return answer_timeout(a);
    if (!flush_unsent(a))
        return false;
    if (c->closing)
        return c->wait == CONN_WAIT_CLOSE ? drain(a) : start_drain(a);
    return true;
}

enum worker_next app_conn_serve(struct worker *w, struct conn *c, void *arg)
{
    struct outbox out; /* not in a: its initializer would clear all of it, every time */
    outbox_init(&out);
    /* last_read_full: nothing is known of the socket yet, so the first
     * read looks rather than wait (a resumed connection was woken because
     * bytes came). */
    struct app_conn a = {.worker = w, .c = c, .cfg = arg, .out = &out, .next = WORKER_CLOSE,
                         .last_read_ns = c->request_start_ns, .last_read_full = true};
    frame_decoder_init(&a.decoder, a.cfg->max_content);
    if (log_verbosity() >= 1)
        peer(&a);
    if (resume(&a))
        while (next_request_here(&a) && serve_next(&a))
            ;
    outbox_clear(&out); /* answers left only when the connection is over */
    if (a.next == WORKER_CLOSE)
        log_verbose("Closing connection to %s", a.peer);
    return a.next;
}
