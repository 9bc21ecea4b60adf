/*
 * test_request_json.c - the request reader: the fast reader (yajl) reads
 * the common request without the heap, and every content, whichever
 * reader takes it, reads as jansson reads it (test/json_agree.c).
 */
#include "json_agree.h"
#include "json_alloc.h"
#include "request_json.h"

#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void expect_agreement(const char *content, size_t len)
{
    bool fast;
    const char *why = json_disagreement(content, len, &fast);
    cr_assert_null(why, "%s (%s) on %zu bytes: %.*s", why, fast ? "read fast" : "jansson", len,
                   (int)(len < 200 ? len : 200), content);
}

static bool read_fast(const char *content)
{
    struct request_json r;
    cr_assert_eq(request_json_read(content, strlen(content), &r), REQUEST_JSON_OK, "%s", content);
    bool fast = r.fast;
    request_json_release(&r);
    return fast;
}

Test(request_json, the_tutorials_requests_are_read_fast)
{
    cr_assert(read_fast("{\"action\": \"search\", \"value\": \"morpheus\"}"));
    cr_assert(read_fast("{\"action\": \"search\", \"value\": \"\xf0\x9f\x90\xb6\"}"));
    cr_assert(read_fast("{\"value\": \"ring\", \"action\": \"search\"}"));
    cr_assert(read_fast("{\"action\": \"stats\"}"));
    cr_assert(read_fast(" {\"action\":\"find\",\"value\":\"x\",\"extra\":[true,null,{\"a\":\"b\"}]}\n"));
}

Test(request_json, the_strings_point_into_the_content)
{
    const char *content = "{\"action\": \"search\", \"value\": \"ring\", \"value\": \"neo\"}";
    struct request_json r;
    cr_assert_eq(request_json_read(content, strlen(content), &r), REQUEST_JSON_OK);
    cr_assert(r.fast && r.is_object);
    cr_assert_eq(r.action.len, 6);
    cr_assert(memcmp(r.action.text, "search", 6) == 0);
    cr_assert_eq(r.value.len, 3, "a repeated key: the last one counts, as in jansson");
    cr_assert_eq(r.value.text, content + strlen(content) - 5);
    request_json_release(&r);
}

/* What the fast reader must leave to jansson, or read exactly as it does:
 * each agrees. */
Test(request_json, hostile_contents_read_as_jansson_reads_them)
{
    static const char *const contents[] = {
        "", " ", "{", "}", "{}", "[]", "\"search\"", "null", "1", "{\"action\": \"search\"",
        "{\"action\": \"search\"}}", "{\"action\": \"search\"} {}", "{\"action\": \"search\",}",
        "{\"action\" \"search\"}", "{\"action\": search}", "{'action': 'search'}",
        "{\"action\": \"sea\nrch\"}", "{\"action\": \"sea\trch\"}", "{\"action\":\v\"search\"}",
        "{\"action\":\f\"search\"}", "\xef\xbb\xbf{\"action\": \"search\"}",
        "{/* x */\"action\": \"search\"}", "{\"action\": \"search\"} // x\n",
        "{\"action\": \"\xc0\xaf\"}", "{\"action\": \"\xed\xa0\x80\"}", "{\"action\": \"\xf5\x80\x80\x80\"}",
        "{\"action\": \"\xf0\x9f\x90\"}", "{\"action\": \"\x80\"}", "{\"action\": \"\xff\"}",
        "{\"action\": \"search\", \"value\": \"\\ud800\"}",
        "{\"action\": \"search\", \"value\": \"\\udc00\"}",
        "{\"action\": \"search\", \"value\": \"\\ud83d\\udc36\"}",
        "{\"action\": \"search\", \"value\": \"\\ud83dx\"}",
        "{\"action\": \"search\", \"value\": \"a\\u0000b\"}",
        "{\"action\": \"search\", \"value\": \"\\x\"}",
        "{\"action\": \"search\", \"value\": \"\\u12\"}",
        "{\"action\": \"search\", \"n\": 99999999999999999999999}",
        "{\"action\": \"search\", \"n\": -9223372036854775809}",
        "{\"action\": \"search\", \"n\": 9223372036854775807}",
        "{\"action\": \"search\", \"n\": 1e400}", "{\"action\": \"search\", \"n\": 1e-400}",
        "{\"action\": \"search\", \"n\": 01}", "{\"action\": \"search\", \"n\": -}",
        "{\"action\": \"search\", \"n\": 1.}", "{\"action\": \"search\", \"n\": .5}",
        "{\"action\": \"search\", \"n\": NaN}", "{\"action\": \"search\", \"n\": Infinity}",
        "{\"action\": tru}", "{\"action\": nul}", "{\"action\": truex}",
        "{\"action\": \"search\", \"value\": {\"value\": \"ring\"}}",
        "{\"x\": {\"action\": \"search\"}, \"value\": [\"ring\"]}",
        "{\"action\": \"search\", \"action\": 5}", "{\"action\": 5, \"action\": \"search\"}",
        "{\"action\": \"search\", \"value\": null}", "{\"action\": false}",
        "{\"\": \"\", \"action\": \"\"}", "{\"action\": \"a}\"", "{\"a\": \"}",
        "{\"action\": \"search\" \x7f}", "{\"action\": \"\x7f\"}",
        "{\"action\": \"search\"}\x00", "{\"action\": \"sea\x00rch\"}",
    };
    for (size_t i = 0; i < sizeof contents / sizeof contents[0]; i++)
        expect_agreement(contents[i], strlen(contents[i]));
    expect_agreement("{\"action\": \"search\"}\0", 21); /* a NUL after the object */
    expect_agreement("{\"action\": \"sea\0rch\"}", 21);
}

