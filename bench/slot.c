/*
 * slot.c - one of enchufe-bench's connections (see slot.h).
 *
 * Every call leaves the slot waiting for an epoll event, idle, or failed
 * and closed; a failed slot is reopened by its thread, after the periodic
 * sweep, so a dead server costs one attempt per slot every 100 ms rather
 * than a spin.
 */
#include "slot.h"
#include "monotime.h"
#include "stream.h"
#include "tls.h"

#include <errno.h>
#include <openssl/err.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

int slot_init(struct slot *s, size_t answer_cap, size_t batch_cap)
{
    s->fd = -1;
    s->idle_next = -1;
    s->cap = answer_cap;
    s->buf = malloc(answer_cap);
    if (batch_cap)
        s->sendbuf = malloc(batch_cap);
    return s->buf && (!batch_cap || s->sendbuf) ? 0 : -1;
}

void slot_free(struct slot *s)
{
    SSL_SESSION_free(s->session);
    free(s->buf);
    free(s->sendbuf);
}

/* Room for the largest right answer, plus a little to notice extra bytes;
 * with pipelining, for several answers at once (up to 64 KiB), so that a
 * batch's answers are read in few calls. */
size_t slot_answer_capacity(const struct bench_config *cfg)
{
    size_t one = 0;
    for (size_t i = 0; i < cfg->mix_len; i++) {
        size_t need = cfg->mix[i].expect_len + (cfg->mix[i].framed ? FRAME_ENCODED_HEADER_MAX : 0);
        if (need > one)
            one = need;
    }
    size_t batch = one * (size_t)cfg->pipeline;
    size_t cap = batch < ((size_t)64 << 10) ? batch : (size_t)64 << 10;
    return (cap > one ? cap : one) + 64;
}

size_t slot_batch_capacity(const struct bench_config *cfg)
{
    size_t longest = 0;
    for (size_t i = 0; i < cfg->mix_len; i++)
        longest = cfg->mix[i].len > longest ? cfg->mix[i].len : longest;
    return longest * (size_t)cfg->pipeline;
}

bool slot_busy(const struct slot *s)
{
    return s->has_request && (s->state == S_CONNECTING || s->state == S_HANDSHAKE ||
                              s->state == S_SENDING || s->state == S_READING);
}

unsigned slot_unanswered(const struct slot *s)
{
    return slot_busy(s) ? s->depth - s->done : 0;
}

/* --- the connection --------------------------------------------------------- */

static uint64_t deadline_from_now(const struct slot_home *h)
{
    return monotime_ns() + (uint64_t)h->cfg->timeout_ms * 1000000ULL;
}

static void set_interest(struct slot_home *h, struct slot *s, bool out)
{
    if (s->want_out == out)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = s};
    epoll_ctl(h->epfd, EPOLL_CTL_MOD, s->fd, &ev);
    s->want_out = out;
}

/* Ends a TLS connection as clients do (close_notify), keeping its session
 * for the next connection to resume when asked to. */
static void end_tls(struct slot *s, bool resume)
{
    if (resume) {
        SSL_SESSION *sess = SSL_get1_session(s->ssl);
        if (sess && SSL_SESSION_is_resumable(sess)) {
            SSL_SESSION_free(s->session);
            s->session = sess;
        } else {
            SSL_SESSION_free(sess);
        }
    }
    if (SSL_is_init_finished(s->ssl))
        SSL_shutdown(s->ssl);
    SSL_free(s->ssl);
    s->ssl = NULL;
    ERR_clear_error();
}

void slot_close(struct slot_home *h, struct slot *s)
{
    if (s->ssl)
        end_tls(s, h->cfg->tls_resume);
    if (s->fd >= 0)
        close(s->fd); /* also leaves the epoll set */
    s->fd = -1;
    s->state = S_CLOSED;
    s->want_out = false;
}

/* The one race a keep-alive client cannot avoid: the server closes an
 * idle connection (its idle timeout, a restart) just as the next request
 * goes out. As HTTP clients do, such a request is sent again, once, on a
 * new connection, if not a byte of its answer came back; it is counted as
 * retried, not as an error, and its latency still runs from the first
 * send. Returns true if it did that. */
static bool retry(struct slot_home *h, struct slot *s, enum bench_error e)
{
    bool closed = e == BENCH_ERR_CLOSED || e == BENCH_ERR_READ || e == BENCH_ERR_WRITE;
    if (!closed || !s->has_request || s->retried || s->conn_answers == 0 || s->done > 0 ||
        s->len > 0)
        return false;
    s->retried = true;
    h->res.retried += s->depth;
    slot_close(h, s);
    s->next = s->first; /* the same requests again */
    return true;
}

