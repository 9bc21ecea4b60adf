/*
 * frame.c - the frame codec: incremental decoder and header encoder. It
 * only turns bytes into frames and back; frame_io.c puts them on sockets.
 *
 * The JSON header is parsed with jansson, which also rejects invalid UTF-8,
 * NUL characters and absurd nesting; we only decide what the parsed value
 * means. The decoder keeps the parsed header between calls, so a large
 * content arriving in many pieces costs one JSON parse, not one per piece.
 */
#include "frame.h"
#include "json_alloc.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

static const char *native_byteorder(void)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return "big";
#else
    return "little";
#endif
}

void frame_decoder_init(struct frame_decoder *d, size_t max_content)
{
    memset(d, 0, sizeof *d);
    d->max_content = max_content;
}

static void decoder_reset(struct frame_decoder *d)
{
    d->header_len = 0;
    d->have_header = false;
    d->error[0] = '\0';
}

static enum frame_status fail(struct frame_decoder *d, enum frame_status st, const char *fmt,
                              const char *arg)
{
    snprintf(d->error, sizeof d->error, fmt, arg);
    return st;
}

static enum frame_status classify_json_error(struct frame_decoder *d, const json_error_t *e)
{
    if (json_alloc_out_of_memory(e))
        /* Not the client's fault: a valid header must not read as bad JSON. */
        return fail(d, FRAME_ERR_NO_MEMORY, "the server has no memory to parse the header%s", "");
    switch (json_error_code(e)) {
    case json_error_invalid_utf8:
        return fail(d, FRAME_ERR_HEADER_UTF8, "header is not valid UTF-8 (%.160s)", e->text);
    case json_error_duplicate_key:
        return fail(d, FRAME_ERR_HEADER_KEY, "header repeats a key (%.160s)", e->text);
    default:
        snprintf(d->error, sizeof d->error, "header is not valid JSON (%.160s at byte %d)", e->text,
                 e->position);
        return FRAME_ERR_HEADER_JSON;
    }
}

/* Copies the string at key into dst; the key must exist and be a string. */
static enum frame_status take_string(struct frame_decoder *d, json_t *obj, const char *key,
                                     char *dst, size_t cap)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return fail(d, FRAME_ERR_HEADER_KEY, "header is missing '%s'", key);
    if (!json_is_string(v))
        return fail(d, FRAME_ERR_HEADER_KEY, "header '%s' must be a string", key);
    if (json_string_length(v) >= cap)
        return fail(d, FRAME_ERR_HEADER_KEY, "header '%s' is too long", key);
    memcpy(dst, json_string_value(v), json_string_length(v) + 1);
    return FRAME_COMPLETE;
}

static enum frame_status take_byteorder(struct frame_decoder *d, json_t *obj)
{
    json_t *v = json_object_get(obj, "byteorder");
    if (!v)
        return fail(d, FRAME_ERR_HEADER_KEY, "header is missing '%s'", "byteorder");
    const char *order = json_string_value(v); /* NULL unless a string */
    if (order && strcmp(order, "little") == 0)
        d->header.byteorder = FRAME_LITTLE;
    else if (order && strcmp(order, "big") == 0)
        d->header.byteorder = FRAME_BIG;
    else
        return fail(d, FRAME_ERR_HEADER_KEY, "header '%s' must be \"little\" or \"big\"",
                    "byteorder");
    return FRAME_COMPLETE;
}

static enum frame_status take_content_length(struct frame_decoder *d, json_t *obj)
{
    json_t *v = json_object_get(obj, "content-length");
    if (!v)
        return fail(d, FRAME_ERR_HEADER_KEY, "header is missing '%s'", "content-length");
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return fail(d, FRAME_ERR_HEADER_KEY, "header '%s' must be a non-negative integer",
                    "content-length");
    json_int_t n = json_integer_value(v);
    if ((unsigned long long)n > d->max_content) {
        snprintf(d->error, sizeof d->error, "content-length %lld exceeds the limit of %zu bytes",
                 (long long)n, d->max_content);
        return FRAME_ERR_TOO_LARGE;
    }
    d->header.content_length = (size_t)n;
    return FRAME_COMPLETE;
}

