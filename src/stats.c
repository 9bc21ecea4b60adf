/*
 * stats.c - names of the counted error codes (see stats.h).
 */
#include "stats.h"

#include <string.h>

const char *const stats_error_codes[STAT_ERRORS] = {
    "bad-proto-header", "bad-json", "bad-utf8", "bad-header", "too-large",
    "bad-content", "bad-request", "timeout", "no-memory",
};

int stats_error_index(const char *code)
{
    for (int i = 0; i < STAT_ERRORS; i++)
        if (strcmp(stats_error_codes[i], code) == 0)
            return STAT_FIRST_ERROR + i;
    return -1;
}
