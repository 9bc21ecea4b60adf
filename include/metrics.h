/*
 * metrics.h - the Prometheus scrape endpoint: GET /metrics in the text
 * exposition format, served by GNU libmicrohttpd on a thread of its own.
 *
 * Each scrape asks the server for a snapshot (the same numbers as the
 * stats answer) and adds the standard process_* metrics read from /proc.
 * Nothing here touches the workers' hot path: they only bump their own
 * relaxed counters, as always. Bad input on this port (not HTTP, huge
 * headers, slow or idle clients, other paths and methods) gets
 * libmicrohttpd's answers and limits, and never reaches the protocol
 * listener: a separate socket, thread and connection limit.
 */
#ifndef ENCHUFE_METRICS_H
#define ENCHUFE_METRICS_H

#include "snapshot.h"

#include <stddef.h>

struct metrics;

/* Fills a snapshot of the server, on the metrics thread. */
typedef void (*metrics_snapshot_fn)(void *arg, struct snapshot *out);

/* Listens on host_port ("127.0.0.1:9464", "[::1]:9464", "localhost:0")
 * and serves scrapes. Returns NULL with a message in err. */
struct metrics *metrics_start(const char *host_port, metrics_snapshot_fn fn, void *arg,
                              char *err, size_t errlen);

/* The address it listens on, as "HOST:PORT" (the real port for port 0). */
int metrics_address(const struct metrics *m, char *out, size_t outlen);

/* Stops the thread, closes the socket and frees. */
void metrics_stop(struct metrics *m);

/* Writes the exposition text for a snapshot and this process into f. */
void metrics_write(FILE *f, const struct snapshot *s);

#endif
