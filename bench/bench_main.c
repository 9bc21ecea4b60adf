/*
 * bench_main.c - enchufe-bench: options, the request mix, the report.
 */
#include "loadgen.h"
#include "client_opts.h"
#include "net.h"
#include "parse.h"
#include "report.h"
#include "siege.h"
#include "tls.h"
#include "version.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXIT_USAGE 2
#define HOSTILE_OPEN_MS 15000 /* how long the hostile connections may take to open */
#define MAX_MIX 16

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: enchufe-bench [OPTION]...\n"
            "Load an enchufe server (or any server, in raw mode) and report throughput,\n"
            "latency percentiles and errors. Every answer is checked.\n"
            "\n"
            "  --host HOST            server address (default 127.0.0.1)\n"
            "  --port PORT            server port (default 65432)\n"
            "  --unix PATH            connect to a Unix domain socket instead\n"
            "  -t, --threads N        threads, each with its own epoll loop (default 2)\n"
            "  -c, --connections N    connections in all (default 50)\n"
            "  -d, --duration SEC     how long to measure (default 10)\n"
            "  -n, --requests N       send exactly N requests instead of a duration\n"
            "      --warmup SEC       run this long first, without counting (default 0)\n"
            "  -P, --pipeline N       send N requests at once on each connection, then read\n"
            "                         the N answers, each checked; latency counts from the\n"
            "                         batch's send (default 1; not with --rate)\n"
            "  -R, --rate N           fixed rate of N requests/s in all (open loop); latency\n"
            "                         then counts from each request's intended send time\n"
            "      --mode MODE        keepalive (default): many requests per connection;\n"
            "                         per-conn: connect, one request, close, as the tutorial's client\n"
            "  -r, --request KIND     hit, miss, binary:SIZE or echo:SIZE (for --mode echo\n"
            "                         servers); repeat to mix; each connection cycles through\n"
            "      --raw-request BYTES      send these bytes (\\r \\n \\t \\\\ \\xHH escapes) ...\n"
            "      --raw-response-len N     ... and expect N bytes back\n"
            "      --raw-response BYTES     ... which must be exactly these (optional)\n"
            "      --timeout SEC      a request not answered by then is an error (default 5;\n"
            "                         more than 0)\n"
            "      --tls              speak TLS, verifying the server (see --tls-ca)\n"
            "      --tls-ca FILE      CA certificates (PEM) to verify it with (default: the\n"
            "                         system's)\n"
            "      --tls-cert FILE    a client certificate (PEM), for servers that ask for one,\n"
            "      --tls-key FILE     and its key\n"
            "      --tls-server-name NAME  the name to send and verify (default: --host)\n"
            "      --tls-resume       each new connection resumes the session of its slot's\n"
            "                         last one (a ticket): per-conn then measures resumed\n"
            "                         handshakes; the report counts full and resumed apart\n"
            "      --hostile KIND:N   while the load runs, hold N hostile connections of a kind\n"
            "                         (repeatable): silent, slowloris (a byte of a request\n"
            "                         every 5 s), header-dribble (a header byte a second),\n"
            "                         content-dribble (a header promising 1 MiB, then a byte\n"
            "                         a second), half-handshake (half a TLS ClientHello),\n"
            "                         tls-stall (a TLS handshake, then one byte; needs --tls),\n"
            "                         non-reader (pipelines, never reads); each one the server\n"
            "                         closes is opened again, and the report counts them\n"
            "      --hostile-drip MS  every dribbling kind sends a byte this often instead\n"
            "      --json             print one JSON object instead of the text report\n"
            "  -q, --quiet            no progress lines on stderr\n"
            "  -h, --help             show this help and exit\n"
            "  -V, --version          show the version and exit\n"
            "\n"
            "Exit status: 0 when requests were answered, 1 when none was (or the run\n"
            "could not start), 2 for a usage error. Errors are counted in the report.\n");
}

/* Decodes C-style escapes in place; returns the decoded length. */
static size_t unescape(char *s)
{
    char *out = s;
    for (const char *p = s; *p; p++) {
        if (*p != '\\' || !p[1]) {
            *out++ = *p;
            continue;
        }
        p++;
        switch (*p) {
        case 'r': *out++ = '\r'; break;
        case 'n': *out++ = '\n'; break;
        case 't': *out++ = '\t'; break;
        case '0': *out++ = '\0'; break;
        case 'x': {
            char hex[3] = {p[1], p[1] ? p[2] : 0, 0};
            *out++ = (char)strtol(hex, NULL, 16);
            p += p[1] && p[2] ? 2 : (p[1] ? 1 : 0);
            break;
        }
        default: *out++ = *p; break;
        }
    }
    return (size_t)(out - s);
}

