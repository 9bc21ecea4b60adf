/*
 * tls.c - OpenSSL contexts and server sessions (see tls.h).
 */
#include "tls.h"
#include "swap.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>

/* The context is swapped whole on a reload (swap.h): a new handshake
 * takes the current one, and a session keeps the context it began with
 * (SSL_new takes a reference), so the old one goes when its last session
 * does. */
struct tls_server {
    struct swap ctx;              /* SSL_CTX (cache-line aligned stripes: first) */
    _Atomic long long not_after;  /* the certificate's expiry, Unix seconds */
    struct tls_server_config cfg; /* the files, read again on a reload */
};

const char *tls_last_error(char *out, size_t outlen)
{
    /* The first error is the cause ("no start line"); later ones are the
     * callers that gave up because of it ("PEM lib"). */
    unsigned long e = ERR_peek_error();
    const char *reason = e ? ERR_reason_error_string(e) : NULL;
    if (!e)
        snprintf(out, outlen, "%s", "");
    else if (reason)
        snprintf(out, outlen, "%s", reason);
    else
        ERR_error_string_n(e, out, outlen);
    ERR_clear_error();
    return out;
}

/* --- a socket BIO that cannot raise SIGPIPE ---------------------------------- */

/* OpenSSL's socket BIO writes with write(2): a peer that has gone would
 * raise SIGPIPE and kill the process. This one is OpenSSL's own socket
 * BIO with its write replaced by send(MSG_NOSIGNAL), so that every send
 * of ours, in TLS or not, yields EPIPE instead. */
static BIO_METHOD *nosignal_method;

static int nosignal_write(BIO *b, const char *data, int len)
{
    int fd = -1;
    BIO_get_fd(b, &fd);
    ssize_t n = send(fd, data, (size_t)len, MSG_NOSIGNAL);
    BIO_clear_retry_flags(b);
    if (n < 0 && BIO_sock_should_retry((int)n))
        BIO_set_retry_write(b);
    return (int)n;
}

static void make_nosignal_method(void)
{
    const BIO_METHOD *sock = BIO_s_socket();
    BIO_METHOD *m = BIO_meth_new(BIO_TYPE_SOCKET, "socket without SIGPIPE");
    if (!m)
        return;
    BIO_meth_set_write(m, nosignal_write);
    BIO_meth_set_read(m, BIO_meth_get_read(sock));
    BIO_meth_set_puts(m, BIO_meth_get_puts(sock));
    BIO_meth_set_ctrl(m, BIO_meth_get_ctrl(sock));
    BIO_meth_set_create(m, BIO_meth_get_create(sock));
    BIO_meth_set_destroy(m, BIO_meth_get_destroy(sock));
    nosignal_method = m;
}

/* Binds ssl to fd through the BIO above. -1 if memory ran out. */
static int set_socket(SSL *ssl, int fd)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, make_nosignal_method);
    BIO *bio = nosignal_method ? BIO_new(nosignal_method) : NULL;
    if (!bio)
        return -1;
    BIO_set_fd(bio, fd, BIO_NOCLOSE);
    SSL_set_bio(ssl, bio, bio);
    return 0;
}

/* OpenSSL computes a certificate's extension cache (key identifiers,
 * purposes) the first time a verification needs it, under the
 * certificate's lock, and later verifications read the cache without
 * taking it. A trusted certificate in a context's store is shared by every
 * connection, so its cache would be written by one thread's handshake
 * while another's reads it: computed here, once, while the context is
 * still ours alone, nothing is written later. (ThreadSanitizer saw the
 * race in ASN1_STRING_cmp, with concurrent client handshakes.) */
static void cache_trusted_extensions(SSL_CTX *ctx)
{
    STACK_OF(X509_OBJECT) *objects = X509_STORE_get0_objects(SSL_CTX_get_cert_store(ctx));
    for (int i = 0; i < sk_X509_OBJECT_num(objects); i++) {
        X509 *x = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objects, i));
        if (x)
            X509_check_purpose(x, -1, 0);
    }
}

/* --- the server's context ---------------------------------------------------- */

/* fopen's verdict on a file OpenSSL is about to read, so that a missing
 * or unreadable file is reported as such rather than as a PEM error. */
static bool readable(const char *what, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f) {
        fclose(f);
        return true;
    }
    snprintf(err, errlen, "cannot read the TLS %s %s: %s", what, path, strerror(errno));
    return false;
}

static int load_identity(SSL_CTX *ctx, const char *cert, const char *key, char *err,
                         size_t errlen)
{
    char why[256];
    if (!readable("certificate", cert, err, errlen) || !readable("key", key, err, errlen))
        return -1;
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        snprintf(err, errlen, "TLS certificate %s: %s (a PEM certificate, then its chain)",
                 cert, tls_last_error(why, sizeof why));
        return -1;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
            snprintf(err, errlen, "TLS key %s does not match the certificate in %s", key, cert);
            ERR_clear_error();
            return -1;
        }
        snprintf(err, errlen, "TLS key %s: %s (an unencrypted PEM private key)", key,
                 tls_last_error(why, sizeof why));
        return -1;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errlen, "TLS key %s does not match the certificate in %s", key, cert);
        ERR_clear_error();
        return -1;
    }
    return 0;
}