/* depth 32 is read fast, 33 and beyond go to jansson, up to past its own
 * limit of 2,048. */
Test(request_json, nesting_reads_as_jansson_reads_it)
{
    static const size_t depths[] = {1, 31, 32, 33, 100, 2047, 2048, 2049, 100000};
    for (size_t i = 0; i < sizeof depths / sizeof depths[0]; i++) {
        size_t d = depths[i], len = 0;
        char *s = malloc(2 * d + 64);
        cr_assert_not_null(s);
        len += (size_t)sprintf(s, "{\"action\": \"search\", \"x\": ");
        memset(s + len, '[', d - 1);
        memset(s + len + d - 1, ']', d - 1);
        len += 2 * (d - 1);
        if (d == 1)
            len += (size_t)sprintf(s + len, "null");
        s[len++] = '}';
        expect_agreement(s, len);
        free(s);
    }
}

/* A fixed-seed walk of small changes to a few requests: each changed
 * content reads as jansson reads it. (The fuzz target does the same
 * without end; this keeps a bounded share of it in every test run.) */
Test(request_json, mutated_requests_read_as_jansson_reads_them)
{
    static const char *const seeds[] = {
        "{\"action\": \"search\", \"value\": \"morpheus\"}",
        "{\"action\": \"search\", \"value\": \"\xf0\x9f\x90\xb6\", \"x\": [true, {\"y\": null}]}",
        "{\"value\": \"a\\\"b\", \"action\": \"find\", \"n\": 12}",
    };
    const char alphabet[] = "{}[]\":, \\u0aetrfn-.e9\x80\xc3\xb1\xf0\xed\x00\v";
    uint64_t state = 0x9e3779b97f4a7c15ULL;
    char buf[128];
    for (int round = 0; round < 20000; round++) {
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        const char *seed = seeds[(state >> 33) % 3];
        size_t len = strlen(seed);
        memcpy(buf, seed, len);
        for (int edits = 1 + (int)((state >> 40) % 3); edits > 0; edits--) {
            state = state * 6364136223846793005ULL + 1442695040888963407ULL;
            size_t at = (size_t)(state >> 20) % (len + 1);
            char c = alphabet[(state >> 50) % (sizeof alphabet - 1)];
            int how = (int)((state >> 8) % 3);
            if (how == 0 && at < len) /* replace */
                buf[at] = c;
            else if (how == 1 && len < sizeof buf) { /* insert */
                memmove(buf + at + 1, buf + at, len - at);
                buf[at] = c;
                len++;
            } else if (at < len) { /* delete */
                memmove(buf + at, buf + at + 1, len - at - 1);
                len--;
            }
        }
        expect_agreement(buf, len);
    }
}

/* However long the content, the fast reader takes the same few hundred
 * bytes of its arena: nothing goes to the heap. */
Test(request_json, large_contents_stay_in_the_arena)
{
    size_t big = (size_t)1 << 20, len = 0;
    char *s = malloc(big + 256);
    cr_assert_not_null(s);
    struct request_json r;
    cr_assert_eq(request_json_read("{}", 2, &r), REQUEST_JSON_OK); /* the arena is made */
    request_json_release(&r);
    unsigned long overflows = json_alloc_overflows();

    len = (size_t)sprintf(s, "{\"action\": \"search\", \"value\": \"");
    memset(s + len, 'a', big);
    len += big;
    len += (size_t)sprintf(s + len, "\"}");
    cr_assert_eq(request_json_read(s, len, &r), REQUEST_JSON_OK);
    cr_assert(r.fast);
    cr_assert_eq(r.value.len, big);
    request_json_release(&r);

    len = (size_t)sprintf(s, "{\"action\": \"search\"");
    for (int k = 0; len < big; k++)
        len += (size_t)sprintf(s + len, ", \"k%d\": [\"v\", {\"w\": [true, false, null]}]", k);
    s[len++] = '}';
    cr_assert_eq(request_json_read(s, len, &r), REQUEST_JSON_OK);
    cr_assert(r.fast);
    request_json_release(&r);
    cr_assert_eq(json_alloc_overflows(), overflows, "the fast reader stayed in its arena");
    free(s);
}