struct args {
    struct bench_config cfg;
    struct bench_request mix[MAX_MIX];
    char mix_names[256];
    char *raw_request, *raw_response;
    long raw_len;
    bool json;
    struct client_opts opts; /* the server, --timeout (each request's), TLS */
    struct siege_config siege;
    bool hostile;
};

static bool add_request(struct args *a, const char *spec)
{
    long size = 0;
    const char *colon = strchr(spec, ':');
    enum bench_kind kind;
    if (strcmp(spec, "hit") == 0)
        kind = BENCH_HIT;
    else if (strcmp(spec, "miss") == 0)
        kind = BENCH_MISS;
    else if (colon && strncmp(spec, "binary:", 7) == 0 && parse_long(colon + 1, 0, 1 << 30, &size))
        kind = BENCH_BINARY;
    else if (colon && strncmp(spec, "echo:", 5) == 0 && parse_long(colon + 1, 1, 1 << 30, &size))
        kind = BENCH_ECHO;
    else {
        fprintf(stderr, "enchufe-bench: unknown request '%s': expected hit, miss, "
                        "binary:SIZE or echo:SIZE\n", spec);
        return false;
    }
    if (a->cfg.mix_len == MAX_MIX) {
        fprintf(stderr, "enchufe-bench: at most %d --request options\n", MAX_MIX);
        return false;
    }
    if (bench_prepare(&a->mix[a->cfg.mix_len++], kind, (size_t)size) < 0) {
        fprintf(stderr, "enchufe-bench: cannot prepare request '%s'\n", spec);
        return false;
    }
    size_t used = strlen(a->mix_names);
    snprintf(a->mix_names + used, sizeof a->mix_names - used, "%s%s", used ? "," : "", spec);
    return true;
}

enum { OPT_WARMUP = 256, OPT_MODE, OPT_RAW_REQ, OPT_RAW_LEN, OPT_RAW_RESP, OPT_JSON,
       OPT_TLS_RESUME, OPT_HOSTILE, OPT_HOSTILE_DRIP };

