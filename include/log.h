/*
 * log.h - one-line messages on stderr, each written with a single call so
 * that lines from different threads never interleave.
 */
#ifndef ENCHUFE_LOG_H
#define ENCHUFE_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* 0: start, stop and errors only; 1: per connection (-v); 2: wire trace. */
void log_set_verbosity(int level);
int log_verbosity(void);

void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Only at verbosity 1 and above. */
void log_verbose(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* At verbosity 2 (-v -v): one message on the wire, as the tutorial's
 * "Sending b'...' to ..." lines show it, done properly: its sizes, its
 * JSON header, and a hex dump of its first bytes. `head` holds the
 * proto-header and JSON header, `content` the content. */
void log_trace_message(const char *what, const char *peer, const uint8_t *head,
                       size_t head_len, const uint8_t *content, size_t content_len);

#endif
