/*
 * fuzz_request.c - libFuzzer target for the request handler.
 *
 * The input is one frame as a client would send it. Whatever it holds,
 * the server's answer (or error answer) must be a frame our own decoder
 * accepts, with a text/json answer that is valid JSON holding a string
 * "result" (an object, for stats).
 */
#include "app.h"
#include "frame.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check_answer(const struct app_response *resp)
{
    uint8_t *wire = malloc(FRAME_ENCODED_HEADER_MAX + resp->length);
    int n = frame_encode_header(wire, resp->content_type, resp->content_encoding, resp->length);
    if (n < 0)
        abort();
    memcpy(wire + n, resp->content, resp->length);
    struct frame_decoder d;
    struct frame f;
    frame_decoder_init(&d, resp->length);
    if (frame_decode(&d, wire, (size_t)n + resp->length, &f) != FRAME_COMPLETE)
        abort();
    if (strcmp(resp->content_type, PROTO_TEXT_JSON) == 0) {
        json_t *obj = json_loadb(resp->content, resp->length, 0, NULL);
        json_t *result = json_object_get(obj, "result");
        if (!json_is_string(result) && !(resp->kind == COUNTER_STATS && json_is_object(result)))
            abort();
        json_decref(obj);
    }
    free(wire);
}

/* Stands in for the server's counters. */
static json_t *some_counters(void *arg)
{
    (void)arg;
    return json_pack("{s:f, s:{s:I}}", "uptime_s", 1.5, "requests", "total", (json_int_t)7);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct frame_decoder d;
    struct frame req;
    struct app_response resp;
    static const struct app_server server = {.stats = some_counters};
    frame_decoder_init(&d, 65536);
    enum frame_status st = frame_decode(&d, data, size, &req);
    if (st == FRAME_NEED_MORE)
        return 0;
    int rc = st == FRAME_COMPLETE ? app_handle_request(&req, &server, &resp)
                                  : app_error_response(frame_status_error(st), d.error, &resp);
    if (rc == 0)
        check_answer(&resp);
    app_response_free(&resp);
    return 0;
}