static const struct option long_options[] = {
    CLIENT_OPTS_LONG,
    {"threads", required_argument, NULL, 't'},
    {"connections", required_argument, NULL, 'c'},
    {"duration", required_argument, NULL, 'd'},
    {"requests", required_argument, NULL, 'n'},
    {"warmup", required_argument, NULL, OPT_WARMUP},
    {"rate", required_argument, NULL, 'R'},
    {"pipeline", required_argument, NULL, 'P'},
    {"mode", required_argument, NULL, OPT_MODE},
    {"request", required_argument, NULL, 'r'},
    {"raw-request", required_argument, NULL, OPT_RAW_REQ},
    {"raw-response-len", required_argument, NULL, OPT_RAW_LEN},
    {"raw-response", required_argument, NULL, OPT_RAW_RESP},
    {"json", no_argument, NULL, OPT_JSON},
    {"tls-resume", no_argument, NULL, OPT_TLS_RESUME},
    {"hostile", required_argument, NULL, OPT_HOSTILE},
    {"hostile-drip", required_argument, NULL, OPT_HOSTILE_DRIP},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

/* opt without its dashes. */
static bool bad(const char *opt, const char *value, const char *expected)
{
    parse_bad_value("enchufe-bench", opt, value, expected);
    return false;
}

/* KIND:N, added to what earlier --hostile options asked for. */
static bool add_hostile(struct args *a, char *arg)
{
    long n;
    char *colon = strrchr(arg, ':');
    if (!colon || !parse_long(colon + 1, 1, 1000000, &n))
        return bad("hostile", arg, "KIND:N, N from 1 to 1000000");
    *colon = '\0';
    int k = siege_kind_of(arg);
    *colon = ':';
    if (k < 0) {
        fprintf(stderr, "enchufe-bench: unknown hostile kind in '%s': expected one of %s\n", arg,
                siege_kind_names());
        return false;
    }
    a->siege.count[k] += (int)n;
    a->hostile = true;
    return true;
}

static bool parse_one(struct args *a, int opt, char *arg)
{
    long v;
    int ms;
    struct bench_config *c = &a->cfg;
    if (client_opts_owns(opt))
        return client_opts_take(&a->opts, "enchufe-bench", opt, arg);
    switch (opt) {
    case 't': return parse_long(arg, 1, 256, &v) ? (c->threads = (int)v, true) : bad("threads", arg, "1-256");
    case 'c':
        return parse_long(arg, 1, 1000000, &v) ? (c->connections = (int)v, true)
                                               : bad("connections", arg, "1-1000000");
    case 'd':
        return parse_seconds_ms(arg, 86400, &ms) && ms > 0 ? (c->duration_s = ms / 1000.0, true)
                                                           : bad("duration", arg, "seconds");
    case 'n':
        return parse_long(arg, 1, 1L << 40, &v) ? (c->requests = (uint64_t)v, true)
                                                : bad("requests", arg, "a positive count");
    case OPT_WARMUP:
        return parse_seconds_ms(arg, 3600, &ms) ? (c->warmup_s = ms / 1000.0, true)
                                                : bad("warmup", arg, "seconds");
    case 'R':
        return parse_long(arg, 1, 100000000, &v) ? (c->rate = (double)v, true)
                                                 : bad("rate", arg, "requests per second");
    case 'P':
        return parse_long(arg, 1, BENCH_MAX_PIPELINE, &v) ? (c->pipeline = (int)v, true)
                                                          : bad("pipeline", arg, "1 to 1024");
    case OPT_MODE:
        if (strcmp(arg, "keepalive") == 0 || strcmp(arg, "per-conn") == 0) {
            c->mode = arg[0] == 'k' ? BENCH_KEEPALIVE : BENCH_PER_CONN;
            return true;
        }
        return bad("mode", arg, "keepalive or per-conn");
    case 'r': return add_request(a, arg);
    case OPT_RAW_REQ: a->raw_request = arg; return true;
    case OPT_RAW_RESP: a->raw_response = arg; return true;
    case OPT_RAW_LEN:
        return parse_long(arg, 1, 1 << 30, &a->raw_len) || bad("raw-response-len", arg, "bytes");
    case OPT_JSON: a->json = true; return true;
    case OPT_TLS_RESUME: c->tls_resume = true; return true;
    case OPT_HOSTILE: return add_hostile(a, arg);
    case OPT_HOSTILE_DRIP:
        return parse_long(arg, 1, 3600000, &v) ? (a->siege.drip_ms = (int)v, true)
                                               : bad("hostile-drip", arg, "milliseconds");
    case 'q': c->progress = false; return true;
    default: return false;
    }
}

static bool finish_mix(struct args *a)
{
    if (a->raw_request) {
        if (a->cfg.mix_len || (!a->raw_len && !a->raw_response)) {
            fprintf(stderr, "enchufe-bench: --raw-request needs --raw-response-len or "
                            "--raw-response, and no --request\n");
            return false;
        }
        size_t qlen = unescape(a->raw_request);
        size_t rlen = a->raw_response ? unescape(a->raw_response) : (size_t)a->raw_len;
        if (a->raw_response && a->raw_len && (size_t)a->raw_len != rlen) {
            fprintf(stderr, "enchufe-bench: --raw-response is %zu bytes, not %ld\n", rlen,
                    a->raw_len);
            return false;
        }
        bench_prepare_raw(&a->mix[0], (uint8_t *)a->raw_request, qlen,
                          (uint8_t *)a->raw_response, rlen);
        a->cfg.mix_len = 1;
        snprintf(a->mix_names, sizeof a->mix_names, "raw");
    } else if (a->cfg.mix_len == 0) {
        return add_request(a, "hit");
    }
    return true;
}

/* Returns -1 to go on, or the exit status to leave with. */
static int parse_args(int argc, char **argv, struct args *a)
{
    int opt;
    argv[0] = (char *)"enchufe-bench"; /* what getopt's own messages are signed with */
    while ((opt = getopt_long(argc, argv, "t:c:d:n:R:P:r:qhV", long_options, NULL)) != -1) {
        if (opt == 'h') {
            usage(stdout);
            return EXIT_SUCCESS;
        }
        if (opt == 'V') {
            printf("enchufe-bench %s\n", ENCHUFE_VERSION);
            return EXIT_SUCCESS;
        }
        if (opt == '?' || !parse_one(a, opt, optarg)) {
            fprintf(stderr, "Try 'enchufe-bench --help' for more information.\n");
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "enchufe-bench: unexpected argument '%s'\n", argv[optind]);
        return EXIT_USAGE;
    }
    /* With -n, no more connections than requests: each failed connect
     * uses one up, and a connection with nothing to send is not opened. */
    if (a->cfg.requests && (uint64_t)a->cfg.connections > a->cfg.requests)
        a->cfg.connections = (int)a->cfg.requests;
    if (a->cfg.connections < a->cfg.threads)
        a->cfg.threads = a->cfg.connections;
    if (!client_opts_check(&a->opts, "enchufe-bench"))
        return EXIT_USAGE;
    if (!a->opts.tls && a->cfg.tls_resume) {
        fprintf(stderr, "enchufe-bench: --tls-resume needs --tls\n");
        return EXIT_USAGE;
    }
    if (a->opts.timeout_ms == 0) {
        fprintf(stderr, "enchufe-bench: --timeout 0: every request needs a limit, or a server "
                        "that never answers would hold the run\n");
        return EXIT_USAGE;
    }
    a->cfg.host = a->opts.ep.host;
    a->cfg.port = a->opts.ep.port;
    a->cfg.unix_path = a->opts.ep.unix_path;
    a->cfg.timeout_ms = a->opts.timeout_ms;
    a->cfg.tls_name = a->opts.tls_name;
    if (a->hostile && a->cfg.unix_path) {
        fprintf(stderr, "enchufe-bench: --hostile is for TCP targets\n");
        return EXIT_USAGE;
    }
    if (a->cfg.pipeline > 1 && a->cfg.rate > 0) {
        fprintf(stderr, "enchufe-bench: --pipeline and --rate do not go together: a fixed rate "
                        "sends each request when it is due\n");
        return EXIT_USAGE;
    }
    return finish_mix(a) ? -1 : EXIT_USAGE;
}

/* The hostile connections, held against the same target as the load. */
static struct siege *start_siege(struct args *a, char *err, size_t errlen)
{
    struct siege_config *sc = &a->siege;
    sc->host = a->cfg.host;
    sc->port = a->cfg.port;
    sc->tls = a->cfg.tls;
    sc->tls_name = a->cfg.tls_name;
    for (size_t i = 0; i < a->cfg.mix_len; i++)
        sc->echo = sc->echo || a->mix[i].kind == BENCH_ECHO;
    struct siege *s = siege_start(sc, err, errlen);
    if (s && !siege_wait_open(s, HOSTILE_OPEN_MS) && a->cfg.progress)
        fprintf(stderr, "enchufe-bench: not every hostile connection could be opened within "
                        "%d s; going on (the report says how many were)\n",
                HOSTILE_OPEN_MS / 1000);
    return s;
}

int main(int argc, char **argv)
{
    static struct args a = {
        .cfg = {.threads = 2, .connections = 50, .duration_s = 10, .pipeline = 1,
                .progress = true},
    };
    client_opts_init(&a.opts, 5000);
    a.cfg.mix = a.mix;
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0)
        return rc;
    signal(SIGPIPE, SIG_IGN);
    net_raise_fd_limit(); /* every connection is a descriptor */
    static struct bench_result res;
    char err[512], target[300];
    if (a.opts.tls && !(a.cfg.tls = tls_client_context(&a.opts.tls_files, err, sizeof err))) {
        fprintf(stderr, "enchufe-bench: %s\n", err);
        return EXIT_FAILURE;
    }
    struct siege *siege = NULL;
    static struct siege_stats hostile;
    if (a.hostile && !(siege = start_siege(&a, err, sizeof err))) {
        fprintf(stderr, "enchufe-bench: %s\n", err);
        return EXIT_FAILURE;
    }
    rc = bench_run(&a.cfg, &res, err, sizeof err);
    if (siege) {
        siege_stats(siege, &hostile);
        siege_stop(siege);
    }
    if (rc < 0) {
        fprintf(stderr, "enchufe-bench: %s\n", err);
        return EXIT_FAILURE;
    }
    if (a.cfg.unix_path)
        snprintf(target, sizeof target, "unix:%s", a.cfg.unix_path);
    else if (strchr(a.cfg.host, ':') && a.cfg.host[0] != '[')
        snprintf(target, sizeof target, "[%s]:%s", a.cfg.host, a.cfg.port);
    else
        snprintf(target, sizeof target, "%s:%s", a.cfg.host, a.cfg.port);
    if (!res.ever_connected) {
        int e = res.connect_errno ? res.connect_errno : ECONNREFUSED;
        fprintf(stderr, "enchufe-bench: cannot connect to %s: %s%s; %llu attempts, none got "
                        "through\n",
                target, strerror(e), net_errno_hint(e),
                (unsigned long long)res.errors[BENCH_ERR_CONNECT]);
        return EXIT_FAILURE;
    }
    struct report_info info = {.target = target,
                               .mode = a.cfg.mode == BENCH_KEEPALIVE ? "keepalive" : "per-conn",
                               .mix = a.mix_names,
                               .rate = a.cfg.rate,
                               .hostile = siege ? &hostile : NULL};
    if (a.json)
        report_json(stdout, &a.cfg, &info, &res);
    else
        report_text(stdout, &a.cfg, &info, &res);
    for (size_t i = 0; i < a.cfg.mix_len; i++)
        bench_request_free(&a.mix[i]);
    return res.completed > 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
