/*
 * loadgen.c - epoll load generator (see loadgen.h).
 *
 * A "slot" is one of the -c connections. In keep-alive mode a slot keeps
 * its socket for the whole run; in per-connection mode it opens a socket
 * for each request and closes it after the answer, as the tutorial's
 * client does. A slot whose stream went wrong (error, timeout, reset) is
 * closed and reopened, after the periodic sweep, so a dead server costs
 * one attempt per slot every 100 ms rather than a spin.
 */
#include "loadgen.h"
#include "frame.h"
#include "monotime.h"
#include "net.h"
#include "stream.h"
#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define SWEEP_NS 100000000ULL /* timeouts and reconnects are checked this often */
#define MAX_EVENTS 256

enum slot_state { S_CLOSED, S_CONNECTING, S_HANDSHAKE, S_IDLE, S_SENDING, S_READING };

struct slot {
    int fd;
    SSL *ssl;             /* with --tls */
    SSL_SESSION *session; /* --tls-resume: the last connection's, to resume */
    enum slot_state state;
    bool has_request; /* a request is assigned (possibly waiting to connect) */
    bool want_out;    /* EPOLLOUT is in the interest set */
    unsigned next;    /* position in the mix of the next request to send */
    unsigned first;   /* ... of the first request of the batch in flight */
    unsigned depth;   /* requests in the batch (the pipeline depth) */
    unsigned done;    /* of those, answered */
    const uint8_t *out; /* the batch's bytes: one request's, or sendbuf */
    size_t out_len;
    uint8_t *sendbuf; /* the requests of a batch, back to back (pipelining) */
    size_t sent;
    uint8_t *buf;
    size_t len, cap;
    struct frame_decoder dec;
    uint64_t origin;  /* latency runs from here: the send, or when it was due */
    uint64_t connect_start;
    uint64_t deadline;
    uint64_t answered; /* answers this slot got, warmup included */
    uint64_t conn_answers; /* answers on the current connection */
    bool retried;     /* the batch in flight was sent again once already */
    int idle_next;    /* rate mode: next idle slot, -1 at the end */
    bool in_idle;     /* rate mode: on the idle stack */
};

struct worker {
    pthread_t thread;
    const struct bench_config *cfg;
    const struct net_address *addr;
    int epfd;
    struct slot *slots;
    int nslots;
    uint64_t start, warm, end; /* ns: run start, end of warmup, deadline */
    uint64_t quota, issued;    /* -n: requests this thread may send */
    uint64_t interval, next_due; /* -R: schedule */
    int idle_head;             /* -R: stack of idle slots */
    uint64_t pending_due;      /* -R: due requests not yet sent (no idle slot) */
    uint64_t connect_failures; /* warmup included */
    bool warmed;
    struct bench_result res;
    atomic_uint_least64_t progress; /* completed, for the progress line */
};

const char *bench_error_name(enum bench_error e)
{
    static const char *const names[] = {"connect", "read", "write", "timeout", "closed",
                                        "framing", "header", "content", "tls"};
    return e < BENCH_ERR_KINDS ? names[e] : "?";
}

/* --- slot life cycle -------------------------------------------------------- */

static void set_interest(struct worker *w, struct slot *s, bool out)
{
    if (s->want_out == out)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = s};
    epoll_ctl(w->epfd, EPOLL_CTL_MOD, s->fd, &ev);
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

static void close_slot(struct worker *w, struct slot *s)
{
    if (s->ssl)
        end_tls(s, w->cfg->tls_resume);
    if (s->fd >= 0)
        close(s->fd); /* also leaves the epoll set */
    s->fd = -1;
    s->state = S_CLOSED;
    s->want_out = false;
}

/* Rate mode: a slot with no request waits here to be handed the next one. */
static void push_idle(struct worker *w, struct slot *s)
{
    if (s->in_idle)
        return;
    s->in_idle = true;
    s->idle_next = w->idle_head;
    w->idle_head = (int)(s - w->slots);
}

static struct slot *pop_idle(struct worker *w)
{
    struct slot *s = &w->slots[w->idle_head];
    w->idle_head = s->idle_next;
    s->in_idle = false;
    return s;
}

static void open_slot(struct worker *w, struct slot *s);