static int load_client_cas(SSL_CTX *ctx, const struct tls_server_config *cfg, char *err,
                           size_t errlen)
{
    char why[256];
    if (cfg->auth_clients == TLS_AUTH_NO)
        return 0;
    if (!cfg->ca_file) {
        snprintf(err, errlen, "client certificates are asked for, but no CA file says who "
                              "signs them");
        return -1;
    }
    if (!readable("CA file", cfg->ca_file, err, errlen))
        return -1;
    STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->ca_file);
    if (!names || SSL_CTX_load_verify_locations(ctx, cfg->ca_file, NULL) != 1) {
        snprintf(err, errlen, "TLS CA file %s: %s", cfg->ca_file,
                 names ? tls_last_error(why, sizeof why) : "no PEM certificate in it");
        sk_X509_NAME_pop_free(names, X509_NAME_free);
        ERR_clear_error();
        return -1;
    }
    SSL_CTX_set_client_CA_list(ctx, names); /* the context owns it now */
    cache_trusted_extensions(ctx);
    int mode = SSL_VERIFY_PEER;
    if (cfg->auth_clients == TLS_AUTH_YES)
        mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(ctx, mode, NULL);
    return 0;
}

static SSL_CTX *server_context(const struct tls_server_config *cfg, char *err, size_t errlen)
{
    static const unsigned char context_id[] = "enchufe";
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        snprintf(err, errlen, "cannot create a TLS context: out of memory");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* Renegotiation is a CPU lever for clients; the protocol needs none.
     * An EOF without close_notify is an ordinary close: our frames carry
     * their own lengths, so a truncation cannot pass for a message. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_IGNORE_UNEXPECTED_EOF);
    /* Not SSL_MODE_RELEASE_BUFFERS, which frees and allocates the record
     * buffers around every record: a connection gives them back when it
     * is parked (stream_park), where being idle is known. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* One recv takes whatever has arrived, rather than a record's header
     * then its body: half the system calls. What it reads beyond the
     * current record waits in OpenSSL (stream_has_pending). */
    SSL_CTX_set_read_ahead(ctx, 1);
    /* Resumption by ticket only: tickets carry the session, so the
     * server keeps no cache (no memory per client, no lock across
     * workers). One ticket per handshake: a client resumes with it once. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ctx, 1);
    SSL_CTX_set_session_id_context(ctx, context_id, sizeof context_id - 1);
    if (load_identity(ctx, cfg->cert_file, cfg->key_file, err, errlen) < 0 ||
        load_client_cas(ctx, cfg, err, errlen) < 0) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* When the context's certificate expires, in Unix seconds (0: unknown). */
static long long certificate_not_after(SSL_CTX *ctx)
{
    X509 *cert = SSL_CTX_get0_certificate(ctx);
    struct tm tm;
    if (!cert || ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) != 1)
        return 0;
    return (long long)timegm(&tm);
}

struct tls_server *tls_server_new(const struct tls_server_config *cfg, char *err,
                                  size_t errlen)
{
    struct tls_server *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, errlen, "out of memory for the TLS context");
        return NULL;
    }
    t->cfg = *cfg;
    SSL_CTX *ctx = server_context(cfg, err, errlen);
    if (!ctx) {
        free(t);
        return NULL;
    }
    if (swap_init(&t->ctx, ctx) < 0) {
        snprintf(err, errlen, "cannot create the TLS context's locks: %s", strerror(errno));
        SSL_CTX_free(ctx);
        free(t);
        return NULL;
    }
    atomic_init(&t->not_after, certificate_not_after(ctx));
    return t;
}

/* Session tickets the old context issued stay good with the new one, so
 * clients resume across a reload as they did before it; unless clients
 * are verified, since a ticket carries the verdict on a client's
 * certificate, and a reload may change the CAs that gave it. */
static void keep_ticket_keys(SSL_CTX *from, SSL_CTX *to, const struct tls_server_config *cfg)
{
    unsigned char keys[80]; /* OpenSSL 3: name, HMAC key, AES key */
    if (cfg->auth_clients == TLS_AUTH_NO &&
        SSL_CTX_get_tlsext_ticket_keys(from, keys, sizeof keys) == 1)
        SSL_CTX_set_tlsext_ticket_keys(to, keys, sizeof keys);
    OPENSSL_cleanse(keys, sizeof keys);
}

int tls_server_reload(struct tls_server *t, char *err, size_t errlen)
{
    SSL_CTX *ctx = server_context(&t->cfg, err, errlen);
    if (!ctx)
        return -1;
    keep_ticket_keys(swap_peek(&t->ctx), ctx, &t->cfg);
    long long not_after = certificate_not_after(ctx);
    SSL_CTX_free(swap_replace(&t->ctx, ctx));
    atomic_store(&t->not_after, not_after);
    return 0;
}

long long tls_server_not_after(struct tls_server *t)
{
    return atomic_load(&t->not_after);
}

