/*
 * answers.c - the search answers (see answers.h).
 *
 * A loaded set lives in one block: the entries, an open-addressing index
 * of them (linear probing, at most half full, FNV-1a hashes), then their
 * values and contents back to back. Nothing in it is written after it is
 * made, so any number of threads may search it at once.
 */
#include "answers.h"
#include "json_alloc.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct answer_entry {
    const char *value;
    const char *content;
    uint32_t value_len, content_len;
    uint64_t hash;
};

struct answers {
    bool builtin;
    size_t n;
    const struct answer_entry *entries;
    uint32_t *index; /* entry number + 1 (0: empty); NULL: search the entries in turn */
    size_t mask;     /* index size - 1 */
};

/* The tutorial's answers, byte for byte as the original server writes
 * them (json.dumps with ensure_ascii=False). */
#define ENTRY(v, c) {(v), (c), sizeof(v) - 1, sizeof(c) - 1, 0}
static const struct answer_entry builtin_entries[] = {
    ENTRY("morpheus", "{\"result\": \"Follow the white rabbit. \xf0\x9f\x90\xb0\"}"),
    ENTRY("ring", "{\"result\": \"In the caves beneath the Misty Mountains. \xf0\x9f\x92\x8d\"}"),
    ENTRY("\xf0\x9f\x90\xb6", "{\"result\": \"\xf0\x9f\x90\xbe Playing ball! \xf0\x9f\x8f\x90\"}"),
};
#undef ENTRY

static const struct answers builtin = {
    .builtin = true,
    .n = sizeof builtin_entries / sizeof builtin_entries[0],
    .entries = builtin_entries,
};

const struct answers *answers_builtin(void)
{
    return &builtin;
}

size_t answers_count(const struct answers *a)
{
    return a->n;
}

static uint64_t fnv1a(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static bool same(const struct answer_entry *e, const char *value, size_t len)
{
    return e->value_len == len && memcmp(e->value, value, len) == 0;
}

const char *answers_find(const struct answers *a, const char *value, size_t value_len,
                         size_t *content_len)
{
    const struct answer_entry *hit = NULL;
    if (!a->index) {
        for (size_t i = 0; i < a->n && !hit; i++)
            hit = same(&a->entries[i], value, value_len) ? &a->entries[i] : NULL;
    } else {
        uint64_t h = fnv1a(value, value_len);
        for (size_t slot = h & a->mask; a->index[slot]; slot = (slot + 1) & a->mask) {
            const struct answer_entry *e = &a->entries[a->index[slot] - 1];
            if (e->hash == h && same(e, value, value_len)) {
                hit = e;
                break;
            }
        }
    }
    if (!hit)
        return NULL;
    *content_len = hit->content_len;
    return hit->content;
}

void answers_free(const struct answers *a)
{
    if (a && !a->builtin)
        free((void *)a);
}

/* --- loading ------------------------------------------------------------------ */

/* The whole file, read with a bound: a file that grows while it is read
 * is still cut at the limit. NUL-terminated; *len without the NUL. */
static char *read_bounded(const char *path, size_t *len, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open data file %s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    char *text = NULL;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "data file %s: not a regular file", path);
        goto out;
    }
    if ((size_t)st.st_size > ANSWERS_MAX_FILE) {
        snprintf(err, errlen, "data file %s is %lld bytes; at most %zu MiB", path,
                 (long long)st.st_size, ANSWERS_MAX_FILE >> 20);
        goto out;
    }
    size_t cap = (size_t)st.st_size + 1, n = 0;
    if (!(text = malloc(cap + 1))) {
        snprintf(err, errlen, "data file %s: out of memory for %zu bytes", path, cap);
        goto out;
    }
    while (n < cap) {
        ssize_t got = read(fd, text + n, cap - n);
        if (got == 0)
            break;
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            snprintf(err, errlen, "cannot read data file %s: %s", path, strerror(errno));
            free(text);
            text = NULL;
            goto out;
        }
        n += (size_t)got;
    }
    if (n == cap) { /* it grew while we read it */
        snprintf(err, errlen, "data file %s changed while it was read", path);
        free(text);
        text = NULL;
        goto out;
    }
    text[n] = '\0';
    *len = n;
out:
    close(fd);
    return text;
}

/* The response content an answer makes: {"result": "ANSWER"}, as
 * json.dumps writes it (", " and ": ", UTF-8 kept). */
static char *render(json_t *answer)
{
    json_t *obj = json_pack("{s:O}", "result", answer);
    char *content = obj ? json_dumps(obj, 0) : NULL;
    json_decref(obj);
    return content;
}

