/*
 * stress_hostile.c - many hostile and normal clients at once against one
 * server, then a stop while they are still coming, for ThreadSanitizer.
 * Normal requests must always get the right answer until the stop.
 */
#include "server.h"
#include "stress.h"
#include "support.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#define THREADS 8
#define CONNECTIONS 150

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

static void run(bool stop_midway)
{
    struct server *srv;
    struct server_config cfg;
    server_config_defaults(&cfg);
    cfg.workers = 4;
    cfg.queue_capacity = 4;
    cfg.idle_timeout_ms = 1000;
    cfg.read_timeout_ms = 1000;
    port = ts_start(&srv, &cfg);
    CHECK(port > 0, "server start");
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
    if (!stop_midway)
        server_stop(srv);
    CHECK(atomic_load(&wrong) == 0, "%d normal requests got a wrong or no answer",
          atomic_load(&wrong));
    printf("stress_hostile: %s: %d mixed connections, every normal one answered right\n",
           stop_midway ? "stop under load" : "full run", atomic_load(&done));
}

int main(void)
{
    json_object_seed(0);
    run(false);
    run(true);
    return 0;
}
