/*
 * request_json.h - a text/json request's content read for what the
 * server needs of it: whether it is an object, and its "action" and
 * "value" when they are strings.
 *
 * Two readers, one verdict. The common request (an object of strings,
 * valid UTF-8, no backslash escape, no number, shallow) is read by yajl's
 * callback parser, which builds no tree, its few allocations taken from
 * this thread's arena (json_alloc.h): no heap allocation, no copy, the
 * strings pointing into the content. Anything else (escapes, numbers,
 * deep nesting, bytes that are not JSON) goes to jansson, whose answer
 * is the server's: the fast reader never accepts what jansson refuses,
 * and reads what it accepts as jansson does (a repeated key: the last
 * one counts), which test_request_json.c and a fuzz target check against
 * jansson itself. So every answer, error text included, is jansson's.
 */
#ifndef ENCHUFE_REQUEST_JSON_H
#define ENCHUFE_REQUEST_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* A string of the request: NULL if the key is missing or its value is
 * not a string. Never NUL-terminated: use len. */
struct request_string {
    const char *text;
    size_t len;
};

struct request_json {
    bool is_object;
    struct request_string action, value;
    bool fast;            /* read by the fast reader (for tests) */
    json_t *tree;         /* jansson's, when it read the content */
    char error[200];      /* why the content is not JSON, jansson's words */
};

enum request_json_status {
    REQUEST_JSON_OK,        /* valid JSON: see is_object and the strings */
    REQUEST_JSON_INVALID,   /* not JSON: see error */
    REQUEST_JSON_NO_MEMORY, /* the server had no memory to read it */
};

/* Reads content[0..len). The strings stay valid until
 * request_json_release() and until the next read in this thread. */
enum request_json_status request_json_read(const char *content, size_t len,
                                           struct request_json *r);

void request_json_release(struct request_json *r);

#endif
