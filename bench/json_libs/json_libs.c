/*
 * json_libs.c - what reading one request costs with each C JSON library
 * Debian packages, and how strict each is on what the protocol refuses.
 *
 *   make json-libs        (builds build/json-libs/LIB for each, runs them)
 *
 * One program per library (jansson and json-c both define json_object_get
 * and friends, so they cannot share a process), built from this file with
 * -DJSON_LIB_JANSSON and so on: jansson (also with its allocations from a
 * bump arena, as the server's json_alloc.c gives them), json-c, cJSON,
 * yajl's callback parser (also from an arena), json-parser (from an
 * arena: its allocator takes a context) and jsmn (tokens only, strict
 * mode). For each: parse the tutorial's request content ({"action":
 * "search", "value": "morpheus"}), take out the action and the value, and
 * free what the library made; nanoseconds per read (best of 5 runs of
 * ROUNDS) and heap allocations per read (malloc, calloc and realloc,
 * counted by this program's own definitions of them, which every
 * library's calls reach). Then each library's verdict on inputs the
 * protocol refuses: a duplicate key, invalid UTF-8, trailing bytes, an
 * escaped NUL, a 23-digit integer, 100,000 levels of nesting. A figure
 * is measured, never assumed.
 */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
/* Without a choice (a static analyser reading this file), jansson. */
#if !defined(JSON_LIB_JANSSON) && !defined(JSON_LIB_JANSSON_ARENA) && !defined(JSON_LIB_JSON_C) && \
    !defined(JSON_LIB_CJSON) && !defined(JSON_LIB_YAJL) && !defined(JSON_LIB_YAJL_ARENA) && \
    !defined(JSON_LIB_JSMN) && !defined(JSON_LIB_JSONPARSER)
#define JSON_LIB_JANSSON
#endif
#if defined(JSON_LIB_JANSSON) || defined(JSON_LIB_JANSSON_ARENA)
#include <jansson.h>
#elif defined(JSON_LIB_JSMN)
#define JSMN_STRICT
#define JSMN_PARENT_LINKS
#include <jsmn.h>
#elif defined(JSON_LIB_JSONPARSER)
#include <json-parser/json.h>
#elif defined(JSON_LIB_JSON_C)
#include <json-c/json.h>
#elif defined(JSON_LIB_CJSON)
#include <cjson/cJSON.h>
#elif defined(JSON_LIB_YAJL) || defined(JSON_LIB_YAJL_ARENA)
#include <yajl/yajl_parse.h>
#else
#error "define one of JSON_LIB_JANSSON(_ARENA), JSON_C, CJSON, YAJL(_ARENA), JSMN, JSONPARSER"
#endif

/* --- counting allocations: this program's malloc family wraps glibc's ------- */

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);

static unsigned long allocations;

void *malloc(size_t n)
{
    allocations++;
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t size)
{
    allocations++;
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
    allocations++;
    return __libc_realloc(p, n);
}

void free(void *p)
{
    __libc_free(p);
}


/* A bump arena, reset before each parse: what a per-worker arena costs. */
static _Alignas(16) char arena_mem[1 << 16];
static size_t arena_used;
static void *arena_malloc(size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (arena_used + n > sizeof arena_mem)
        return NULL;
    void *p = arena_mem + arena_used;
    arena_used += n;
    return p;
}
static void arena_free(void *p) { (void)p; }

/* --- what a parse must give: the two strings, or a refusal ------------------ */

struct request {
    char action[32];
    char value[256];
};

static bool copy_out(char *dst, size_t cap, const char *s, size_t n)
{
    if (!s || n >= cap)
        return false;
    memcpy(dst, s, n);
    dst[n] = '\0';
    return true;
}

