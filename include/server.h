/*
 * server.h - an enchufe server: listener, acceptor, queue, worker pool and
 * poller.
 *
 *   clients --> listener --> acceptor thread --> queue --> N worker threads
 *                                                  ^            |
 *                                                  +-- poller <-+ (idle)
 *
 * server_start() returns once it is listening. A stop drains: it answers
 * every request that has arrived, then frees everything (server_drain,
 * then server_free; server_stop does both).
 */
#ifndef ENCHUFE_SERVER_H
#define ENCHUFE_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "tls.h"

enum server_mode { SERVER_MODE_APP, SERVER_MODE_ECHO };

/* How long a worker waits for a client's next request before parking the
 * connection (README, "How it works", says how it was chosen). */
#define SERVER_DEFAULT_LINGER_MS 5

/* What connections waiting in the poller may hold in all: partial
 * requests and answers their clients are slow to read (--max-buffered). */
#define SERVER_DEFAULT_MAX_BUFFERED ((size_t)64 << 20)

/* What a connection's socket may hold of answers its client has not let
 * out yet (TCP_NOTSENT_LOWAT): one outbox. */
#define SERVER_UNSENT_LIMIT (64 << 10)

/* Allocations from this size on are mapped and unmapped one by one
 * (server_main.c says why): glibc's default starting threshold, fixed. */
#define SERVER_MMAP_THRESHOLD (128 << 10)

/* Crowded (connections outnumber the workers waiting for them), a parking
 * server wakes no more workers than this many per CPU it may run on
 * (queue_limit_wakes): one more than the CPU takes up the slack while
 * another is between system calls. */
#define SERVER_RUNNING_PER_CPU 2

struct server_config {
    const char *host;
    const char *port;
    const char *unix_path; /* listen on this Unix socket instead of host:port */
    mode_t unix_mode;      /* its file permissions (default 0660) */
    size_t workers;
    size_t wake_cap;       /* with park, crowded: workers woken to run at most (0:
                            * SERVER_RUNNING_PER_CPU per CPU; not an option) */
    size_t queue_capacity;
    enum server_mode mode;
    size_t max_content;
    int idle_timeout_ms;  /* between requests */
    int read_timeout_ms;  /* within a request */
    int write_timeout_ms; /* a client that stops reading its response */
    int drain_timeout_ms; /* how long a stop waits for requests in progress (0: no limit) */
    bool park;            /* idle connections wait in the poller, not a worker */
    int linger_ms;        /* with park: how long a worker waits for the next request first */
    size_t max_buffered;  /* bytes connections waiting for their client may hold (0: no limit) */
    const char *metrics;  /* HOST:PORT to serve GET /metrics on, or NULL */
    bool reuseport;       /* share the TCP port with other processes (SO_REUSEPORT) */
    const int *inherited; /* listening sockets to use instead of opening any (socket */
    int ninherited;       /* activation): the kernel keeps their backlog for the next */
                          /* process, so a stop does not take it */
    const bool *inherited_tls; /* which of them speak TLS (NULL: none) */
    const char *tls_port;  /* also listen for TLS on host at this port (NULL: no TLS) */
    bool tls_only;         /* with tls_port: no listener in clear */
    struct tls_server_config tls; /* certificate, key, client CAs (with tls_port) */
    const char *data_file; /* search answers: a JSON object of value -> answer (NULL:
                              the tutorial's three) */
};

void server_config_defaults(struct server_config *cfg);

/* Whether the configuration serves TLS: a TLS port, or a socket handed
 * over for TLS. */
bool server_config_wants_tls(const struct server_config *cfg);

/* A running server; what is inside is server.c's business. */
struct server;
struct poller;

/* Starts listening and serving. Returns the server, or NULL with a
 * message in err naming what failed. */
struct server *server_start(const struct server_config *cfg, char *err, size_t errlen);

/* The i-th address actually bound, as "HOST:PORT" (the real port for port
 * 0; IPv6 in brackets) or "unix:PATH"; -1 past the last. Until a stop. */
int server_address(const struct server *s, int i, char *out, size_t outlen);
int server_port(const struct server *s);

/* Whether the i-th listener speaks TLS; the port of the first that does,
 * or -1. */
bool server_listener_is_tls(const struct server *s, int i);
int server_tls_port(const struct server *s);

/* Where GET /metrics is served ("HOST:PORT"); -1 if it is not. */
int server_metrics_address(const struct server *s, char *out, size_t outlen);

/* The live counters, summed over the workers now. */
struct snapshot;
void server_snapshot(struct server *s, struct snapshot *out);

/* The same as a JSON object (see docs/protocol.md, "stats"). */
json_t *server_stats(struct server *s);

/* The poller holding idle connections, for its counters; NULL with park
 * off. */
struct poller *server_poller(struct server *s);

/* Reads the TLS files and the data file again (SIGHUP), all or nothing:
 * both are loaded and checked before either is swapped in, so a failure
 * changes nothing. New handshakes and requests use the new ones at once;
 * connections and sessions already open go on undisturbed. Returns 0, or
 * -1 with one line in err. From one thread at a time. */
int server_reload(struct server *s, char *err, size_t errlen);

/* How many reloads were done and failed, and the last one's verdict:
 * "" after a success, or why it failed. */
void server_reload_status(struct server *s, uint64_t *done, uint64_t *failed, char *last,
                          size_t lastlen);

/* What a stop did. */
struct server_summary {
    uint64_t requests;    /* answered over the server's life */
    uint64_t bytes;       /* received over its life (what echo mode echoed) */
    uint64_t connections; /* accepted over the server's life */
    uint64_t cut;         /* closed unanswered at the drain timeout or a cut */
    bool drained;         /* every request in progress finished on its own */
};

/* From now on, health checks answer "draining" (everything else is
 * served as before), so that a load balancer stops sending new
 * connections before the stop closes the listener (--shutdown-delay). */
void server_announce_stop(struct server *s);

/* The stop: takes the connections already waiting in the listen backlog,
 * closes the listeners (new connections are refused from then on),
 * answers every request that has arrived (parked connections included),
 * closes idle connections, and waits until every worker is done or the
 * drain timeout passes; then it cuts the rest. Fills *out if not NULL.
 * Returns out->drained. */
bool server_drain(struct server *s, struct server_summary *out);

/* Ends a drain now, closing whatever is still in progress. Another
 * thread may call it while server_drain runs (a second signal), and
 * until server_free. */
void server_cut(struct server *s);

/* Frees a drained server (and s itself). */
void server_free(struct server *s);

/* server_drain, then server_free. Returns true if nothing was cut. */
bool server_stop(struct server *s);

#endif