/* The one race a keep-alive client cannot avoid: the server closes an
 * idle connection (its idle timeout, a restart) just as the next request
 * goes out. As HTTP clients do, such a request is sent again, once, on a
 * new connection, if not a byte of its answer came back; it is counted as
 * retried, not as an error, and its latency still runs from the first
 * send. Returns true if it did that. */
static bool retry(struct worker *w, struct slot *s, enum bench_error e)
{
    bool closed = e == BENCH_ERR_CLOSED || e == BENCH_ERR_READ || e == BENCH_ERR_WRITE;
    if (!closed || !s->has_request || s->retried || s->conn_answers == 0 || s->done > 0 ||
        s->len > 0)
        return false;
    s->retried = true;
    w->res.retried += s->depth;
    close_slot(w, s);
    s->next = s->first; /* the same requests again */
    open_slot(w, s);    /* the batch goes out once connected */
    return true;
}

/* The stream went wrong: count it, drop the connection and the request.
 * A connect that failed with no request assigned yet (a keep-alive slot
 * reconnecting) still uses up one of -n's requests, so that a run against
 * a server that refuses every connection ends. */
static void fail(struct worker *w, struct slot *s, enum bench_error e)
{
    if (retry(w, s, e))
        return;
    w->res.errors[e]++;
    if (e == BENCH_ERR_CONNECT) {
        w->connect_failures++;
        if (!s->has_request && w->issued < w->quota)
            w->issued++;
    }
    s->has_request = false;
    close_slot(w, s);
    if (w->interval)
        push_idle(w, s);
}

/* A connect that failed: its errno is kept for the report. */
static void connect_failed(struct worker *w, struct slot *s, int err)
{
    w->res.connect_errno = err;
    fail(w, s, BENCH_ERR_CONNECT);
}

static void open_slot(struct worker *w, struct slot *s)
{
    s->connect_start = monotime_ns();
    s->conn_answers = 0;
    s->deadline = s->connect_start + (uint64_t)w->cfg->timeout_ms * 1000000ULL;
    if ((s->fd = net_connect_start(w->addr)) < 0) {
        connect_failed(w, s, errno);
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = s};
    epoll_ctl(w->epfd, EPOLL_CTL_ADD, s->fd, &ev);
    s->want_out = true;
    s->state = S_CONNECTING;
}

/* What a failed SSL call asks for (stream_tls_step): -1 with errno
 * EAGAIN after setting the interest it waits for, 0 at the end of the
 * stream, or -1 with errno saying what failed. */
