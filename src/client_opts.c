/*
 * client_opts.c - the options the client programs share (see
 * client_opts.h).
 */
#include "client_opts.h"
#include "parse.h"

#include <stdio.h>

void client_opts_init(struct client_opts *o, int timeout_ms)
{
    *o = (struct client_opts){.ep = {.host = "127.0.0.1", .port = "65432"},
                              .timeout_ms = timeout_ms};
}

bool client_opts_owns(int opt)
{
    return opt >= CLIENT_OPT_HOST && opt <= CLIENT_OPT_TLS_NAME;
}

bool client_opts_take(struct client_opts *o, const char *prog, int opt, const char *arg)
{
    long port;
    switch (opt) {
    case CLIENT_OPT_HOST: o->ep.host = arg; return true;
    case CLIENT_OPT_UNIX: o->ep.unix_path = arg; return true;
    case CLIENT_OPT_PORT:
        o->ep.port = arg;
        return parse_long(arg, 1, 65535, &port) ||
               parse_bad_value(prog, "port", arg, "a port from 1 to 65535");
    case CLIENT_OPT_TIMEOUT:
        return parse_seconds_ms(arg, 86400, &o->timeout_ms) ||
               parse_bad_value(prog, "timeout", arg, "seconds, 0 to 86400 (0: no limit)");
    case CLIENT_OPT_TLS: o->tls = true; return true;
    case CLIENT_OPT_TLS_CA: o->tls_files.ca_file = arg; return true;
    case CLIENT_OPT_TLS_CERT: o->tls_files.cert_file = arg; return true;
    case CLIENT_OPT_TLS_KEY: o->tls_files.key_file = arg; return true;
    case CLIENT_OPT_TLS_NAME: o->tls_name = arg; return true;
    default: return false;
    }
}

bool client_opts_check(const struct client_opts *o, const char *prog)
{
    const struct tls_client_config *f = &o->tls_files;
    const char *problem = NULL;
    if (!o->tls && (f->ca_file || f->cert_file || f->key_file || o->tls_name))
        problem = "the --tls-* options need --tls";
    else if (o->tls && o->ep.unix_path)
        problem = "--tls is for TCP; a Unix socket is served in clear";
    else if (!f->cert_file != !f->key_file)
        problem = f->cert_file ? "--tls-cert needs --tls-key, the certificate's key"
                               : "--tls-key needs --tls-cert, the certificate it is the key of";
    if (problem)
        fprintf(stderr, "%s: %s\n", prog, problem);
    return problem == NULL;
}
