/*
 * siege.c - hostile connections held against a server (see siege.h).
 */
#include "siege.h"
#include "client.h"
#include "frame.h"
#include "heap.h"
#include "monotime.h"
#include "net.h"
#include "protocol.h"
#include "stream.h"
#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define CONNECT_TIMEOUT_MS 2000
#define RETRY_MS 100          /* after a failed connect */
#define MAX_EVENTS 256
#define PROMISED_CONTENT ((size_t)1 << 20) /* what a content dribbler announces */
#define NON_READER_VALUE 60000 /* a search value this long: an answer this large */
#define NON_READER_RCVBUF 4096

static const char *const kind_names[SIEGE_KINDS] = {
    [SIEGE_SILENT] = "silent",
    [SIEGE_SLOWLORIS] = "slowloris",
    [SIEGE_HEADER_DRIBBLE] = "header-dribble",
    [SIEGE_CONTENT_DRIBBLE] = "content-dribble",
    [SIEGE_HALF_HANDSHAKE] = "half-handshake",
    [SIEGE_TLS_STALL] = "tls-stall",
    [SIEGE_NON_READER] = "non-reader",
};

/* The drip interval each kind has unless one is given. */
static const int default_drip_ms[SIEGE_KINDS] = {
    [SIEGE_SLOWLORIS] = 5000,
    [SIEGE_HEADER_DRIBBLE] = 1000,
    [SIEGE_CONTENT_DRIBBLE] = 1000,
};

const char *siege_kind_name(enum siege_kind k)
{
    return (unsigned)k < SIEGE_KINDS ? kind_names[k] : "unknown";
}

int siege_kind_of(const char *name)
{
    for (int k = 0; k < SIEGE_KINDS; k++)
        if (strcmp(name, kind_names[k]) == 0)
            return k;
    return -1;
}

const char *siege_kind_names(void)
{
    return "silent, slowloris, header-dribble, content-dribble, half-handshake, tls-stall, "
           "non-reader";
}

/* Where a hostile connection is: nothing drives it but the epoll loop
 * and its timer, so a server that never answers a connect or a
 * handshake costs the siege nothing but the wait. */
enum hstate {
    H_WAITING,     /* no socket: opened again when `due` comes */
    H_CONNECTING,  /* connect in progress, until `due` */
    H_HANDSHAKING, /* TLS handshake in progress, until `due` */
    H_OPEN,        /* doing its kind's harm; `due` is its next drip */
};

/* One hostile connection. */
struct hconn {
    struct siege *siege;
    enum siege_kind kind;
    enum hstate state;
    int fd;               /* -1 while waiting */
    SSL *ssl;
    size_t sent;          /* how far into its script it is */
    bool blocked;         /* a non-reader waiting for room */
    struct heap_node due; /* see enum hstate */
};

struct siege {
    struct siege_config cfg; /* host and port point into the two below */
    char host[256], port[16], tls_name[256];
    struct net_address addr; /* resolved once */
    SSL_CTX *hello_ctx;      /* makes the ClientHello half-handshakes send half of */
    uint8_t hello[2048];
    size_t hello_len;
    uint8_t *request;        /* a whole search request: what slowloris drips */
    size_t request_len;
    uint8_t *big_request;    /* a search whose answer is large: what non-readers pipeline */
    size_t big_request_len;
    uint8_t content_head[FRAME_ENCODED_HEADER_MAX]; /* promises PROMISED_CONTENT */
    size_t content_head_len;
    struct hconn *conns;
    int nconns;
    int epfd, wake_fd;
    struct heap dues;
    pthread_t thread;
    atomic_bool stopping;
    atomic_int open[SIEGE_KINDS];
    int target;              /* connections asked for in all */
    atomic_uint_least64_t opened[SIEGE_KINDS], closed[SIEGE_KINDS], failed[SIEGE_KINDS];
};

/* How often a kind sends its next byte (0: it never does). */
static int drip_ms(const struct siege *s, enum siege_kind k)
{
    if (default_drip_ms[k] == 0)
        return 0;
    return s->cfg.drip_ms > 0 ? s->cfg.drip_ms : default_drip_ms[k];
}

static bool needs_handshake(const struct siege *s, enum siege_kind k)
{
    return k == SIEGE_TLS_STALL ||
           (s->cfg.tls && k != SIEGE_SILENT && k != SIEGE_HALF_HANDSHAKE);
}

