/*
 * stress_hostile.c - many hostile and normal clients at once against one
 * server, then a stop while they are still coming, for ThreadSanitizer.
 *
 * Beside the mixed clients (broken, resetting, half-closing and normal
 * ones), hostile connections of every slow kind (bench/siege.h: silent,
 * dribbling, stalled handshakes, clients that never read) are held
 * against both ports, so parking, resuming, expiring and shedding run
 * under the race detector too. Normal requests must always get the right
 * answer until the stop.
 */
#include "server.h"
#include "siege.h"
#include "stress.h"
#include "support.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

#define THREADS 8
#define CONNECTIONS 150
#define HOSTILE_EACH 6
#define DRIP_MS 20

static int port;
static atomic_bool stopping;
static atomic_int done, wrong;

static void *client(void *arg)
{
    int id = (int)(long)arg;
    for (int i = 0; i < CONNECTIONS && !atomic_load(&stopping); i++) {
        if (!ts_mixed_connection(port, id + i * THREADS) && !atomic_load(&stopping))
            atomic_fetch_add(&wrong, 1);
        atomic_fetch_add(&done, 1);
    }
    return NULL;
}

/* Every slow kind against one port: in clear, or TLS with its own. */
static struct siege *besiege(int target_port, SSL_CTX *tls)
{
    char portstr[16], err[256];
    snprintf(portstr, sizeof portstr, "%d", target_port);
    struct siege_config sc = {.host = "127.0.0.1", .port = portstr, .tls = tls,
                              .tls_name = "localhost", .drip_ms = DRIP_MS};
    for (int k = 0; k < SIEGE_KINDS; k++)
        sc.count[k] = k == SIEGE_TLS_STALL && !tls ? 0 : HOSTILE_EACH;
    struct siege *s = siege_start(&sc, err, sizeof err);
    CHECK(s != NULL, "hostile connections: %s", err);
    /* Some never stay open (half a ClientHello on the port in clear is
     * closed at once, and comes back): give the rest a moment. */
    siege_wait_open(s, 2000);
    return s;
}

static void run(bool stop_midway, SSL_CTX *ctx)
{
    struct server *srv;
    struct server_config cfg;
    server_config_defaults(&cfg);
    cfg.workers = 4;
    cfg.wake_cap = 2; /* crowded, no more than 2 woken to run (this machine may have more CPUs) */
    cfg.queue_capacity = 4;
    cfg.idle_timeout_ms = 1000;
    cfg.read_timeout_ms = 1000;
    cfg.write_timeout_ms = 1000;
    cfg.max_buffered = 256 << 10; /* small enough that the budget sheds */
    ts_tls_config(&cfg);
    port = ts_start(&srv, &cfg);
    CHECK(port > 0, "server start");
    struct siege *clear = besiege(port, NULL), *tls = besiege(server_tls_port(srv), ctx);
    atomic_store(&stopping, false);
    atomic_store(&done, 0);
    pthread_t t[THREADS];
    for (long i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, client, (void *)i);
    if (stop_midway) {
        long long deadline = ts_now_ms() + 20000;
        while (atomic_load(&done) < THREADS * CONNECTIONS / 3 && ts_now_ms() < deadline)
            usleep(1000);
        atomic_store(&stopping, true);
        server_stop(srv);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    struct siege_stats st[2];
    siege_stats(clear, &st[0]);
    siege_stats(tls, &st[1]);
    siege_stop(clear);
    siege_stop(tls);
    if (!stop_midway)
        server_stop(srv);
    CHECK(atomic_load(&wrong) == 0, "%d normal requests got a wrong or no answer",
          atomic_load(&wrong));
    uint64_t closed = 0;
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < SIEGE_KINDS; k++)
            closed += st[i].kind[k].closed_by_server;
    printf("stress_hostile: %s: %d mixed connections, every normal one answered right; "
           "%d hostile held, %llu of them closed by the server and reopened\n",
           stop_midway ? "stop under load" : "full run", atomic_load(&done),
           2 * HOSTILE_EACH * SIEGE_KINDS - HOSTILE_EACH, (unsigned long long)closed);
}

int main(void)
{
    json_object_seed(0);
    SSL_CTX *ctx = ts_tls_client(NULL);
    CHECK(ctx != NULL, "the test PKI (make build/tls/server.pem)");
    run(false, ctx);
    run(true, ctx);
    SSL_CTX_free(ctx);
    return 0;
}
