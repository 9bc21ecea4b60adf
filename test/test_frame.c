/*
 * test_frame.c - the frame codec: decoding whole, byte by byte and split
 * at every offset gives the same result; every error of the protocol
 * yields its own status; encoding round-trips.
 */
#include "frame.h"
#include "support.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX 4096

struct sample {
    const char *header;
    const char *content;
    size_t content_len;
};

static const struct sample valid[] = {
    {"{\"byteorder\": \"little\", \"content-type\": \"text/json\", \"content-encoding\": "
     "\"utf-8\", \"content-length\": 41}",
     "{\"action\": \"search\", \"value\": \"morpheus\"}", 41},
    {"{\"content-length\":4,\"content-encoding\":\"binary\",\"content-type\":\"binary/x\","
     "\"byteorder\":\"big\"}",
     "a\0b\xff", 4},
    {"{\"byteorder\": \"little\", \"content-type\": \"text/json\", \"content-encoding\": "
     "\"utf-8\", \"content-length\": 0}",
     "", 0},
    {"{\"byteorder\": \"little\", \"content-type\": \"t\xc3\xa9xt/\xf0\x9f\x90\xb6\", "
     "\"content-encoding\": \"utf-8\", \"content-length\": 4, \"extra\": [1, {\"a\": null}]}",
     "\xf0\x9f\x90\xb0", 4},
};
#define NVALID (sizeof valid / sizeof valid[0])

static size_t build(const struct sample *s, uint8_t *buf)
{
    return ts_frame(buf, MAX, s->header, s->content, s->content_len);
}

static void check_decoded(const struct sample *s, const struct frame *f, size_t size)
{
    cr_assert_eq(f->size, size, "the frame should consume all %zu bytes, got %zu", size, f->size);
    cr_assert_eq(f->header.content_length, s->content_len);
    cr_assert(memcmp(f->content, s->content, s->content_len) == 0,
              "content should come back byte for byte");
}

/* Feeds buf[0..len) in pieces ending at the given offsets, as a socket would. */
static enum frame_status feed_split(const uint8_t *buf, size_t len, size_t cut, struct frame *f,
                                    size_t max_content)
{
    struct frame_decoder d;
    frame_decoder_init(&d, max_content);
    enum frame_status st = frame_decode(&d, buf, cut, f);
    if (st != FRAME_NEED_MORE)
        return st;
    return frame_decode(&d, buf, len, f);
}

Test(frame, decodes_every_valid_sample_fed_whole)
{
    uint8_t buf[MAX];
    for (size_t i = 0; i < NVALID; i++) {
        size_t n = build(&valid[i], buf);
        struct frame_decoder d;
        struct frame f;
        frame_decoder_init(&d, MAX);
        cr_assert_eq(frame_decode(&d, buf, n, &f), FRAME_COMPLETE, "sample %zu", i);
        check_decoded(&valid[i], &f, n);
    }
}

Test(frame, decodes_the_same_fed_byte_by_byte)
{
    uint8_t buf[MAX];
    for (size_t i = 0; i < NVALID; i++) {
        size_t n = build(&valid[i], buf);
        struct frame_decoder d;
        struct frame f;
        frame_decoder_init(&d, MAX);
        for (size_t len = 0; len < n; len++)
            cr_assert_eq(frame_decode(&d, buf, len, &f), FRAME_NEED_MORE,
                         "sample %zu: %zu of %zu bytes is not a whole frame", i, len, n);
        cr_assert_eq(frame_decode(&d, buf, n, &f), FRAME_COMPLETE, "sample %zu", i);
        check_decoded(&valid[i], &f, n);
    }
}

Test(frame, decodes_the_same_split_at_every_offset)
{
    uint8_t buf[MAX];
    for (size_t i = 0; i < NVALID; i++) {
        size_t n = build(&valid[i], buf);
        for (size_t cut = 0; cut <= n; cut++) {
            struct frame f;
            cr_assert_eq(feed_split(buf, n, cut, &f, MAX), FRAME_COMPLETE,
                         "sample %zu split at %zu", i, cut);
            check_decoded(&valid[i], &f, n);
        }
    }
}

Test(frame, reads_header_fields)
{
    uint8_t buf[MAX];
    struct frame_decoder d;
    struct frame f;
    frame_decoder_init(&d, MAX);
    size_t n = build(&valid[1], buf);
    cr_assert_eq(frame_decode(&d, buf, n, &f), FRAME_COMPLETE);
    cr_assert_eq(f.header.byteorder, FRAME_BIG);
    cr_assert_str_eq(f.header.content_type, "binary/x");
    cr_assert_str_eq(f.header.content_encoding, "binary");
    n = build(&valid[3], buf);
    cr_assert_eq(frame_decode(&d, buf, n, &f), FRAME_COMPLETE);
    cr_assert_eq(f.header.byteorder, FRAME_LITTLE);
    cr_assert_str_eq(f.header.content_type, "t\xc3\xa9xt/\xf0\x9f\x90\xb6");
}

