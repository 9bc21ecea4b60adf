/*
 * request_json.c - a request's content read for the action and the value
 * (see request_json.h).
 *
 * The fast reader takes only what it can read exactly as jansson would,
 * and says "unsure" for the rest, which then goes to jansson:
 *
 * - it scans the content once first: strict UTF-8 (yajl's own check lets
 *   overlong forms and surrogates through), no backslash (yajl turns a
 *   lone surrogate escape into '?' and lets \u0000 through, where jansson
 *   refuses both), no control character but JSON's three blanks (yajl
 *   also skips \v and \f as blanks), quotes in pairs and the last non-blank byte a '}' (so
 *   no token of the content is cut at its end: yajl would copy a cut
 *   token into a buffer as long as the content);
 * - no number (jansson refuses integers past 64 bits and reals past
 *   DBL_MAX, which yajl hands over as text), and nothing nested deeper
 *   than FAST_DEPTH.
 *
 * Given those, yajl allocates the same few hundred bytes for any content
 * (its handle, lexer and state stack: never a token buffer), all from
 * the arena.
 */
#include "request_json.h"
#include "json_alloc.h"
#include "utf8.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <yajl/yajl_parse.h>

/* Deeper than this is left to jansson (whose limit is 2,048). */
#define FAST_DEPTH 32

enum fast_key { KEY_OTHER, KEY_ACTION, KEY_VALUE };

struct fast_reader {
    struct request_json *r;
    const char *content;
    size_t len;
    int depth;
    enum fast_key key; /* the top-level key whose value comes next */
    bool unsure;       /* stopped: jansson must read it */
};

/* A top-level value that is not a string: the key reads as missing, as
 * json_string_value() gives NULL for it. */
static void set_not_string(struct fast_reader *f)
{
    if (f->depth == 1 && f->key == KEY_ACTION)
        f->r->action = (struct request_string){0};
    else if (f->depth == 1 && f->key == KEY_VALUE)
        f->r->value = (struct request_string){0};
}

static int stop_unsure(struct fast_reader *f)
{
    f->unsure = true;
    return 0; /* yajl stops: client canceled */
}

static int on_scalar(void *ctx)
{
    set_not_string(ctx);
    return 1;
}

static int on_boolean(void *ctx, int b)
{
    (void)b;
    return on_scalar(ctx);
}

static int on_number(void *ctx, const char *text, size_t len)
{
    (void)text, (void)len;
    return stop_unsure(ctx);
}

static int on_string(void *ctx, const unsigned char *s, size_t len)
{
    struct fast_reader *f = ctx;
    const char *text = (const char *)s;
    if (text < f->content || text + len > f->content + f->len)
        return stop_unsure(f); /* not a slice of the content after all */
    if (f->depth == 1 && f->key == KEY_ACTION)
        f->r->action = (struct request_string){text, len};
    else if (f->depth == 1 && f->key == KEY_VALUE)
        f->r->value = (struct request_string){text, len};
    return 1;
}

static int on_open(void *ctx)
{
    struct fast_reader *f = ctx;
    set_not_string(f);
    return ++f->depth > FAST_DEPTH ? stop_unsure(f) : 1;
}

static int on_open_map(void *ctx)
{
    struct fast_reader *f = ctx;
    if (f->depth == 0)
        f->r->is_object = true;
    return on_open(ctx);
}

static int on_key(void *ctx, const unsigned char *k, size_t len)
{
    struct fast_reader *f = ctx;
    f->key = KEY_OTHER;
    if (f->depth == 1 && len == 6 && memcmp(k, "action", 6) == 0)
        f->key = KEY_ACTION;
    else if (f->depth == 1 && len == 5 && memcmp(k, "value", 5) == 0)
        f->key = KEY_VALUE;
    return 1;
}

static int on_close(void *ctx)
{
    ((struct fast_reader *)ctx)->depth--;
    return 1;
}

static const yajl_callbacks fast_callbacks = {
    .yajl_null = on_scalar,
    .yajl_boolean = on_boolean,
    .yajl_number = on_number,
    .yajl_string = on_string,
    .yajl_start_map = on_open_map,
    .yajl_map_key = on_key,
    .yajl_end_map = on_close,
    .yajl_start_array = on_open,
    .yajl_end_array = on_close,
};

static void *arena_malloc(void *ctx, size_t n)
{
    (void)ctx;
    return json_alloc_take(n);
}

static void *arena_realloc(void *ctx, void *p, size_t n)
{
    (void)ctx;
    return json_alloc_resize(p, n);
}

static void arena_free(void *ctx, void *p)
{
    (void)ctx;
    json_alloc_give(p);
}

static yajl_alloc_funcs arena_funcs = {arena_malloc, arena_realloc, arena_free, NULL};

/* Eight bytes at a time: a byte with each bit of BYTES(b). */
#define BYTES(b) (0x0101010101010101ULL * (uint8_t)(b))

/* True if some byte of w is below n (n <= 0x80; exact as a whole). */
static bool has_below(uint64_t w, uint8_t n)
{
    return ((w - BYTES(n)) & ~w & BYTES(0x80)) != 0;
}