/* Checks every entry and renders every answer; the sizes go in *bytes. */
static char **render_all(json_t *root, const char *path, size_t *bytes, char *err, size_t errlen)
{
    size_t n = json_object_size(root), i = 0;
    char **contents = calloc(n ? n : 1, sizeof *contents);
    const char *value;
    json_t *answer;
    if (!contents) {
        snprintf(err, errlen, "data file %s: out of memory", path);
        return NULL;
    }
    *bytes = 0;
    json_object_foreach(root, value, answer) {
        size_t vlen = strlen(value);
        if (vlen > ANSWERS_MAX_VALUE) {
            snprintf(err, errlen, "data file %s: the value '%.40s...' is %zu bytes; at most %d",
                     path, value, vlen, ANSWERS_MAX_VALUE);
            goto fail;
        }
        if (!json_is_string(answer)) {
            snprintf(err, errlen, "data file %s: the answer to '%.40s' is not a string", path,
                     value);
            goto fail;
        }
        if (!(contents[i] = render(answer))) {
            snprintf(err, errlen, "data file %s: out of memory rendering '%.40s'", path, value);
            goto fail;
        }
        size_t clen = strlen(contents[i]);
        if (clen > ANSWERS_MAX_CONTENT) {
            snprintf(err, errlen, "data file %s: the answer to '%.40s' makes %zu bytes; at most "
                                  "%zu", path, value, clen, ANSWERS_MAX_CONTENT);
            i++;
            goto fail;
        }
        *bytes += vlen + 1 + clen + 1;
        i++;
    }
    return contents;
fail:
    while (i-- > 0)
        free(contents[i]);
    free(contents);
    return NULL;
}

static void free_contents(char **contents, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(contents[i]);
    free(contents);
}

/* One block: struct answers, entries, index, then the strings. */
static struct answers *build(json_t *root, char **contents, size_t bytes)
{
    size_t n = json_object_size(root), slots = 4;
    while (slots < 2 * n)
        slots *= 2;
    size_t entries_at = sizeof(struct answers);
    size_t index_at = entries_at + n * sizeof(struct answer_entry);
    size_t strings_at = index_at + slots * sizeof(uint32_t);
    char *block = calloc(1, strings_at + bytes);
    if (!block)
        return NULL;
    struct answers *a = (struct answers *)block;
    struct answer_entry *entries = (struct answer_entry *)(block + entries_at);
    uint32_t *index = (uint32_t *)(block + index_at);
    char *p = block + strings_at;
    const char *value;
    json_t *answer;
    size_t i = 0;
    json_object_foreach(root, value, answer) {
        struct answer_entry *e = &entries[i];
        e->value_len = (uint32_t)strlen(value);
        assert(contents[i]); /* rendered, one for each entry, before build() */
        e->content_len = (uint32_t)strlen(contents[i]);
        e->value = memcpy(p, value, e->value_len + 1);
        p += e->value_len + 1;
        e->content = memcpy(p, contents[i], e->content_len + 1);
        p += e->content_len + 1;
        e->hash = fnv1a(e->value, e->value_len);
        size_t slot = e->hash & (slots - 1);
        while (index[slot])
            slot = (slot + 1) & (slots - 1);
        index[slot] = (uint32_t)(i + 1);
        i++;
    }
    *a = (struct answers){.n = n, .entries = entries, .index = index, .mask = slots - 1};
    return a;
}

struct answers *answers_load(const char *path, char *err, size_t errlen)
{
    size_t len;
    char *text = read_bounded(path, &len, err, errlen);
    if (!text)
        return NULL;
    json_error_t je;
    json_alloc_watch();
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    free(text);
    struct answers *a = NULL;
    char **contents = NULL;
    size_t bytes = 0;
    if (json_alloc_failed()) {
        /* jansson may report a failed allocation as a syntax error, or
         * drop a value it could not insert: either way, not the file. */
        snprintf(err, errlen, "data file %s: out of memory reading it", path);
    } else if (!root) {
        snprintf(err, errlen, "data file %s, line %d, column %d: %s", path, je.line, je.column,
                 je.text);
    } else if (!json_is_object(root)) {
        snprintf(err, errlen, "data file %s: not a JSON object of value -> answer", path);
    } else if (json_object_size(root) > ANSWERS_MAX_ENTRIES) {
        snprintf(err, errlen, "data file %s has %zu values; at most %d", path,
                 json_object_size(root), ANSWERS_MAX_ENTRIES);
    } else if ((contents = render_all(root, path, &bytes, err, errlen)) != NULL) {
        if (!(a = build(root, contents, bytes)))
            snprintf(err, errlen, "data file %s: out of memory for %zu values", path,
                     json_object_size(root));
        free_contents(contents, json_object_size(root));
    }
    json_decref(root);
    return a;
}
