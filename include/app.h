/*
 * app.h - the application's request handlers: search and binary.
 *
 * Pure functions from a decoded request to a response; no sockets here,
 * so every row of the protocol table can be tested directly.
 */
#ifndef ENCHUFE_APP_H
#define ENCHUFE_APP_H

#include "frame.h"
#include "stats.h"

#include <jansson.h>

#include <stddef.h>

#define APP_TEXT_JSON "text/json"
#define APP_UTF8 "utf-8"
#define APP_BINARY "binary"
#define APP_SERVER_BINARY_TYPE "binary/custom-server-binary-type"
#define APP_CLIENT_BINARY_TYPE "binary/custom-client-binary-type"
#define APP_BINARY_PREFIX "First 10 bytes of request: "

struct app_response {
    enum stat_counter kind; /* what was answered, for the counters */
    const char *content_type;
    const char *content_encoding;
    const char *content;
    size_t length;
    const char *error; /* the error code sent, or NULL for an answer */
    char *owned;       /* heap copy behind content, if any */
};

/* Answers one request. Returns 0, or -1 if memory ran out. A `stats`
 * request is only recognised here (kind STAT_STATS, no content): the
 * connection layer, which knows the server, fills the answer in with
 * app_stats_response. */
int app_handle_request(const struct frame *req, struct app_response *resp);

/* Builds the framed error answer: {"result": "Error: <message>.",
 * "error": "<code>"}. Returns 0, or -1 if memory ran out. */
int app_error_response(const char *code, const char *message, struct app_response *resp);

/* The answer to a stats request: {"result": stats}; takes the reference. */
int app_stats_response(json_t *stats, struct app_response *resp);

void app_response_free(struct app_response *resp);

/* The answer to a search, or NULL when nothing matches. */
const char *app_search(const char *query);

#endif
