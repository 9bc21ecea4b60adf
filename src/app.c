/*
 * app.c - what the application server answers (docs/protocol.md).
 *
 * text/json requests are {"action": ..., "value": ...}; the actions are
 * "search" (answered from the current set of answers, answers.h), and the
 * extensions "stats" and "health". Anything that is not text/json is
 * binary and is answered with its first ten bytes. A request that frames correctly but makes no sense
 * gets an error answer; the connection stays usable because the framing is
 * intact (the connection code closes it only for framing errors).
 */
#include "app.h"
#include "answers.h"
#include "json_text.h"
#include "request_json.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Every field but the inline buffer, which is written only when used
 * (this runs once per answer). */
static void response_init(struct app_response *resp, const char *ctype, const char *cenc)
{
    resp->kind = COUNTER_SEARCH_HIT;
    resp->content_type = ctype;
    resp->content_encoding = cenc;
    resp->content = NULL;
    resp->length = 0;
    resp->error = NULL;
    resp->owned = NULL;
    resp->close_after = false;
}

/* Serialises obj as the response content; takes the reference to obj. */
static int set_json_content(struct app_response *resp, json_t *obj)
{
    if (!obj)
        return -1;
    /* Without JSON_COMPACT jansson writes ", " and ": " like Python's
     * json.dumps, and without JSON_ENSURE_ASCII it keeps raw UTF-8. */
    resp->owned = json_dumps(obj, 0);
    json_decref(obj);
    if (!resp->owned)
        return -1;
    resp->content = resp->owned;
    resp->length = strlen(resp->owned);
    return 0;
}

/* Room for n bytes of content: the response's own buffer, or the heap
 * for a longer one. NULL if memory ran out. */
static char *content_room(struct app_response *resp, size_t n)
{
    char *to = resp->inline_content;
    if (n > sizeof resp->inline_content && !(to = resp->owned = malloc(n)))
        return NULL;
    resp->content = to;
    resp->length = n;
    return to;
}

static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

/* {"result": "<before><text><after>"} and, for an error, ", "error":
 * "<code>"" before the brace: written as json_dumps writes it, without a
 * tree. before, after and the code are plain ASCII that needs no escape;
 * text is UTF-8 and is escaped. */
static int set_result(struct app_response *resp, const char *before, const char *text,
                      size_t text_len, const char *after)
{
    static const char head[] = "{\"result\": \"", error[] = "\", \"error\": \"";
    size_t nb = strlen(before), na = strlen(after), nt = json_text_length(text, text_len);
    size_t ne = resp->error ? sizeof error - 1 + strlen(resp->error) : 0;
    char *p = content_room(resp, sizeof head - 1 + nb + nt + na + ne + 2);
    if (!p)
        return -1;
    p = put(p, head, sizeof head - 1);
    p = put(p, before, nb);
    p = json_text_write(p, text, text_len);
    p = put(p, after, na);
    if (resp->error) {
        p = put(p, error, sizeof error - 1);
        p = put(p, resp->error, strlen(resp->error));
    }
    put(p, "\"}", 2);
    return 0;
}

/* Keeps messages valid UTF-8 whatever bytes a parser error quoted. */
static void make_printable(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            *s = '?';
}

/* When there is no memory even to build an error answer, this one,
 * which needs none, is sent. */
static const char no_memory_answer[] =
    "{\"result\": \"Error: the server ran out of memory.\", \"error\": \"no-memory\"}";

int app_error_response(enum proto_error e, const char *message, struct app_response *resp)
{
    response_init(resp, PROTO_TEXT_JSON, PROTO_UTF8);
    char text[512];
    snprintf(text, sizeof text, "%s", message);
    make_printable(text);
    resp->error = proto_error_code(e);
    resp->kind = counter_of_error(e);
    if (set_result(resp, "Error: ", text, strlen(text), ".") == 0)
        return 0;
    if (e != PROTO_ERR_NO_MEMORY)
        return -1;
    resp->content = no_memory_answer;
    resp->length = sizeof no_memory_answer - 1;
    return 0;
}

/* The answer's bytes are copied out while the set is held: a reload frees
 * the old set as soon as no request holds it (swap.h). */
static int copy_content(struct app_response *resp, const char *content, size_t len)
{
    char *to = content_room(resp, len);
    if (!to)
        return -1;
    memcpy(to, content, len);
    return 0;
}

/* Copies the answer to query into resp: 1 if there is one, 0 if not, -1
 * if memory ran out. */
static int find_answer(const struct app_server *server, const char *query, size_t len,
                       struct app_response *resp)
{
    struct swap *store = server ? server->answers : NULL;
    int stripe = 0, found = 0;
    const struct answers *set = store ? swap_read_begin(store, &stripe) : answers_builtin();
    size_t content_len = 0;
    const char *content = answers_find(set, query, len, &content_len);
    if (content)
        found = copy_content(resp, content, content_len) == 0 ? 1 : -1;
    if (store)
        swap_read_end(store, stripe);
    return found;
}