static ssize_t tls_retry(struct worker *w, struct slot *s, int rc)
{
    enum stream_step step = stream_tls_step(s->ssl, rc);
    switch (step) {
    case STREAM_WAIT_READ:
    case STREAM_WAIT_WRITE:
        set_interest(w, s, step == STREAM_WAIT_WRITE);
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
static ssize_t send_bytes(struct worker *w, struct slot *s, const uint8_t *p, size_t n)
{
    if (!s->ssl)
        return send(s->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    size_t done = 0;
    errno = 0;
    if (SSL_write_ex(s->ssl, p, n, &done) == 1)
        return (ssize_t)done;
    if (tls_retry(w, s, 0) == 0)
        errno = EPIPE;
    return -1;
}

/* recv() or SSL_read: bytes, 0 at the end, -1 (EAGAIN: nothing yet). */
static ssize_t recv_bytes(struct worker *w, struct slot *s, uint8_t *p, size_t n)
{
    if (!s->ssl)
        return recv(s->fd, p, n, MSG_DONTWAIT);
    size_t got = 0;
    errno = 0;
    if (SSL_read_ex(s->ssl, p, n, &got) == 1)
        return (ssize_t)got;
    return tls_retry(w, s, 0);
}

static void read_answer(struct worker *w, struct slot *s);

/* Sends what is left of the batch; moves on to reading when done. */
static void send_some(struct worker *w, struct slot *s)
{
    while (s->sent < s->out_len) {
        ssize_t n = send_bytes(w, s, s->out + s->sent, s->out_len - s->sent);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!s->ssl)
                set_interest(w, s, true);
            return;
        }
        if (n < 0) {
            fail(w, s, BENCH_ERR_WRITE);
            return;
        }
        s->sent += (size_t)n;
    }
    set_interest(w, s, false);
    s->state = S_READING;
    /* An answer may already wait decrypted in OpenSSL, where epoll
     * cannot see it. */
    if (s->ssl && SSL_has_pending(s->ssl))
        read_answer(w, s);
}

/* The k-th request of the slot's batch. */
static const struct bench_request *request_at(const struct worker *w, const struct slot *s,
                                              unsigned k)
{
    return &w->cfg->mix[(s->first + k) % w->cfg->mix_len];
}

static bool may_issue(struct worker *w)
{
    return w->issued < w->quota;
}

/* Takes the next batch's requests from the quota: the pipeline depth, or
 * what -n leaves. */
static unsigned take_batch(struct worker *w)
{
    uint64_t left = w->quota - w->issued, depth = (uint64_t)w->cfg->pipeline;
    unsigned n = (unsigned)(left < depth ? left : depth);
    w->issued += n;
    return n;
}

/* Starts a request on a connected, idle slot. */
static void start_request(struct worker *w, struct slot *s, uint64_t origin)
{
    s->first = s->next;
    s->next += s->depth;
    s->done = 0;
    if (s->depth == 1) {
        s->out = request_at(w, s, 0)->bytes;
        s->out_len = request_at(w, s, 0)->len;
    } else {
        s->out_len = 0;
        for (unsigned k = 0; k < s->depth; k++) {
            const struct bench_request *r = request_at(w, s, k);
            memcpy(s->sendbuf + s->out_len, r->bytes, r->len);
            s->out_len += r->len;
        }
        s->out = s->sendbuf;
    }
    s->sent = 0;
    s->len = 0;
    frame_decoder_init(&s->dec, s->cap);
    s->origin = origin;
    s->deadline = monotime_ns() + (uint64_t)w->cfg->timeout_ms * 1000000ULL;
    s->state = S_SENDING;
    send_some(w, s);
}

/* What a slot does once it has nothing to send: in closed loop, the next
 * request at once; at a fixed rate, wait on the idle stack to be due. */
static void next_request(struct worker *w, struct slot *s)
{
    s->state = S_IDLE;
    s->has_request = false;
    if (w->cfg->mode == BENCH_PER_CONN)
        close_slot(w, s);
    if (w->interval) {
        push_idle(w, s);
        return;
    }
    if (!may_issue(w))
        return;
    s->depth = take_batch(w);
    s->done = 0;
    s->retried = false;
    s->has_request = true;
    s->origin = monotime_ns();
    if (s->state == S_CLOSED)
        open_slot(w, s); /* per-conn: the request starts once connected */
    else
        start_request(w, s, s->origin);
}

/* --- answers ---------------------------------------------------------------- */

/* An answer checked and right: count it, and drop its bytes. Returns true
 * if more answers of the batch are due. */
static bool record_success(struct worker *w, struct slot *s, uint64_t now, size_t size)
{
    s->answered++;
    s->conn_answers++;
    w->res.completed++;
    hist_record(&w->res.latency, now - s->origin); /* from the batch's send */
    atomic_store_explicit(&w->progress, w->res.completed, memory_order_relaxed);
    s->len -= size;
    memmove(s->buf, s->buf + size, s->len);
    frame_decoder_init(&s->dec, s->cap);
    if (++s->done < s->depth)
        return true;
    next_request(w, s);
    return false;
}

/* Checks the answer at the front of the buffer. Returns true if there
 * was a whole right one and more are due; false when more bytes are
 * needed, the batch is done, or the answer was wrong (counted). Bytes
 * after the batch's last answer are a framing error. */
static bool check_frame(struct worker *w, struct slot *s, uint64_t now)
{
    struct frame f;
    enum frame_status st = frame_decode(&s->dec, s->buf, s->len, &f);
    if (st == FRAME_NEED_MORE)
        return false;
    const struct bench_request *r = request_at(w, s, s->done);
    bool last = s->done + 1 == s->depth;
    if (st != FRAME_COMPLETE || (last && f.size != s->len))
        fail(w, s, BENCH_ERR_FRAMING);
    else if (strcmp(f.header.content_type, r->content_type) != 0 ||
             strcmp(f.header.content_encoding, r->content_encoding) != 0)
        fail(w, s, BENCH_ERR_HEADER);
    else if (f.header.content_length != r->expect_len ||
             memcmp(f.content, r->expect, r->expect_len) != 0)
        fail(w, s, BENCH_ERR_CONTENT);
    else
        return record_success(w, s, now, f.size);
    return false;
}

static bool check_raw(struct worker *w, struct slot *s, uint64_t now)
{
    const struct bench_request *r = request_at(w, s, s->done);
    bool last = s->done + 1 == s->depth;
    if (s->len < r->expect_len)
        return false;
    if ((last && s->len > r->expect_len) ||
        (r->check_bytes && memcmp(s->buf, r->expect, r->expect_len) != 0)) {
        fail(w, s, BENCH_ERR_CONTENT);
        return false;
    }
    return record_success(w, s, now, r->expect_len);
}

static void read_answer(struct worker *w, struct slot *s)
{
    for (;;) {
        if (s->len == s->cap) { /* more than any right answer: stop reading */
            fail(w, s, request_at(w, s, s->done)->framed ? BENCH_ERR_FRAMING
                                                          : BENCH_ERR_CONTENT);
            return;
        }
        ssize_t n = recv_bytes(w, s, s->buf + s->len, s->cap - s->len);
        if (n > 0) {
            w->res.bytes_read += (size_t)n;
            s->len += (size_t)n;
            uint64_t now = monotime_ns();
            while (request_at(w, s, s->done)->framed ? check_frame(w, s, now)
                                                      : check_raw(w, s, now))
                ;
            /* Done with the batch, or nothing more for now: epoll says when
             * the socket has more (level-triggered); bytes OpenSSL has
             * already read ahead, it cannot see. */
            if (s->state != S_READING || s->fd < 0 ||
                (s->len < s->cap && !(s->ssl && SSL_has_pending(s->ssl))))
                return;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        fail(w, s, n == 0 ? BENCH_ERR_CLOSED : BENCH_ERR_READ);
        return;
    }
}

/* --- events ----------------------------------------------------------------- */

static void ready(struct worker *w, struct slot *s);

/* Drives the TLS handshake as events come; ready() once it is done. */
static void handshake(struct worker *w, struct slot *s)
{
    ERR_clear_error();
    errno = 0;
    int rc = SSL_do_handshake(s->ssl);
    if (rc == 1) {
        if (SSL_session_reused(s->ssl))
            w->res.tls_resumed++;
        else
            w->res.tls_full++;
        ready(w, s);
        return;
    }
    if (tls_retry(w, s, rc) < 0 && errno == EAGAIN)
        return;
    fail(w, s, BENCH_ERR_TLS);
}

static void start_tls(struct worker *w, struct slot *s)
{
    const char *name = w->cfg->tls_name ? w->cfg->tls_name : w->cfg->host;
    s->ssl = SSL_new((SSL_CTX *)w->cfg->tls);
    if (!s->ssl || tls_client_attach(s->ssl, s->fd) < 0 || tls_client_set_name(s->ssl, name) < 0) {
        fail(w, s, BENCH_ERR_TLS);
        return;
    }
    if (w->cfg->tls_resume && s->session)
        SSL_set_session(s->ssl, s->session);
    s->state = S_HANDSHAKE;
    handshake(w, s);
}

static void connected(struct worker *w, struct slot *s)
{
    int soerr = net_connect_result(s->fd);
    if (soerr != 0) {
        connect_failed(w, s, soerr);
        return;
    }
    w->res.ever_connected = true;
    if (w->cfg->tls)
        start_tls(w, s);
    else
        ready(w, s);
}

/* The connection is up (TLS included): the request goes out. */
static void ready(struct worker *w, struct slot *s)
{
    uint64_t now = monotime_ns();
    hist_record(&w->res.connect, now - s->connect_start);
    w->res.connections_opened++;
    set_interest(w, s, false);
    s->state = S_IDLE;
    if (s->has_request)
        start_request(w, s, s->origin);
    else
        next_request(w, s);
}

static void on_event(struct worker *w, struct slot *s, uint32_t events)
{
    switch (s->state) {
    case S_CONNECTING:
        connected(w, s);
        break;
    case S_HANDSHAKE:
        handshake(w, s);
        break;
    case S_SENDING:
        if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            send_some(w, s);
        break;
    case S_READING:
        read_answer(w, s);
        break;
    case S_IDLE: {
        /* Nothing is outstanding: the server closed an idle connection
         * (its idle timeout), or sent bytes nobody asked for. */
        uint8_t junk[256];
        ssize_t n = recv_bytes(w, s, junk, sizeof junk);
        if (n > 0)
            fail(w, s, BENCH_ERR_FRAMING);
        else if (n == 0 || (errno != EAGAIN && errno != EINTR))
            close_slot(w, s);
        break;
    }
    case S_CLOSED:
        break;
    }
}

/* Every SWEEP_NS: time out stuck requests and reopen closed slots. */
static void sweep(struct worker *w, uint64_t now)
{
    for (int i = 0; i < w->nslots; i++) {
        struct slot *s = &w->slots[i];
        bool busy = s->state == S_CONNECTING || s->state == S_HANDSHAKE ||
                    s->state == S_SENDING || s->state == S_READING;
        if (busy && now > s->deadline) {
            fail(w, s, BENCH_ERR_TIMEOUT);
        } else if (s->state == S_CLOSED && !w->interval && w->cfg->mode == BENCH_KEEPALIVE &&
                   may_issue(w)) {
            open_slot(w, s);
        } else if (s->state == S_CLOSED && !w->interval && w->cfg->mode == BENCH_PER_CONN &&
                   !s->has_request) {
            next_request(w, s);
        }
    }
}

/* --- fixed rate ------------------------------------------------------------- */

/* Hands every request that is due to an idle slot, keeping its due time
 * as the latency origin, however late it actually goes out. */
static void issue_due(struct worker *w, uint64_t now)
{
    while (w->next_due <= now && may_issue(w) && w->idle_head >= 0) {
        struct slot *s = pop_idle(w);
        w->issued++;
        s->depth = 1;
        s->done = 0;
        s->retried = false;
        s->has_request = true;
        s->origin = w->next_due;
        w->next_due += w->interval;
        if (s->state == S_IDLE && s->fd >= 0)
            start_request(w, s, s->origin);
        else if (s->state != S_CONNECTING && s->state != S_HANDSHAKE)
            open_slot(w, s); /* closed, or per-conn: it goes once connected */
    }
}

/* --- the loop --------------------------------------------------------------- */

static bool slot_busy(const struct slot *s)
{
    return s->has_request && (s->state == S_CONNECTING || s->state == S_HANDSHAKE ||
                              s->state == S_SENDING || s->state == S_READING);
}

static uint64_t in_flight(const struct worker *w)
{
    uint64_t n = 0;
    for (int i = 0; i < w->nslots; i++)
        if (slot_busy(&w->slots[i]))
            n += w->slots[i].depth - w->slots[i].done;
    return n;
}

static void reset_stats(struct worker *w)
{
    memset(w->res.errors, 0, sizeof w->res.errors);
    w->res.completed = w->res.bytes_read = w->res.connections_opened = 0;
    w->res.tls_full = w->res.tls_resumed = 0;
    hist_reset(&w->res.latency);
    hist_reset(&w->res.connect);
    atomic_store_explicit(&w->progress, 0, memory_order_relaxed);
}

/* How long epoll may sleep: until the next sweep, the deadline, the end
 * of the warmup or, at a fixed rate, the next due request. */
static uint64_t wait_ns(const struct worker *w, uint64_t now, uint64_t next_sweep)
{
    uint64_t until = next_sweep < w->end ? next_sweep : w->end;
    if (w->interval && w->idle_head >= 0 && w->next_due < until)
        until = w->next_due;
    if (!w->warmed && w->warm < until)
        until = w->warm;
    return until <= now ? 0 : until - now;
}

/* epoll_wait with a nanosecond timeout: at a fixed rate, rounding the
 * wait up to whole milliseconds would add up to a millisecond of made-up
 * latency to every request. Falls back on kernels without epoll_pwait2. */
static int wait_events(struct worker *w, struct epoll_event *events, uint64_t ns)
{
    static atomic_bool no_pwait2;
    if (!atomic_load_explicit(&no_pwait2, memory_order_relaxed)) {
        struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000ULL),
                              .tv_nsec = (long)(ns % 1000000000ULL)};
        int n = epoll_pwait2(w->epfd, events, MAX_EVENTS, &ts, NULL);
        if (n >= 0 || errno != ENOSYS)
            return n;
        atomic_store(&no_pwait2, true);
    }
    return epoll_wait(w->epfd, events, MAX_EVENTS, (int)((ns + 999999) / 1000000));
}