/* --- what each kind sends --------------------------------------------------- */

/* A ClientHello, as a client would send it, through memory BIOs. */
static int capture_hello(struct siege *s)
{
    SSL_CTX *ctx = s->cfg.tls;
    if (!ctx) {
        ctx = s->hello_ctx = SSL_CTX_new(TLS_client_method());
        if (!ctx)
            return -1;
    }
    SSL *ssl = SSL_new(ctx);
    BIO *rbio = BIO_new(BIO_s_mem()), *wbio = BIO_new(BIO_s_mem());
    if (!ssl || !rbio || !wbio) {
        SSL_free(ssl);
        BIO_free(rbio);
        BIO_free(wbio);
        return -1;
    }
    SSL_set_bio(ssl, rbio, wbio);
    SSL_set_connect_state(ssl);
    SSL_do_handshake(ssl); /* wants to read the ServerHello: the hello is written */
    int n = BIO_read(wbio, s->hello, sizeof s->hello);
    SSL_free(ssl);
    ERR_clear_error();
    if (n <= 0)
        return -1;
    s->hello_len = (size_t)n;
    return 0;
}

static uint8_t *search_request(const char *value, size_t *len)
{
    char *content = client_search_content("search", value);
    if (!content)
        return NULL;
    size_t clen = strlen(content);
    uint8_t *out = malloc(FRAME_ENCODED_HEADER_MAX + clen);
    int h = out ? frame_encode_header(out, PROTO_TEXT_JSON, PROTO_UTF8, clen) : -1;
    if (h < 0) {
        free(out);
        free(content);
        return NULL;
    }
    memcpy(out + h, content, clen); /* NOLINT(bugprone-not-null-terminated-result): bytes, not a string */
    *len = (size_t)h + clen;
    free(content);
    return out;
}

static int prepare_scripts(struct siege *s)
{
    char *big = malloc(NON_READER_VALUE + 1);
    if (!big)
        return -1;
    memset(big, 'q', NON_READER_VALUE);
    big[NON_READER_VALUE] = '\0';
    s->request = search_request("morpheus", &s->request_len);
    s->big_request = search_request(big, &s->big_request_len);
    free(big);
    int h = frame_encode_header(s->content_head, "binary/custom-client-binary-type", "binary",
                                PROMISED_CONTENT);
    if (!s->request || !s->big_request || h < 0)
        return -1;
    s->content_head_len = (size_t)h;
    return capture_hello(s);
}

/* --- sending ------------------------------------------------------------------ */

/* Sends n bytes (in TLS, as one record): the count taken, 0 if the socket
 * is full, -1 if the connection is gone. */
static ssize_t send_some(struct hconn *h, const void *p, size_t n)
{
    if (h->ssl) {
        size_t done = 0;
        if (SSL_write_ex(h->ssl, p, n, &done) == 1)
            return (ssize_t)done;
        enum stream_step step = stream_tls_step(h->ssl, 0);
        return step == STREAM_WAIT_READ || step == STREAM_WAIT_WRITE ? 0 : -1;
    }
    ssize_t k = send(h->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    return k;
}

/* The next byte a dribbler sends. */
static uint8_t next_byte(const struct siege *s, const struct hconn *h)
{
    switch (h->kind) {
    case SIEGE_CONTENT_DRIBBLE:
        return 'x';
    default:
        return s->request[h->sent % s->request_len];
    }
}

/* What a connection sends the moment it is open; -1 if it is gone. */
static int send_opening(struct siege *s, struct hconn *h)
{
    switch (h->kind) {
    case SIEGE_SLOWLORIS:
    case SIEGE_HEADER_DRIBBLE: {
        size_t first = h->kind == SIEGE_SLOWLORIS ? 1 : FRAME_PROTO_HEADER_LEN;
        if (send_some(h, s->request, first) != (ssize_t)first)
            return -1;
        h->sent = first;
        return 0;
    }
    case SIEGE_CONTENT_DRIBBLE:
        return send_some(h, s->content_head, s->content_head_len) ==
                       (ssize_t)s->content_head_len ? 0 : -1;
    case SIEGE_HALF_HANDSHAKE:
        return send(h->fd, s->hello, s->hello_len / 2, MSG_NOSIGNAL) > 0 ? 0 : -1;
    case SIEGE_TLS_STALL: { /* the first byte of a record header, raw */
        uint8_t type = 0x17;
        return send(h->fd, &type, 1, MSG_NOSIGNAL) == 1 ? 0 : -1;
    }
    default:
        return 0;
    }
}

/* A non-reader sends until the socket is full; -1 if it is gone. */
static int pipeline(struct siege *s, struct hconn *h)
{
    static const char raw[16384];
    const uint8_t *p = s->cfg.echo ? (const uint8_t *)raw : s->big_request;
    size_t len = s->cfg.echo ? sizeof raw : s->big_request_len;
    for (int i = 0; i < 64; i++) {
        ssize_t k = send_some(h, p + h->sent, len - h->sent);
        if (k < 0)
            return -1;
        if (k == 0) {
            h->blocked = true;
            return 0;
        }
        h->sent = (h->sent + (size_t)k) % len;
    }
    h->blocked = false;
    return 0;
}

/* --- connections ---------------------------------------------------------------- */

static void schedule(struct siege *s, struct hconn *h, int ms)
{
    if (heap_node_in(&h->due))
        heap_remove(&s->dues, &h->due);
    heap_push(&s->dues, &h->due, monotime_ms() + ms);
}

static void interest(struct siege *s, struct hconn *h, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = h};
    epoll_ctl(s->epfd, EPOLL_CTL_MOD, h->fd, &ev);
}

