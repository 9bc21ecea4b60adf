/*
 * test_app.c - every row of the protocol's request table, checked against
 * the exact UTF-8 bytes docs/protocol.md gives.
 */
#include "app.h"
#include "answers.h"
#include "json_alloc.h"
#include "support.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

static struct frame json_request(const char *content)
{
    struct frame f = {0};
    strcpy(f.header.content_type, "text/json");
    strcpy(f.header.content_encoding, "utf-8");
    f.header.content_length = strlen(content);
    f.content = (const uint8_t *)content;
    return f;
}

static void expect_answer(const char *content, const char *expected)
{
    struct frame req = json_request(content);
    struct app_response resp;
    cr_assert_eq(app_handle_request(&req, NULL, &resp), 0);
    cr_assert_str_eq(resp.content_type, "text/json");
    cr_assert_str_eq(resp.content_encoding, "utf-8");
    cr_assert_eq(resp.length, strlen(expected), "for %s expected %s, got %.*s", content,
                 expected, (int)resp.length, resp.content);
    cr_assert(memcmp(resp.content, expected, resp.length) == 0, "for %s expected %s, got %.*s",
              content, expected, (int)resp.length, resp.content);
    cr_assert_null(resp.error);
    app_response_free(&resp);
}

Test(app, search_morpheus_follows_the_white_rabbit)
{
    /* 46 6f 6c ... 2e 20 f0 9f 90 b0 */
    expect_answer("{\"action\": \"search\", \"value\": \"morpheus\"}",
                  "{\"result\": \"Follow the white rabbit. \xf0\x9f\x90\xb0\"}");
}

Test(app, search_ring_is_in_the_caves)
{
    expect_answer("{\"action\": \"search\", \"value\": \"ring\"}",
                  "{\"result\": \"In the caves beneath the Misty Mountains. \xf0\x9f\x92\x8d\"}");
}

Test(app, search_dog_emoji_plays_ball)
{
    expect_answer("{\"action\": \"search\", \"value\": \"\xf0\x9f\x90\xb6\"}",
                  "{\"result\": \"\xf0\x9f\x90\xbe Playing ball! \xf0\x9f\x8f\x90\"}");
}

Test(app, search_dog_emoji_written_as_json_escapes)
{
    expect_answer("{\"value\": \"\\ud83d\\udc36\", \"action\": \"search\"}",
                  "{\"result\": \"\xf0\x9f\x90\xbe Playing ball! \xf0\x9f\x8f\x90\"}");
}

Test(app, search_anything_else_has_no_match)
{
    expect_answer("{\"action\": \"search\", \"value\": \"neo\"}",
                  "{\"result\": \"No match for 'neo'.\"}");
    expect_answer("{\"action\": \"search\", \"value\": \"\"}", "{\"result\": \"No match for ''.\"}");
    expect_answer("{\"action\": \"search\", \"value\": \"Morpheus\"}",
                  "{\"result\": \"No match for 'Morpheus'.\"}");
}

Test(app, no_match_escapes_quotes_like_json_dumps)
{
    expect_answer("{\"action\": \"search\", \"value\": \"a\\\"b\\\\c\\n\"}",
                  "{\"result\": \"No match for 'a\\\"b\\\\c\\n'.\"}");
}

/* The answers are written without jansson: each is byte for byte what
 * json_dumps wrote before, for every ASCII character in the query (the
 * control characters escaped, as \u001F, in jansson's capitals) and
 * for UTF-8. */
Test(app, a_miss_is_written_as_json_dumps_writes_it)
{
    for (int b = 1; b < 0x80 + 2; b++) {
        char query[16];
        if (b < 0x80)
            snprintf(query, sizeof query, "a%cb", b);
        else
            snprintf(query, sizeof query, "%s", b == 0x80 ? "\xc3\xb1" : "\xf0\x9f\x90\xb6!");
        json_t *req = json_pack("{s:s, s:s}", "action", "search", "value", query);
        char *content = json_dumps(req, 0);
        char text[64];
        snprintf(text, sizeof text, "No match for '%s'.", query);
        json_t *answer = json_pack("{s:s}", "result", text);
        char *expected = json_dumps(answer, 0);
        cr_assert(content && expected);
        expect_answer(content, expected);
        free(content);
        free(expected);
        json_decref(req);
        json_decref(answer);
    }
}