static void start_slots(struct worker *w)
{
    for (int i = 0; i < w->nslots; i++) {
        struct slot *s = &w->slots[i];
        s->fd = -1;
        s->next = (unsigned)i;
        if (w->interval) {
            if (w->cfg->mode == BENCH_KEEPALIVE)
                open_slot(w, s);
            else
                s->state = S_IDLE;
            push_idle(w, s);
        } else if (w->cfg->mode == BENCH_KEEPALIVE) {
            open_slot(w, s);
        } else {
            next_request(w, s);
        }
    }
}

static bool finished(struct worker *w, uint64_t now)
{
    if (now >= w->end)
        return true;
    /* Every connection has been tried and none got through: nothing
     * listens there, and waiting would only repeat that. */
    if (!w->res.ever_connected && w->connect_failures >= (uint64_t)w->nslots)
        return true;
    return w->cfg->requests && !may_issue(w) && in_flight(w) == 0;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct epoll_event events[MAX_EVENTS];
    uint64_t now = monotime_ns(), next_sweep = now + SWEEP_NS;
    w->next_due = w->start;
    w->idle_head = -1;
    w->warmed = w->warm <= now;
    start_slots(w);
    while (!finished(w, now)) {
        if (!w->warmed && now >= w->warm) {
            reset_stats(w);
            w->warmed = true;
        }
        if (w->interval)
            issue_due(w, now);
        int n = wait_events(w, events, wait_ns(w, now, next_sweep));
        for (int i = 0; i < n; i++)
            on_event(w, events[i].data.ptr, events[i].events);
        now = monotime_ns();
        if (now >= next_sweep) {
            sweep(w, now);
            next_sweep = now + SWEEP_NS;
        }
    }
    w->res.in_flight = in_flight(w);
    for (int i = 0; i < w->nslots; i++)
        w->res.never_answered += w->slots[i].answered == 0;
    return NULL;
}