#if defined(JSON_LIB_JANSSON) || defined(JSON_LIB_JANSSON_ARENA)
#ifdef JSON_LIB_JANSSON_ARENA
#define LIBRARY "jansson " JANSSON_VERSION " + arena"
#else
#define LIBRARY "jansson " JANSSON_VERSION
#endif
static bool parse(const char *text, size_t len, struct request *r)
{
#ifdef JSON_LIB_JANSSON_ARENA
    static int set;
    if (!set)
        json_set_alloc_funcs(arena_malloc, arena_free), set = 1;
    arena_used = 0;
#endif
    json_error_t e;
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &e);
    if (!o)
        return false;
    json_t *a = json_object_get(o, "action"), *v = json_object_get(o, "value");
    bool ok = json_is_string(a) && json_is_string(v) &&
              copy_out(r->action, sizeof r->action, json_string_value(a), json_string_length(a)) &&
              copy_out(r->value, sizeof r->value, json_string_value(v), json_string_length(v));
    json_decref(o);
    return ok;
}

#elif defined(JSON_LIB_JSON_C)
#define LIBRARY "json-c " JSON_C_VERSION
static bool parse(const char *text, size_t len, struct request *r)
{
    json_tokener *tok = json_tokener_new();
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    json_object *o = json_tokener_parse_ex(tok, text, (int)len);
    bool ok = o && json_tokener_get_error(tok) == json_tokener_success &&
              tok->char_offset == (int)len;
    json_object *a, *v;
    ok = ok && json_object_object_get_ex(o, "action", &a) &&
         json_object_object_get_ex(o, "value", &v) && json_object_is_type(a, json_type_string) &&
         json_object_is_type(v, json_type_string) &&
         copy_out(r->action, sizeof r->action, json_object_get_string(a),
                  (size_t)json_object_get_string_len(a)) &&
         copy_out(r->value, sizeof r->value, json_object_get_string(v),
                  (size_t)json_object_get_string_len(v));
    json_object_put(o);
    json_tokener_free(tok);
    return ok;
}

#elif defined(JSON_LIB_CJSON)
#define STR2(x) #x
#define STR(x) STR2(x)
#define LIBRARY "cJSON " STR(CJSON_VERSION_MAJOR) "." STR(CJSON_VERSION_MINOR) "." STR(CJSON_VERSION_PATCH)
static bool parse(const char *text, size_t len, struct request *r)
{
    const char *end = NULL;
    cJSON *o = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!o)
        return false;
    bool ok = end == text + len;
    cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "action");
    cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "value");
    ok = ok && cJSON_IsString(a) && cJSON_IsString(v) &&
         copy_out(r->action, sizeof r->action, a->valuestring, strlen(a->valuestring)) &&
         copy_out(r->value, sizeof r->value, v->valuestring, strlen(v->valuestring));
    cJSON_Delete(o);
    return ok;
}

#elif defined(JSON_LIB_YAJL) || defined(JSON_LIB_YAJL_ARENA)
#ifdef JSON_LIB_YAJL_ARENA
#define LIBRARY "yajl 2.1 callbacks + arena"
#else
#define LIBRARY "yajl 2.1 callbacks"
#endif
/* yajl calls back for each token: no tree, the two strings copied as they
 * pass, duplicate keys and nesting checked here. */
struct yajl_state {
    struct request *r;
    int depth;
    char *target; /* where the next string goes */
    size_t cap;
    bool seen_action, seen_value, bad;
};

static int y_start_map(void *ctx)
{
    struct yajl_state *s = ctx;
    return ++s->depth <= 1 || (s->bad = true, 0);
}

static int y_end_map(void *ctx)
{
    ((struct yajl_state *)ctx)->depth--;
    return 1;
}

static int y_key(void *ctx, const unsigned char *k, size_t n)
{
    struct yajl_state *s = ctx;
    s->target = NULL;
    if (n == 6 && memcmp(k, "action", 6) == 0) {
        if (s->seen_action)
            return s->bad = true, 0;
        s->seen_action = true;
        s->target = s->r->action, s->cap = sizeof s->r->action;
    } else if (n == 5 && memcmp(k, "value", 5) == 0) {
        if (s->seen_value)
            return s->bad = true, 0;
        s->seen_value = true;
        s->target = s->r->value, s->cap = sizeof s->r->value;
    }
    return 1;
}

