/*
 * parse.c - numeric option parsing (see parse.h).
 */
#include "parse.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

bool parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

bool parse_seconds_ms(const char *s, long max_s, int *out_ms)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end != '\0' || !isfinite(v) || v < 0 || v > (double)max_s)
        return false;
    *out_ms = (int)lround(v * 1000.0);
    return true;
}

bool parse_bad_value(const char *prog, const char *option, const char *value,
                     const char *expected)
{
    fprintf(stderr, "%s: invalid value '%s' for --%s: expected %s\n", prog, value, option,
            expected);
    return false;
}
