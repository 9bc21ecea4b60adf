/*
 * tls.h - TLS with OpenSSL: the server's context and its sessions, and
 * the client's context.
 *
 * A server-side session belongs to its connection (conn.h): the acceptor
 * makes one for each socket accepted on a TLS listener, and the
 * connection's close ends it. Nothing here does I/O on a connection;
 * stream.h does.
 */
#ifndef ENCHUFE_TLS_H
#define ENCHUFE_TLS_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>

enum tls_auth_clients {
    TLS_AUTH_NO,       /* no client certificate asked for */
    TLS_AUTH_OPTIONAL, /* asked for; if one is sent, it must verify */
    TLS_AUTH_YES,      /* required, and it must verify */
};

struct tls_server_config {
    const char *cert_file; /* PEM: the certificate, then its chain */
    const char *key_file;  /* PEM private key */
    const char *ca_file;   /* PEM CAs that sign client certificates (or NULL) */
    enum tls_auth_clients auth_clients;
};

struct tls_server;

/* Loads the certificate and key (which must match), and the CA file when
 * client certificates are asked for. Returns the context, or NULL with
 * one line in err naming the file and the reason. */
struct tls_server *tls_server_new(const struct tls_server_config *cfg, char *err,
                                  size_t errlen);

void tls_server_free(struct tls_server *t);

/* Reads the certificate, key and CA files again (SIGHUP): new handshakes
 * use them from now on; sessions already open keep what they began with.
 * On failure nothing changes: returns -1 with one line in err. Not
 * concurrently with itself (the server reloads from one thread). */
int tls_server_reload(struct tls_server *t, char *err, size_t errlen);

/* When the certificate in use expires, in Unix seconds (0: unknown). */
long long tls_server_not_after(struct tls_server *t);

/* A server-side session for an accepted socket, handshake not yet done.
 * The socket is made non-blocking: OpenSSL then says what it waits for,
 * and the caller waits for that (stream.h). NULL if memory ran out. */
SSL *tls_server_session(struct tls_server *t, int fd);

/* How many bytes the socket must hold before a server's handshake is
 * worth beginning: 0 once the client's first TLS record (its ClientHello,
 * whole in all but contrived cases) has arrived whole, or once what came
 * cannot be the start of one (OpenSSL will say why), or the client has
 * gone or closed its side; else the record's length with its header (its header's, until
 * that has come). A peek: no byte is taken. */
size_t tls_first_record_missing(int fd);

/* Ends a session (NULL: nothing to do): close_notify if the handshake is
 * done and no fatal error came, one try, never a wait; then frees it.
 * The socket is the caller's to close. */
void tls_session_close(SSL *ssl);

/* Why a server-side handshake failed (counted in the stats). */
enum tls_failure {
    TLS_FAIL_TIMEOUT,  /* not done within the read timeout */
    TLS_FAIL_PROTOCOL, /* not TLS, a version or cipher mismatch, an alert */
    TLS_FAIL_VERIFY,   /* the client's certificate was missing or did not verify */
    TLS_FAIL_CLOSED,   /* the peer closed or reset the connection */
};

/* A client's context. */
struct tls_client_config {
    const char *ca_file;   /* CAs to verify the server with (NULL: the system's) */
    const char *cert_file; /* a client certificate and its key (or NULL) */
    const char *key_file;
    bool no_verify;        /* benchmarks against a throwaway certificate only */
};

/* Returns a client context that verifies the server (unless no_verify),
 * or NULL with one line in err naming the file and the reason. When the
 * environment names a SSLKEYLOGFILE, the session keys are appended to it
 * in the NSS key log format, as browsers and curl do, so that Wireshark
 * can decrypt a capture. */
SSL_CTX *tls_client_context(const struct tls_client_config *cfg, char *err, size_t errlen);

/* Binds a client's SSL object to a connected socket, through a BIO that
 * sends with MSG_NOSIGNAL, and makes the socket non-blocking (the stream
 * waits in poll). -1 if memory ran out. */
int tls_client_attach(SSL *ssl, int fd);

/* Sets the name the client sends (SNI, for a host name) and checks the
 * server's certificate against (a host name or an IP address). */
int tls_client_set_name(SSL *ssl, const char *name);

/* OpenSSL's last error on this thread, as one line ("" if none), and the
 * queue cleared. */
const char *tls_last_error(char *out, size_t outlen);

#endif