/* The stream went wrong: count it, drop the connection and the request
 * (unless it is sent again, see retry). */
static enum slot_outcome fail(struct slot_home *h, struct slot *s, enum bench_error e)
{
    if (retry(h, s, e))
        return slot_open(h, s); /* the batch goes out once connected */
    h->res.errors[e]++;
    s->error = e;
    s->dropped = s->has_request;
    s->has_request = false;
    slot_close(h, s);
    return SLOT_FAILED;
}

/* A connect that failed: its errno is kept for the report. */
static enum slot_outcome connect_failed(struct slot_home *h, struct slot *s, int err)
{
    h->res.connect_errno = err;
    return fail(h, s, BENCH_ERR_CONNECT);
}

enum slot_outcome slot_open(struct slot_home *h, struct slot *s)
{
    s->connect_start = monotime_ns();
    s->conn_answers = 0;
    s->deadline = deadline_from_now(h);
    if ((s->fd = net_connect_start(h->addr)) < 0)
        return connect_failed(h, s, errno);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = s};
    epoll_ctl(h->epfd, EPOLL_CTL_ADD, s->fd, &ev);
    s->want_out = true;
    s->state = S_CONNECTING;
    return SLOT_WAITING;
}

/* What a failed SSL call asks for (stream_tls_step): -1 with errno
 * EAGAIN after setting the interest it waits for, 0 at the end of the
 * stream, or -1 with errno saying what failed. */
static ssize_t tls_retry(struct slot_home *h, struct slot *s, int rc)
{
    enum stream_step step = stream_tls_step(s->ssl, rc);
    switch (step) {
    case STREAM_WAIT_READ:
    case STREAM_WAIT_WRITE:
        set_interest(h, s, step == STREAM_WAIT_WRITE);
        errno = EAGAIN;
        return -1;
    case STREAM_EOF:
        return 0;
    default:
        return -1;
    }
}

/* send() or SSL_write: the bytes taken, or -1 (EAGAIN: wait; for TLS the
 * interest is set). OpenSSL must be called again with the same bytes. */