/* What an open connection listens for: a non-reader only hears of a
 * close (it never reads), and of room while blocked; the others read and
 * drop what the server says (an error answer, a close). */
static uint32_t open_events(const struct hconn *h)
{
    if (h->kind == SIEGE_NON_READER)
        return EPOLLRDHUP | (h->blocked ? EPOLLOUT : 0);
    return EPOLLIN | EPOLLRDHUP;
}

static void drop(struct siege *s, struct hconn *h)
{
    if (heap_node_in(&h->due))
        heap_remove(&s->dues, &h->due);
    SSL_free(h->ssl);
    h->ssl = NULL;
    if (h->fd >= 0)
        close(h->fd); /* also out of the epoll set */
    h->fd = -1;
    if (h->state == H_OPEN)
        atomic_fetch_sub(&s->open[h->kind], 1);
    h->state = H_WAITING;
}

/* A connect or handshake that did not work: tried again after RETRY_MS. */
static void failed(struct siege *s, struct hconn *h)
{
    atomic_fetch_add(&s->failed[h->kind], 1);
    drop(s, h);
    if (!atomic_load(&s->stopping))
        schedule(s, h, RETRY_MS);
}

/* Connected (and through the handshake where there is one): the harm
 * begins. */
static void opened(struct siege *s, struct hconn *h)
{
    h->state = H_OPEN;
    atomic_fetch_add(&s->opened[h->kind], 1);
    atomic_fetch_add(&s->open[h->kind], 1);
    if (send_opening(s, h) < 0 || (h->kind == SIEGE_NON_READER && pipeline(s, h) < 0)) {
        atomic_fetch_add(&s->closed[h->kind], 1); /* the server closed it at once */
        drop(s, h);
        schedule(s, h, RETRY_MS);
        return;
    }
    interest(s, h, open_events(h));
    int drip = drip_ms(s, h->kind);
    if (drip > 0)
        schedule(s, h, drip);
    else if (heap_node_in(&h->due))
        heap_remove(&s->dues, &h->due);
}

static void handshake_step(struct siege *s, struct hconn *h)
{
    errno = 0;
    int rc = SSL_do_handshake(h->ssl);
    if (rc == 1) {
        opened(s, h);
        return;
    }
    enum stream_step step = stream_tls_step(h->ssl, rc);
    if (step == STREAM_WAIT_READ || step == STREAM_WAIT_WRITE)
        interest(s, h, step == STREAM_WAIT_READ ? EPOLLIN : EPOLLOUT);
    else
        failed(s, h);
}

