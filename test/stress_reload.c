/*
 * stress_reload.c - reloads under concurrent clients, for
 * ThreadSanitizer: clients in clear and over TLS (a new handshake for
 * every few requests) search while the main thread reloads 150 times,
 * the answers alternating between two sets and the certificate between
 * the test one and its renewal. Every answer must come whole from one
 * set; every handshake must succeed; TSan watches the swap of the
 * answers and of the TLS context, and the freeing of the old ones.
 */
#include "client.h"
#include "server.h"
#include "snapshot.h"
#include "stream.h"
#include "stress.h"
#include "support.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CLIENTS 6
#define RELOADS 150

static struct server *srv;
static int port, tls_port;
static SSL_CTX *client_ctx;
static atomic_bool over;
static atomic_int answered;
static char dir[64];

static const char set_a[] = "{\"k\": \"from set A\", \"a\": \"1\"}";
static const char set_b[] = "{\"b\": \"2\", \"k\": \"from set B\"}";

static void put(const char *name, const char *from_file, const char *text)
{
    char tmp[160], path[160], out[512];
    snprintf(tmp, sizeof tmp, "%s/.%s", dir, name);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (from_file) {
        CHECK(ts_run(out, sizeof out, "cp '%s' '%s'", from_file, tmp) == 0, "%s", out);
    } else {
        FILE *f = fopen(tmp, "w");
        CHECK(f && fputs(text, f) >= 0 && fclose(f) == 0, "writing %s", tmp);
    }
    CHECK(rename(tmp, path) == 0, "rename %s", path);
}

static void *client(void *arg)
{
    int id = (int)(intptr_t)arg;
    bool tls = id % 2;
    while (!atomic_load(&over)) {
        struct stream s = {.fd = -1};
        char err[256];
        if (tls)
            CHECK(ts_tls_open(client_ctx, tls_port, &s, err, sizeof err) == 0,
                  "client %d: handshake: %s", id, err);
        else
            CHECK((s.fd = ts_connect(port)) >= 0, "client %d: connect", id);
        for (int i = 0; i < 20; i++) {
            struct client_response resp;
            CHECK(ts_search_on(&s, "k", &resp) == 0, "client %d: no answer", id);
            CHECK(ts_content_is(&resp, "{\"result\": \"from set A\"}") ||
                      ts_content_is(&resp, "{\"result\": \"from set B\"}"),
                  "client %d: %.*s", id, (int)resp.length, resp.content);
            client_response_free(&resp);
            atomic_fetch_add(&answered, 1);
        }
        SSL_free(s.ssl);
        close(s.fd);
    }
    return NULL;
}

int main(void)
{
    json_object_seed(0);
    strcpy(dir, "/tmp/enchufe-stress-reload-XXXXXX");
    CHECK(mkdtemp(dir), "mkdtemp");
    char cert[128], key[128], data[128], err[512], out[256];
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    snprintf(data, sizeof data, "%s/data.json", dir);
    put("cert.pem", ts_tls_path("server.pem"), NULL);
    put("key.pem", ts_tls_path("server.key"), NULL);
    put("data.json", NULL, set_a);

    struct server_config cfg;
    server_config_defaults(&cfg);
    cfg.workers = 4;
    cfg.tls_port = "0";
    cfg.tls.cert_file = cert;
    cfg.tls.key_file = key;
    cfg.data_file = data;
    CHECK((port = ts_start(&srv, &cfg)) > 0, "start");
    tls_port = server_tls_port(srv);
    CHECK((client_ctx = ts_tls_client(NULL)) != NULL, "client context");

    pthread_t t[CLIENTS];
    for (int i = 0; i < CLIENTS; i++)
        pthread_create(&t[i], NULL, client, (void *)(intptr_t)i);
    for (int i = 0; i < RELOADS; i++) {
        const char *name = i % 2 ? "server" : "renewed";
        char pem[32], k[32];
        snprintf(pem, sizeof pem, "%s.pem", name);
        snprintf(k, sizeof k, "%s.key", name);
        put("key.pem", ts_tls_path(k), NULL);
        put("cert.pem", ts_tls_path(pem), NULL);
        put("data.json", NULL, i % 2 ? set_a : set_b);
        CHECK(server_reload(srv, err, sizeof err) == 0, "reload %d: %s", i, err);
        usleep(2000);
    }
    atomic_store(&over, true);
    for (int i = 0; i < CLIENTS; i++)
        pthread_join(t[i], NULL);
    struct snapshot snap;
    server_snapshot(srv, &snap);
    CHECK(snap.reloads_done == RELOADS && snap.reloads_failed == 0, "reloads %llu/%llu",
          (unsigned long long)snap.reloads_done, (unsigned long long)snap.reloads_failed);
    CHECK(server_stop(srv), "the stop drained");
    SSL_CTX_free(client_ctx);
    ts_run(out, sizeof out, "rm -rf '%s'", dir);
    printf("stress_reload: %d reloads under %d clients (clear and TLS): %d answers, each whole "
           "and from one set\n", RELOADS, CLIENTS, atomic_load(&answered));
    return 0;
}