Test(app, any_other_action_is_invalid)
{
    expect_answer("{\"action\": \"find\", \"value\": \"ring\"}",
                  "{\"result\": \"Error: invalid action 'find'.\"}");
    expect_answer("{\"action\": \"\xc3\xb1\"}", "{\"result\": \"Error: invalid action '\xc3\xb1'.\"}");
}

/* The answer to a binary request, moved into *out (its content may live
 * inside the response, so a plain copy would point into the old one). */
static void binary_answer(const char *content, size_t len, struct app_response *out)
{
    struct frame f = {0};
    strcpy(f.header.content_type, "binary/custom-client-binary-type");
    strcpy(f.header.content_encoding, "binary");
    f.header.content_length = len;
    f.content = (const uint8_t *)content;
    struct app_response resp;
    cr_assert_eq(app_handle_request(&f, NULL, &resp), 0);
    cr_assert_str_eq(resp.content_type, "binary/custom-server-binary-type");
    cr_assert_str_eq(resp.content_encoding, "binary");
    app_response_move(out, &resp);
}

Test(app, binary_request_gets_its_first_ten_bytes_back)
{
    struct app_response r;
    binary_answer("frobnicatewidgets", 17, &r);
    const char *expect = "First 10 bytes of request: frobnicate";
    cr_assert_eq(r.length, strlen(expect));
    cr_assert(memcmp(r.content, expect, r.length) == 0);
    app_response_free(&r);
}

Test(app, binary_request_shorter_than_ten_bytes_and_with_nuls)
{
    struct app_response r;
    binary_answer("a\0\xff", 3, &r);
    cr_assert_eq(r.length, 27 + 3);
    cr_assert(memcmp(r.content, "First 10 bytes of request: a\0\xff", 30) == 0);
    app_response_free(&r);
    binary_answer("", 0, &r);
    cr_assert_eq(r.length, 27);
    app_response_free(&r);
}

Test(app, any_non_json_content_type_is_binary)
{
    struct frame f = json_request("{\"action\": \"search\", \"value\": \"ring\"}");
    strcpy(f.header.content_type, "text/plain");
    struct app_response r;
    app_handle_request(&f, NULL, &r);
    cr_assert_str_eq(r.content_type, "binary/custom-server-binary-type");
    cr_assert(memcmp(r.content, "First 10 bytes of request: {\"action\":", 37) == 0);
    app_response_free(&r);
}

static void expect_error(const char *content, const char *code, const char *words)
{
    struct frame req = json_request(content);
    struct app_response resp;
    cr_assert_eq(app_handle_request(&req, NULL, &resp), 0);
    cr_assert_str_eq(resp.error, code, "for %s", content);
    char text[512];
    snprintf(text, sizeof text, "%.*s", (int)resp.length, resp.content);
    cr_assert(strncmp(text, "{\"result\": \"Error: ", 19) == 0, "got %s", text);
    cr_assert(strstr(text, words), "'%s' should mention '%s'", text, words);
    char tail[64];
    snprintf(tail, sizeof tail, "\"error\": \"%s\"}", code);
    cr_assert(strstr(text, tail), "'%s' should end with %s", text, tail);
    app_response_free(&resp);
}

Test(app, malformed_json_requests_get_error_answers)
{
    expect_error("{\"action\": ", "bad-content", "not valid JSON");
    expect_error("[\"search\", \"ring\"]", "bad-request", "JSON object");
    expect_error("{\"value\": \"ring\"}", "bad-request", "'action'");
    expect_error("{\"action\": 5}", "bad-request", "'action'");
    expect_error("{\"action\": \"search\"}", "bad-request", "'value'");
    expect_error("{\"action\": \"search\", \"value\": 7}", "bad-request", "'value'");
    expect_error("{\"action\": \"search\", \"value\": \"\xff\"}", "bad-content", "not valid JSON");
}

