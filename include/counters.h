/*
 * counters.h - what the server counts, for the `stats` request.
 *
 * Each worker keeps its own counters (see worker.h), bumped without locks
 * or contention and summed only when someone asks. Error answers are
 * counted by their protocol error, in the order of protocol.h's table.
 */
#ifndef ENCHUFE_COUNTERS_H
#define ENCHUFE_COUNTERS_H

#include "protocol.h"

/* The reasons a TLS handshake fails (enum tls_failure, in its order). */
#define COUNTER_TLS_FAILURES 4

enum counter {
    COUNTER_SEARCH_HIT, /* answers, by kind */
    COUNTER_SEARCH_MISS,
    COUNTER_INVALID_ACTION,
    COUNTER_BINARY,
    COUNTER_STATS,
    COUNTER_HEALTH,
    COUNTER_FIRST_ERROR, /* error answers, one per enum proto_error */
    COUNTER_BYTES_IN = COUNTER_FIRST_ERROR + PROTO_ERR_COUNT,
    COUNTER_BYTES_OUT,
    COUNTER_TLS_HANDSHAKES, /* TLS handshakes done */
    COUNTER_TLS_RESUMED,    /* ... of which resumed a session */
    COUNTER_TLS_FAILED_FIRST, /* failed handshakes, one per enum tls_failure */
    COUNTER_COUNT = COUNTER_TLS_FAILED_FIRST + COUNTER_TLS_FAILURES
};

/* The counter of error answers with this error. */
static inline enum counter counter_of_error(enum proto_error e)
{
    return (enum counter)(COUNTER_FIRST_ERROR + (int)e);
}

/* The answers of every kind, errors included: the requests answered. */
#define COUNTER_ANSWERS_END COUNTER_BYTES_IN

/* The name of an answer kind (COUNTER_SEARCH_HIT .. COUNTER_HEALTH) as the
 * stats answer and the metrics' `kind` label spell it: "search_hit". */
const char *counter_kind_name(enum counter k);

/* The name of a handshake failure's reason (enum tls_failure order), as
 * the stats answer and the metrics' `reason` label spell it: "timeout". */
const char *counter_tls_failure_name(int reason);

#endif