static int y_string(void *ctx, const unsigned char *v, size_t n)
{
    struct yajl_state *s = ctx;
    if (s->target && !copy_out(s->target, s->cap, (const char *)v, n))
        return s->bad = true, 0;
    s->target = NULL;
    return 1;
}

static int y_other(void *ctx)
{
    ((struct yajl_state *)ctx)->target = NULL;
    return 1;
}

static int y_number(void *ctx, const char *v, size_t n)
{
    (void)v, (void)n;
    return y_other(ctx);
}

static int y_bool(void *ctx, int b)
{
    (void)b;
    return y_other(ctx);
}

static int y_start_array(void *ctx)
{
    struct yajl_state *s = ctx;
    s->target = NULL;
    return ++s->depth <= 64 || (s->bad = true, 0);
}

static const yajl_callbacks y_callbacks = {
    .yajl_null = y_other,
    .yajl_boolean = y_bool,
    .yajl_number = y_number,
    .yajl_string = y_string,
    .yajl_start_map = y_start_map,
    .yajl_map_key = y_key,
    .yajl_end_map = y_end_map,
    .yajl_start_array = y_start_array,
    .yajl_end_array = y_end_map,
};

static void *am(void *c, size_t n) { (void)c; return arena_malloc(n); }
static void *ar(void *c, void *p, size_t n) { (void)c; void *q = arena_malloc(n); if (q && p) memcpy(q, p, n); return q; }
static void af(void *c, void *p) { (void)c; (void)p; }
static bool parse(const char *text, size_t len, struct request *r)
{
    struct yajl_state s = {.r = r};
#ifdef JSON_LIB_YAJL_ARENA
    static yajl_alloc_funcs funcs = {am, ar, af, NULL};
    arena_used = 0;
    yajl_handle h = yajl_alloc(&y_callbacks, &funcs, &s);
#else
    yajl_handle h = yajl_alloc(&y_callbacks, NULL, &s);
#endif
    if (!h)
        return false;
    bool ok = yajl_parse(h, (const unsigned char *)text, len) == yajl_status_ok &&
              yajl_complete_parse(h) == yajl_status_ok && !s.bad && s.seen_action &&
              s.seen_value;
    yajl_free(h);
    return ok;
}


#elif defined(JSON_LIB_JSMN)
#define LIBRARY "jsmn 1.1.0 (strict, tokens only)"
static bool tok_is(const char *t, const jsmntok_t *k, const char *s)
{
    return k->type == JSMN_STRING && (size_t)(k->end - k->start) == strlen(s) &&
           memcmp(t + k->start, s, strlen(s)) == 0;
}
static bool parse(const char *text, size_t len, struct request *r)
{
    jsmn_parser p;
    jsmntok_t t[64];
    jsmn_init(&p);
    int n = jsmn_parse(&p, text, len, t, 64);
    if (n < 1 || t[0].type != JSMN_OBJECT)
        return false;
    bool a = false, v = false;
    for (int i = 1; i + 1 < n; i++) {
        if (t[i].parent != 0) continue;
        if (tok_is(text, &t[i], "action") && t[i+1].type == JSMN_STRING)
            a = copy_out(r->action, sizeof r->action, text + t[i+1].start, (size_t)(t[i+1].end - t[i+1].start));
        if (tok_is(text, &t[i], "value") && t[i+1].type == JSMN_STRING)
            v = copy_out(r->value, sizeof r->value, text + t[i+1].start, (size_t)(t[i+1].end - t[i+1].start));
    }
    return a && v;
}
#elif defined(JSON_LIB_JSONPARSER)
#define LIBRARY "json-parser 1.1.0 + arena"
static void *jp_alloc(size_t n, int zero, void *u) { (void)u; void *p = arena_malloc(n); if (p && zero) memset(p, 0, n); return p; }
static void jp_free(void *p, void *u) { (void)p; (void)u; }
static bool parse(const char *text, size_t len, struct request *r)
{
    json_settings s = {0};
    s.mem_alloc = jp_alloc;
    s.mem_free = jp_free;
    char err[json_error_max];
    arena_used = 0;
    json_value *o = json_parse_ex(&s, text, len, err);
    if (!o || o->type != json_object)
        return false;
    bool a = false, v = false;
    for (unsigned i = 0; i < o->u.object.length; i++) {
        json_object_entry *e = &o->u.object.values[i];
        if (strcmp(e->name, "action") == 0 && e->value->type == json_string)
            a = copy_out(r->action, sizeof r->action, e->value->u.string.ptr, e->value->u.string.length);
        if (strcmp(e->name, "value") == 0 && e->value->type == json_string)
            v = copy_out(r->value, sizeof r->value, e->value->u.string.ptr, e->value->u.string.length);
    }
    return a && v;
}
#endif

