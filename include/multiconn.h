/*
 * multiconn.h - the tutorial's multi-connection client: N connections to
 * an echo server driven from one poll() loop, each sending two messages
 * and checking that every byte comes back.
 */
#ifndef ENCHUFE_MULTICONN_H
#define ENCHUFE_MULTICONN_H

#include "net.h"

#define MULTICONN_MAX 1000

/* Prints one line per connection and a summary on stdout. Everything,
 * connecting included, ends by the absolute monotime_ms() deadline (0 =
 * none). Returns 0 if every connection got all its bytes back, -1
 * otherwise. */
int multiconn_run(const struct net_endpoint *ep, int n, long long deadline);

#endif
