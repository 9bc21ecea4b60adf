/*
 * escape.c - terminal-safe text (see escape.h).
 */
#include "escape.h"
#include "utf8.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* The escape for a control byte, in its shortest readable form. */
static size_t escape_byte(char *out, uint8_t b)
{
    static const char hex[] = "0123456789abcdef";
    const char *named = b == '\n' ? "\\n" : b == '\r' ? "\\r" : b == '\t' ? "\\t" : NULL;
    if (named) {
        memcpy(out, named, 2);
        return 2;
    }
    out[0] = '\\';
    out[1] = 'x';
    out[2] = hex[b >> 4];
    out[3] = hex[b & 15];
    return 4;
}

/* Appends the escaped form of the sequence at p to piece; returns how many
 * input bytes it took. piece has room for 4 escapes (16 bytes). */
static size_t escape_one(const uint8_t *p, size_t n, char *piece, size_t *piece_len)
{
    uint32_t cp = 0;
    if (p[0] >= 0x20 && p[0] < 0x7f) {
        piece[0] = (char)p[0];
        *piece_len = 1;
        return 1;
    }
    size_t len = p[0] >= 0x80 ? utf8_sequence(p, n, &cp) : 0;
    if (len > 0 && cp > 0x9f) { /* printable beyond ASCII: as it is */
        memcpy(piece, p, len);
        *piece_len = len;
        return len;
    }
    if (len == 0)
        len = 1; /* a control or a stray byte: escape that byte */
    *piece_len = 0;
    for (size_t i = 0; i < len; i++)
        *piece_len += escape_byte(piece + *piece_len, p[i]);
    return len;
}

size_t escape_text(char *out, size_t cap, const char *in, size_t len)
{
    const uint8_t *p = (const uint8_t *)in;
    size_t used = 0;
    if (cap == 0)
        return 0;
    while (len > 0) {
        char piece[16];
        size_t piece_len;
        size_t took = escape_one(p, len, piece, &piece_len);
        if (used + piece_len >= cap)
            break;
        memcpy(out + used, piece, piece_len);
        used += piece_len;
        p += took;
        len -= took;
    }
    out[used] = '\0';
    return used;
}

void escape_fputs(FILE *f, const char *in, size_t len)
{
    const uint8_t *p = (const uint8_t *)in;
    while (len > 0) {
        char piece[16];
        size_t piece_len;
        size_t took = escape_one(p, len, piece, &piece_len);
        fwrite(piece, 1, piece_len, f);
        p += took;
        len -= took;
    }
}