Test(frame, decodes_back_to_back_frames_in_one_buffer)
{
    uint8_t buf[MAX];
    size_t n = 0;
    for (size_t i = 0; i < NVALID; i++)
        n += ts_frame(buf + n, MAX - n, valid[i].header, valid[i].content, valid[i].content_len);
    struct frame_decoder d;
    frame_decoder_init(&d, MAX);
    size_t off = 0;
    for (size_t i = 0; i < NVALID; i++) {
        struct frame f;
        cr_assert_eq(frame_decode(&d, buf + off, n - off, &f), FRAME_COMPLETE, "frame %zu", i);
        cr_assert_eq(f.header.content_length, valid[i].content_len);
        off += f.size;
    }
    cr_assert_eq(off, n, "every byte should belong to a frame");
}

Test(frame, says_how_many_bytes_it_wants)
{
    uint8_t buf[MAX];
    size_t n = build(&valid[0], buf);
    size_t hlen = strlen(valid[0].header);
    struct frame_decoder d;
    struct frame f;
    frame_decoder_init(&d, MAX);
    cr_assert_eq(frame_decoder_wanted(&d), 2);
    frame_decode(&d, buf, 2, &f);
    cr_assert_eq(frame_decoder_wanted(&d), 2 + hlen);
    frame_decode(&d, buf, 2 + hlen, &f);
    cr_assert_eq(frame_decoder_wanted(&d), n);
}

struct bad {
    const char *header;
    enum frame_status status;
    const char *words; /* the message must mention these */
};

#define H_(bo, ct, ce, cl) \
    "{\"byteorder\": " bo ", \"content-type\": " ct ", \"content-encoding\": " ce \
    ", \"content-length\": " cl "}"

static const struct bad bad_headers[] = {
    {"not json at all", FRAME_ERR_HEADER_JSON, "not valid JSON"},
    {"{\"byteorder\": \"little\"", FRAME_ERR_HEADER_JSON, "not valid JSON"},
    {"\xef\xbb\xbf{}", FRAME_ERR_HEADER_JSON, "not valid JSON"},
    {"{\"byteorder\": \"l\xff\"}", FRAME_ERR_HEADER_UTF8, "UTF-8"},
    {"[1, 2, 3]", FRAME_ERR_HEADER_NOT_OBJECT, "not an object"},
    {"\"a string\"", FRAME_ERR_HEADER_NOT_OBJECT, "not an object"},
    {"{\"content-type\": \"a\", \"content-encoding\": \"b\", \"content-length\": 1}",
     FRAME_ERR_HEADER_KEY, "missing 'byteorder'"},
    {"{\"byteorder\": \"big\", \"content-encoding\": \"b\", \"content-length\": 1}",
     FRAME_ERR_HEADER_KEY, "missing 'content-type'"},
    {"{\"byteorder\": \"big\", \"content-type\": \"a\", \"content-length\": 1}",
     FRAME_ERR_HEADER_KEY, "missing 'content-encoding'"},
    {"{\"byteorder\": \"big\", \"content-type\": \"a\", \"content-encoding\": \"b\"}",
     FRAME_ERR_HEADER_KEY, "missing 'content-length'"},
    {H_("1", "\"a\"", "\"b\"", "1"), FRAME_ERR_HEADER_KEY, "byteorder"},
    {H_("\"middle\"", "\"a\"", "\"b\"", "1"), FRAME_ERR_HEADER_KEY, "byteorder"},
    {H_("\"little\"", "5", "\"b\"", "1"), FRAME_ERR_HEADER_KEY, "content-type"},
    {H_("\"little\"", "\"a\"", "null", "1"), FRAME_ERR_HEADER_KEY, "content-encoding"},
    {H_("\"little\"", "\"a\"", "\"b\"", "\"41\""), FRAME_ERR_HEADER_KEY, "content-length"},
    {H_("\"little\"", "\"a\"", "\"b\"", "-1"), FRAME_ERR_HEADER_KEY, "content-length"},
    {H_("\"little\"", "\"a\"", "\"b\"", "4.5"), FRAME_ERR_HEADER_KEY, "content-length"},
    {H_("\"little\"", "\"a\"", "\"b\"", "true"), FRAME_ERR_HEADER_KEY, "content-length"},
    {H_("\"little\"", "\"a\"", "\"b\"", "1") "x", FRAME_ERR_HEADER_JSON, "not valid JSON"},
    {"{\"byteorder\": \"little\", \"byteorder\": \"big\", \"content-type\": \"a\", "
     "\"content-encoding\": \"b\", \"content-length\": 1}",
     FRAME_ERR_HEADER_KEY, "repeats a key"},
    {H_("\"little\"", "\"a\\u0000b\"", "\"b\"", "1"), FRAME_ERR_HEADER_JSON, "not valid JSON"},
    {H_("\"little\"", "\"a\"", "\"b\"", "1001"), FRAME_ERR_TOO_LARGE, "exceeds the limit of 1000"},
    {H_("\"little\"", "\"a\"", "\"b\"", "99999999999999999999"), FRAME_ERR_HEADER_JSON,
     "not valid JSON"},
};
#define NBAD (sizeof bad_headers / sizeof bad_headers[0])

