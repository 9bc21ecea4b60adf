/*
 * answers.h - what `search` answers: the tutorial's three answers, built
 * in, or a JSON file of value -> answer (strings) given with --data.
 *
 * A set of answers is made whole and checked, then never changed: a
 * reload makes a new set and swaps it in (swap.h), so a request sees one
 * set or the other, never a mix. Each answer is kept as the response
 * content it makes, {"result": ANSWER} byte for byte as the tutorial's
 * server writes it, so a hit costs a lookup and a copy.
 */
#ifndef ENCHUFE_ANSWERS_H
#define ENCHUFE_ANSWERS_H

#include <stdbool.h>
#include <stddef.h>

/* What a data file may hold; checked before anything is swapped in. */
#define ANSWERS_MAX_FILE ((size_t)64 << 20) /* bytes of JSON */
#define ANSWERS_MAX_ENTRIES 1000000
#define ANSWERS_MAX_VALUE 4096              /* bytes of a searched value */
#define ANSWERS_MAX_CONTENT ((size_t)64 << 10) /* bytes of an answer's response content */

struct answers;

/* The tutorial's three (static: answers_free leaves it alone). */
const struct answers *answers_builtin(void);

/* Reads a JSON object of value -> answer (a string) from path. Returns the set, or NULL with one line in err
 * naming the file and what is wrong (with the line and column for a
 * JSON syntax error). */
struct answers *answers_load(const char *path, char *err, size_t errlen);

void answers_free(const struct answers *a);

size_t answers_count(const struct answers *a);

/* The response content for a searched value, or NULL for no match. */
const char *answers_find(const struct answers *a, const char *value, size_t value_len,
                         size_t *content_len);

#endif