/* --- the figures -------------------------------------------------------------- */

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static const char request[] = "{\"action\": \"search\", \"value\": \"morpheus\"}";

/* Inputs the protocol refuses, and whether each library refused them. */
static const struct hostile {
    const char *what;
    const char *text;
    size_t len;
} hostile[] = {
    {"duplicate key", "{\"action\": \"search\", \"value\": \"a\", \"value\": \"b\"}", 0},
    {"invalid UTF-8", "{\"action\": \"search\", \"value\": \"\xff\xfe\"}", 0},
    {"trailing bytes", "{\"action\": \"search\", \"value\": \"a\"} x", 0},
    {"escaped NUL", "{\"action\": \"search\", \"value\": \"a\\u0000b\"}", 0},
    {"huge integer", "{\"action\": \"search\", \"value\": \"a\", \"n\": 99999999999999999999999}", 0},
};

static char *deep_nesting(size_t depth, size_t *len)
{
    /* {"action": "search", "value": "a", "x": [[[[...]]]]} */
    const char head[] = "{\"action\": \"search\", \"value\": \"a\", \"x\": ";
    char *s = __libc_malloc(sizeof head + 2 * depth + 2);
    size_t n = sizeof head - 1;
    memcpy(s, head, n);
    memset(s + n, '[', depth);
    memset(s + n + depth, ']', depth);
    n += 2 * depth;
    s[n++] = '}';
    s[n] = '\0';
    *len = n;
    return s;
}

int main(int argc, char **argv)
{
    long rounds = argc > 1 ? atol(argv[1]) : 200000;
    size_t len = sizeof request - 1;
    struct request r;
    double best = 1e18;
    for (int run = 0; run < 5; run++) {
        double t0 = now_ns();
        for (long k = 0; k < rounds; k++)
            if (!parse(request, len, &r) || strcmp(r.value, "morpheus") != 0) {
                fprintf(stderr, "%s: the request did not parse\n", LIBRARY);
                return 1;
            }
        double per = (now_ns() - t0) / (double)rounds;
        best = per < best ? per : best;
    }
    unsigned long before = allocations;
    parse(request, len, &r);
    printf("library\t%s\nns/parse\t%.0f\nallocs/parse\t%lu\n", LIBRARY, best,
           allocations - before);
    /* Each hostile input: "refused" or "ACCEPTED". */
    for (size_t h = 0; h < sizeof hostile / sizeof hostile[0]; h++)
        printf("%s\t%s\n", hostile[h].what,
               parse(hostile[h].text, strlen(hostile[h].text), &r) ? "ACCEPTED" : "refused");
    size_t deep_len;
    char *deep = deep_nesting(100000, &deep_len);
    printf("nesting 100000\t%s\n", parse(deep, deep_len, &r) ? "ACCEPTED" : "refused");
    __libc_free(deep);
    return 0;
}