static void connected(struct siege *s, struct hconn *h)
{
    if (net_connect_result(h->fd) != 0) {
        failed(s, h);
        return;
    }
    if (!needs_handshake(s, h->kind)) {
        opened(s, h);
        return;
    }
    const char *name = s->cfg.tls_name ? s->cfg.tls_name : s->cfg.host;
    h->ssl = SSL_new(s->cfg.tls ? s->cfg.tls : s->hello_ctx);
    if (!h->ssl || tls_client_attach(h->ssl, h->fd) < 0 || tls_client_set_name(h->ssl, name) < 0) {
        failed(s, h);
        return;
    }
    h->state = H_HANDSHAKING;
    handshake_step(s, h);
}

/* Starts (or starts again) h's connect, without waiting for it. */
static void open_conn(struct siege *s, struct hconn *h)
{
    h->sent = 0;
    h->blocked = false;
    h->fd = net_connect_start(&s->addr);
    if (h->fd < 0) {
        failed(s, h);
        return;
    }
    if (h->kind == SIEGE_NON_READER) {
        int size = NON_READER_RCVBUF; /* before data flows: the window stays small */
        setsockopt(h->fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    }
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = h};
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, h->fd, &ev) < 0) {
        failed(s, h);
        return;
    }
    h->state = H_CONNECTING;
    schedule(s, h, CONNECT_TIMEOUT_MS); /* the connect and the handshake, together */
}

/* The server let go of h: count it, and come back. */
static void reconnect(struct siege *s, struct hconn *h)
{
    atomic_fetch_add(&s->closed[h->kind], 1);
    drop(s, h);
    if (!atomic_load(&s->stopping))
        open_conn(s, h);
}

/* --- the thread ----------------------------------------------------------------- */

static void on_open_event(struct siege *s, struct hconn *h, uint32_t events)
{
    if (h->kind == SIEGE_NON_READER) {
        if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
            reconnect(s, h);
        } else if (events & EPOLLOUT) {
            if (pipeline(s, h) < 0)
                reconnect(s, h);
            else if (!h->blocked) /* keep asking for room only while blocked */
                interest(s, h, open_events(h));
        }
        return;
    }
    char sink[4096]; /* raw: in TLS the records are dropped undecrypted */
    ssize_t n = recv(h->fd, sink, sizeof sink, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
        reconnect(s, h);
}

static void on_event(struct siege *s, struct hconn *h, uint32_t events)
{
    switch (h->state) {
    case H_CONNECTING:
        connected(s, h);
        break;
    case H_HANDSHAKING:
        handshake_step(s, h);
        break;
    case H_OPEN:
        on_open_event(s, h, events);
        break;
    case H_WAITING:
        break;
    }
}

static struct hconn *hconn_of(struct heap_node *x)
{
    return (struct hconn *)(void *)((char *)x - offsetof(struct hconn, due));
}

/* Drips one byte on each open connection that is due, reopens those
 * whose connect failed, and gives up on connects and handshakes that took
 * too long; returns ms until the next is due. */
static int run_dues(struct siege *s)
{
    long long now = monotime_ms();
    struct heap_node *first;
    while ((first = heap_min(&s->dues)) && first->key <= now) {
        struct hconn *h = hconn_of(first);
        heap_remove(&s->dues, first);
        if (h->state == H_WAITING) {
            open_conn(s, h);
            continue;
        }
        if (h->state != H_OPEN) {
            failed(s, h);
            continue;
        }
        uint8_t b = next_byte(s, h);
        ssize_t k = send_some(h, &b, 1);
        if (k < 0) {
            reconnect(s, h);
            continue;
        }
        h->sent += (size_t)k;
        schedule(s, h, drip_ms(s, h->kind));
    }
    if (!first)
        return 1000;
    long long wait = first->key - now;
    return wait > 1000 ? 1000 : (int)wait;
}

static void *siege_main(void *arg)
{
    struct siege *s = arg;
    struct epoll_event ev[MAX_EVENTS];
    while (!atomic_load(&s->stopping)) {
        int n = epoll_wait(s->epfd, ev, MAX_EVENTS, run_dues(s));
        for (int i = 0; i < n; i++)
            if (ev[i].data.ptr)
                on_event(s, ev[i].data.ptr, ev[i].events);
    }
    return NULL;
}

/* --- life cycle ----------------------------------------------------------------- */

static void free_siege(struct siege *s)
{
    for (int i = 0; i < s->nconns; i++)
        drop(s, &s->conns[i]);
    if (s->epfd >= 0)
        close(s->epfd);
    if (s->wake_fd >= 0)
        close(s->wake_fd);
    heap_free(&s->dues);
    SSL_CTX_free(s->hello_ctx);
    free(s->request);
    free(s->big_request);
    free(s->conns);
    free(s);
}