static int answer_search(const struct request_string *value, const struct app_server *server,
                         struct app_response *resp)
{
    if (!value->text)
        return app_error_response(PROTO_ERR_BAD_REQUEST, "search 'value' must be a string", resp);
    int found = find_answer(server, value->text, value->len, resp);
    if (found != 0) {
        resp->kind = COUNTER_SEARCH_HIT;
        return found > 0 ? 0 : -1;
    }
    resp->kind = COUNTER_SEARCH_MISS;
    return set_result(resp, "No match for '", value->text, value->len, "'.");
}

static bool is_utf8_name(const char *enc)
{
    return strcasecmp(enc, "utf-8") == 0 || strcasecmp(enc, "utf8") == 0;
}

/* The server's counters: {"result": {...}}. */
static int answer_stats(const struct app_server *server, struct app_response *resp)
{
    resp->kind = COUNTER_STATS;
    json_t *counters = server && server->stats ? server->stats(server->arg) : NULL;
    return set_json_content(resp, counters ? json_pack("{s:o}", "result", counters) : NULL);
}

/* For a load balancer's health check: "ok", or "draining" once the server
 * is about to stop (--shutdown-delay), so that the balancer stops sending
 * new connections before the listener closes. A draining answer also ends
 * the connection: a check that waits for "ok" (HAProxy's tcp-check
 * expect) then fails the moment the connection closes, not at its
 * timeout. Static answers: no memory. */
static int answer_health(const struct app_server *server, struct app_response *resp)
{
    static const char ok[] = "{\"result\": \"ok\"}", draining[] = "{\"result\": \"draining\"}";
    bool stopping = server && server->draining && server->draining(server->arg);
    resp->kind = COUNTER_HEALTH;
    resp->content = stopping ? draining : ok;
    resp->length = stopping ? sizeof draining - 1 : sizeof ok - 1;
    resp->close_after = stopping;
    return 0;
}

static bool is_action(const struct request_string *action, const char *name)
{
    return action->len == strlen(name) && memcmp(action->text, name, action->len) == 0;
}

static int answer_action(const struct request_json *req, const struct app_server *server,
                         struct app_response *resp)
{
    if (!req->is_object)
        return app_error_response(PROTO_ERR_BAD_REQUEST, "request content must be a JSON object",
                                  resp);
    const struct request_string *action = &req->action;
    if (!action->text)
        return app_error_response(PROTO_ERR_BAD_REQUEST, "request 'action' must be a string",
                                  resp);
    if (is_action(action, PROTO_ACTION_SEARCH))
        return answer_search(&req->value, server, resp);
    if (is_action(action, PROTO_ACTION_STATS))
        return answer_stats(server, resp);
    if (is_action(action, PROTO_ACTION_HEALTH))
        return answer_health(server, resp);
    resp->kind = COUNTER_INVALID_ACTION;
    return set_result(resp, "Error: invalid action '", action->text, action->len, "'.");
}

static int answer_json(const struct frame *req, const struct app_server *server,
                       struct app_response *resp)
{
    response_init(resp, PROTO_TEXT_JSON, PROTO_UTF8);
    if (!is_utf8_name(req->header.content_encoding))
        return app_error_response(PROTO_ERR_BAD_REQUEST,
                                  "text/json content-encoding must be utf-8", resp);
    struct request_json r;
    enum request_json_status st = request_json_read((const char *)req->content,
                                                    req->header.content_length, &r);
    if (st == REQUEST_JSON_NO_MEMORY)
        return -1; /* the caller answers no-memory: the request was fine */
    if (st == REQUEST_JSON_INVALID) {
        char msg[256];
        snprintf(msg, sizeof msg, "request content is not valid JSON (%s)", r.error);
        return app_error_response(PROTO_ERR_BAD_CONTENT, msg, resp);
    }
    int rc = answer_action(&r, server, resp);
    request_json_release(&r);
    return rc;
}

static int answer_binary(const struct frame *req, struct app_response *resp)
{
    response_init(resp, PROTO_SERVER_BINARY_TYPE, PROTO_BINARY);
    resp->kind = COUNTER_BINARY;
    size_t prefix = strlen(PROTO_BINARY_PREFIX);
    size_t n = req->header.content_length < PROTO_BINARY_ECHOED ? req->header.content_length
                                                                : PROTO_BINARY_ECHOED;
    char *p = content_room(resp, prefix + n); /* always the inline buffer */
    if (!p)
        return -1;
    put(put(p, PROTO_BINARY_PREFIX, prefix), (const char *)req->content, n);
    return 0;
}

int app_handle_request(const struct frame *req, const struct app_server *server,
                       struct app_response *resp)
{
    if (strcmp(req->header.content_type, PROTO_TEXT_JSON) == 0)
        return answer_json(req, server, resp);
    return answer_binary(req, resp);
}

void app_response_free(struct app_response *resp)
{
    free(resp->owned);
    resp->owned = NULL;
}

void app_response_move(struct app_response *dst, struct app_response *src)
{
    *dst = *src;
    if (src->content == src->inline_content)
        dst->content = dst->inline_content;
    src->owned = NULL; /* dst's now */
}
