/*
 * request.c - the requests enchufe-bench sends and the answers it demands.
 *
 * The expected answers are written here from docs/protocol.md, not taken
 * from the server's code, so a server that drifts from the protocol is
 * caught rather than agreed with.
 */
#include "request.h"
#include "frame.h"
#include "protocol.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HIT_VALUE "morpheus"
#define HIT_ANSWER "{\"result\": \"Follow the white rabbit. \xf0\x9f\x90\xb0\"}"
#define MISS_VALUE "enchufe-bench"
#define MISS_ANSWER "{\"result\": \"No match for 'enchufe-bench'.\"}"

static uint8_t *pattern(size_t n)
{
    uint8_t *p = malloc(n ? n : 1);
    for (size_t i = 0; p && i < n; i++)
        p[i] = (uint8_t)('a' + i % 26);
    return p;
}

static int set_frame(struct bench_request *r, const char *ctype, const char *cenc,
                     const void *content, size_t len)
{
    r->bytes = malloc(FRAME_ENCODED_HEADER_MAX + len);
    if (!r->bytes)
        return -1;
    int n = frame_encode_header(r->bytes, ctype, cenc, len);
    if (n < 0)
        return -1;
    memcpy(r->bytes + n, content, len);
    r->len = (size_t)n + len;
    r->framed = true;
    return 0;
}

static int expect_json(struct bench_request *r, const char *content)
{
    strcpy(r->content_type, PROTO_TEXT_JSON);
    strcpy(r->content_encoding, PROTO_UTF8);
    r->expect_len = strlen(content);
    r->expect = malloc(r->expect_len);
    if (!r->expect)
        return -1;
    memcpy(r->expect, content, r->expect_len);
    r->check_bytes = true;
    return 0;
}

static int prepare_search(struct bench_request *r, const char *value, const char *answer)
{
    char content[128];
    size_t n = (size_t)snprintf(content, sizeof content,
                                "{\"action\": \"search\", \"value\": \"%s\"}", value);
    if (set_frame(r, PROTO_TEXT_JSON, PROTO_UTF8, content, n) < 0)
        return -1;
    return expect_json(r, answer);
}

static int prepare_binary(struct bench_request *r, size_t size)
{
    uint8_t *content = pattern(size);
    size_t prefix = strlen(PROTO_BINARY_PREFIX), head = size < 10 ? size : 10;
    int rc = content ? set_frame(r, PROTO_CLIENT_BINARY_TYPE, PROTO_BINARY, content, size) : -1;
    strcpy(r->content_type, PROTO_SERVER_BINARY_TYPE);
    strcpy(r->content_encoding, PROTO_BINARY);
    r->expect_len = prefix + head;
    r->expect = malloc(r->expect_len);
    if (rc == 0 && r->expect) {
        memcpy(r->expect, PROTO_BINARY_PREFIX, prefix);
        memcpy(r->expect + prefix, content, head);
        r->check_bytes = true;
    }
    free(content);
    return rc == 0 && r->expect ? 0 : -1;
}

int bench_prepare_raw(struct bench_request *r, const uint8_t *bytes, size_t len,
                      const uint8_t *expect, size_t expect_len)
{
    memset(r, 0, sizeof *r);
    r->kind = BENCH_RAW;
    r->bytes = malloc(len ? len : 1);
    r->expect = malloc(expect_len ? expect_len : 1);
    if (!r->bytes || !r->expect)
        return -1;
    memcpy(r->bytes, bytes, len);
    r->len = len;
    r->expect_len = expect_len;
    r->check_bytes = expect != NULL;
    if (expect)
        memcpy(r->expect, expect, expect_len);
    return 0;
}

int bench_prepare(struct bench_request *r, enum bench_kind kind, size_t size)
{
    memset(r, 0, sizeof *r);
    r->kind = kind;
    switch (kind) {
    case BENCH_HIT: return prepare_search(r, HIT_VALUE, HIT_ANSWER);
    case BENCH_MISS: return prepare_search(r, MISS_VALUE, MISS_ANSWER);
    case BENCH_BINARY: return prepare_binary(r, size);
    case BENCH_ECHO: {
        uint8_t *p = pattern(size);
        int rc = p ? bench_prepare_raw(r, p, size, p, size) : -1;
        r->kind = BENCH_ECHO;
        free(p);
        return rc;
    }
    case BENCH_RAW: break;
    }
    return -1;
}

void bench_request_free(struct bench_request *r)
{
    free(r->bytes);
    free(r->expect);
    r->bytes = r->expect = NULL;
}