Test(app, text_json_in_another_encoding_is_refused)
{
    struct frame f = json_request("{\"action\": \"search\", \"value\": \"ring\"}");
    strcpy(f.header.content_encoding, "latin-1");
    struct app_response r;
    app_handle_request(&f, NULL, &r);
    cr_assert_str_eq(r.error, "bad-request");
    app_response_free(&r);
    strcpy(f.header.content_encoding, "UTF-8");
    app_handle_request(&f, NULL, &r);
    cr_assert_null(r.error, "the encoding name is case-insensitive");
    app_response_free(&r);
}

Test(app, error_response_is_valid_json_whatever_the_message)
{
    struct app_response r;
    cr_assert_eq(app_error_response(PROTO_ERR_BAD_JSON, "quoted \"\xff\x01\" bytes", &r), 0);
    cr_assert_str_eq(r.content_type, "text/json");
    cr_assert(strstr(r.content, "\"error\": \"bad-json\""));
    cr_assert_null(memchr(r.content, 0xff, r.length), "raw invalid bytes must not leak out");
    app_response_free(&r);
}

Test(app, search_table_is_exact)
{
    size_t len = 0;
    const char *hit = answers_find(answers_builtin(), "morpheus", 8, &len);
    cr_assert_eq(len, strlen(hit));
    cr_assert_str_eq(hit, "{\"result\": \"Follow the white rabbit. \xf0\x9f\x90\xb0\"}");
    cr_assert_null(answers_find(answers_builtin(), "morpheus ", 9, &len));
    cr_assert_null(answers_find(answers_builtin(), "morph", 5, &len));
}

static json_t *three_seconds_up(void *arg)
{
    (void)arg;
    return json_pack("{s:i}", "uptime_s", 3);
}

Test(app, stats_answers_with_what_the_source_gives)
{
    struct frame req = json_request("{\"action\": \"stats\"}");
    struct app_server source = {.stats = three_seconds_up};
    struct app_response resp;
    cr_assert_eq(app_handle_request(&req, &source, &resp), 0);
    cr_assert_eq(resp.kind, COUNTER_STATS);
    cr_assert_eq(resp.length, strlen("{\"result\": {\"uptime_s\": 3}}"));
    cr_assert(memcmp(resp.content, "{\"result\": {\"uptime_s\": 3}}", resp.length) == 0);
    app_response_free(&resp);
}

Test(app, answers_are_tagged_with_their_kind)
{
    struct frame hit = json_request("{\"action\": \"search\", \"value\": \"ring\"}");
    struct frame miss = json_request("{\"action\": \"search\", \"value\": \"x\"}");
    struct frame bad = json_request("{\"action\": 1}");
    struct app_response r;
    app_handle_request(&hit, NULL, &r);
    cr_assert_eq(r.kind, COUNTER_SEARCH_HIT);
    app_response_free(&r);
    app_handle_request(&miss, NULL, &r);
    cr_assert_eq(r.kind, COUNTER_SEARCH_MISS);
    app_response_free(&r);
    app_handle_request(&bad, NULL, &r);
    cr_assert_eq(r.kind, counter_of_error(PROTO_ERR_BAD_REQUEST));
    app_response_free(&r);
}

/* A request the server has no memory to parse is the server's problem:
 * the handler says so (-1, answered no-memory by the caller), and never
 * calls it bad content. (The escape sends it to jansson, which
 * allocates; the tutorial's requests need no memory at all, below.) */
Test(app, a_request_parsed_without_memory_is_not_bad_content)
{
    struct frame req = json_request("{\"action\": \"search\", \"value\": \"r\\u0069ng\"}");
    struct app_response resp;
    ts_json_allocation_fails(-1);
    int rc = app_handle_request(&req, NULL, &resp);
    ts_json_allocations_restore();
    cr_assert_eq(rc, -1, "no memory is reported as such (kind %d, error %s)", resp.kind,
                 resp.error ? resp.error : "none");
    app_response_free(&resp);
}

