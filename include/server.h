/*
 * server.h - an enchufe server: listener, acceptor, queue, worker pool and
 * poller.
 *
 *   clients --> listener --> acceptor thread --> queue --> N worker threads
 *                                                  ^            |
 *                                                  +-- poller <-+ (idle)
 *
 * server_start() returns once it is listening; server_stop() drains it.
 */
#ifndef ENCHUFE_SERVER_H
#define ENCHUFE_SERVER_H

#include "acceptor.h"
#include "net.h"
#include "poller.h"
#include "pool.h"
#include "queue.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

enum server_mode { SERVER_MODE_APP, SERVER_MODE_ECHO };

struct server_config {
    const char *host;
    const char *port;
    const char *unix_path; /* listen on this Unix socket instead of host:port */
    size_t workers;
    size_t queue_capacity;
    enum server_mode mode;
    size_t max_content;
    int idle_timeout_ms;  /* between requests */
    int read_timeout_ms;  /* within a request */
    int write_timeout_ms; /* a client that stops reading its response */
    int drain_timeout_ms; /* how long server_stop waits for requests in progress */
    bool park;            /* idle connections wait in the poller, not a worker */
    size_t max_fds;       /* descriptors the poller must cover (0: the soft limit) */
};

/* What the serve functions (app_conn.c, echo.c) are given. */
struct serve_ctx {
    const struct server_config *cfg;
    struct poller *poller; /* NULL with park off */
    json_t *(*stats)(void *arg); /* the live counters, for a stats request */
    void *stats_arg;
};

void server_config_defaults(struct server_config *cfg);

struct server {
    struct server_config cfg;
    int listen_fds[NET_MAX_LISTENERS];
    int nlisten;
    struct queue queue;
    struct pool pool;
    struct acceptor acceptor;
    struct poller *poller;
    struct serve_ctx ctx;
    uint64_t requests_served; /* set by server_stop */
    long long started_ms;     /* for the uptime */
};

/* Starts listening and serving. Returns 0, or -1 with a message in err. */
int server_start(struct server *s, const struct server_config *cfg, char *err, size_t errlen);

/* The i-th address actually bound, as "HOST:PORT" (the real port for port
 * 0; IPv6 in brackets) or "unix:PATH"; -1 past the last. */
int server_address(const struct server *s, int i, char *out, size_t outlen);
int server_port(const struct server *s);

/* The live counters as a JSON object (see docs/protocol.md, "stats"). */
json_t *server_stats(struct server *s);

/* Stops accepting, lets every request in progress finish (at most the
 * drain timeout, then cuts the rest), and frees everything. Returns true
 * if every connection finished on its own. */
bool server_stop(struct server *s);

#endif