static bool check_config(const struct siege_config *cfg, char *err, size_t errlen)
{
    if (cfg->count[SIEGE_TLS_STALL] > 0 && !cfg->tls) {
        snprintf(err, errlen, "--hostile tls-stall needs a TLS target (--tls)");
        return false;
    }
    for (int k = 0; k < SIEGE_KINDS; k++)
        if (cfg->count[k] < 0) {
            snprintf(err, errlen, "--hostile %s: a negative count", kind_names[k]);
            return false;
        }
    return true;
}

struct siege *siege_start(const struct siege_config *cfg, char *err, size_t errlen)
{
    if (!check_config(cfg, err, errlen))
        return NULL;
    struct siege *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->cfg = *cfg;
    /* Its own copies: the thread reconnects long after the caller's
     * strings may be gone. */
    snprintf(s->host, sizeof s->host, "%s", cfg->host);
    snprintf(s->port, sizeof s->port, "%s", cfg->port);
    s->cfg.host = s->host;
    s->cfg.port = s->port;
    s->cfg.tls_name = NULL;
    if (cfg->tls_name)
        snprintf(s->tls_name, sizeof s->tls_name, "%s", cfg->tls_name);
    s->cfg.tls_name = cfg->tls_name ? s->tls_name : NULL;
    struct net_endpoint ep = {.host = s->host, .port = s->port};
    if (net_resolve(&ep, &s->addr, err, errlen) < 0) {
        free(s);
        return NULL;
    }
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    heap_init(&s->dues);
    atomic_init(&s->stopping, false);
    for (int k = 0; k < SIEGE_KINDS; k++)
        s->nconns += cfg->count[k];
    s->conns = calloc((size_t)s->nconns + 1, sizeof *s->conns);
    struct epoll_event w = {.events = EPOLLIN, .data.ptr = NULL};
    if (s->epfd < 0 || s->wake_fd < 0 || !s->conns || prepare_scripts(s) < 0 ||
        epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->wake_fd, &w) < 0) {
        snprintf(err, errlen, "cannot prepare the hostile connections: %s",
                 errno ? strerror(errno) : "out of memory");
        free_siege(s);
        return NULL;
    }
    int i = 0;
    for (int k = 0; k < SIEGE_KINDS; k++)
        for (int j = 0; j < cfg->count[k]; j++, i++)
            s->conns[i] = (struct hconn){.siege = s, .kind = (enum siege_kind)k, .fd = -1,
                                         .state = H_WAITING};
    s->target = s->nconns;
    for (i = 0; i < s->nconns; i++) {
        heap_node_init(&s->conns[i].due);
        open_conn(s, &s->conns[i]);
    }
    int rc = pthread_create(&s->thread, NULL, siege_main, s);
    if (rc) {
        snprintf(err, errlen, "cannot start the hostile thread: %s", strerror(rc));
        free_siege(s);
        return NULL;
    }
    return s;
}

void siege_stats(struct siege *s, struct siege_stats *out)
{
    for (int k = 0; k < SIEGE_KINDS; k++) {
        out->kind[k] = (struct siege_kind_stats){
            .target = s->cfg.count[k],
            .open = atomic_load(&s->open[k]),
            .opened = atomic_load(&s->opened[k]),
            .closed_by_server = atomic_load(&s->closed[k]),
            .connect_failed = atomic_load(&s->failed[k]),
        };
    }
}

bool siege_wait_open(struct siege *s, int timeout_ms)
{
    long long deadline = monotime_ms() + timeout_ms;
    for (;;) {
        int open = 0;
        for (int k = 0; k < SIEGE_KINDS; k++)
            open += atomic_load(&s->open[k]);
        if (open >= s->target)
            return true;
        if (monotime_ms() >= deadline)
            return false;
        usleep(10 * 1000);
    }
}

void siege_stop(struct siege *s)
{
    atomic_store(&s->stopping, true);
    uint64_t one = 1;
    while (write(s->wake_fd, &one, sizeof one) < 0 && errno == EINTR)
        ;
    pthread_join(s->thread, NULL);
    free_siege(s);
}