Test(frame, reports_each_bad_header_with_its_own_error)
{
    uint8_t buf[MAX];
    for (size_t i = 0; i < NBAD; i++) {
        size_t n = ts_frame(buf, MAX, bad_headers[i].header, NULL, 0);
        for (size_t cut = 0; cut <= n; cut++) {
            struct frame_decoder d;
            struct frame f;
            frame_decoder_init(&d, 1000);
            enum frame_status st = frame_decode(&d, buf, cut, &f);
            if (st == FRAME_NEED_MORE)
                st = frame_decode(&d, buf, n, &f);
            cr_assert_eq(st, bad_headers[i].status, "header %zu (%s) split at %zu: status %d",
                         i, bad_headers[i].header, cut, st);
            cr_assert(strstr(d.error, bad_headers[i].words),
                      "header %zu: message '%s' should mention '%s'", i, d.error,
                      bad_headers[i].words);
        }
    }
}

Test(frame, rejects_a_proto_header_too_short_for_json)
{
    const uint8_t zero[] = {0, 0}, one[] = {0, 1, '{'};
    struct frame_decoder d;
    struct frame f;
    frame_decoder_init(&d, MAX);
    cr_assert_eq(frame_decode(&d, zero, 2, &f), FRAME_ERR_PROTO_HEADER);
    frame_decoder_init(&d, MAX);
    cr_assert_eq(frame_decode(&d, one, 3, &f), FRAME_ERR_PROTO_HEADER);
    cr_assert_str_eq(proto_error_code(frame_status_error(FRAME_ERR_PROTO_HEADER)), "bad-proto-header");
}

Test(frame, rejects_too_large_before_any_content_arrives)
{
    uint8_t buf[MAX];
    size_t n = ts_frame(buf, MAX, H_("\"little\"", "\"a\"", "\"b\"", "1048577"), NULL, 0);
    struct frame_decoder d;
    struct frame f;
    frame_decoder_init(&d, 1048576);
    /* Only the header: the decoder must not wait for a mebibyte first. */
    cr_assert_eq(frame_decode(&d, buf, n, &f), FRAME_ERR_TOO_LARGE);
    cr_assert_str_eq(proto_error_code(frame_status_error(FRAME_ERR_TOO_LARGE)), "too-large");
}

Test(frame, accepts_content_exactly_at_the_limit)
{
    uint8_t buf[MAX];
    size_t n = ts_frame(buf, MAX, H_("\"little\"", "\"a\"", "\"b\"", "10"), "0123456789", 10);
    struct frame_decoder d;
    struct frame f;
    frame_decoder_init(&d, 10);
    cr_assert_eq(frame_decode(&d, buf, n, &f), FRAME_COMPLETE);
}

Test(frame, rejects_a_content_type_longer_than_rfc6838_allows)
{
    char header[1024], ctype[300];
    memset(ctype, 'x', 256);
    ctype[256] = '\0';
    snprintf(header, sizeof header, H_("\"little\"", "\"%s\"", "\"b\"", "0"), ctype);
    uint8_t buf[MAX];
    size_t n = ts_frame(buf, MAX, header, NULL, 0);
    struct frame_decoder d;
    struct frame f;
    frame_decoder_init(&d, MAX);
    cr_assert_eq(frame_decode(&d, buf, n, &f), FRAME_ERR_HEADER_KEY);
    cr_assert(strstr(d.error, "too long"));
}

Test(frame, encodes_the_header_as_the_original_does)
{
    uint8_t out[FRAME_ENCODED_HEADER_MAX];
    int n = frame_encode_header(out, "text/json", "utf-8", 41);
    const char *expect = "{\"byteorder\": \"little\", \"content-type\": \"text/json\", "
                         "\"content-encoding\": \"utf-8\", \"content-length\": 41}";
    cr_assert_eq((size_t)n, 2 + strlen(expect));
    cr_assert_eq((out[0] << 8) | out[1], (int)strlen(expect), "proto-header is big-endian");
    cr_assert(memcmp(out + 2, expect, strlen(expect)) == 0, "got %.*s", n - 2, out + 2);
}

