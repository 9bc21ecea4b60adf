/*
 * watch.h - enchufe-cli stats --watch SEC: the server's activity, one line
 * per interval, in the manner of `redis-cli --stat`: requests and errors
 * per second, connections active and parked, busy workers, the p50 and
 * p99 service time over the interval, and bytes per second each way. The
 * header line is printed again every screenful.
 *
 * Every line comes from two stats answers (docs/protocol.md), subtracted:
 * rates over the server's own clock, percentiles from the difference of
 * its latency histograms, so a line says what happened in that interval.
 */
#ifndef ENCHUFE_WATCH_H
#define ENCHUFE_WATCH_H

#include "client.h"
#include "net.h"

struct watch_config {
    const struct net_endpoint *ep;
    const struct client_tls *tls; /* NULL: in clear */
    int interval_ms;
    int count;      /* lines to print, 0 for no end */
    int timeout_ms; /* for each stats exchange */
};

/* Prints lines until count is reached; returns 0, or -1 after saying on
 * stderr why the server could not be asked. */
int watch_run(const struct watch_config *cfg);

#endif