void tls_server_free(struct tls_server *t)
{
    if (!t)
        return;
    SSL_CTX_free(swap_destroy(&t->ctx));
    free(t);
}

SSL *tls_server_session(struct tls_server *t, int fd)
{
    int stripe;
    SSL_CTX *ctx = swap_read_begin(&t->ctx, &stripe);
    SSL *ssl = SSL_new(ctx); /* holds ctx from now on */
    swap_read_end(&t->ctx, stripe);
    int flags = fcntl(fd, F_GETFL);
    if (!ssl || set_socket(ssl, fd) < 0 || flags < 0 ||
        fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        SSL_free(ssl);
        ERR_clear_error();
        errno = ENOMEM;
        return NULL;
    }
    SSL_set_accept_state(ssl);
    return ssl;
}

size_t tls_first_record_missing(int fd)
{
    enum { RECORD_HEADER = 5, HANDSHAKE_RECORD = 22 };
    unsigned char head[RECORD_HEADER];
    ssize_t n = recv(fd, head, sizeof head, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? 1 : 0;
    if (n == 0 || head[0] != HANDSHAKE_RECORD)
        return 0;
    if (n < RECORD_HEADER)
        return RECORD_HEADER;
    size_t whole = RECORD_HEADER + ((size_t)head[3] << 8 | head[4]);
    int queued = 0;
    if (ioctl(fd, FIONREAD, &queued) < 0 || (size_t)queued >= whole)
        return 0;
    /* A client that closed after part of it will send no more (and its
     * hang-up would wake the poller again and again): begun, the
     * handshake fails at once. */
    struct pollfd hup = {.fd = fd, .events = POLLRDHUP};
    if (poll(&hup, 1, 0) != 0)
        return 0;
    return whole;
}

void tls_session_close(SSL *ssl)
{
    if (!ssl)
        return;
    /* close_notify, if the handshake is done and no fatal error came
     * (the stream marks those quiet): one try, never a wait. */
    if (SSL_is_init_finished(ssl))
        SSL_shutdown(ssl);
    SSL_free(ssl);
    ERR_clear_error();
}

/* --- the client's context ---------------------------------------------------- */

static FILE *keylog;
static pthread_mutex_t keylog_lock = PTHREAD_MUTEX_INITIALIZER;

static void write_keylog(const SSL *ssl, const char *line)
{
    (void)ssl;
    pthread_mutex_lock(&keylog_lock);
    if (keylog) {
        fprintf(keylog, "%s\n", line);
        fflush(keylog);
    }
    pthread_mutex_unlock(&keylog_lock);
}

/* SSLKEYLOGFILE, opened once for the process (append, like curl). */
static void open_keylog(SSL_CTX *ctx)
{
    const char *path = getenv("SSLKEYLOGFILE");
    if (!path || !*path)
        return;
    pthread_mutex_lock(&keylog_lock);
    if (!keylog && !(keylog = fopen(path, "a")))
        fprintf(stderr, "warning: cannot open SSLKEYLOGFILE %s: %s\n", path, strerror(errno));
    pthread_mutex_unlock(&keylog_lock);
    SSL_CTX_set_keylog_callback(ctx, write_keylog);
}

static int client_files(SSL_CTX *ctx, const struct tls_client_config *cfg, char *err,
                        size_t errlen)
{
    char why[256];
    if (cfg->ca_file) {
        if (!readable("CA file", cfg->ca_file, err, errlen))
            return -1;
        if (SSL_CTX_load_verify_locations(ctx, cfg->ca_file, NULL) != 1) {
            snprintf(err, errlen, "TLS CA file %s: %s", cfg->ca_file,
                     tls_last_error(why, sizeof why));
            return -1;
        }
        cache_trusted_extensions(ctx);
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        snprintf(err, errlen, "cannot load the system's CA certificates: %s",
                 tls_last_error(why, sizeof why));
        return -1;
    }
    if (cfg->cert_file || cfg->key_file) {
        if (!cfg->cert_file || !cfg->key_file) {
            snprintf(err, errlen, "a client certificate needs both its file and its key");
            return -1;
        }
        return load_identity(ctx, cfg->cert_file, cfg->key_file, err, errlen);
    }
    return 0;
}

SSL_CTX *tls_client_context(const struct tls_client_config *cfg, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        snprintf(err, errlen, "cannot create a TLS context: out of memory");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_read_ahead(ctx, 1); /* as the server's: one recv per read */
    SSL_CTX_set_verify(ctx, cfg->no_verify ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
    if (client_files(ctx, cfg, err, errlen) < 0) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    open_keylog(ctx);
    return ctx;
}

int tls_client_set_name(SSL *ssl, const char *name)
{
    unsigned char addr[16];
    if (inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1)
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) == 1 ? 0 : -1;
    if (SSL_set_tlsext_host_name(ssl, name) != 1 || SSL_set1_host(ssl, name) != 1)
        return -1;
    return 0;
}

int tls_client_attach(SSL *ssl, int fd)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return -1;
    SSL_set_connect_state(ssl);
    return set_socket(ssl, fd);
}
