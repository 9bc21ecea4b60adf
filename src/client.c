/*
 * client.c - request/response exchange for clients.
 *
 * Works the same against our server (which keeps the connection open) and
 * the original one (which closes after its answer): we read exactly one
 * frame and never wait for end of stream.
 */
#include "client.h"
#include "frame_io.h"
#include "log.h"
#include "monotime.h"
#include "net.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/x509_vfy.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* What a failed read or write says: errno's text, or for a TLS error,
 * OpenSSL's reason, with the likely fix when the server refused us. */
static void describe_failure(const struct stream *s, char *out, size_t outlen)
{
    char why[256];
    if (errno != EPROTO) {
        bool reset = errno == ECONNRESET || errno == EPIPE;
        /* In TLS 1.3 the server checks the client's certificate after the
         * client's handshake is over: its refusal comes as a reset. */
        snprintf(out, outlen, "%s%s", strerror(errno),
                 s->ssl && reset ? " (if the server asks for client certificates: "
                                   "--tls-cert and --tls-key)" : "");
        return;
    }
    snprintf(why, sizeof why, "%s", stream_last_error());
    snprintf(out, outlen, "TLS: %s%s", why,
             strstr(why, "certificate required") || strstr(why, "unknown ca") ||
                     strstr(why, "bad certificate")
                 ? " (the server wants a client certificate it trusts: --tls-cert and --tls-key)"
                 : "");
}

/* Reads one frame into resp->raw; returns 0 or -1 with err set. */
static int read_frame(const struct stream *s, size_t max_content, long long deadline,
                      struct client_response *resp, char *err, size_t errlen)
{
    struct frame_decoder dec;
    struct frame f;
    enum frame_status st;
    memset(resp, 0, sizeof *resp);
    frame_decoder_init(&dec, max_content);
    while ((st = frame_decode(&dec, buf_head(&resp->raw), resp->raw.len, &f)) == FRAME_NEED_MORE) {
        if (!buf_reserve(&resp->raw, frame_decoder_wanted(&dec))) {
            snprintf(err, errlen, "out of memory for a %zu-byte response",
                     frame_decoder_wanted(&dec));
            return -1;
        }
        /* Read no further than this frame: the rest is not ours. */
        size_t want = frame_decoder_wanted(&dec) - resp->raw.len;
        ssize_t n = stream_read_until(s, buf_tail(&resp->raw), want, deadline);
        if (n > 0) {
            resp->raw.len += (size_t)n;
            continue;
        }
        if (n == 0)
            snprintf(err, errlen, "the server closed the connection %s",
                     resp->raw.len ? "in the middle of its response" : "without answering");
        else if (errno == ETIMEDOUT || errno == EAGAIN || errno == EWOULDBLOCK)
            snprintf(err, errlen, "timed out waiting for the %s",
                     resp->raw.len ? "rest of the response" : "response");
        else {
            char why[384];
            describe_failure(s, why, sizeof why);
            snprintf(err, errlen, "reading the response: %s", why);
        }
        return -1;
    }
    if (st != FRAME_COMPLETE) {
        snprintf(err, errlen, "bad response (%s): %s", proto_error_code(frame_status_error(st)), dec.error);
        return -1;
    }
    resp->header = f.header;
    resp->content = f.content;
    resp->length = f.header.content_length;
    return 0;
}

int client_read_response(int fd, size_t max_content, long long deadline,
                         struct client_response *resp, char *err, size_t errlen)
{
    struct stream s = {.fd = fd};
    return client_read_response_on(&s, max_content, deadline, resp, err, errlen);
}

int client_read_response_on(const struct stream *s, size_t max_content, long long deadline,
                            struct client_response *resp, char *err, size_t errlen)
{
    if (read_frame(s, max_content, deadline, resp, err, errlen) == 0) {
        log_trace_message("received from", "server", buf_head(&resp->raw),
                          resp->raw.len - resp->length, resp->content, resp->length);
        return 0;
    }
    client_response_free(resp); /* nothing to hand back on failure */
    return -1;
}

int client_exchange(int fd, const char *content_type, const char *content_encoding,
                    const void *content, size_t length, size_t max_content, long long deadline,
                    struct client_response *resp, char *err, size_t errlen)
{
    struct stream s = {.fd = fd};
    return client_exchange_on(&s, content_type, content_encoding, content, length, max_content,
                              deadline, resp, err, errlen);
}