static enum frame_status parse_header(struct frame_decoder *d, const uint8_t *json, size_t len)
{
    json_error_t e;
    /* From this thread's arena: a header costs no heap allocation. */
    json_alloc_arena_begin();
    /* JSON_DECODE_ANY so that valid JSON which is not an object is told
     * apart from bytes that are not JSON at all. */
    json_t *obj = json_loadb((const char *)json, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &e);
    json_alloc_arena_end();
    if (!obj || json_alloc_failed()) {
        /* jansson can drop a key whose insertion failed and still return
         * the object: then it is not the header that was sent. */
        json_decref(obj);
        return classify_json_error(d, &e);
    }
    enum frame_status st = FRAME_COMPLETE;
    if (!json_is_object(obj))
        st = fail(d, FRAME_ERR_HEADER_NOT_OBJECT, "header is %s", "JSON but not an object");
    if (st == FRAME_COMPLETE)
        st = take_byteorder(d, obj);
    if (st == FRAME_COMPLETE)
        st = take_string(d, obj, "content-type", d->header.content_type,
                         sizeof d->header.content_type);
    if (st == FRAME_COMPLETE)
        st = take_string(d, obj, "content-encoding", d->header.content_encoding,
                         sizeof d->header.content_encoding);
    if (st == FRAME_COMPLETE)
        st = take_content_length(d, obj);
    json_decref(obj);
    return st;
}

/* Headers up to this size are remembered, one per thread: clients send
 * the same header bytes over and over (same types, same length), and the
 * same bytes always mean the same header, so the JSON parse of a repeat
 * is skipped. Thread-local, so no locking; per thread rather than per
 * connection, so it survives connections that come and go. */
#define HEADER_MEMO_MAX 256

static _Thread_local struct {
    size_t len; /* 0: empty */
    size_t max_content; /* the limit the memo was checked against */
    uint8_t json[HEADER_MEMO_MAX];
    struct frame_header header;
} memo;

static enum frame_status decode_header(struct frame_decoder *d, const uint8_t *json, size_t len)
{
    if (len == memo.len && d->max_content == memo.max_content &&
        memcmp(json, memo.json, len) == 0) {
        d->header = memo.header;
        return FRAME_COMPLETE;
    }
    enum frame_status st = parse_header(d, json, len);
    if (st == FRAME_COMPLETE && len <= HEADER_MEMO_MAX) {
        memcpy(memo.json, json, len);
        memo.len = len;
        memo.max_content = d->max_content;
        memo.header = d->header;
    }
    return st;
}

enum frame_status frame_decode(struct frame_decoder *d, const uint8_t *buf, size_t len,
                               struct frame *out)
{
    if (d->header_len == 0) {
        if (len < FRAME_PROTO_HEADER_LEN)
            return FRAME_NEED_MORE;
        size_t hlen = ((size_t)buf[0] << 8) | buf[1];
        if (hlen < 2) /* "{}" is the shortest JSON object */
            return fail(d, FRAME_ERR_PROTO_HEADER, "proto-header gives a header length of %s",
                        hlen == 0 ? "0" : "1");
        d->header_len = hlen;
    }
    if (!d->have_header) {
        if (len < FRAME_PROTO_HEADER_LEN + d->header_len)
            return FRAME_NEED_MORE;
        enum frame_status st = decode_header(d, buf + FRAME_PROTO_HEADER_LEN, d->header_len);
        if (st != FRAME_COMPLETE)
            return st;
        d->have_header = true;
    }
    size_t total = frame_decoder_wanted(d);
    if (len < total)
        return FRAME_NEED_MORE;
    out->header = d->header;
    out->content = buf + FRAME_PROTO_HEADER_LEN + d->header_len;
    out->size = total;
    decoder_reset(d);
    return FRAME_COMPLETE;
}

size_t frame_decoder_wanted(const struct frame_decoder *d)
{
    if (d->header_len == 0)
        return FRAME_PROTO_HEADER_LEN;
    if (!d->have_header)
        return FRAME_PROTO_HEADER_LEN + d->header_len;
    return FRAME_PROTO_HEADER_LEN + d->header_len + d->header.content_length;
}

enum proto_error frame_status_error(enum frame_status st)
{
    switch (st) {
    case FRAME_ERR_PROTO_HEADER: return PROTO_ERR_BAD_PROTO_HEADER;
    case FRAME_ERR_HEADER_JSON: return PROTO_ERR_BAD_JSON;
    case FRAME_ERR_HEADER_UTF8: return PROTO_ERR_BAD_UTF8;
    case FRAME_ERR_TOO_LARGE: return PROTO_ERR_TOO_LARGE;
    case FRAME_ERR_NO_MEMORY: return PROTO_ERR_NO_MEMORY;
    case FRAME_COMPLETE:
    case FRAME_NEED_MORE:
    case FRAME_ERR_HEADER_NOT_OBJECT:
    case FRAME_ERR_HEADER_KEY: break;
    }
    return PROTO_ERR_BAD_HEADER;
}

/* True if s can be written inside JSON quotes as it is: printable ASCII
 * with no quote or backslash. Every header we send ourselves is. */