static void round_trip(const char *ctype, const char *cenc, const void *content, size_t len)
{
    uint8_t *buf = malloc(FRAME_ENCODED_HEADER_MAX + len);
    int n = frame_encode_header(buf, ctype, cenc, len);
    cr_assert_gt(n, 0, "encoding '%s' should work", ctype);
    memcpy(buf + n, content, len);
    struct frame_decoder d;
    struct frame f;
    frame_decoder_init(&d, len);
    cr_assert_eq(frame_decode(&d, buf, (size_t)n + len, &f), FRAME_COMPLETE);
    cr_assert_str_eq(f.header.content_type, ctype);
    cr_assert_str_eq(f.header.content_encoding, cenc);
    cr_assert_eq(f.header.content_length, len);
    cr_assert(len == 0 || memcmp(f.content, content, len) == 0);
    free(buf);
}

Test(frame, round_trips_non_ascii_empty_and_escaped_values)
{
    round_trip("text/json", "utf-8", "{\"result\": \"\xf0\x9f\x90\xb0\"}", 18);
    round_trip("binary/x", "binary", "", 0);
    round_trip("t\xc3\xa9xt/\xf0\x9f\x90\xb6", "utf-8", "\xc3\xa9", 2);
    round_trip("quote\"back\\slash\ttab", "bin", "\0\1\2", 3);
}

Test(frame, refuses_to_encode_invalid_utf8_or_oversized_strings)
{
    uint8_t out[FRAME_ENCODED_HEADER_MAX];
    char big[FRAME_MAX_CONTENT_TYPE + 2];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    cr_assert_eq(frame_encode_header(out, "bad\xff", "utf-8", 1), -1);
    cr_assert_eq(frame_encode_header(out, big, "utf-8", 1), -1);
}

/* jansson reports running out of memory like any parse error; a valid
 * header the server had no memory to parse must not read as bad JSON. */
Test(frame, a_header_parsed_without_memory_is_no_memory_not_bad_json)
{
    static const char header[] = "{\"byteorder\": \"little\", \"content-type\": \"text/json\", "
                                 "\"content-encoding\": \"utf-8\", \"content-length\": 0}";
    uint8_t buf[256];
    size_t n = ts_frame(buf, sizeof buf, header, NULL, 0);
    struct frame_decoder d;
    struct frame f;
    frame_decoder_init(&d, 1000);
    ts_json_allocation_fails(-1);
    enum frame_status st = frame_decode(&d, buf, n, &f);
    ts_json_allocations_restore();
    cr_assert_eq(st, FRAME_ERR_NO_MEMORY, "got %s: %s", proto_error_code(frame_status_error(st)), d.error);
    cr_assert_str_eq(proto_error_code(frame_status_error(st)), "no-memory");
    frame_decoder_init(&d, 1000);
    cr_assert_eq(frame_decode(&d, buf, n, &f), FRAME_COMPLETE, "with memory it decodes");
}

/* Whichever of jansson's allocations fails, mid-parse included, a valid
 * header is answered no-memory, never bad-json: a failed allocation is
 * known for certain, not guessed from the error jansson reports. */
Test(frame, an_allocation_failing_anywhere_in_a_header_parse_is_no_memory)
{
    static const char header[] = "{\"byteorder\": \"little\", \"content-type\": \"text/json\", "
                                 "\"content-encoding\": \"utf-8\", \"content-length\": 0, "
                                 "\"x-long-key-that-makes-the-lexer-grow-its-buffer\": "
                                 "\"and a value long enough to grow it again and again\"}";
    uint8_t buf[512];
    size_t n = ts_frame(buf, sizeof buf, header, NULL, 0);
    int completed = 0;
    for (int k = 0; k < 64; k++) {
        struct frame_decoder d;
        struct frame f;
        frame_decoder_init(&d, 1000);
        ts_json_allocation_fails(k);
        enum frame_status st = frame_decode(&d, buf, n, &f);
        ts_json_allocations_restore();
        cr_assert(st == FRAME_COMPLETE || st == FRAME_ERR_NO_MEMORY,
                  "allocation %d failing gave %s: %s", k + 1,
                  proto_error_code(frame_status_error(st)), d.error);
        completed += st == FRAME_COMPLETE;
    }
    cr_assert_gt(completed, 0, "with enough allocations the header decodes");
}