int client_exchange_on(const struct stream *s, const char *content_type,
                       const char *content_encoding, const void *content, size_t length,
                       size_t max_content, long long deadline, struct client_response *resp,
                       char *err, size_t errlen)
{
    memset(resp, 0, sizeof *resp);
    if (log_verbosity() >= 2) {
        uint8_t head[FRAME_ENCODED_HEADER_MAX];
        int n = frame_encode_header(head, content_type, content_encoding, length);
        if (n > 0)
            log_trace_message("sending to", "server", head, (size_t)n, content, length);
    }
    if (frame_io_send_on(s, content_type, content_encoding, content, length, deadline) < 0) {
        int e = errno;
        char why[384];
        describe_failure(s, why, sizeof why);
        snprintf(err, errlen, "sending the request: %s%s", e == ETIMEDOUT ? "timed out" : why,
                 e == EPIPE || e == ECONNRESET ? " (the server closed the connection)" : "");
        return -1;
    }
    return client_read_response_on(s, max_content, deadline, resp, err, errlen);
}

void client_response_free(struct client_response *resp)
{
    buf_free(&resp->raw);
}

char *client_search_content(const char *action, const char *value)
{
    json_t *req = json_pack("{s:s, s:s}", "action", action, "value", value);
    if (!req)
        return NULL;
    char *text = json_dumps(req, 0);
    json_decref(req);
    return text;
}

/* --- connections ------------------------------------------------------------- */

/* A failed handshake, in words that say what to change. */
static void explain_handshake(SSL *ssl, enum tls_failure why, const char *reason,
                              const char *name, char *err, size_t errlen)
{
    long v = SSL_get_verify_result(ssl);
    if (why == TLS_FAIL_VERIFY &&
        (v == X509_V_ERR_HOSTNAME_MISMATCH || v == X509_V_ERR_IP_ADDRESS_MISMATCH))
        snprintf(err, errlen, "TLS: the server's certificate is not for '%s' (pass "
                              "--tls-server-name with a name it was issued for)", name);
    else if (why == TLS_FAIL_VERIFY && v != X509_V_OK)
        snprintf(err, errlen, "TLS: the server's certificate did not verify: %s (pass "
                              "--tls-ca FILE with the CA that signed it)",
                 X509_verify_cert_error_string(v));
    else if (why == TLS_FAIL_TIMEOUT)
        snprintf(err, errlen, "TLS: the handshake timed out (is that a TLS port?)");
    else if (why == TLS_FAIL_PROTOCOL)
        snprintf(err, errlen, "TLS handshake failed: %s (is that a TLS port?)", reason);
    else
        snprintf(err, errlen, "TLS handshake failed: %s%s", reason,
                 why == TLS_FAIL_VERIFY ? " (the server wants a client certificate it trusts: "
                                          "--tls-cert and --tls-key)"
                                        : " (is that a TLS port?)");
}

static int start_tls(struct stream *s, const struct net_endpoint *ep,
                     const struct client_tls *tls, long long deadline, char *err, size_t errlen)
{
    char host[256], reason[256];
    const char *name = tls->server_name ? tls->server_name
                                        : net_unbracket(ep->host, host, sizeof host);
    enum tls_failure why;
    s->ssl = SSL_new(tls->ctx);
    if (!s->ssl || tls_client_attach(s->ssl, s->fd) < 0 || tls_client_set_name(s->ssl, name) < 0) {
        snprintf(err, errlen, "cannot start TLS: %s", tls_last_error(reason, sizeof reason));
        return -1;
    }
    if (stream_handshake(s, deadline, &why, reason, sizeof reason) < 0) {
        explain_handshake(s->ssl, why, reason, name, err, errlen);
        return -1;
    }
    return 0;
}

int client_open(const struct net_endpoint *ep, const struct client_tls *tls, long long deadline,
                struct stream *out, char *err, size_t errlen)
{
    long long left = deadline ? deadline - monotime_ms() : 0;
    *out = (struct stream){.fd = -1};
    out->fd = net_connect_endpoint(ep, deadline ? (left > 0 ? (int)left : 1) : 0, err, errlen);
    if (out->fd < 0)
        return -1;
    if (tls && tls->ctx && start_tls(out, ep, tls, deadline, err, errlen) < 0) {
        client_close(out);
        return -1;
    }
    return 0;
}

void client_close(struct stream *s)
{
    if (s->ssl) {
        stream_end_write(s); /* close_notify */
        SSL_free(s->ssl);
        s->ssl = NULL;
    }
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
}
