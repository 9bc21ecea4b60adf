/*
 * protocol.h - the words of the wire protocol (docs/protocol.md), in one
 * place for the server, the client, the bench and the tests: content
 * types and encodings, actions, and the error codes of error answers.
 *
 * The error codes have one table (protocol.c): an error travels as an
 * enum from the decoder to the answer and the counters, and becomes its
 * string only when it is written on the wire or shown to a person.
 */
#ifndef ENCHUFE_PROTOCOL_H
#define ENCHUFE_PROTOCOL_H

#define PROTO_TEXT_JSON "text/json"
#define PROTO_UTF8 "utf-8"
#define PROTO_BINARY "binary"
/* What the tutorial's server and client call their binary content. */
#define PROTO_SERVER_BINARY_TYPE "binary/custom-server-binary-type"
#define PROTO_CLIENT_BINARY_TYPE "binary/custom-client-binary-type"
/* A binary answer: this, then the request content's first ten bytes. */
#define PROTO_BINARY_PREFIX "First 10 bytes of request: "
#define PROTO_BINARY_ECHOED 10

#define PROTO_ACTION_SEARCH "search"
#define PROTO_ACTION_STATS "stats"   /* an enchufe extension */
#define PROTO_ACTION_HEALTH "health" /* an enchufe extension, for health checks */

/* The error codes of error answers, in the order of the protocol table. */
enum proto_error {
    PROTO_ERR_BAD_PROTO_HEADER,
    PROTO_ERR_BAD_JSON,
    PROTO_ERR_BAD_UTF8,
    PROTO_ERR_BAD_HEADER,
    PROTO_ERR_TOO_LARGE,
    PROTO_ERR_BAD_CONTENT,
    PROTO_ERR_BAD_REQUEST,
    PROTO_ERR_TIMEOUT,
    PROTO_ERR_NO_MEMORY,
    PROTO_ERR_COUNT
};

/* The code as it goes on the wire ("bad-json"). */
const char *proto_error_code(enum proto_error e);

#endif
