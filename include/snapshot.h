/*
 * snapshot.h - the server's numbers at one moment.
 *
 * One set of numbers, shown three ways: the `stats` answer (and
 * `enchufe-cli stats`), the Prometheus scrape (metrics.c), and the
 * watch view built from successive stats answers. The server fills it
 * (server_snapshot) by summing the per-worker counters and histograms;
 * nothing here is updated on the hot path.
 */
#ifndef ENCHUFE_SNAPSHOT_H
#define ENCHUFE_SNAPSHOT_H

#include "conn.h"
#include "counters.h"
#include "latency.h"
#include "protocol.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct snapshot {
    double uptime_s;
    uint64_t accepted, active, queued, parked;
    uint64_t ended[CONN_END_COUNT];        /* connections closed, by why they ended */
    uint64_t buffered, buffer_budget;      /* bytes held by waiting connections, and the limit */
    uint64_t workers, busy;
    uint64_t answers[COUNTER_FIRST_ERROR]; /* answers by kind (search_hit, ...) */
    uint64_t errors[PROTO_ERR_COUNT];      /* error answers by code */
    uint64_t requests;                     /* every answer, errors included */
    uint64_t bytes_in, bytes_out;
    struct latency_sum latency;            /* service time of every answer */
    uint64_t tls_handshakes, tls_resumed;  /* TLS handshakes done, and resumed */
    uint64_t tls_waiting, tls_waited;      /* handshakes waiting for room to begin, now and in all */
    uint64_t tls_failed[COUNTER_TLS_FAILURES]; /* failed, by reason */
    long long tls_not_after;               /* the certificate's expiry, Unix seconds (0: none) */
    uint64_t data_entries;                 /* values search answers */
    uint64_t reloads_done, reloads_failed; /* SIGHUP reloads */
    long long reload_last_ok_s;            /* Unix time of the last good one (or the start) */
    bool reload_last_failed;               /* the last one failed */
};

/* The stats answer's form (docs/protocol.md, "Stats"): a new JSON object,
 * or NULL if memory ran out. */
json_t *snapshot_to_json(const struct snapshot *s);

/* Reads that form back (what enchufe-cli stats --watch does). Returns 0,
 * or -1 if obj is not a stats answer. */
int snapshot_from_json(json_t *obj, struct snapshot *s);

#endif
