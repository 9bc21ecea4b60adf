/*
 * counters.c - the one table of answer-kind names (see counters.h).
 */
#include "counters.h"

static const char *const kind_names[COUNTER_FIRST_ERROR] = {
    [COUNTER_SEARCH_HIT] = "search_hit",
    [COUNTER_SEARCH_MISS] = "search_miss",
    [COUNTER_INVALID_ACTION] = "invalid_action",
    [COUNTER_BINARY] = "binary",
    [COUNTER_STATS] = "stats",
    [COUNTER_HEALTH] = "health",
};

const char *counter_kind_name(enum counter k)
{
    return (unsigned)k < COUNTER_FIRST_ERROR ? kind_names[k] : "unknown";
}

static const char *const tls_failure_names[COUNTER_TLS_FAILURES] = {
    "timeout", "protocol", "verify", "closed",
};

const char *counter_tls_failure_name(int reason)
{
    return reason >= 0 && reason < COUNTER_TLS_FAILURES ? tls_failure_names[reason] : "unknown";
}
