/*
 * client_opts.h - the options enchufe-cli and enchufe-bench share: where
 * the server is (--host, --port, --unix), how long to wait (--timeout),
 * and TLS (--tls, --tls-ca, --tls-cert, --tls-key, --tls-server-name).
 * One parser, one set of checks, and the messages of parse.h, so the two
 * programs take them and refuse them alike.
 */
#ifndef ENCHUFE_CLIENT_OPTS_H
#define ENCHUFE_CLIENT_OPTS_H

#include "net.h"
#include "tls.h"

#include <getopt.h>
#include <stdbool.h>

struct client_opts {
    struct net_endpoint ep;  /* --host, --port, --unix */
    int timeout_ms;          /* --timeout (0: none); the program says what it bounds */
    bool tls;                /* --tls */
    struct tls_client_config tls_files; /* --tls-ca, --tls-cert, --tls-key */
    const char *tls_name;    /* --tls-server-name (NULL: the host) */
};

/* getopt_long values of these options: above every character and every
 * program's own option values. */
enum {
    CLIENT_OPT_HOST = 0x1000,
    CLIENT_OPT_UNIX,
    CLIENT_OPT_PORT,
    CLIENT_OPT_TIMEOUT,
    CLIENT_OPT_TLS,
    CLIENT_OPT_TLS_CA,
    CLIENT_OPT_TLS_CERT,
    CLIENT_OPT_TLS_KEY,
    CLIENT_OPT_TLS_NAME,
};

/* Their entries, for a program's struct option table. */
#define CLIENT_OPTS_LONG                                                      \
    {"host", required_argument, NULL, CLIENT_OPT_HOST},                       \
    {"unix", required_argument, NULL, CLIENT_OPT_UNIX},                       \
    {"port", required_argument, NULL, CLIENT_OPT_PORT},                       \
    {"timeout", required_argument, NULL, CLIENT_OPT_TIMEOUT},                 \
    {"tls", no_argument, NULL, CLIENT_OPT_TLS},                               \
    {"tls-ca", required_argument, NULL, CLIENT_OPT_TLS_CA},                   \
    {"tls-cert", required_argument, NULL, CLIENT_OPT_TLS_CERT},               \
    {"tls-key", required_argument, NULL, CLIENT_OPT_TLS_KEY},                 \
    {"tls-server-name", required_argument, NULL, CLIENT_OPT_TLS_NAME}

/* Defaults: 127.0.0.1, port 65432, the given timeout, in clear. */
void client_opts_init(struct client_opts *o, int timeout_ms);

/* True if opt is one of these options. */
bool client_opts_owns(int opt);

/* Takes one of these options (client_opts_owns(opt)); false after saying,
 * as PROG, that its value is invalid. */
bool client_opts_take(struct client_opts *o, const char *prog, int opt, const char *arg);

/* What does not go together: a --tls-* option without --tls, --tls with
 * --unix (a Unix socket is served in clear), a certificate without its
 * key or a key without its certificate. False after saying which. */
bool client_opts_check(const struct client_opts *o, const char *prog);

#endif