/* --- setup and merge -------------------------------------------------------- */


/* Room for the largest right answer, plus a little to notice extra bytes;
 * with pipelining, for several answers at once (up to 64 KiB), so that a
 * batch's answers are read in few calls. */
static size_t answer_capacity(const struct bench_config *cfg)
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

/* The bytes of the largest batch: pipeline times the longest request. */
static size_t batch_capacity(const struct bench_config *cfg)
{
    size_t longest = 0;
    for (size_t i = 0; i < cfg->mix_len; i++)
        longest = cfg->mix[i].len > longest ? cfg->mix[i].len : longest;
    return longest * (size_t)cfg->pipeline;
}

static int setup_worker(struct worker *w, const struct bench_config *cfg, int index, size_t cap)
{
    int base = cfg->connections / cfg->threads, extra = cfg->connections % cfg->threads;
    w->cfg = cfg;
    w->nslots = base + (index < extra);
    w->slots = calloc((size_t)w->nslots, sizeof *w->slots);
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (!w->slots || w->epfd < 0)
        return -1;
    for (int i = 0; i < w->nslots; i++) {
        w->slots[i].cap = cap;
        w->slots[i].buf = malloc(cap);
        if (!w->slots[i].buf)
            return -1;
        if (cfg->pipeline > 1 && !(w->slots[i].sendbuf = malloc(batch_capacity(cfg))))
            return -1;
    }
    uint64_t per = cfg->requests / (uint64_t)cfg->threads;
    w->quota = cfg->requests ? per + ((uint64_t)index < cfg->requests % (uint64_t)cfg->threads)
                             : UINT64_MAX;
    if (cfg->rate > 0)
        w->interval = (uint64_t)(1e9 * cfg->threads / cfg->rate);
    return 0;
}

