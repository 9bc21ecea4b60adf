/*
 * stress_server.c - the whole server under concurrent clients, for
 * ThreadSanitizer: keep-alive, one-shot and pipelining clients
 * outnumbering the workers on a small queue (backpressure, lingering
 * workers called back, pipelined connections handed back at the end of
 * their turn), then a stop while they are still sending. Every answer that arrives must be whole and right; after
 * the stop a client sees a refusal or a close, never a torn response.
 * Each round runs in clear and over TLS (handshakes in the workers, TLS
 * state carried through the queue and the poller).
 */
#include "app.h"
#include "client.h"
#include "frame.h"
#include "net.h"
#include "server.h"
#include "snapshot.h"
#include "stress.h"
#include "support.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CLIENTS 16
#define REQUESTS 150

static int port;
static SSL_CTX *tls_ctx; /* NULL: the round is in clear */
static size_t max_buffered; /* 0: the default */
static atomic_int answered, refused_or_closed;
static atomic_bool stop_clients;

#define DEPTH 8

/* Sends DEPTH searches at once and checks the DEPTH answers, in order.
 * Returns false if the exchange failed. */
static bool pipelined_round(const struct stream *conn, int id)
{
    uint8_t burst[DEPTH * 256];
    size_t len = 0;
    for (int k = 0; k < DEPTH; k++) {
        char *content = client_search_content("search", k % 2 ? "ring" : "nobody");
        size_t n = strlen(content);
        len += (size_t)frame_encode_header(burst + len, PROTO_TEXT_JSON, PROTO_UTF8, n);
        memcpy(burst + len, content, n);
        len += n;
        free(content);
    }
    if (stream_write_until(conn, burst, len, ts_deadline()) < 0)
        return false;
    for (int k = 0; k < DEPTH; k++) {
        struct client_response resp;
        char err[256], expected[256];
        if (client_read_response_on(conn, 1 << 20, ts_deadline(), &resp, err, sizeof err) < 0)
            return false;
        ts_expected_search(k % 2 ? "ring" : "nobody", expected, sizeof expected);
        CHECK(ts_content_is(&resp, expected), "pipelining client %d: answer %d wrong", id, k);
        client_response_free(&resp);
    }
    atomic_fetch_add(&answered, DEPTH - 1); /* the caller counts one */
    return true;
}

/* A connection, in clear or TLS as the round says; false if refused,
 * which may only happen once the server is stopping. */
static bool open_conn(struct stream *conn, int id)
{
    char err[512] = "connect failed";
    bool ok;
    if (tls_ctx) {
        ok = ts_tls_open(tls_ctx, port, conn, err, sizeof err) == 0;
    } else {
        *conn = (struct stream){.fd = ts_connect(port)};
        ok = conn->fd >= 0;
    }
    CHECK(ok || atomic_load(&stop_clients), "client %d could not connect before the stop: %s", id,
          err);
    return ok;
}

/* Keep-alive clients, one-shot ones that reconnect for each request like
 * the tutorial's client, and pipelining ones. Returns when done or told to
 * stop. */
static void *client(void *arg)
{
    int id = (int)(long)arg;
    /* With a small budget, only handshakes may hold buffers: a client
     * mid-request could be shed, which is the budget's job, not a fault. */
    bool one_shot = id % 2 || max_buffered, pipelining = id % 4 == 2 && !max_buffered;
    struct stream conn = {.fd = -1};
    for (int i = 0; i < REQUESTS && !atomic_load(&stop_clients); i++) {
        if (conn.fd < 0 && !open_conn(&conn, id)) {
            atomic_fetch_add(&refused_or_closed, 1);
            return NULL;
        }
        if (pipelining) {
            if (!pipelined_round(&conn, id)) {
                CHECK(atomic_load(&stop_clients), "client %d round %d failed before the stop", id, i);
                atomic_fetch_add(&refused_or_closed, 1);
                break;
            }
            atomic_fetch_add(&answered, 1);
            continue;
        }
        const char *value = i % 3 ? "morpheus" : "nobody";
        struct client_response resp;
        char expected[256];
        ts_expected_search(value, expected, sizeof expected);
        if (ts_search_on(&conn, value, &resp) < 0) {
            /* Only legitimate once the server is stopping. */
            CHECK(atomic_load(&stop_clients), "client %d request %d failed before the stop", id, i);
            atomic_fetch_add(&refused_or_closed, 1);
            client_response_free(&resp);
            break;
        }
        CHECK(ts_content_is(&resp, expected), "client %d got a wrong answer", id);
        client_response_free(&resp);
        atomic_fetch_add(&answered, 1);
        if (one_shot)
            client_close(&conn);
    }
    client_close(&conn);
    return NULL;
}

