/*
 * app.h - the application's request handlers: search, binary, stats and
 * health.
 *
 * Functions from a decoded request to a response; no sockets here, so
 * every row of the protocol table can be tested directly. The server's
 * counters, which a stats request answers with, come from a source the
 * caller hands in: the handlers know nothing of the server.
 */
#ifndef ENCHUFE_APP_H
#define ENCHUFE_APP_H

#include "counters.h"
#include "frame.h"
#include "protocol.h"
#include "swap.h"

#include <jansson.h>

#include <stdbool.h>
#include <stddef.h>

/* A search answer up to this size is copied into the response itself. */
#define APP_INLINE_CONTENT 256

struct app_response {
    enum counter kind; /* what was answered, for the counters */
    const char *content_type;
    const char *content_encoding;
    const char *content; /* static, owned, or inline_content */
    size_t length;
    const char *error; /* the error code sent, or NULL for an answer */
    char *owned;       /* heap copy behind content, if any */
    bool close_after;  /* the connection ends once this answer is out */
    char inline_content[APP_INLINE_CONTENT];
};

/* What the handlers may ask of the server, handed in by it (the handlers
 * know nothing else of it): answers holds the current set of search
 * answers (struct answers, swapped whole on a reload; NULL: the built-in
 * ones); stats(arg) returns a new JSON object with the counters, or NULL;
 * draining(arg) says whether the server is about to stop (a health check
 * then says so). Any may be NULL. */
struct app_server {
    struct swap *answers;
    json_t *(*stats)(void *arg);
    bool (*draining)(void *arg);
    void *arg;
};

/* Answers one request. Returns 0, or -1 if memory ran out (the request
 * may have been fine: answer no-memory). */
int app_handle_request(const struct frame *req, const struct app_server *server,
                       struct app_response *resp);

/* Builds the framed error answer: {"result": "Error: <message>.",
 * "error": "<code>"}. Returns 0, or -1 if memory ran out (except for
 * PROTO_ERR_NO_MEMORY, whose answer needs none). */
int app_error_response(enum proto_error e, const char *message, struct app_response *resp);

void app_response_free(struct app_response *resp);

/* Moves a response (its content may live inside it) from src to dst. */
void app_response_move(struct app_response *dst, struct app_response *src);

#endif
