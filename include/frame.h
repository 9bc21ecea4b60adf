/*
 * frame.h - the enchufe wire format (docs/protocol.md): a 2-byte
 * big-endian header length, a JSON header, then content-length bytes.
 *
 * The decoder never reads the socket and never allocates: like
 * picohttpparser, the caller owns a buffer holding the bytes of the
 * current frame received so far (starting at its first byte), calls
 * frame_decode() whenever more arrive, and gets back "need more", a
 * specific error, or a complete frame whose content points into that
 * buffer. The server, the client, the bench and the fuzzer all drive it.
 * Nothing here touches a socket (frame_io.h does).
 *
 * Limits are checked on the header, before the caller commits memory to
 * the content: frame_decoder_wanted() says how many bytes the frame needs
 * once that is known, and it is never more than the configured maximum.
 */
#ifndef ENCHUFE_FRAME_H
#define ENCHUFE_FRAME_H

#include "protocol.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define FRAME_PROTO_HEADER_LEN 2
#define FRAME_MAX_HEADER_LEN 65535
/* RFC 6838 caps a media type's type and subtype names at 127 characters each. */
#define FRAME_MAX_CONTENT_TYPE 255
#define FRAME_MAX_CONTENT_ENCODING 63
#define FRAME_DEFAULT_MAX_CONTENT ((size_t)1 << 20)

enum frame_status {
    FRAME_COMPLETE = 0,
    FRAME_NEED_MORE,
    FRAME_ERR_PROTO_HEADER,      /* header length too small to hold JSON */
    FRAME_ERR_HEADER_JSON,       /* header is not valid JSON */
    FRAME_ERR_HEADER_UTF8,       /* header is not valid UTF-8 */
    FRAME_ERR_HEADER_NOT_OBJECT, /* header is JSON but not an object */
    FRAME_ERR_HEADER_KEY,        /* a required key is missing or mistyped */
    FRAME_ERR_TOO_LARGE,         /* content-length exceeds the maximum */
    FRAME_ERR_NO_MEMORY,         /* the header could not be parsed for want of memory */
};

enum frame_byteorder { FRAME_LITTLE, FRAME_BIG };

struct frame_header {
    enum frame_byteorder byteorder;
    char content_type[FRAME_MAX_CONTENT_TYPE + 1];
    char content_encoding[FRAME_MAX_CONTENT_ENCODING + 1];
    size_t content_length;
};

struct frame {
    struct frame_header header;
    const uint8_t *content; /* points into the caller's buffer */
    size_t size;            /* bytes the whole frame took: consume them */
};

struct frame_decoder {
    size_t max_content;
    size_t header_len; /* 0 until the proto-header has arrived */
    bool have_header;
    struct frame_header header;
    char error[256]; /* why the last error happened, for a human */
};

void frame_decoder_init(struct frame_decoder *d, size_t max_content);

/* Decodes the frame at the start of buf[0..len). On FRAME_COMPLETE the
 * decoder is ready for the next frame, which starts at buf + out->size.
 * After an error the stream can no longer be trusted; d->error says why. */
enum frame_status frame_decode(struct frame_decoder *d, const uint8_t *buf, size_t len,
                               struct frame *out);

/* How many bytes the current frame is known to need in total so far:
 * 2 at first, then 2 + header length, then the whole frame. */
size_t frame_decoder_wanted(const struct frame_decoder *d);

/* The protocol error an error status is answered with (several statuses
 * share bad-header). */
enum proto_error frame_status_error(enum frame_status st);

/* Room for the largest proto-header + JSON header frame_encode_header writes. */
#define FRAME_ENCODED_HEADER_MAX (FRAME_PROTO_HEADER_LEN + 2 * FRAME_MAX_CONTENT_TYPE + 256)

/* Writes the proto-header and JSON header of a message, in the original
 * implementation's spelling, into out. Returns the byte count, or -1 if a
 * string is too long or not UTF-8. */
int frame_encode_header(uint8_t out[FRAME_ENCODED_HEADER_MAX], const char *content_type,
                        const char *content_encoding, size_t content_length);

#endif