static ssize_t send_bytes(struct slot_home *h, struct slot *s, const uint8_t *p, size_t n)
{
    if (!s->ssl)
        return send(s->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    size_t done = 0;
    errno = 0;
    if (SSL_write_ex(s->ssl, p, n, &done) == 1)
        return (ssize_t)done;
    if (tls_retry(h, s, 0) == 0)
        errno = EPIPE;
    return -1;
}

/* recv() or SSL_read: bytes, 0 at the end, -1 (EAGAIN: nothing yet). */
static ssize_t recv_bytes(struct slot_home *h, struct slot *s, uint8_t *p, size_t n)
{
    if (!s->ssl)
        return recv(s->fd, p, n, MSG_DONTWAIT);
    size_t got = 0;
    errno = 0;
    if (SSL_read_ex(s->ssl, p, n, &got) == 1)
        return (ssize_t)got;
    return tls_retry(h, s, 0);
}

/* --- answers ---------------------------------------------------------------- */

/* The k-th request of the slot's batch. */
static const struct bench_request *request_at(const struct slot_home *h, const struct slot *s,
                                              unsigned k)
{
    return &h->cfg->mix[(s->first + k) % h->cfg->mix_len];
}

/* The batch is answered: the slot is idle, or closed in per-connection
 * mode, and its thread gives it the next request. */
static enum slot_outcome batch_answered(struct slot_home *h, struct slot *s)
{
    s->state = S_IDLE;
    s->has_request = false;
    if (h->cfg->mode == BENCH_PER_CONN)
        slot_close(h, s);
    return SLOT_IDLE;
}

/* An answer checked and right: count it, and drop its bytes. */
static void record_success(struct slot_home *h, struct slot *s, uint64_t now, size_t size)
{
    s->answered++;
    s->conn_answers++;
    h->res.completed++;
    hist_record(&h->res.latency, now - s->origin); /* from the batch's send */
    atomic_store_explicit(&h->progress, h->res.completed, memory_order_relaxed);
    s->len -= size;
    memmove(s->buf, s->buf + size, s->len);
    frame_decoder_init(&s->dec, s->cap);
    s->done++;
}

/* Checks the answer at the front of the buffer against the request it
 * answers: SLOT_WAITING when it is right (recorded) or incomplete,
 * SLOT_FAILED when wrong. Bytes after the batch's last answer are a
 * framing error. */
static enum slot_outcome check_frame(struct slot_home *h, struct slot *s, uint64_t now,
                                     bool *more)
{
    struct frame f;
    *more = false;
    enum frame_status st = frame_decode(&s->dec, s->buf, s->len, &f);
    if (st == FRAME_NEED_MORE)
        return SLOT_WAITING;
    const struct bench_request *r = request_at(h, s, s->done);
    bool last = s->done + 1 == s->depth;
    if (st != FRAME_COMPLETE || (last && f.size != s->len))
        return fail(h, s, BENCH_ERR_FRAMING);
    if (strcmp(f.header.content_type, r->content_type) != 0 ||
        strcmp(f.header.content_encoding, r->content_encoding) != 0)
        return fail(h, s, BENCH_ERR_HEADER);
    if (f.header.content_length != r->expect_len ||
        memcmp(f.content, r->expect, r->expect_len) != 0)
        return fail(h, s, BENCH_ERR_CONTENT);
    record_success(h, s, now, f.size);
    *more = true;
    return SLOT_WAITING;
}

static enum slot_outcome check_raw(struct slot_home *h, struct slot *s, uint64_t now, bool *more)
{
    const struct bench_request *r = request_at(h, s, s->done);
    bool last = s->done + 1 == s->depth;
    *more = false;
    if (s->len < r->expect_len)
        return SLOT_WAITING;
    if ((last && s->len > r->expect_len) ||
        (r->check_bytes && memcmp(s->buf, r->expect, r->expect_len) != 0))
        return fail(h, s, BENCH_ERR_CONTENT);
    record_success(h, s, now, r->expect_len);
    *more = true;
    return SLOT_WAITING;
}

/* Checks every whole answer in the buffer. */
static enum slot_outcome check_answers(struct slot_home *h, struct slot *s)
{
    uint64_t now = monotime_ns();
    bool more = true;
    while (more) {
        enum slot_outcome o = request_at(h, s, s->done)->framed ? check_frame(h, s, now, &more)
                                                                 : check_raw(h, s, now, &more);
        if (o != SLOT_WAITING)
            return o;
        if (s->done == s->depth)
            return batch_answered(h, s);
    }
    return SLOT_WAITING;
}

static enum slot_outcome read_answers(struct slot_home *h, struct slot *s)
{
    for (;;) {
        if (s->len == s->cap) /* more than any right answer: stop reading */
            return fail(h, s, request_at(h, s, s->done)->framed ? BENCH_ERR_FRAMING
                                                                 : BENCH_ERR_CONTENT);
        ssize_t n = recv_bytes(h, s, s->buf + s->len, s->cap - s->len);
        if (n > 0) {
            h->res.bytes_read += (size_t)n;
            s->len += (size_t)n;
            enum slot_outcome o = check_answers(h, s);
            /* Done with the batch, or nothing more for now: epoll says when
             * the socket has more (level-triggered); bytes OpenSSL has
             * already read ahead, it cannot see. */
            if (o != SLOT_WAITING ||
                (s->len < s->cap && !(s->ssl && SSL_has_pending(s->ssl))))
                return o;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return SLOT_WAITING;
        return fail(h, s, n == 0 ? BENCH_ERR_CLOSED : BENCH_ERR_READ);
    }
}

/* --- requests --------------------------------------------------------------- */

/* Sends what is left of the batch; moves on to reading when done. */
static enum slot_outcome send_some(struct slot_home *h, struct slot *s)
{
    while (s->sent < s->out_len) {
        ssize_t n = send_bytes(h, s, s->out + s->sent, s->out_len - s->sent);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!s->ssl)
                set_interest(h, s, true);
            return SLOT_WAITING;
        }
        if (n < 0)
            return fail(h, s, BENCH_ERR_WRITE);
        s->sent += (size_t)n;
    }
    set_interest(h, s, false);
    s->state = S_READING;
    /* An answer may already wait decrypted in OpenSSL, where epoll
     * cannot see it. */
    if (s->ssl && SSL_has_pending(s->ssl))
        return read_answers(h, s);
    return SLOT_WAITING;
}

