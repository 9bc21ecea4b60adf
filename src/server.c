/*
 * server.c - wires the listener, the acceptor, the queue and the pool, and
 * takes them down in the order that loses no accepted request.
 */
#include "server.h"
#include "app_conn.h"
#include "echo.h"
#include "frame.h"
#include "log.h"
#include "net.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

void server_config_defaults(struct server_config *cfg)
{
    *cfg = (struct server_config){
        .host = "127.0.0.1",
        .port = "65432",
        .workers = 16,
        .queue_capacity = 1024,
        .mode = SERVER_MODE_APP,
        .max_content = FRAME_DEFAULT_MAX_CONTENT,
        .idle_timeout_ms = 30000,
        .read_timeout_ms = 30000,
        .write_timeout_ms = 30000,
        .drain_timeout_ms = 10000,
        .park = true,
    };
}

json_t *server_stats(struct server *s)
{
    struct pool *p = &s->pool;
    struct poller_stats ps = {0};
    if (s->poller)
        poller_stats(s->poller, &ps);
    uint64_t accepted = atomic_load(&s->acceptor.accepted);
    uint64_t closed = pool_total(p, STAT_CLOSED) + ps.idle_closed + ps.peer_closed;
    json_t *errors = json_object();
    for (int i = 0; i < STAT_ERRORS; i++)
        json_object_set_new(errors, stats_error_codes[i],
                            json_integer((json_int_t)pool_total(p, STAT_FIRST_ERROR + i)));
    return json_pack(
        "{s:f, s:{s:I, s:I, s:I, s:I}, s:{s:I, s:I}, s:{s:I, s:I, s:I, s:I, s:I, s:I}, s:o, "
        "s:{s:I, s:I}}",
        "uptime_s", (double)(net_now_ms() - s->started_ms) / 1000.0,
        "connections", "accepted", (json_int_t)accepted, "active",
        (json_int_t)(accepted > closed ? accepted - closed : 0), "queued",
        (json_int_t)queue_length(&s->queue), "parked", (json_int_t)ps.holding,
        "workers", "total", (json_int_t)s->cfg.workers, "busy",
        (json_int_t)atomic_load(&p->busy),
        "requests", "total", (json_int_t)pool_requests(p), "search_hit",
        (json_int_t)pool_total(p, STAT_SEARCH_HIT), "search_miss",
        (json_int_t)pool_total(p, STAT_SEARCH_MISS), "invalid_action",
        (json_int_t)pool_total(p, STAT_INVALID_ACTION), "binary",
        (json_int_t)pool_total(p, STAT_BINARY), "stats", (json_int_t)pool_total(p, STAT_STATS),
        "errors", errors,
        "bytes", "in", (json_int_t)pool_total(p, STAT_BYTES_IN), "out",
        (json_int_t)pool_total(p, STAT_BYTES_OUT));
}

static json_t *stats_of(void *arg)
{
    return server_stats(arg);
}

/* Closes every listener, and removes the Unix socket file we made. */
static void close_listeners(struct server *s)
{
    for (int i = 0; i < s->nlisten; i++)
        close(s->listen_fds[i]);
    if (s->cfg.unix_path)
        unlink(s->cfg.unix_path);
}

/* The poller indexes connections by fd, so it must cover every fd the
 * process may open. */
static size_t fd_limit(const struct server_config *cfg)
{
    struct rlimit rl;
    if (cfg->max_fds)
        return cfg->max_fds;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
        return 1 << 20;
    return (size_t)rl.rlim_cur;
}

int server_start(struct server *s, const struct server_config *cfg, char *err, size_t errlen)
{
    s->cfg = *cfg;
    struct net_endpoint ep = {.host = cfg->host, .port = cfg->port, .unix_path = cfg->unix_path};
    /* SOMAXCONN: the kernel's backlog absorbs bursts while the queue is full. */
    s->nlisten = net_listen_endpoint(&ep, SOMAXCONN, s->listen_fds, NET_MAX_LISTENERS, err, errlen);
    if (s->nlisten < 0)
        return -1;
    for (int i = 0; i < s->nlisten; i++) {
        /* Accepted sockets inherit TCP_NODELAY from the listener (Linux),
         * which saves a system call per connection. Our messages go out
         * whole in one writev, so Nagle's coalescing would only add
         * latency. (A Unix socket has no Nagle: the call fails, harmlessly.) */
        net_set_nodelay(s->listen_fds[i]);
        /* The workers' wait tick (pool.h), inherited the same way. */
        net_set_recv_timeout(s->listen_fds[i], POOL_TICK_MS);
    }
    if (queue_init(&s->queue, cfg->queue_capacity) < 0) {
        snprintf(err, errlen, "cannot create the connection queue: %s", strerror(errno));
        goto close_listener;
    }
    s->poller = NULL;
    if (cfg->park && !(s->poller = poller_start(&s->queue, cfg->idle_timeout_ms, fd_limit(cfg)))) {
        snprintf(err, errlen, "cannot start the poller: %s", strerror(errno));
        goto destroy_queue;
    }
    s->ctx = (struct serve_ctx){.cfg = &s->cfg, .poller = s->poller,
                                .stats = stats_of, .stats_arg = s};
    s->started_ms = net_now_ms();
    pool_serve_fn serve = cfg->mode == SERVER_MODE_ECHO ? echo_conn_serve : app_conn_serve;
    if (pool_start(&s->pool, cfg->workers, &s->queue, serve, &s->ctx) < 0) {
        snprintf(err, errlen, "cannot start %zu workers: %s", cfg->workers, strerror(errno));
        goto stop_poller;
    }
    if (acceptor_start(&s->acceptor, s->listen_fds, s->nlisten, &s->queue) < 0) {
        snprintf(err, errlen, "cannot start the acceptor: %s", strerror(errno));
        queue_close(&s->queue);
        pool_wait(&s->pool, NULL);
        pool_join(&s->pool);
        goto stop_poller;
    }
    return 0;
stop_poller:
    if (s->poller) {
        poller_stop(s->poller);
        poller_free(s->poller);
    }
destroy_queue:
    queue_destroy(&s->queue);
close_listener:
    close_listeners(s);
    return -1;
}

int server_address(const struct server *s, int i, char *out, size_t outlen)
{
    return i < s->nlisten ? net_local_address(s->listen_fds[i], out, outlen) : -1;
}

int server_port(const struct server *s)
{
    return net_local_port(s->listen_fds[0]);
}

static struct timespec deadline_after(int ms)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

bool server_stop(struct server *s)
{
    struct timespec deadline = deadline_after(s->cfg.drain_timeout_ms);
    /* First free the workers held by idle connections, so that an
     * acceptor blocked on a full queue can finish its hand-off. */
    pool_quiesce(&s->pool);
    acceptor_stop(&s->acceptor);
    /* From here the kernel refuses new connections. */
    close_listeners(s);
    /* Parked connections are idle by definition: close them. The poller
     * must stop before the queue closes, since it pushes into it. */
    if (s->poller)
        poller_stop(s->poller);
    queue_close(&s->queue);
    bool drained = pool_wait(&s->pool, &deadline);
    if (!drained) {
        log_error("drain timeout (%d ms) passed: closing %zu connections still in progress",
                  s->cfg.drain_timeout_ms, atomic_load(&s->pool.busy));
        pool_force(&s->pool);
        pool_wait(&s->pool, NULL);
    }
    s->requests_served = pool_requests(&s->pool);
    pool_join(&s->pool);
    if (s->poller)
        poller_free(s->poller); /* no worker is left to park */
    queue_destroy(&s->queue);
    return drained;
}
