/*
 * protocol.c - the one table of error codes (see protocol.h).
 */
#include "protocol.h"

static const char *const error_codes[PROTO_ERR_COUNT] = {
    [PROTO_ERR_BAD_PROTO_HEADER] = "bad-proto-header",
    [PROTO_ERR_BAD_JSON] = "bad-json",
    [PROTO_ERR_BAD_UTF8] = "bad-utf8",
    [PROTO_ERR_BAD_HEADER] = "bad-header",
    [PROTO_ERR_TOO_LARGE] = "too-large",
    [PROTO_ERR_BAD_CONTENT] = "bad-content",
    [PROTO_ERR_BAD_REQUEST] = "bad-request",
    [PROTO_ERR_TIMEOUT] = "timeout",
    [PROTO_ERR_NO_MEMORY] = "no-memory",
};

const char *proto_error_code(enum proto_error e)
{
    return (unsigned)e < PROTO_ERR_COUNT ? error_codes[e] : "unknown";
}
