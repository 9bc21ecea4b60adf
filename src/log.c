/*
 * log.c - stderr logging with a verbosity level set once at start-up.
 */
#include "log.h"
#include "escape.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

static atomic_int verbosity;

void log_set_verbosity(int level)
{
    atomic_store(&verbosity, level);
}

int log_verbosity(void)
{
    return atomic_load(&verbosity);
}

/* Messages quote what peers sent (a header, a parser's error text), so
 * each line goes out escaped: a client cannot write terminal control
 * sequences into the server's log, or forge a line with a newline. */
static void emit(const char *prefix, const char *fmt, va_list ap)
{
    char raw[1024], line[1024 + 2];
    int m = vsnprintf(raw, sizeof raw, fmt, ap);
    if (m < 0)
        return;
    int n = snprintf(line, sizeof line, "%s", prefix);
    if (n < 0 || (size_t)n >= sizeof line / 2)
        return;
    n += (int)escape_text(line + n, sizeof line - (size_t)n - 1, raw, strlen(raw));
    line[n++] = '\n';
    /* One fwrite per line: stdio locks the stream for the whole call. */
    fwrite(line, 1, (size_t)n, stderr);
}

void log_info(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit("", fmt, ap);
    va_end(ap);
}

void log_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit("error: ", fmt, ap);
    va_end(ap);
}

void log_verbose(const char *fmt, ...)
{
    if (atomic_load(&verbosity) < 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    emit("", fmt, ap);
    va_end(ap);
}

/* One hex dump line: offset, 16 bytes in hex, the same as text. */
static void hex_line(size_t off, const uint8_t *p, size_t n)
{
    char hex[16 * 3 + 1] = "", text[17] = "";
    for (size_t i = 0; i < n; i++) {
        snprintf(hex + i * 3, sizeof hex - i * 3, "%02x ", p[i]);
        text[i] = p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '.';
    }
    text[n] = '\0';
    log_info("trace:   %04zx  %-48s |%s|", off, hex, text);
}

#define TRACE_DUMP 64 /* bytes of each message dumped */

void log_trace_message(const char *what, const char *peer, const uint8_t *head,
                       size_t head_len, const uint8_t *content, size_t content_len)
{
    if (atomic_load(&verbosity) < 2)
        return;
    size_t json_len = head_len > 2 ? head_len - 2 : 0;
    log_info("trace: %s %s: %zu bytes (2 proto-header + %zu header + %zu content), header %.*s",
             what, peer, head_len + content_len, json_len, content_len,
             (int)(json_len < 400 ? json_len : 400), (const char *)head + 2);
    uint8_t first[TRACE_DUMP];
    size_t n = 0;
    for (size_t i = 0; i < head_len && n < TRACE_DUMP; i++)
        first[n++] = head[i];
    for (size_t i = 0; i < content_len && n < TRACE_DUMP; i++)
        first[n++] = content[i];
    for (size_t off = 0; off < n; off += 16)
        hex_line(off, first + off, n - off < 16 ? n - off : 16);
}
