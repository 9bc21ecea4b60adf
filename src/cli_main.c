/*
 * cli_main.c - enchufe-cli: the client side of the tutorial's three
 * programs (app client, echo client, multi-connection client).
 */
#include "client.h"
#include "client_opts.h"
#include "escape.h"
#include "log.h"
#include "monotime.h"
#include "multiconn.h"
#include "net.h"
#include "parse.h"
#include "protocol.h"
#include "stream.h"
#include "tls.h"
#include "version.h"
#include "watch.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define EXIT_USAGE 2

struct cli {
    struct client_opts opts;  /* the server, --timeout (the whole exchange: connect,
                               * send, the whole answer), TLS */
    struct net_endpoint ep;   /* opts.ep */
    struct client_tls tls;    /* the TLS context made from opts */
    bool json;
    int timeout_ms;
    long long deadline;       /* when it runs out (0: no limit) */
    size_t max_content;
};

/* One line on stderr. What the server said can be quoted in it, so it is
 * escaped: a hostile server cannot send terminal control sequences. */
static void complain(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void complain(const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fputs("enchufe-cli: ", stderr);
    escape_fputs(stderr, msg, strlen(msg));
    fputc('\n', stderr);
}

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: enchufe-cli [OPTION]... COMMAND ARGS\n"
            "Talk to an enchufe server (or the tutorial's original one).\n"
            "\n"
            "Commands:\n"
            "  search VALUE     text/json search request; prints 'Got result: ...'\n"
            "  ACTION VALUE     any other action: binary request of ACTION then VALUE;\n"
            "                   prints 'Got response: b'...''\n"
            "  echo TEXT        send TEXT to an echo server and print what came back\n"
            "  multiconn N      open N connections to an echo server, each sending the\n"
            "                   tutorial's two messages; check every byte came back\n"
            "  stats [--watch SEC [--count N]]\n"
            "                   the server's live counters (--json: as the server sent\n"
            "                   them); --watch: one line of activity every SEC seconds\n"
            "                   (N lines, or until interrupted)\n"
            "\n"
            "Options:\n"
            "  --host HOST      server address or name (default 127.0.0.1); every address\n"
            "                   it resolves to is tried in turn; IPv6 may be bracketed\n"
            "  --unix PATH      connect to a Unix domain socket instead of TCP\n"
            "  --port PORT      server port (default 65432)\n"
            "  --timeout SEC    give up when the whole exchange (connect, request, the\n"
            "                   whole answer) takes longer than SEC (default 10; 0: no limit)\n"
            "  --json           print the stats answer as raw JSON\n"
            "  --tls            speak TLS, verifying the server's certificate and name\n"
            "  --tls-ca FILE    CA certificates (PEM) to verify the server with (default:\n"
            "                   the system's)\n"
            "  --tls-cert FILE  a client certificate (PEM) for servers that ask for one,\n"
            "  --tls-key FILE   and its key\n"
            "  --tls-server-name NAME\n"
            "                   the name to send (SNI) and to check the certificate\n"
            "                   against (default: --host)\n"
            "                   SSLKEYLOGFILE=FILE in the environment appends the session\n"
            "                   keys to FILE, for Wireshark to decrypt a capture\n"
            "  -v, --verbose    say what is sent and received; twice (-v -v): each\n"
            "                   message's header and a hex dump of its first bytes\n"
            "  -h, --help       show this help and exit\n"
            "  -V, --version    show the version and exit\n"
            "\n"
            "Exit status: 0 on success, 1 if the exchange failed (connection refused,\n"
            "timeout, bad or error response, lost bytes), 2 for a usage error.\n");
}

/* Prints bytes the way Python's repr() prints a bytes object, as the
 * tutorial's clients do: b'...' with escapes for anything unprintable. */
static void print_bytes_repr(FILE *out, const uint8_t *p, size_t n)
{
    uint8_t quote = memchr(p, '\'', n) && !memchr(p, '"', n) ? '"' : '\'';
    fprintf(out, "b%c", quote);
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (c == quote || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c == '\t')
            fputs("\\t", out);
        else if (c == '\n')
            fputs("\\n", out);
        else if (c == '\r')
            fputs("\\r", out);
        else if (c < 0x20 || c >= 0x7f)
            fprintf(out, "\\x%02x", c);
        else
            fputc(c, out);
    }
    fputc(quote, out);
}

/* The server's address, for messages. */
static const char *where(const struct cli *cli)
{
    static char buf[300];
    if (cli->ep.unix_path)
        snprintf(buf, sizeof buf, "unix:%s", cli->ep.unix_path);
    else
        snprintf(buf, sizeof buf, "%s:%s", cli->ep.host, cli->ep.port);
    return buf;
}

