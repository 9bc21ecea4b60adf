/*
 * parse.h - strict parsing of numeric command-line values, shared by the
 * three programs so that "--port 80x" is an error everywhere, not 80.
 */
#ifndef ENCHUFE_PARSE_H
#define ENCHUFE_PARSE_H

#include <stdbool.h>

/* Parses a whole decimal integer in [min, max]. */
bool parse_long(const char *s, long min, long max, long *out);

/* Parses seconds (decimals allowed, e.g. "0.5") in [0, max_s] as milliseconds. */
bool parse_seconds_ms(const char *s, long max_s, int *out_ms);

/* The one message of the three programs for a bad option value, on
 * stderr: "PROG: invalid value 'VALUE' for --OPTION: expected EXPECTED".
 * Returns false, so that a parser can `return parse_bad_value(...)`. */
bool parse_bad_value(const char *prog, const char *option, const char *value,
                     const char *expected);

#endif
