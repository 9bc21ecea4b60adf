/*
 * fuzz_request.c - libFuzzer target for the request handler.
 *
 * The input is one frame as a client would send it. Whatever it holds,
 * the server's answer (or error answer) must be a frame our own decoder
 * accepts, with a text/json answer that is valid JSON holding a string
 * "result".
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
    if (strcmp(resp->content_type, APP_TEXT_JSON) == 0) {
        json_t *obj = json_loadb(resp->content, resp->length, 0, NULL);
        if (!json_is_string(json_object_get(obj, "result")))
            abort();
        json_decref(obj);
    }
    free(wire);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct frame_decoder d;
    struct frame req;
    struct app_response resp;
    frame_decoder_init(&d, 65536);
    enum frame_status st = frame_decode(&d, data, size, &req);
    if (st == FRAME_NEED_MORE)
        return 0;
    int rc = st == FRAME_COMPLETE ? app_handle_request(&req, &resp)
                                  : app_error_response(frame_status_code(st), d.error, &resp);
    if (rc == 0 && !(resp.kind == STAT_STATS && !resp.content)) /* stats: the server's job */
        check_answer(&resp);
    app_response_free(&resp);
    return 0;
}