/* Connects (and with --tls, runs the handshake); false after saying why
 * not. */
static bool connect_or_report(const struct cli *cli, struct stream *conn)
{
    char err[1024];
    log_verbose("Starting connection to %s%s", where(cli), cli->opts.tls ? " (TLS)" : "");
    if (client_open(&cli->ep, &cli->tls, cli->deadline, conn, err, sizeof err) < 0) {
        complain("%s", err);
        return false;
    }
    if (conn->ssl)
        log_verbose("TLS: %s, %s%s", SSL_get_version(conn->ssl),
                    SSL_CIPHER_get_name(SSL_get_current_cipher(conn->ssl)),
                    SSL_session_reused(conn->ssl) ? ", resumed" : "");
    return true;
}

/* Prints a text/json response as the original client does. */
static int print_json_result(const struct client_response *resp)
{
    json_error_t e;
    json_t *obj = json_loadb((const char *)resp->content, resp->length, 0, &e);
    const char *result = json_string_value(json_object_get(obj, "result"));
    const char *error = json_string_value(json_object_get(obj, "error"));
    int rc = EXIT_SUCCESS;
    if (!result) {
        complain("bad response: content has no string 'result'");
        rc = EXIT_FAILURE;
    } else {
        fputs("Got result: ", stdout);
        escape_fputs(stdout, result, strlen(result));
        fputc('\n', stdout);
        if (error) {
            complain("the server answered with error '%s'", error);
            rc = EXIT_FAILURE;
        }
    }
    json_decref(obj);
    return rc;
}

static int print_response(const struct client_response *resp)
{
    if (strcmp(resp->header.content_type, PROTO_TEXT_JSON) == 0)
        return print_json_result(resp);
    printf("Got response: ");
    print_bytes_repr(stdout, resp->content, resp->length);
    printf("\n");
    return EXIT_SUCCESS;
}

/* One request, one response, like the tutorial's app client. */
static int run_request(const struct cli *cli, const char *action, const char *value)
{
    bool search = strcmp(action, "search") == 0;
    char *content = NULL;
    size_t length;
    if (search) {
        content = client_search_content(action, value);
        if (!content) {
            complain("the search value is not valid UTF-8");
            return EXIT_USAGE;
        }
        length = strlen(content);
    } else {
        /* The original client sends the action's bytes then the value's. */
        length = strlen(action) + strlen(value);
        content = malloc(length + 1);
        if (!content)
            return EXIT_FAILURE;
        snprintf(content, length + 1, "%s%s", action, value);
    }
    struct stream conn;
    if (!connect_or_report(cli, &conn)) {
        free(content);
        return EXIT_FAILURE;
    }
    struct client_response resp;
    char err[512];
    log_verbose("Sending %zu bytes of %s", length, search ? PROTO_TEXT_JSON : PROTO_CLIENT_BINARY_TYPE);
    int rc = client_exchange_on(&conn, search ? PROTO_TEXT_JSON : PROTO_CLIENT_BINARY_TYPE,
                             search ? PROTO_UTF8 : PROTO_BINARY, content, length, cli->max_content,
                             cli->deadline, &resp, err, sizeof err);
    if (rc < 0) {
        complain("%s", err);
        rc = EXIT_FAILURE;
    } else {
        rc = print_response(&resp);
    }
    log_verbose("Closing connection to %s", where(cli));
    client_response_free(&resp);
    free(content);
    client_close(&conn);
    return rc;
}

/* The tutorial's echo client: send, read the same number of bytes back. */
static int run_echo(const struct cli *cli, const char *text)
{
    size_t n = strlen(text);
    uint8_t *back = malloc(n + 1);
    struct stream conn;
    if (!back || !connect_or_report(cli, &conn)) {
        free(back);
        return EXIT_FAILURE;
    }
    int rc = EXIT_FAILURE;
    if (stream_write_until(&conn, text, n, cli->deadline) < 0) {
        complain("sending: %s", errno == ETIMEDOUT ? "timed out" : strerror(errno));
    } else {
        enum stream_read r = stream_read_full(&conn, back, n, cli->deadline);
        if (r == STREAM_READ_OK) {
            printf("Received ");
            print_bytes_repr(stdout, back, n);
            printf("\n");
            rc = EXIT_SUCCESS;
        } else if (r == STREAM_READ_EOF || errno == EPIPE) {
            complain("the server closed the connection before echoing everything "
                     "(is it in echo mode?)");
        } else {
            complain("reading the echo: %s", errno == ETIMEDOUT ? "timed out" : strerror(errno));
        }
    }
    client_close(&conn);
    free(back);
    return rc;
}

