/*
 * server_main.c - enchufe-server: options, signals, start, wait, stop.
 *
 * Signals are handled in one place: SIGINT, SIGTERM and SIGHUP are blocked
 * before any thread starts (threads inherit the mask), and the main
 * thread waits for them with sigwait(). No worker is ever interrupted by
 * a handler. The first SIGINT or SIGTERM starts the drain; while it runs,
 * a second one (a user pressing Ctrl-C again) cuts it short. SIGHUP
 * reloads the TLS files and the --data file, as daemons do (`systemctl
 * reload`), all or nothing, in this thread: one reload at a time, and a
 * terminal hanging up never kills the server. Once a stop has begun,
 * SIGHUP is ignored.
 */
#include "log.h"
#include "monotime.h"
#include "net.h"
#include "parse.h"
#include "server.h"
#include "service.h"
#include "snapshot.h"
#include "version.h"

#include <getopt.h>
#include <jansson.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EXIT_USAGE 2

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: enchufe-server [OPTION]...\n"
            "Serve the enchufe application protocol (or echo) over TCP.\n"
            "\n"
            "  --host HOST          address or name to listen on (default 127.0.0.1); a name\n"
            "                       with several addresses is listened on at each; IPv6\n"
            "                       literals may be bracketed: [::1]\n"
            "  --unix PATH          listen on a Unix domain socket instead of TCP\n"
            "  --unix-mode MODE     that socket's permissions, in octal (default 0660:\n"
            "                       owner and group may connect)\n"
            "  --port PORT          TCP port, 0 for any free one (default 65432)\n"
            "  --mode app|echo      protocol to serve (default app)\n"
            "  --workers N          worker threads (default 16)\n"
            "  --queue N            accepted connections waiting for a worker (default 1024)\n"
            "  --max-content BYTES  largest request content accepted (default 1048576)\n"
            "  --max-buffered BYTES what connections waiting for slow clients may hold in\n"
            "                       all (partial requests, unread answers, TLS record\n"
            "                       buffers mid-record, TLS handshakes under way); past\n"
            "                       it, those holding buffers longest are closed, and TLS\n"
            "                       handshakes wait to begin (default 67108864; 0: no limit)\n"
            "  --idle-timeout SEC   close a connection idle this long between requests (default 30)\n"
            "  --read-timeout SEC   close a client silent this long within a request (default 30)\n"
            "  --write-timeout SEC  close a client not reading its response this long (default 30)\n"
            "  --drain-timeout SEC  on SIGINT/SIGTERM, wait this long for requests in progress\n"
            "                       (default 10); a second signal cuts the wait short\n"
            "  --linger MS          after an answer, wait this long for the client's next request\n"
            "                       before parking the connection, when no other connection\n"
            "                       waits (default 5; 0 parks at once)\n"
            "  --metrics HOST:PORT  serve Prometheus metrics at http://HOST:PORT/metrics\n"
            "  --reuseport          share the port with other enchufe-servers (SO_REUSEPORT):\n"
            "                       the kernel spreads new connections across them\n"
            "  --tls-port PORT      also serve TLS on this port of the same host (0: any free)\n"
            "  --tls-only           serve TLS only: no port in clear (needs --tls-port)\n"
            "  --tls-cert FILE      the server's certificate, PEM, followed by its chain\n"
            "  --tls-key FILE       its private key, PEM (unencrypted)\n"
            "  --tls-ca FILE        CA certificates, PEM, that sign client certificates\n"
            "  --tls-auth-clients no|optional|yes\n"
            "                       ask clients for a certificate signed by --tls-ca: yes\n"
            "                       refuses clients without one (default no)\n"
            "  --data FILE          what search answers: a JSON object of value -> answer,\n"
            "                       each a string (default: the tutorial's three)\n"
            "  --shutdown-delay SEC on SIGTERM, first answer health checks \"draining\" for SEC\n"
            "                       seconds, serving as before, so that a load balancer stops\n"
            "                       sending; then drain (default 0; SIGINT drains at once)\n"
            "  --no-park            the textbook thread pool: each connection waits in its worker\n"
            "                       (blocking recv and send) instead of the poller, so a slow\n"
            "                       or idle client holds a worker\n"
            "  -v, --verbose        log every connection and request; twice (-v -v): also\n"
            "                       each message's header and first bytes (a wire trace)\n"
            "  -h, --help           show this help and exit\n"
            "  -V, --version        show the version and exit\n"
            "\n"
            "A timeout of 0 means wait forever. SIGHUP reloads the --tls-* files and\n"
            "--data, all or nothing (a bad file keeps the ones in use, and says why).\n"
            "Exit status: 0 after a clean stop, 1 if the server could not start, 2 for\n"
            "a usage error.\n");
}