/* Sends the assigned batch on a connected, idle slot. */
static enum slot_outcome start_batch(struct slot_home *h, struct slot *s)
{
    s->first = s->next;
    s->next += s->depth;
    s->done = 0;
    if (s->depth == 1) {
        s->out = request_at(h, s, 0)->bytes;
        s->out_len = request_at(h, s, 0)->len;
    } else {
        s->out_len = 0;
        for (unsigned k = 0; k < s->depth; k++) {
            const struct bench_request *r = request_at(h, s, k);
            memcpy(s->sendbuf + s->out_len, r->bytes, r->len);
            s->out_len += r->len;
        }
        s->out = s->sendbuf;
    }
    s->sent = 0;
    s->len = 0;
    frame_decoder_init(&s->dec, s->cap);
    s->deadline = deadline_from_now(h);
    s->state = S_SENDING;
    return send_some(h, s);
}

enum slot_outcome slot_request(struct slot_home *h, struct slot *s, unsigned depth,
                               uint64_t origin)
{
    s->depth = depth;
    s->done = 0;
    s->retried = false;
    s->has_request = true;
    s->origin = origin;
    if (s->state == S_IDLE && s->fd >= 0)
        return start_batch(h, s);
    if (s->state == S_CONNECTING || s->state == S_HANDSHAKE)
        return SLOT_WAITING; /* it goes once connected */
    return slot_open(h, s);
}

/* --- events ----------------------------------------------------------------- */

/* The connection is up (TLS included): the request goes out, or the
 * thread gives it one. */
static enum slot_outcome ready(struct slot_home *h, struct slot *s)
{
    uint64_t now = monotime_ns();
    hist_record(&h->res.connect, now - s->connect_start);
    h->res.connections_opened++;
    set_interest(h, s, false);
    s->state = S_IDLE;
    return s->has_request ? start_batch(h, s) : SLOT_IDLE;
}

/* Drives the TLS handshake as events come; ready() once it is done. */
static enum slot_outcome handshake(struct slot_home *h, struct slot *s)
{
    ERR_clear_error();
    errno = 0;
    int rc = SSL_do_handshake(s->ssl);
    if (rc == 1) {
        if (SSL_session_reused(s->ssl))
            h->res.tls_resumed++;
        else
            h->res.tls_full++;
        return ready(h, s);
    }
    if (tls_retry(h, s, rc) < 0 && errno == EAGAIN)
        return SLOT_WAITING;
    return fail(h, s, BENCH_ERR_TLS);
}

static enum slot_outcome start_tls(struct slot_home *h, struct slot *s)
{
    const char *name = h->cfg->tls_name ? h->cfg->tls_name : h->cfg->host;
    s->ssl = SSL_new((SSL_CTX *)h->cfg->tls);
    if (!s->ssl || tls_client_attach(s->ssl, s->fd) < 0 || tls_client_set_name(s->ssl, name) < 0)
        return fail(h, s, BENCH_ERR_TLS);
    if (h->cfg->tls_resume && s->session)
        SSL_set_session(s->ssl, s->session);
    s->state = S_HANDSHAKE;
    return handshake(h, s);
}

static enum slot_outcome connected(struct slot_home *h, struct slot *s)
{
    int soerr = net_connect_result(s->fd);
    if (soerr != 0)
        return connect_failed(h, s, soerr);
    h->res.ever_connected = true;
    return h->cfg->tls ? start_tls(h, s) : ready(h, s);
}

/* Nothing is outstanding: the server closed an idle connection (its idle
 * timeout), or sent bytes nobody asked for. */
static enum slot_outcome idle_event(struct slot_home *h, struct slot *s)
{
    uint8_t junk[256];
    ssize_t n = recv_bytes(h, s, junk, sizeof junk);
    if (n > 0)
        return fail(h, s, BENCH_ERR_FRAMING);
    if (n == 0 || (errno != EAGAIN && errno != EINTR))
        slot_close(h, s);
    return SLOT_WAITING;
}

enum slot_outcome slot_on_event(struct slot_home *h, struct slot *s, uint32_t events)
{
    switch (s->state) {
    case S_CONNECTING:
        return connected(h, s);
    case S_HANDSHAKE:
        return handshake(h, s);
    case S_SENDING:
        return events & (EPOLLOUT | EPOLLERR | EPOLLHUP) ? send_some(h, s) : SLOT_WAITING;
    case S_READING:
        return read_answers(h, s);
    case S_IDLE:
        return idle_event(h, s);
    case S_CLOSED:
        break;
    }
    return SLOT_WAITING;
}

enum slot_outcome slot_check_deadline(struct slot_home *h, struct slot *s, uint64_t now)
{
    bool waiting = s->state == S_CONNECTING || s->state == S_HANDSHAKE ||
                   s->state == S_SENDING || s->state == S_READING;
    return waiting && now > s->deadline ? fail(h, s, BENCH_ERR_TIMEOUT) : SLOT_WAITING;
}