/* The tutorial's requests, and a miss, are read and answered with every
 * heap allocation of the JSON parsers failing: they take none. */
Test(app, tutorial_requests_need_no_heap_memory)
{
    static const char *const requests[] = {
        "{\"action\": \"search\", \"value\": \"ring\"}",
        "{\"action\": \"search\", \"value\": \"\xf0\x9f\x90\xb6\"}",
        "{\"action\": \"search\", \"value\": \"neo\"}",
        "{\"action\": \"find\", \"value\": \"ring\"}",
    };
    struct app_response resp;
    struct frame warm = json_request(requests[0]); /* the thread's arena is made once */
    cr_assert_eq(app_handle_request(&warm, NULL, &resp), 0);
    app_response_free(&resp);
    unsigned long overflows = json_alloc_overflows();
    for (size_t i = 0; i < sizeof requests / sizeof requests[0]; i++) {
        struct frame req = json_request(requests[i]);
        ts_json_allocation_fails(-1);
        int rc = app_handle_request(&req, NULL, &resp);
        ts_json_allocations_restore();
        cr_assert_eq(rc, 0, "%s", requests[i]);
        cr_assert_null(resp.owned, "%s: answered from the response's own buffer", requests[i]);
        app_response_free(&resp);
    }
    cr_assert_eq(json_alloc_overflows(), overflows, "no parse went past the arena");
}

Test(app, the_no_memory_answer_needs_no_memory)
{
    struct app_response resp;
    ts_json_allocation_fails(-1);
    int rc = app_error_response(PROTO_ERR_NO_MEMORY, "out of memory", &resp);
    ts_json_allocations_restore();
    cr_assert_eq(rc, 0);
    cr_assert_str_eq(resp.error, "no-memory");
    cr_assert(strstr(resp.content, "\"error\": \"no-memory\""), "%.*s", (int)resp.length,
              resp.content);
    app_response_free(&resp);
}

static bool stopping_soon(void *arg)
{
    return *(bool *)arg;
}

Test(app, health_says_ok_then_draining_when_the_server_announces_its_stop)
{
    bool draining = false;
    struct app_server server = {.draining = stopping_soon, .arg = &draining};
    struct frame req = json_request("{\"action\": \"health\"}");
    struct app_response resp;
    cr_assert_eq(app_handle_request(&req, &server, &resp), 0);
    cr_assert_eq(resp.kind, COUNTER_HEALTH);
    cr_assert_eq(resp.length, strlen("{\"result\": \"ok\"}"));
    cr_assert(memcmp(resp.content, "{\"result\": \"ok\"}", resp.length) == 0);
    app_response_free(&resp);
    draining = true;
    cr_assert_eq(app_handle_request(&req, &server, &resp), 0);
    cr_assert(memcmp(resp.content, "{\"result\": \"draining\"}", resp.length) == 0);
    app_response_free(&resp);
}

/* Whichever allocation fails while a valid request is parsed, the handler
 * reports no memory (-1), never bad content. */
Test(app, an_allocation_failing_anywhere_in_a_request_parse_is_no_memory)
{
    struct frame req = json_request("{\"action\": \"search\", \"value\": \"a value long enough "
                                    "to make the lexer grow its buffer more than once\", "
                                    "\"extra\": [1, 2.5, {\"k\": \"v\"}, null, true]}");
    int answered = 0;
    for (int k = 0; k < 64; k++) {
        struct app_response resp;
        ts_json_allocation_fails(k);
        int rc = app_handle_request(&req, NULL, &resp);
        ts_json_allocations_restore();
        cr_assert(rc == -1 || resp.kind == COUNTER_SEARCH_MISS,
                  "allocation %d failing gave kind %d, error %s", k + 1, resp.kind,
                  resp.error ? resp.error : "none");
        answered += rc == 0;
        if (rc == 0)
            app_response_free(&resp);
    }
    cr_assert_gt(answered, 0, "with enough allocations the request is answered");
}
