/*
 * utf8.h - strict UTF-8: what JSON (RFC 8259) and jansson accept.
 *
 * Overlong forms, surrogates (U+D800-U+DFFF) and code points past
 * U+10FFFF are refused, as jansson refuses them.
 */
#ifndef ENCHUFE_UTF8_H
#define ENCHUFE_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Length of the valid multi-byte UTF-8 sequence at p (at most n bytes
 * there), with its code point in *cp; 0 if the bytes there are not one
 * (an ASCII byte included: the caller handles those itself). */
size_t utf8_sequence(const uint8_t *p, size_t n, uint32_t *cp);

#endif
