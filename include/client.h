/*
 * client.h - the client side of the application protocol: send a request,
 * read one framed response. Used by enchufe-cli and the tests.
 */
#ifndef ENCHUFE_CLIENT_H
#define ENCHUFE_CLIENT_H

#include "buf.h"
#include "frame.h"
#include "net.h"
#include "stream.h"

#include <stddef.h>

struct client_response {
    struct frame_header header;
    const uint8_t *content; /* points into raw */
    size_t length;
    struct buf raw; /* the whole frame as received */
};

/* Sends one framed request on fd and reads one framed response, all of it
 * by the absolute monotime_ms() deadline (0 = none): a server that
 * trickles its answer a byte at a time cannot stretch the exchange.
 * Returns 0, or -1 with a message in err naming what went wrong. */
int client_exchange(int fd, const char *content_type, const char *content_encoding,
                    const void *content, size_t length, size_t max_content, long long deadline,
                    struct client_response *resp, char *err, size_t errlen);

/* Reads one framed response by the deadline. Returns 0, or -1 with a
 * message in err (and nothing left to free in resp). */
int client_read_response(int fd, size_t max_content, long long deadline,
                         struct client_response *resp, char *err, size_t errlen);

/* The same two on a stream (in clear or TLS). */
int client_exchange_on(const struct stream *s, const char *content_type,
                       const char *content_encoding, const void *content, size_t length,
                       size_t max_content, long long deadline, struct client_response *resp,
                       char *err, size_t errlen);
int client_read_response_on(const struct stream *s, size_t max_content, long long deadline,
                            struct client_response *resp, char *err, size_t errlen);

void client_response_free(struct client_response *resp);

/* TLS for a client: a context from tls_client_context, and the name to
 * send and check the certificate against (NULL: the host connected to). */
struct client_tls {
    SSL_CTX *ctx; /* NULL: in clear */
    const char *server_name;
};

/* Connects to the endpoint, and with tls->ctx runs the TLS handshake,
 * verifying the server; all by the deadline (0 = none). Returns 0, or -1
 * with a message in err that says what failed and what to pass. */
int client_open(const struct net_endpoint *ep, const struct client_tls *tls, long long deadline,
                struct stream *out, char *err, size_t errlen);

/* Sends close_notify (TLS) and closes. */
void client_close(struct stream *s);

/* The content of a search request, {"action": "search", "value": VALUE},
 * as the original client writes it. Returns NULL if value is not UTF-8. */
char *client_search_content(const char *action, const char *value);

#endif