enum { OPT_HOST = 256, OPT_UNIX, OPT_UNIX_MODE, OPT_PORT, OPT_MODE, OPT_WORKERS, OPT_QUEUE, OPT_MAX_CONTENT,
       OPT_IDLE, OPT_READ, OPT_WRITE, OPT_DRAIN, OPT_LINGER, OPT_METRICS, OPT_REUSEPORT,
       OPT_SHUTDOWN_DELAY, OPT_NO_PARK, OPT_TLS_PORT, OPT_TLS_ONLY, OPT_TLS_CERT, OPT_TLS_KEY,
       OPT_TLS_CA, OPT_TLS_AUTH, OPT_MAX_BUFFERED, OPT_DATA };

static const struct option long_options[] = {
    {"host", required_argument, NULL, OPT_HOST},
    {"unix", required_argument, NULL, OPT_UNIX},
    {"unix-mode", required_argument, NULL, OPT_UNIX_MODE},
    {"port", required_argument, NULL, OPT_PORT},
    {"mode", required_argument, NULL, OPT_MODE},
    {"workers", required_argument, NULL, OPT_WORKERS},
    {"queue", required_argument, NULL, OPT_QUEUE},
    {"max-content", required_argument, NULL, OPT_MAX_CONTENT},
    {"max-buffered", required_argument, NULL, OPT_MAX_BUFFERED},
    {"idle-timeout", required_argument, NULL, OPT_IDLE},
    {"read-timeout", required_argument, NULL, OPT_READ},
    {"write-timeout", required_argument, NULL, OPT_WRITE},
    {"drain-timeout", required_argument, NULL, OPT_DRAIN},
    {"linger", required_argument, NULL, OPT_LINGER},
    {"metrics", required_argument, NULL, OPT_METRICS},
    {"reuseport", no_argument, NULL, OPT_REUSEPORT},
    {"shutdown-delay", required_argument, NULL, OPT_SHUTDOWN_DELAY},
    {"no-park", no_argument, NULL, OPT_NO_PARK},
    {"data", required_argument, NULL, OPT_DATA},
    {"tls-port", required_argument, NULL, OPT_TLS_PORT},
    {"tls-only", no_argument, NULL, OPT_TLS_ONLY},
    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
    {"tls-ca", required_argument, NULL, OPT_TLS_CA},
    {"tls-auth-clients", required_argument, NULL, OPT_TLS_AUTH},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

static bool bad_value(const char *option, const char *value, const char *expected)
{
    parse_bad_value("enchufe-server", option, value, expected);
    return false;
}

static bool parse_size(const char *opt, const char *arg, long min, long max, size_t *out)
{
    long v;
    if (!parse_long(arg, min, max, &v)) {
        char expected[64];
        snprintf(expected, sizeof expected, "an integer from %ld to %ld", min, max);
        return bad_value(opt, arg, expected);
    }
    *out = (size_t)v;
    return true;
}

static bool parse_timeout(const char *opt, const char *arg, int *out_ms)
{
    return parse_seconds_ms(arg, 86400, out_ms) ||
           bad_value(opt, arg, "seconds from 0 to 86400");
}

/* An octal file mode such as 0660 or 660. */
static bool parse_mode(const char *arg, mode_t *out)
{
    char *end;
    errno = 0;
    long v = strtol(arg, &end, 8);
    if (errno || end == arg || *end != '\0' || v < 0 || v > 0777)
        return bad_value("unix-mode", arg, "an octal mode from 0 to 0777, such as 0660");
    *out = (mode_t)v;
    return true;
}

static bool parse_auth_clients(const char *arg, enum tls_auth_clients *out)
{
    if (strcmp(arg, "no") == 0)
        *out = TLS_AUTH_NO;
    else if (strcmp(arg, "optional") == 0)
        *out = TLS_AUTH_OPTIONAL;
    else if (strcmp(arg, "yes") == 0)
        *out = TLS_AUTH_YES;
    else
        return bad_value("tls-auth-clients", arg, "no, optional or yes");
    return true;
}

/* The TLS options make sense together, or the server says which is
 * missing. */
static bool check_tls_options(const struct server_config *cfg)
{
    const char *problem = NULL;
    bool tls = server_config_wants_tls(cfg);
    if (tls && (!cfg->tls.cert_file || !cfg->tls.key_file))
        problem = "TLS needs --tls-cert and --tls-key";
    else if (!tls && (cfg->tls_only || cfg->tls.cert_file || cfg->tls.key_file ||
                      cfg->tls.ca_file || cfg->tls.auth_clients != TLS_AUTH_NO))
        problem = cfg->ninherited
                      ? "the --tls-* options need a TLS listener: --tls-port, or from systemd "
                        "a socket named tls (FileDescriptorName=tls, as in enchufe-tls.socket)"
                      : "the --tls-* options need --tls-port";
    else if (cfg->tls.auth_clients != TLS_AUTH_NO && !cfg->tls.ca_file)
        problem = "--tls-auth-clients needs --tls-ca, the CA that signs client certificates";
    else if (cfg->tls.ca_file && cfg->tls.auth_clients == TLS_AUTH_NO)
        problem = "--tls-ca names the CAs of client certificates, which are only asked for "
                  "with --tls-auth-clients optional or yes";
    else if (cfg->tls_only && cfg->unix_path)
        problem = "--tls-only leaves nothing for --unix: TLS is served on TCP only";
    else if (cfg->data_file && cfg->mode == SERVER_MODE_ECHO)
        problem = "--data holds search answers, and echo mode answers no search";
    if (problem)
        fprintf(stderr, "enchufe-server: %s\nTry 'enchufe-server --help' for more information.\n",
                problem);
    return !problem;
}

/* What main needs besides the server's own configuration. */
struct run_config {
    int verbosity;
    int shutdown_delay_ms;
};

static bool parse_option(int opt, const char *arg, struct server_config *cfg,
                         struct run_config *run)
{
    long port;
    switch (opt) {
    case OPT_HOST: cfg->host = arg; return true;
    case OPT_UNIX: cfg->unix_path = arg; return true;
    case OPT_UNIX_MODE: return parse_mode(arg, &cfg->unix_mode);
    case OPT_PORT:
        cfg->port = arg;
        return parse_long(arg, 0, 65535, &port) || bad_value("port", arg, "0 to 65535");
    case OPT_MODE:
        if (strcmp(arg, "app") == 0 || strcmp(arg, "echo") == 0) {
            cfg->mode = arg[0] == 'a' ? SERVER_MODE_APP : SERVER_MODE_ECHO;
            return true;
        }
        return bad_value("mode", arg, "app or echo");
    case OPT_WORKERS: return parse_size("workers", arg, 1, 4096, &cfg->workers);
    case OPT_QUEUE: return parse_size("queue", arg, 1, 1000000, &cfg->queue_capacity);
    case OPT_MAX_CONTENT:
        return parse_size("max-content", arg, 0, 1L << 30, &cfg->max_content);
    case OPT_MAX_BUFFERED:
        return parse_size("max-buffered", arg, 0, 1L << 40, &cfg->max_buffered);
    case OPT_IDLE: return parse_timeout("idle-timeout", arg, &cfg->idle_timeout_ms);
    case OPT_READ: return parse_timeout("read-timeout", arg, &cfg->read_timeout_ms);
    case OPT_WRITE: return parse_timeout("write-timeout", arg, &cfg->write_timeout_ms);
    case OPT_DRAIN: return parse_timeout("drain-timeout", arg, &cfg->drain_timeout_ms);
    case OPT_LINGER: {
        size_t ms;
        if (!parse_size("linger", arg, 0, 1000, &ms))
            return false;
        cfg->linger_ms = (int)ms;
        return true;
    }
    case OPT_METRICS: cfg->metrics = arg; return true;
    case OPT_REUSEPORT: cfg->reuseport = true; return true;
    case OPT_SHUTDOWN_DELAY:
        return parse_timeout("shutdown-delay", arg, &run->shutdown_delay_ms);
    case OPT_NO_PARK: cfg->park = false; return true;
    case OPT_TLS_PORT:
        cfg->tls_port = arg;
        return parse_long(arg, 0, 65535, &port) || bad_value("tls-port", arg, "0 to 65535");
    case OPT_TLS_ONLY: cfg->tls_only = true; return true;
    case OPT_TLS_CERT: cfg->tls.cert_file = arg; return true;
    case OPT_TLS_KEY: cfg->tls.key_file = arg; return true;
    case OPT_TLS_CA: cfg->tls.ca_file = arg; return true;
    case OPT_TLS_AUTH: return parse_auth_clients(arg, &cfg->tls.auth_clients);
    case OPT_DATA: cfg->data_file = arg; return true;
    case 'v': run->verbosity++; return true;
    default: return false;
    }
}

/* Returns -1 to go on, or the exit status to leave with. */
static int parse_args(int argc, char **argv, struct server_config *cfg, struct run_config *run)
{
    int opt;
    argv[0] = (char *)"enchufe-server"; /* what getopt's own messages are signed with */
    while ((opt = getopt_long(argc, argv, "vhV", long_options, NULL)) != -1) {
        if (opt == 'h') {
            usage(stdout);
            return EXIT_SUCCESS;
        }
        if (opt == 'V') {
            printf("enchufe-server %s\n", ENCHUFE_VERSION);
            return EXIT_SUCCESS;
        }
        if (opt == '?' || !parse_option(opt, optarg, cfg, run)) {
            fprintf(stderr, "Try 'enchufe-server --help' for more information.\n");
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "enchufe-server: unexpected argument '%s'\n", argv[optind]);
        return EXIT_USAGE;
    }
    return -1;
}

static const char *signal_name(int sig)
{
    return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "SIGHUP";
}

static const char *plural(uint64_t n)
{
    return n == 1 ? "" : "s";
}

/* STATUS= for the service manager: the live counts, and the last reload
 * (numbered, so that contrib/enchufe-reload sees when one is over). */
static void status_line(void *arg, char *out, size_t cap)
{
    struct snapshot snap;
    uint64_t done, failed;
    char why[256], reload[320] = "";
    server_snapshot(arg, &snap);
    server_reload_status(arg, &done, &failed, why, sizeof why);
    if (done + failed > 0)
        snprintf(reload, sizeof reload, "; reload #%llu %s%s", (unsigned long long)done + failed,
                 why[0] ? "failed: " : "done", why);
    snprintf(out, cap, "%llu connection%s (%llu parked), %llu of %llu workers busy, "
                       "%llu request%s answered%s",
             (unsigned long long)snap.active, plural(snap.active), (unsigned long long)snap.parked,
             (unsigned long long)snap.busy, (unsigned long long)snap.workers,
             (unsigned long long)snap.requests, plural(snap.requests), reload);
}

/* What a reload read, for its log line. */
static void describe_files(struct server *srv, const struct server_config *cfg, char *out,
                           size_t cap)
{
    struct snapshot snap;
    server_snapshot(srv, &snap);
    int n = snprintf(out, cap, "%llu answer%s from %s", (unsigned long long)snap.data_entries,
                     snap.data_entries == 1 ? "" : "s",
                     cfg->data_file ? cfg->data_file : "the built-in set");
    if (snap.tls_not_after && n > 0 && (size_t)n < cap) {
        time_t t = (time_t)snap.tls_not_after;
        struct tm tm;
        char when[32];
        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", gmtime_r(&t, &tm));
        snprintf(out + n, cap - (size_t)n, "; TLS certificate %s, valid until %s",
                 cfg->tls.cert_file, when);
    }
}

/* SIGHUP: reload, telling the service manager when it begins and ends. */
static void reload(struct server *srv, const struct server_config *cfg)
{
    char err[512], what[512], status[512];
    log_info("Received SIGHUP: reloading");
    service_reloading();
    if (server_reload(srv, err, sizeof err) == 0) {
        describe_files(srv, cfg, what, sizeof what);
        log_info("Reloaded: %s", what);
    } else {
        log_error("Reload failed, nothing changed (still serving what was loaded before): %s",
                  err);
    }
    status_line(srv, status, sizeof status);
    service_ready(status);
}

/* Waits for SIGINT or SIGTERM. A SIGHUP meanwhile reloads; during a stop
 * (srv NULL) it is ignored. */
static int wait_for_stop_signal(const sigset_t *set, struct server *srv,
                                const struct server_config *cfg)
{
    for (;;) {
        int sig = 0;
        if (sigwait(set, &sig) != 0)
            continue;
        if (sig != SIGHUP)
            return sig;
        if (srv)
            reload(srv, cfg);
        else
            log_info("Received SIGHUP during the stop: ignored");
    }
}

struct second_signal {
    const sigset_t *set;
    struct server *srv;
};

/* Runs during the drain: a second SIGINT or SIGTERM cuts it short. The
 * main thread cancels this thread once the drain is over (sigwait is a
 * cancellation point); the cut itself runs with cancellation off. */
static void *cut_on_second_signal(void *arg)
{
    const struct second_signal *ss = arg;
    int sig = wait_for_stop_signal(ss->set, NULL, NULL);
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
    log_info("Received %s during the drain: cutting it short", signal_name(sig));
    server_cut(ss->srv);
    return NULL;
}

/* The drain, with a second signal able to cut it short. */
static void drain(struct server *srv, const sigset_t *set, struct server_summary *sum)
{
    struct second_signal ss = {.set = set, .srv = srv};
    pthread_t watcher;
    bool watching = pthread_create(&watcher, NULL, cut_on_second_signal, &ss) == 0;
    server_drain(srv, sum);
    if (watching) {
        pthread_cancel(watcher);
        pthread_join(watcher, NULL);
    }
}

/* The last line: what was served (in echo mode, bytes: it has no
 * requests), and what a stop out of time cut. */
static void log_stopped(const struct server_summary *sum, const struct server_config *cfg)
{
    char cut[160] = "", served[96];
    if (sum->cut)
        snprintf(cut, sizeof cut, "; cut %llu connection%s still in progress (drain timeout "
                                  "%g s, or a second signal)",
                 (unsigned long long)sum->cut, plural(sum->cut), cfg->drain_timeout_ms / 1000.0);
    if (cfg->mode == SERVER_MODE_ECHO)
        snprintf(served, sizeof served, "echoing %llu byte%s", (unsigned long long)sum->bytes,
                 plural(sum->bytes));
    else
        snprintf(served, sizeof served, "%llu request%s", (unsigned long long)sum->requests,
                 plural(sum->requests));
    log_info("Stopped after %s on %llu connection%s%s", served,
             (unsigned long long)sum->connections, plural(sum->connections), cut);
}

/* Listening sockets handed over by systemd, if any, become the server's.
 * Returns false (after saying why) if they cannot be used. */
static bool take_activated_sockets(struct server_config *cfg, int *fds, bool *tls,
                                   char names[][64])
{
    char err[256];
    int n = service_listen_fds(fds, names, SERVICE_MAX_FDS, err, sizeof err);
    if (n < 0) {
        fprintf(stderr, "enchufe-server: %s\n", err);
        return false;
    }
    /* A socket named tls... (FileDescriptorName=tls) speaks TLS. */
    for (int i = 0; i < n; i++)
        tls[i] = strncmp(names[i], "tls", 3) == 0;
    cfg->inherited = fds;
    cfg->inherited_tls = tls;
    cfg->ninherited = n;
    return true;
}


static void log_started(struct server *srv, const struct server_config *cfg, long capacity,
                        char names[][64])
{
    char addr[160];
    log_info("enchufe-server %s: %s mode, %zu workers, %s; room for %ld connections",
             ENCHUFE_VERSION, cfg->mode == SERVER_MODE_APP ? "app" : "echo", cfg->workers,
             cfg->park ? "connections that wait for their client parked in the poller"
                       : "each connection waiting in its worker (--no-park)",
             cfg->park ? capacity : (long)cfg->workers);
    for (int i = 0; server_address(srv, i, addr, sizeof addr) == 0; i++) {
        const char *tls = server_listener_is_tls(srv, i) ? " (TLS)" : "";
        if (cfg->ninherited)
            log_info("Listening on %s%s (handed over by systemd as '%s')", addr, tls, names[i]);
        else
            log_info("Listening on %s%s", addr, tls);
    }
    if (server_metrics_address(srv, addr, sizeof addr) == 0)
        log_info("Metrics on http://%s/metrics", addr);
}

/* --shutdown-delay: health checks say "draining" while everything is
 * served as before, so that a balancer stops sending before the listener
 * closes. A second signal ends the wait, and cuts what is in progress. */
static void delay_stop(struct server *srv, const sigset_t *set, int delay_ms)
{
    server_announce_stop(srv);
    log_info("Telling health checks the server is draining; stopping in %g s", delay_ms / 1000.0);
    long long until = monotime_ms() + delay_ms;
    for (long long left; (left = until - monotime_ms()) > 0;) {
        struct timespec t = {left / 1000, (left % 1000) * 1000000L};
        int sig = sigtimedwait(set, NULL, &t);
        if (sig == SIGINT || sig == SIGTERM) {
            log_info("Received %s during the shutdown delay: stopping now, cutting what is "
                     "in progress", signal_name(sig));
            server_cut(srv);
            return;
        }
        if (sig == SIGHUP)
            log_info("Received SIGHUP during the stop: ignored");
    }
}

int main(int argc, char **argv)
{
    struct server_config cfg;
    server_config_defaults(&cfg);
    struct run_config run = {0};
    int rc = parse_args(argc, argv, &cfg, &run);
    if (rc >= 0)
        return rc;
    log_set_verbosity(run.verbosity);

    /* jansson seeds its hash lazily on first use, which races between
     * threads; seeding here, before any thread exists, avoids that. */
    json_object_seed(0);
    /* Every send uses MSG_NOSIGNAL; this covers anything else that writes. */
    signal(SIGPIPE, SIG_IGN);
    /* A buffer for a large request is mapped for it and unmapped after,
     * so its pages go back to the kernel. glibc would otherwise raise this
     * threshold after the first such free, and later large buffers would
     * come from each worker's heap, leaving pages behind that many slow
     * clients could make add up past --max-buffered. */
    mallopt(M_MMAP_THRESHOLD, SERVER_MMAP_THRESHOLD);
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);

    int fds[SERVICE_MAX_FDS];
    bool tls[SERVICE_MAX_FDS];
    char names[SERVICE_MAX_FDS][64];
    if (!take_activated_sockets(&cfg, fds, tls, names))
        return EXIT_FAILURE;
    if (!check_tls_options(&cfg))
        return EXIT_USAGE;
    /* With parking an idle connection costs only a descriptor: take every
     * one the hard limit allows, less a margin for listeners, pipes, epoll
     * and stdio. */
    long capacity = net_raise_fd_limit() - 16;
    char err[512];
    struct server *srv = server_start(&cfg, err, sizeof err);
    if (!srv) {
        fprintf(stderr, "enchufe-server: %s\n", err);
        return EXIT_FAILURE;
    }
    log_started(srv, &cfg, capacity, names);
    service_ready("listening");
    struct service_pinger *pinger = service_start_pinger(status_line, srv);

    int sig = wait_for_stop_signal(&signals, srv, &cfg);
    log_info("Received %s: finishing requests in progress", signal_name(sig));
    /* The delay is for a load balancer, which a service manager's
     * SIGTERM precedes; a Ctrl-C (SIGINT) at a terminal stops at once. */
    if (run.shutdown_delay_ms > 0 && sig == SIGTERM)
        delay_stop(srv, &signals, run.shutdown_delay_ms);
    service_stopping("draining: answering the requests in progress");
    struct server_summary sum;
    drain(srv, &signals, &sum);
    service_stop_pinger(pinger);
    server_free(srv);
    log_stopped(&sum, &cfg);
    return EXIT_SUCCESS;
}
