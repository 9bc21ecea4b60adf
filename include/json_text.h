/*
 * json_text.h - text written inside a JSON string, byte for byte as
 * jansson's json_dumps writes it (so the answers built here read exactly
 * as those built with jansson did): '"' and '\' escaped, \b \f \n \r \t
 * by name, the other control characters as \u00XX, everything else,
 * UTF-8 included, as it is. The caller hands in valid UTF-8.
 */
#ifndef ENCHUFE_JSON_TEXT_H
#define ENCHUFE_JSON_TEXT_H

#include <stddef.h>

/* How many bytes s[0..len) takes escaped. */
size_t json_text_length(const char *s, size_t len);

/* Writes s[0..len) escaped at out, which has json_text_length() bytes of
 * room; returns the end of what it wrote. */
char *json_text_write(char *out, const char *s, size_t len);

#endif