static void merge(struct bench_result *dst, const struct bench_result *src)
{
    dst->completed += src->completed;
    dst->bytes_read += src->bytes_read;
    dst->in_flight += src->in_flight;
    dst->retried += src->retried;
    dst->never_answered += src->never_answered;
    dst->connections_opened += src->connections_opened;
    dst->tls_full += src->tls_full;
    dst->tls_resumed += src->tls_resumed;
    dst->ever_connected |= src->ever_connected;
    if (src->connect_errno)
        dst->connect_errno = src->connect_errno;
    for (int e = 0; e < BENCH_ERR_KINDS; e++)
        dst->errors[e] += src->errors[e];
    hist_merge(&dst->latency, &src->latency);
    hist_merge(&dst->connect, &src->connect);
}

static void report_progress(struct worker *ws, int n, uint64_t start, uint64_t end)
{
    uint64_t last = 0, last_t = monotime_ns();
    while (last_t + 1000000000ULL < end) {
        struct timespec one_s = {1, 0};
        nanosleep(&one_s, NULL);
        uint64_t total = 0, t = monotime_ns();
        for (int i = 0; i < n; i++)
            total += atomic_load_explicit(&ws[i].progress, memory_order_relaxed);
        if (total < last) /* the warmup ended and counters restarted */
            last = 0;
        fprintf(stderr, "  [%3.0fs] %.0f requests/s\n", (double)(t - start) / 1e9,
                (double)(total - last) * 1e9 / (double)(t - last_t));
        last = total;
        last_t = t;
    }
}