static int run_multiconn(const struct cli *cli, const char *count)
{
    long n;
    if (!parse_long(count, 1, MULTICONN_MAX, &n)) {
        complain("multiconn needs a connection count from 1 to %d", MULTICONN_MAX);
        return EXIT_USAGE;
    }
    return multiconn_run(&cli->ep, (int)n, cli->deadline) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* Prints one value: integers as such, other numbers to three decimals. */
static void print_number(json_t *v)
{
    if (json_is_integer(v))
        printf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else
        printf("%.3f", json_number_value(v));
}

/* A time the stats give in Unix seconds (a certificate's expiry, the
 * last reload), which a person reads as a date. */
static bool is_time(const char *name)
{
    size_t n = strlen(name);
    return (n >= 9 && strcmp(name + n - 9, "not_after") == 0) ||
           strcmp(name, "last_success") == 0;
}

static void print_time(json_t *v)
{
    time_t t = (time_t)json_integer_value(v);
    struct tm tm;
    char when[32];
    if (t <= 0 || !gmtime_r(&t, &tm)) {
        fputs("none", stdout);
        return;
    }
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    fputs(when, stdout);
}

/* "name 3", a date for times, "name yes|no" for flags, or for a group
 * within a group (tls failed), "name: a 1 b 2"; lists (the latency
 * buckets) are left to --json. */
static void print_counters(const char *name, json_t *v)
{
    escape_fputs(stdout, name, strlen(name));
    if (json_is_boolean(v)) {
        fputs(json_is_true(v) ? " yes" : " no", stdout);
        return;
    }
    if (json_is_number(v)) {
        putchar(' ');
        if (is_time(name) && json_is_integer(v))
            print_time(v);
        else
            print_number(v);
        return;
    }
    const char *k;
    json_t *inner;
    putchar(':');
    json_object_foreach(v, k, inner) {
        if (json_is_number(inner)) {
            putchar(' ');
            escape_fputs(stdout, k, strlen(k));
            putchar(' ');
            print_number(inner);
        }
    }
}

/* Prints one line per group of counters: "connections: accepted 3, ...";
 * lists (the latency buckets) are left to --json. */
static void print_stats(json_t *stats)
{
    const char *key;
    json_t *value;
    json_object_foreach(stats, key, value) {
        escape_fputs(stdout, key, strlen(key));
        putchar(':');
        if (json_is_object(value)) {
            const char *k;
            json_t *v;
            const char *sep = " ";
            json_object_foreach(value, k, v) {
                if (!json_is_number(v) && !json_is_object(v) && !json_is_boolean(v))
                    continue;
                fputs(sep, stdout);
                print_counters(k, v);
                sep = ", ";
            }
        } else {
            putchar(' ');
            print_number(value);
        }
        printf("\n");
    }
}

/* stats --watch SEC [--count N]: what follows the command. */
static int run_watch(const struct cli *cli, int argc, char **argv)
{
    struct watch_config w = {.ep = &cli->ep, .tls = &cli->tls,
                             .timeout_ms = cli->timeout_ms ? cli->timeout_ms : 10000};
    for (int i = 0; i < argc; i += 2) {
        long v = 0;
        int ms = 0;
        bool watch = strcmp(argv[i], "--watch") == 0, count = strcmp(argv[i], "--count") == 0;
        if ((!watch && !count) || i + 1 == argc) {
            complain("stats takes --watch SEC [--count N], not '%s'", argv[i]);
            return EXIT_USAGE;
        }
        bool ok = watch ? parse_seconds_ms(argv[i + 1], 86400, &ms) && ms > 0
                        : parse_long(argv[i + 1], 1, 1000000, &v);
        if (!ok) {
            parse_bad_value("enchufe-cli", watch ? "watch" : "count", argv[i + 1],
                            watch ? "seconds between lines, more than 0" : "1 to 1000000");
            return EXIT_USAGE;
        }
        if (watch)
            w.interval_ms = ms;
        else
            w.count = (int)v;
    }
    if (!w.interval_ms) {
        complain("--count needs --watch SEC");
        return EXIT_USAGE;
    }
    return watch_run(&w) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* Asks for the server's counters (an enchufe extension, docs/protocol.md). */
static int run_stats(const struct cli *cli)
{
    const char *content = "{\"action\": \"stats\"}";
    struct stream conn;
    if (!connect_or_report(cli, &conn))
        return EXIT_FAILURE;
    struct client_response resp;
    char err[512];
    int rc = EXIT_FAILURE;
    if (client_exchange_on(&conn, PROTO_TEXT_JSON, PROTO_UTF8, content, strlen(content),
                        cli->max_content, cli->deadline, &resp, err, sizeof err) < 0) {
        complain("%s", err);
    } else {
        json_t *obj = json_loadb((const char *)resp.content, resp.length, 0, NULL);
        json_t *stats = json_object_get(obj, "result");
        if (!json_is_object(stats)) {
            complain("the server does not answer stats requests (it said: %.*s)",
                     (int)resp.length, resp.content);
        } else {
            if (cli->json) {
                escape_fputs(stdout, (const char *)resp.content, resp.length);
                putchar('\n');
            } else {
                print_stats(stats);
            }
            rc = EXIT_SUCCESS;
        }
        json_decref(obj);
        client_response_free(&resp);
    }
    client_close(&conn);
    return rc;
}

enum { OPT_JSON = 256 };

static const struct option long_options[] = {
    CLIENT_OPTS_LONG,
    {"json", no_argument, NULL, OPT_JSON},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

/* Returns -1 to go on, or the exit status to leave with. */
static int parse_args(int argc, char **argv, struct cli *cli)
{
    int opt, verbosity = 0;
    /* getopt's own messages ("unrecognized option") name argv[0]: the
     * program's name, however it was run. "+": stop at the command, so a
     * VALUE like "-x" is not an option. */
    argv[0] = (char *)"enchufe-cli";
    while ((opt = getopt_long(argc, argv, "+vhV", long_options, NULL)) != -1) {
        if (client_opts_owns(opt)) {
            if (!client_opts_take(&cli->opts, "enchufe-cli", opt, optarg))
                return EXIT_USAGE;
            continue;
        }
        switch (opt) {
        case OPT_JSON: cli->json = true; break;
        case 'v': verbosity++; break;
        case 'h': usage(stdout); return EXIT_SUCCESS;
        case 'V': printf("enchufe-cli %s\n", ENCHUFE_VERSION); return EXIT_SUCCESS;
        default:
            fprintf(stderr, "Try 'enchufe-cli --help' for more information.\n");
            return EXIT_USAGE;
        }
    }
    log_set_verbosity(verbosity);
    if (!client_opts_check(&cli->opts, "enchufe-cli"))
        return EXIT_USAGE;
    cli->ep = cli->opts.ep;
    cli->timeout_ms = cli->opts.timeout_ms;
    cli->tls.server_name = cli->opts.tls_name;
    bool stats = argc - optind >= 1 && strcmp(argv[optind], "stats") == 0;
    if (argc - optind != 2 && !stats) {
        fprintf(stderr, "enchufe-cli: expected a command and one argument, e.g. 'search ring'\n"
                        "Try 'enchufe-cli --help' for more information.\n");
        return EXIT_USAGE;
    }
    return -1;
}

/* Makes the TLS context of --tls; false after saying why not. */
static bool start_tls(struct cli *cli, const char *command)
{
    char err[512];
    if (strcmp(command, "multiconn") == 0) {
        complain("multiconn speaks in clear only (it is the tutorial's non-blocking client)");
        return false;
    }
    if (!(cli->tls.ctx = tls_client_context(&cli->opts.tls_files, err, sizeof err))) {
        complain("%s", err);
        return false;
    }
    return true;
}

int main(int argc, char **argv)
{
    struct cli cli = {.max_content = FRAME_DEFAULT_MAX_CONTENT};
    client_opts_init(&cli.opts, 10000);
    int rc = parse_args(argc, argv, &cli);
    if (rc >= 0)
        return rc;
    signal(SIGPIPE, SIG_IGN);
    cli.deadline = monotime_deadline(cli.timeout_ms);
    const char *command = argv[optind], *arg = argv[optind + 1];
    if (cli.opts.tls && !start_tls(&cli, command))
        return strcmp(command, "multiconn") == 0 ? EXIT_USAGE : EXIT_FAILURE;
    if (strcmp(command, "stats") == 0)
        return argc - optind > 1 ? run_watch(&cli, argc - optind - 1, argv + optind + 1)
                                 : run_stats(&cli);
    if (strcmp(command, "echo") == 0)
        return run_echo(&cli, arg);
    if (strcmp(command, "multiconn") == 0)
        return run_multiconn(&cli, arg);
    return run_request(&cli, command, arg);
}