static void run_round(bool stop_midway, bool park)
{
    struct server *srv;
    struct server_config cfg;
    server_config_defaults(&cfg);
    cfg.park = park;
    cfg.workers = 4;
    cfg.wake_cap = 2; /* crowded, no more than 2 woken to run (this machine may have more CPUs) */
    cfg.queue_capacity = 2;
    cfg.drain_timeout_ms = 5000;
    if (tls_ctx)
        ts_tls_config(&cfg);
    if (max_buffered)
        cfg.max_buffered = max_buffered;
    port = ts_start(&srv, &cfg);
    CHECK(port > 0, "server start");
    if (tls_ctx)
        port = server_tls_port(srv);
    atomic_store(&answered, 0);
    atomic_store(&refused_or_closed, 0);
    atomic_store(&stop_clients, false);

    pthread_t t[CLIENTS];
    for (long i = 0; i < CLIENTS; i++)
        pthread_create(&t[i], NULL, client, (void *)i);
    if (stop_midway) {
        long long deadline = ts_now_ms() + 10000;
        while (atomic_load(&answered) < CLIENTS * REQUESTS / 4 && ts_now_ms() < deadline)
            usleep(1000);
        atomic_store(&stop_clients, true);
        CHECK(server_stop(srv), "the stop should drain within the timeout");
    }
    for (int i = 0; i < CLIENTS; i++)
        pthread_join(t[i], NULL);
    if (max_buffered && !stop_midway) { /* a stopped server is gone */
        struct snapshot snap;
        server_snapshot(srv, &snap);
        CHECK(snap.tls_waited > 0, "no handshake waited for room: the round tests nothing");
    }
    if (!stop_midway) {
        int expected = CLIENTS * REQUESTS + (max_buffered ? 0 : (CLIENTS / 4) * REQUESTS * (DEPTH - 1));
        CHECK(atomic_load(&answered) == expected, "answered %d of %d", atomic_load(&answered),
              expected);
        CHECK(server_stop(srv), "an idle server stops at once");
    }
    printf("stress_server: %s%s%s, %s: %d answers, %d clients refused or closed at the stop\n",
           tls_ctx ? "TLS, " : "", max_buffered ? "a budget for 10 handshakes, " : "",
           park ? "parking" : "no parking", stop_midway ? "stop under load" : "full run",
           atomic_load(&answered), atomic_load(&refused_or_closed));
}

int main(void)
{
    /* In the --no-park rounds a keep-alive client holds its worker for all
     * its requests, and a new client waits for one that long; under
     * ThreadSanitizer on a busy machine that took more than 5 s. */
    ts_io_timeout_ms = 60000;
    json_object_seed(0);
    SSL_CTX *ctx = ts_tls_client(NULL);
    CHECK(ctx != NULL, "the test PKI (make build/tls/server.pem)");
    for (int tls = 0; tls <= 1; tls++) {
        tls_ctx = tls ? ctx : NULL;
        for (int park = 1; park >= 0; park--) {
            run_round(false, park);
            run_round(true, park);
        }
    }
    /* 512 KiB of --max-buffered has room for 10 handshakes under way (24
     * KiB each, in half of it): the others wait for room in the poller,
     * and are let in as those end, while clients come and go. */
    tls_ctx = ctx;
    max_buffered = 512 << 10;
    run_round(false, true);
    run_round(true, true);
    SSL_CTX_free(ctx);
    return 0;
}