static void free_workers(struct worker *ws, int n)
{
    for (int i = 0; i < n; i++) {
        for (int j = 0; ws[i].slots && j < ws[i].nslots; j++) {
            close_slot(&ws[i], &ws[i].slots[j]);
            SSL_SESSION_free(ws[i].slots[j].session);
            free(ws[i].slots[j].buf);
            free(ws[i].slots[j].sendbuf);
        }
        free(ws[i].slots);
        if (ws[i].epfd >= 0)
            close(ws[i].epfd);
    }
    free(ws);
}

int bench_run(const struct bench_config *cfg, struct bench_result *res, char *err, size_t errlen)
{
    struct net_address addr;
    memset(res, 0, sizeof *res);
    if (cfg->threads < 1 || cfg->connections < cfg->threads || cfg->mix_len == 0 ||
        cfg->pipeline < 1 || (cfg->pipeline > 1 && cfg->rate > 0)) {
        snprintf(err, errlen, "need at least one thread, a connection per thread, a request, "
                              "and a pipeline depth of 1 at a fixed rate");
        return -1;
    }
    struct net_endpoint ep = {.host = cfg->host, .port = cfg->port, .unix_path = cfg->unix_path};
    if (net_resolve(&ep, &addr, err, errlen) < 0)
        return -1;
    struct worker *ws = calloc((size_t)cfg->threads, sizeof *ws);
    size_t cap = answer_capacity(cfg);
    int ok = ws != NULL;
    for (int i = 0; ok && i < cfg->threads; i++) {
        ws[i].epfd = -1;
        ws[i].addr = &addr;
        ok = setup_worker(&ws[i], cfg, i, cap) == 0;
    }
    if (!ok) {
        snprintf(err, errlen, "out of memory or descriptors setting up %d connections",
                 cfg->connections);
        if (ws)
            free_workers(ws, cfg->threads);
        return -1;
    }
    uint64_t start = monotime_ns(), warm = start + (uint64_t)(cfg->warmup_s * 1e9);
    /* -n runs have no deadline but a generous bound, so none can hang. */
    double run_s = cfg->requests ? 86400.0 : cfg->duration_s;
    uint64_t end = warm + (uint64_t)(run_s * 1e9);
    for (int i = 0; i < cfg->threads; i++) {
        ws[i].start = start;
        ws[i].warm = warm;
        ws[i].end = end;
        pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]);
    }
    if (cfg->progress && !cfg->requests && run_s > 3)
        report_progress(ws, cfg->threads, start, end);
    for (int i = 0; i < cfg->threads; i++)
        pthread_join(ws[i].thread, NULL);
    uint64_t stop = monotime_ns();
    for (int i = 0; i < cfg->threads; i++)
        merge(res, &ws[i].res);
    res->elapsed_s = (double)(stop - (warm > start ? warm : start)) / 1e9;
    free_workers(ws, cfg->threads);
    return 0;
}
