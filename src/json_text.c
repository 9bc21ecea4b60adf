/*
 * json_text.c - text inside a JSON string (see json_text.h).
 */
#include "json_text.h"

#include <string.h>

/* The escape for byte c, or NULL if c is written as it is. */
static const char *named_escape(unsigned char c)
{
    switch (c) {
    case '"': return "\\\"";
    case '\\': return "\\\\";
    case '\b': return "\\b";
    case '\f': return "\\f";
    case '\n': return "\\n";
    case '\r': return "\\r";
    case '\t': return "\\t";
    default: return NULL;
    }
}

static size_t escaped_length(unsigned char c)
{
    if (c >= 0x20 && c != '"' && c != '\\')
        return 1;
    return named_escape(c) ? 2 : 6;
}

size_t json_text_length(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += escaped_length((unsigned char)s[i]);
    return n;
}

char *json_text_write(char *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF"; /* jansson writes \u001F */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *named = named_escape(c);
        if (named) {
            memcpy(out, named, 2);
            out += 2;
        } else if (c < 0x20) {
            *out++ = '\\';
            *out++ = 'u';
            *out++ = '0';
            *out++ = '0';
            *out++ = hex[c >> 4];
            *out++ = hex[c & 15];
        } else {
            *out++ = (char)c;
        }
    }
    return out;
}