/* How many bytes of w are exactly c (exact, no borrow between bytes). */
static int count_bytes(uint64_t w, uint8_t c)
{
    uint64_t y = w ^ BYTES(c);
    uint64_t nonzero = ((y & BYTES(0x7f)) + BYTES(0x7f)) | y;
    return __builtin_popcountll(~nonzero & BYTES(0x80));
}

/* One byte, or the UTF-8 sequence it starts: 0 if the scan must stop. */
static size_t scan_one(const uint8_t *p, size_t left, size_t *quotes)
{
    uint8_t c = p[0];
    if (c >= 0x80) {
        uint32_t cp;
        return utf8_sequence(p, left, &cp);
    }
    /* yajl takes \v and \f for blanks, jansson does not; and no escape */
    if (c == '\\' || (c < 0x20 && c != '\t' && c != '\n' && c != '\r'))
        return 0;
    *quotes += c == '"';
    return 1;
}

/* The scan before the fast reader: true if the content is strict UTF-8,
 * has no backslash and no control character but blanks, its quotes pair
 * up and its last byte that is not a blank is a '}'. The common word of
 * eight plain ASCII bytes is checked whole. */
static bool plain_enough(const uint8_t *p, size_t len)
{
    size_t quotes = 0, i = 0;
    while (i < len) {
        uint64_t w;
        if (len - i >= 8) {
            memcpy(&w, p + i, 8);
            if (!(w & BYTES(0x80)) && !has_below(w, 0x20) && !has_below(w ^ BYTES('\\'), 1)) {
                quotes += (size_t)count_bytes(w, '"');
                i += 8;
                continue;
            }
        }
        size_t n = scan_one(p + i, len - i, &quotes);
        if (n == 0)
            return false;
        i += n;
    }
    size_t last = len;
    while (last > 0 && (p[last - 1] == ' ' || p[last - 1] == '\t' || p[last - 1] == '\n' ||
                        p[last - 1] == '\r'))
        last--;
    return quotes % 2 == 0 && last > 0 && p[last - 1] == '}';
}

/* 1: read; 0: unsure (jansson reads it). */
static bool read_fast(const char *content, size_t len, struct request_json *r)
{
    if (!plain_enough((const uint8_t *)content, len))
        return false;
    struct fast_reader f = {.r = r, .content = content, .len = len};
    /* Without an arena (no memory for it), yajl would take from malloc,
     * and it does not survive a failed allocation: jansson reads it. */
    bool arena = json_alloc_arena_begin();
    yajl_handle h = arena ? yajl_alloc(&fast_callbacks, &arena_funcs, &f) : NULL;
    bool ok = false;
    if (h) {
        /* Strings were checked above, more strictly than yajl would. */
        yajl_config(h, yajl_dont_validate_strings, 1);
        ok = yajl_parse(h, (const unsigned char *)content, len) == yajl_status_ok &&
             yajl_complete_parse(h) == yajl_status_ok && !f.unsure;
        yajl_free(h);
    }
    json_alloc_arena_end();
    /* Refused by yajl, or stopped: jansson's verdict and words decide.
     * (The arena always holds what yajl takes here; test_request_json.c
     * checks it on the largest contents.) */
    return ok && !json_alloc_failed();
}

static void take_string(json_t *obj, const char *key, struct request_string *s)
{
    json_t *v = json_object_get(obj, key);
    *s = json_is_string(v) ? (struct request_string){json_string_value(v), json_string_length(v)}
                           : (struct request_string){0};
}

static enum request_json_status read_with_jansson(const char *content, size_t len,
                                                  struct request_json *r)
{
    json_error_t e;
    json_alloc_arena_begin();
    r->tree = json_loadb(content, len, JSON_DECODE_ANY, &e);
    json_alloc_arena_end();
    if (!r->tree || json_alloc_failed()) {
        /* An object jansson returned may lack a key it could not insert. */
        json_decref(r->tree);
        r->tree = NULL;
        if (json_alloc_out_of_memory(&e))
            return REQUEST_JSON_NO_MEMORY;
        snprintf(r->error, sizeof r->error, "%s", e.text);
        return REQUEST_JSON_INVALID;
    }
    r->is_object = json_is_object(r->tree);
    if (r->is_object) {
        take_string(r->tree, "action", &r->action);
        take_string(r->tree, "value", &r->value);
    }
    return REQUEST_JSON_OK;
}

enum request_json_status request_json_read(const char *content, size_t len,
                                           struct request_json *r)
{
    r->is_object = false;
    r->action = r->value = (struct request_string){0};
    r->tree = NULL;
    r->error[0] = '\0';
    r->fast = read_fast(content, len, r);
    if (r->fast)
        return REQUEST_JSON_OK;
    r->is_object = false;
    r->action = r->value = (struct request_string){0};
    return read_with_jansson(content, len, r);
}

void request_json_release(struct request_json *r)
{
    json_decref(r->tree);
    r->tree = NULL;
}
