/*
 * siege.h - hostile connections held against a server while the ordinary
 * load runs: enchufe-bench's --hostile, the slowhttptest of this protocol.
 *
 * One thread holds every hostile connection in one epoll loop. Each kind
 * is a way a client can make a server wait: say nothing, send a request
 * a byte at a time, stall a TLS handshake, or never read its answers.
 * When the server closes one, it is counted and opened again at once
 * (an attacker reconnects), so the number held stays what was asked for
 * for as long as the server lets it. Drips are timed by a min-heap.
 *
 * The tests use the same engine to attack an in-process server.
 */
#ifndef ENCHUFE_BENCH_SIEGE_H
#define ENCHUFE_BENCH_SIEGE_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum siege_kind {
    SIEGE_SILENT,          /* connects and sends nothing (on a TLS port: no handshake) */
    SIEGE_SLOWLORIS,       /* a request's first byte, then one more per drip (5 s) */
    SIEGE_HEADER_DRIBBLE,  /* the 2-byte length, then the JSON header a byte per drip (1 s) */
    SIEGE_CONTENT_DRIBBLE, /* a header promising 1 MiB, then content a byte per drip (1 s) */
    SIEGE_HALF_HANDSHAKE,  /* half a TLS ClientHello, then nothing */
    SIEGE_TLS_STALL,       /* a whole TLS handshake, then one byte of a record (needs TLS) */
    SIEGE_NON_READER,      /* pipelines requests with large answers and never reads */
    SIEGE_KINDS
};

struct siege_config {
    const char *host;      /* copied: the caller's strings may go */
    const char *port;
    SSL_CTX *tls;          /* the target speaks TLS (NULL: in clear) */
    const char *tls_name;  /* name to send and verify (NULL: host) */
    bool echo;             /* the target is an echo server (non-readers send raw bytes) */
    int count[SIEGE_KINDS];
    int drip_ms;           /* every drip at this interval (0: each kind's default) */
};

struct siege_kind_stats {
    int target;               /* asked for */
    int open;                 /* held right now */
    uint64_t opened;          /* connections made (first ones and reconnects) */
    uint64_t closed_by_server;
    uint64_t connect_failed;
};

struct siege_stats {
    struct siege_kind_stats kind[SIEGE_KINDS];
};

struct siege;

/* Starts the thread that opens the hostile connections (without waiting
 * for any connect or handshake: a server that never answers costs the
 * siege nothing) and keeps them. NULL with a message in err if the
 * configuration cannot work (a TLS kind against a target in clear, a host
 * that does not resolve). */
struct siege *siege_start(const struct siege_config *cfg, char *err, size_t errlen);

/* Waits up to timeout_ms until every connection asked for is open; true
 * if they are. */
bool siege_wait_open(struct siege *s, int timeout_ms);

void siege_stats(struct siege *s, struct siege_stats *out);

/* Closes every hostile connection and ends the thread. */
void siege_stop(struct siege *s);

const char *siege_kind_name(enum siege_kind k);

/* "silent" -> SIEGE_SILENT; -1 if no kind has that name. */
int siege_kind_of(const char *name);

/* The names of every kind, for messages: "silent, slowloris, ...". */
const char *siege_kind_names(void);

#endif
