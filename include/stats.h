/*
 * stats.h - what the server counts, for the `stats` request.
 *
 * Each worker keeps its own counters (see pool.h), bumped without locks
 * or contention and summed only when someone asks.
 */
#ifndef ENCHUFE_STATS_H
#define ENCHUFE_STATS_H

enum stat_counter {
    STAT_SEARCH_HIT,      /* answers, by kind */
    STAT_SEARCH_MISS,
    STAT_INVALID_ACTION,
    STAT_BINARY,
    STAT_STATS,
    STAT_ERR_PROTO_HEADER, /* error answers, by code (stats_error_codes) */
    STAT_ERR_JSON,
    STAT_ERR_UTF8,
    STAT_ERR_HEADER,
    STAT_ERR_TOO_LARGE,
    STAT_ERR_CONTENT,
    STAT_ERR_REQUEST,
    STAT_ERR_TIMEOUT,
    STAT_ERR_NO_MEMORY,
    STAT_BYTES_IN,
    STAT_BYTES_OUT,
    STAT_CLOSED,          /* connections a worker closed */
    STAT_COUNT
};

#define STAT_FIRST_ERROR STAT_ERR_PROTO_HEADER
#define STAT_ERRORS (STAT_ERR_NO_MEMORY - STAT_ERR_PROTO_HEADER + 1)

/* The error code of each STAT_ERR_* counter, in order. */
extern const char *const stats_error_codes[STAT_ERRORS];

/* The counter of an error code; -1 if unknown. */
int stats_error_index(const char *code);

#endif
