/*
 * escape.h - text from the network, made safe for a terminal.
 *
 * A server's answer or a client's header can carry terminal control
 * sequences (ESC ] 0 ; ... BEL sets a window title, ESC [ 2 J clears the
 * screen, a bare \r overwrites a line). Whatever came from a peer goes
 * through here before it is printed or logged: control characters (C0,
 * DEL and the C1 range U+0080-U+009F) and bytes that are not UTF-8 become
 * visible escapes (\n, \r, \t, \xHH); printable UTF-8, emoji included,
 * is kept as it is. (The point is a safe terminal, not a reversible
 * encoding: a backslash stays a backslash.)
 */
#ifndef ENCHUFE_ESCAPE_H
#define ENCHUFE_ESCAPE_H

#include <stddef.h>
#include <stdio.h>

/* Writes the escaped form of in[0..len) into out (always terminated,
 * truncated to fit). Returns the length written. */
size_t escape_text(char *out, size_t cap, const char *in, size_t len);

/* Writes the escaped form of in[0..len) to f. */
void escape_fputs(FILE *f, const char *in, size_t len);

#endif
