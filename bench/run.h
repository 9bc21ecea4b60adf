/*
 * run.h - what a load run is asked for (struct bench_config) and what it
 * measured (struct bench_result), shared by the engine (loadgen.c and its
 * slots, slot.c), the report and the tests.
 */
#ifndef ENCHUFE_BENCH_RUN_H
#define ENCHUFE_BENCH_RUN_H

#include "histogram.h"
#include "request.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum bench_mode { BENCH_KEEPALIVE, BENCH_PER_CONN };

enum bench_error {
    BENCH_ERR_CONNECT, /* could not connect */
    BENCH_ERR_READ,    /* recv failed (e.g. reset) */
    BENCH_ERR_WRITE,   /* send failed */
    BENCH_ERR_TIMEOUT, /* no whole answer within the request timeout */
    BENCH_ERR_CLOSED,  /* the server closed with a request outstanding */
    BENCH_ERR_FRAMING, /* the answer is not a valid frame, or extra bytes came */
    BENCH_ERR_HEADER,  /* wrong content-type or content-encoding */
    BENCH_ERR_CONTENT, /* wrong content */
    BENCH_ERR_TLS,     /* the TLS handshake failed */
    BENCH_ERR_KINDS
};

#define BENCH_MAX_PIPELINE 1024

struct bench_config {
    const char *host;
    const char *port;
    const char *unix_path; /* connect here instead of host:port */
    int threads;
    int connections;
    enum bench_mode mode;
    double duration_s; /* used when requests is 0 */
    uint64_t requests; /* total requests to send, or 0 */
    double warmup_s;
    double rate;       /* requests/s in all, 0 for closed loop */
    int pipeline;      /* requests sent together per connection, each answer checked */
    int timeout_ms;    /* per request */
    const struct bench_request *mix;
    size_t mix_len;    /* each connection cycles through the mix */
    bool progress;     /* a line a second on stderr */
    struct ssl_ctx_st *tls; /* SSL_CTX: speak TLS (NULL: in clear) */
    const char *tls_name;   /* the name to send and verify (NULL: host) */
    bool tls_resume;        /* each connection resumes its slot's last session */
};

struct bench_result {
    double elapsed_s;
    uint64_t completed;   /* answers received and checked, in the window */
    uint64_t bytes_read;
    uint64_t errors[BENCH_ERR_KINDS];
    uint64_t in_flight;   /* sent but unanswered when the run ended */
    uint64_t retried;     /* sent again once on a new connection after the server
                             closed a keep-alive connection without a byte of answer */
    uint64_t never_answered; /* connections that got no answer at all: starved */
    uint64_t connections_opened;
    bool ever_connected;      /* some connection got through (warmup included) */
    int connect_errno;        /* why the last failed connect failed, or 0 */
    struct histogram latency; /* ns */
    struct histogram connect; /* ns, from connect() to established (TLS: handshake done) */
    uint64_t tls_full, tls_resumed; /* TLS handshakes, full and resumed */
};

const char *bench_error_name(enum bench_error e);

/* Adds one thread's measurements to the run's. */
void bench_result_merge(struct bench_result *dst, const struct bench_result *src);

#endif