static bool json_plain(const char *s)
{
    for (; *s; s++)
        if (*s < 0x20 || *s > 0x7e || *s == '"' || *s == '\\')
            return false;
    return true;
}

/* The general path, for strings that need JSON escaping. */
static int encode_with_jansson(char *out, size_t cap, const char *ctype, const char *cenc,
                               size_t length)
{
    json_t *h = json_pack("{s:s, s:s, s:s, s:I}", "byteorder", native_byteorder(),
                          "content-type", ctype, "content-encoding", cenc, "content-length",
                          (json_int_t)length);
    if (!h)
        return -1;
    /* jansson keeps insertion order and, without JSON_COMPACT, writes the
     * ", " and ": " separators the original implementation uses. */
    size_t n = json_dumpb(h, out, cap, 0);
    json_decref(h);
    return n == 0 || n > cap ? -1 : (int)n;
}

/* Appends s to *p, a pointer into the output buffer. */
static void put(char **p, const char *s, size_t n)
{
    memcpy(*p, s, n);
    *p += n;
}

/* The header every message we send has, built by hand rather than with
 * snprintf: it is written once per response, on the hot path. The caller
 * has checked the strings need no JSON escaping and fit. */
static int encode_plain(char *out, const char *ctype, const char *cenc, size_t length)
{
    static const char a[] = "{\"byteorder\": \"", b[] = "\", \"content-type\": \"",
                      c[] = "\", \"content-encoding\": \"", d[] = "\", \"content-length\": ";
    char digits[24], *p = out;
    size_t nd = 0;
    do
        digits[sizeof digits - 1 - nd++] = (char)('0' + length % 10);
    while ((length /= 10) > 0);
    put(&p, a, sizeof a - 1);
    put(&p, native_byteorder(), strlen(native_byteorder()));
    put(&p, b, sizeof b - 1);
    put(&p, ctype, strlen(ctype));
    put(&p, c, sizeof c - 1);
    put(&p, cenc, strlen(cenc));
    put(&p, d, sizeof d - 1);
    put(&p, digits + sizeof digits - nd, nd);
    *p++ = '}';
    return (int)(p - out);
}

/* The last header encoded, one per thread: a server answers the same
 * kind of request with answers of the same length over and over, and
 * the same three values always give the same bytes. */
static _Thread_local struct {
    size_t content_length;
    int len; /* 0: empty */
    char content_type[64], content_encoding[16];
    uint8_t bytes[FRAME_PROTO_HEADER_LEN + 160];
} encoded;

static bool encoded_is(const char *content_type, const char *content_encoding,
                       size_t content_length)
{
    return encoded.len > 0 && encoded.content_length == content_length &&
           strcmp(encoded.content_type, content_type) == 0 &&
           strcmp(encoded.content_encoding, content_encoding) == 0;
}

static void remember_encoded(const uint8_t *bytes, int len, const char *content_type,
                             const char *content_encoding, size_t content_length)
{
    size_t nt = strlen(content_type), ne = strlen(content_encoding);
    if ((size_t)len > sizeof encoded.bytes || nt >= sizeof encoded.content_type ||
        ne >= sizeof encoded.content_encoding)
        return;
    memcpy(encoded.bytes, bytes, (size_t)len);
    encoded.len = len;
    encoded.content_length = content_length;
    memcpy(encoded.content_type, content_type, nt + 1);
    memcpy(encoded.content_encoding, content_encoding, ne + 1);
}

int frame_encode_header(uint8_t out[FRAME_ENCODED_HEADER_MAX], const char *content_type,
                        const char *content_encoding, size_t content_length)
{
    if (encoded_is(content_type, content_encoding, content_length)) {
        memcpy(out, encoded.bytes, (size_t)encoded.len);
        return encoded.len;
    }
    if (strlen(content_type) > FRAME_MAX_CONTENT_TYPE ||
        strlen(content_encoding) > FRAME_MAX_CONTENT_ENCODING)
        return -1;
    char *json = (char *)out + FRAME_PROTO_HEADER_LEN;
    size_t cap = FRAME_ENCODED_HEADER_MAX - FRAME_PROTO_HEADER_LEN;
    int n;
    if (json_plain(content_type) && json_plain(content_encoding))
        n = encode_plain(json, content_type, content_encoding, content_length);
    else
        n = encode_with_jansson(json, cap, content_type, content_encoding, content_length);
    if (n < 0 || (size_t)n >= cap)
        return -1;
    out[0] = (uint8_t)(n >> 8);
    out[1] = (uint8_t)n;
    remember_encoded(out, n + FRAME_PROTO_HEADER_LEN, content_type, content_encoding,
                     content_length);
    return n + FRAME_PROTO_HEADER_LEN;
}
