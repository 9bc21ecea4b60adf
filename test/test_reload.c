/*
 * test_reload.c - reloading without a restart: the --data file (answers.c)
 * and its checks, then the server's reload (server_reload, what SIGHUP
 * runs): new answers and a new certificate for what comes next, the
 * connections and TLS sessions already open undisturbed, a bad file
 * changing nothing, requests in flight during hundreds of swaps seeing
 * one whole set or the other (AddressSanitizer watches for a freed set),
 * and the binary's SIGHUP, log lines and counters, under load in clear
 * and TLS with no request failed.
 */
#include "answers.h"
#include "client.h"
#include "loadgen.h"
#include "server.h"
#include "snapshot.h"
#include "stream.h"
#include "support.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64];

static void make_dir(void)
{
    strcpy(dir, "/tmp/enchufe-reload-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(void)
{
    char out[256];
    ts_run(out, sizeof out, "rm -rf '%s'", dir);
}

/* dir/name, valid until the next call with the same slot. */
static const char *in_dir(const char *name)
{
    static char paths[4][128];
    static int next;
    char *p = paths[next++ % 4];
    snprintf(p, sizeof paths[0], "%s/%s", dir, name);
    return p;
}

/* The paths a server is started with, which must outlive in_dir's
 * rotating buffers. */
static char cert_path[128], key_path[128], data_path[128];

static void name_files(void)
{
    snprintf(cert_path, sizeof cert_path, "%s", in_dir("cert.pem"));
    snprintf(key_path, sizeof key_path, "%s", in_dir("key.pem"));
    snprintf(data_path, sizeof data_path, "%s", in_dir("data.json"));
}

/* Writes text to dir/name through a rename, as an admin's tools do, so
 * a reader sees the old file or the new, whole. */
static void write_file(const char *name, const char *text)
{
    char tmp[160];
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name);
    FILE *f = fopen(tmp, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
    cr_assert_eq(rename(tmp, in_dir(name)), 0);
}

static void copy_file(const char *from, const char *name)
{
    char out[512];
    cr_assert_eq(ts_run(out, sizeof out, "cp '%s' '%s/.%s.tmp' && mv '%s/.%s.tmp' '%s'", from, dir,
                        name, dir, name, in_dir(name)), 0, "%s", out);
}

/* --- the data file -------------------------------------------------------------- */

static struct answers *load(const char *text, char *err, size_t errlen)
{
    write_file("data.json", text);
    return answers_load(in_dir("data.json"), err, errlen);
}

static void expect_answer(const struct answers *a, const char *value, const char *content)
{
    size_t len = 0;
    const char *got = answers_find(a, value, strlen(value), &len);
    cr_assert_not_null(got, "no answer for '%s'", value);
    cr_assert_eq(len, strlen(content));
    cr_assert(memcmp(got, content, len) == 0, "'%s': %.*s", value, (int)len, got);
}

Test(answers, a_file_answers_each_value_as_the_tutorials_server_writes_it,
     .init = make_dir, .fini = remove_dir)
{
    char err[256];
    struct answers *a = load("{\"neo\": \"The One.\",\n \"caf\xc3\xa9\": \"\xe2\x98\x95 \\\"hot\\\"\","
                             " \"tab\": \"a\\tb\"}", err, sizeof err);
    cr_assert_not_null(a, "%s", err);
    cr_assert_eq(answers_count(a), 3);
    expect_answer(a, "neo", "{\"result\": \"The One.\"}");
    expect_answer(a, "caf\xc3\xa9", "{\"result\": \"\xe2\x98\x95 \\\"hot\\\"\"}");
    expect_answer(a, "tab", "{\"result\": \"a\\tb\"}");
    size_t len;
    cr_assert_null(answers_find(a, "ne", 2, &len));
    cr_assert_null(answers_find(a, "neo ", 4, &len));
    cr_assert_null(answers_find(a, "morpheus", 8, &len), "a file replaces the built-in set");
    answers_free(a);
}

Test(answers, a_hundred_thousand_values_are_each_found_and_nothing_else,
     .init = make_dir, .fini = remove_dir, .timeout = 60)
{
    FILE *f = fopen(in_dir("big.json"), "w");
    cr_assert_not_null(f);
    fputc('{', f);
    for (int i = 0; i < 100000; i++)
        fprintf(f, "%s\"v%d\": \"a%d\"", i ? ", " : "", i, i);
    fputc('}', f);
    fclose(f);
    char err[256], value[32], content[64];
    struct answers *a = answers_load(in_dir("big.json"), err, sizeof err);
    cr_assert_not_null(a, "%s", err);
    cr_assert_eq(answers_count(a), 100000);
    for (int i = 0; i < 100000; i++) {
        snprintf(value, sizeof value, "v%d", i);
        snprintf(content, sizeof content, "{\"result\": \"a%d\"}", i);
        size_t len = 0;
        const char *got = answers_find(a, value, strlen(value), &len);
        cr_assert(got && len == strlen(content) && memcmp(got, content, len) == 0, "v%d", i);
        snprintf(value, sizeof value, "w%d", i);
        cr_assert_null(answers_find(a, value, strlen(value), &len));
    }
    answers_free(a);
}

/* A bad file: NULL, and err says what is wrong where. */
static void expect_refused(const char *text, const char *why)
{
    char err[256] = "";
    struct answers *a = load(text, err, sizeof err);
    cr_assert_null(a, "accepted: %s", text);
    cr_assert(strstr(err, why), "'%s' not in: %s", why, err);
    cr_assert(strstr(err, "data.json"), "the file is named: %s", err);
}

Test(answers, bad_files_are_refused_saying_why_and_where, .init = make_dir, .fini = remove_dir)
{
    expect_refused("{\"a\": \"b\",\n \"c\": }\n", "line 2, column 7");
    expect_refused("{\"a\": \"b\", \"a\": \"c\"}", "duplicate");
    expect_refused("[\"a\", \"b\"]", "not a JSON object");
    expect_refused("{\"a\": 3}", "the answer to 'a' is not a string");
    expect_refused("", "line 1");
    char *big = malloc(80000);
    memset(big, 'x', 80000);
    memcpy(big, "{\"a\": \"", 7);
    strcpy(big + 79990, "\"}");
    expect_refused(big, "at most 65536");
    memset(big, 'k', 6000);
    memcpy(big, "{\"", 2);
    strcpy(big + 5000, "\": \"v\"}");
    expect_refused(big, "at most 4096");
    free(big);
}

Test(answers, a_missing_or_huge_file_is_refused_before_it_is_parsed, .init = make_dir,
     .fini = remove_dir)
{
    char err[256];
    cr_assert_null(answers_load(in_dir("none.json"), err, sizeof err));
    cr_assert(strstr(err, "cannot open data file") && strstr(err, "No such file"), "%s", err);
    FILE *f = fopen(in_dir("huge.json"), "w");
    cr_assert_not_null(f);
    cr_assert_eq(ftruncate(fileno(f), (off_t)ANSWERS_MAX_FILE + 1), 0); /* sparse */
    fclose(f);
    cr_assert_null(answers_load(in_dir("huge.json"), err, sizeof err));
    cr_assert(strstr(err, "at most 64 MiB"), "%s", err);
    cr_assert_null(answers_load(dir, err, sizeof err));
    cr_assert(strstr(err, "not a regular file"), "%s", err);
}

/* Whichever of jansson's allocations fails while the file is read, the
 * load is refused for want of memory, or whole: never a set missing a
 * value, never a syntax error in a good file. */
Test(answers, an_allocation_failing_while_the_file_is_read_never_loses_a_value,
     .init = make_dir, .fini = remove_dir)
{
    char text[4096] = "{", err[256];
    for (int i = 0; i < 10; i++)
        snprintf(text + strlen(text), sizeof text - strlen(text), "%s\"value %d\": \"answer %d\"",
                 i ? ", " : "", i, i);
    strcat(text, "}");
    write_file("data.json", text);
    int whole = 0;
    for (int k = 0; k < 200; k++) {
        ts_json_allocation_fails(k);
        struct answers *a = answers_load(in_dir("data.json"), err, sizeof err);
        ts_json_allocations_restore();
        if (a) {
            cr_assert_eq(answers_count(a), 10, "allocation %d failing lost values", k + 1);
            whole++;
            answers_free(a);
        } else {
            cr_assert(strstr(err, "out of memory"), "allocation %d failing: %s", k + 1, err);
        }
    }
    cr_assert_gt(whole, 0);
}

/* --- the server's reload ---------------------------------------------------------- */

static struct server *srv;
static int port, tls_port;

static void start_server(void)
{
    json_object_seed(0);
    make_dir();
    write_file("data.json", "{\"neo\": \"The One.\"}");
    copy_file(ts_tls_path("server.pem"), "cert.pem");
    copy_file(ts_tls_path("server.key"), "key.pem");
    struct server_config cfg;
    server_config_defaults(&cfg);
    cfg.workers = 4;
    cfg.tls_port = "0";
    name_files();
    cfg.tls.cert_file = cert_path;
    cfg.tls.key_file = key_path;
    cfg.data_file = data_path;
    port = ts_start(&srv, &cfg);
    cr_assert_gt(port, 0);
    tls_port = server_tls_port(srv);
}

static void stop_server(void)
{
    server_stop(srv);
    remove_dir();
}

static void expect_search(const struct stream *s, const char *value, const char *result)
{
    struct client_response resp;
    char content[256];
    cr_assert_eq(ts_search_on(s, value, &resp), 0, "search %s", value);
    snprintf(content, sizeof content, "{\"result\": \"%s\"}", result);
    cr_assert(ts_content_is(&resp, content), "%s: got %.*s, not %s", value, (int)resp.length,
              resp.content, content);
    client_response_free(&resp);
}

static struct snapshot snapshot(void)
{
    struct snapshot snap;
    server_snapshot(srv, &snap);
    return snap;
}

Test(reload, new_answers_for_what_comes_next_and_a_bad_file_changes_nothing,
     .init = start_server, .fini = stop_server)
{
    struct stream s = {.fd = ts_connect(port)};
    char err[512];
    expect_search(&s, "neo", "The One.");
    write_file("data.json", "{\"trinity\": \"Nebuchadnezzar\", \"neo\": \"Mr. Anderson\"}");
    cr_assert_eq(server_reload(srv, err, sizeof err), 0, "%s", err);
    /* The same keep-alive connection sees the new set at once. */
    expect_search(&s, "neo", "Mr. Anderson");
    expect_search(&s, "trinity", "Nebuchadnezzar");
    write_file("data.json", "{\"neo\": \"x\",\n\"smith\" \"y\"}");
    cr_assert_eq(server_reload(srv, err, sizeof err), -1);
    cr_assert(strstr(err, "line 2, column"), "%s", err);
    expect_search(&s, "neo", "Mr. Anderson");
    expect_search(&s, "smith", "No match for 'smith'.");
    struct snapshot snap = snapshot();
    cr_assert_eq(snap.reloads_done, 1);
    cr_assert_eq(snap.reloads_failed, 1);
    cr_assert(snap.reload_last_failed);
    cr_assert_eq(snap.data_entries, 2);
    close(s.fd);
}

/* The certificate a TLS handshake to the server shows. */
static X509 *certificate_seen(struct stream *s)
{
    char err[256];
    SSL_CTX *ctx = ts_tls_client(NULL);
    cr_assert_eq(ts_tls_open(ctx, tls_port, s, err, sizeof err), 0, "%s", err);
    SSL_CTX_free(ctx);
    X509 *seen = SSL_get1_peer_certificate(s->ssl);
    cr_assert_not_null(seen);
    return seen;
}

static X509 *certificate_in(const char *name)
{
    FILE *f = fopen(ts_tls_path(name), "r");
    cr_assert_not_null(f);
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    cr_assert_not_null(x);
    return x;
}

static void close_tls(struct stream *s)
{
    SSL_free(s->ssl);
    close(s->fd);
}

Test(reload, a_renewed_certificate_for_new_handshakes_while_open_sessions_go_on,
     .init = start_server, .fini = stop_server)
{
    X509 *old = certificate_in("server.pem"), *renewed = certificate_in("renewed.pem");
    struct stream before;
    X509 *seen = certificate_seen(&before);
    cr_assert_eq(X509_cmp(seen, old), 0, "the certificate it started with");
    X509_free(seen);
    expect_search(&before, "neo", "The One.");

    copy_file(ts_tls_path("renewed.pem"), "cert.pem");
    copy_file(ts_tls_path("renewed.key"), "key.pem");
    char err[512];
    cr_assert_eq(server_reload(srv, err, sizeof err), 0, "%s", err);
    struct stream after;
    seen = certificate_seen(&after);
    cr_assert_eq(X509_cmp(seen, renewed), 0, "a new handshake sees the renewed certificate");
    X509_free(seen);
    expect_search(&after, "neo", "The One.");
    /* The session opened before the reload goes on, on its old context. */
    expect_search(&before, "neo", "The One.");
    struct tm tm;
    cr_assert_eq(ASN1_TIME_to_tm(X509_get0_notAfter(renewed), &tm), 1);
    cr_assert_eq(snapshot().tls_not_after, (long long)timegm(&tm), "the expiry metric follows");
    close_tls(&before);
    close_tls(&after);
    X509_free(old);
    X509_free(renewed);
}

Test(reload, a_key_that_does_not_match_keeps_the_old_certificate_and_answers,
     .init = start_server, .fini = stop_server)
{
    X509 *old = certificate_in("server.pem");
    write_file("data.json", "{\"neo\": \"changed\"}");
    copy_file(ts_tls_path("renewed.pem"), "cert.pem"); /* the key stays the old one */
    char err[512];
    cr_assert_eq(server_reload(srv, err, sizeof err), -1);
    cr_assert(strstr(err, "does not match"), "%s", err);
    struct stream s;
    X509 *seen = certificate_seen(&s);
    cr_assert_eq(X509_cmp(seen, old), 0, "still the old certificate");
    expect_search(&s, "neo", "The One."); /* all or nothing: not the new answers either */
    X509_free(seen);
    X509_free(old);
    close_tls(&s);
}

/* Clients that search without pause while the sets swap under them. */
struct searcher {
    pthread_t thread;
    atomic_bool *over;
    int answers, wrong;
    char last_wrong[128];
};

static void *search_all_along(void *arg)
{
    struct searcher *sr = arg;
    struct stream s = {.fd = ts_connect(port)};
    static const char a[] = "{\"result\": \"from set A\"}", b[] = "{\"result\": \"from set B\"}";
    while (!atomic_load(sr->over) && sr->answers < 200000) {
        struct client_response resp;
        if (ts_search_on(&s, "k", &resp) != 0) {
            sr->wrong++;
            snprintf(sr->last_wrong, sizeof sr->last_wrong, "no answer");
            break;
        }
        if (ts_content_is(&resp, a) || ts_content_is(&resp, b)) {
            sr->answers++;
        } else {
            sr->wrong++;
            snprintf(sr->last_wrong, sizeof sr->last_wrong, "%.*s", (int)resp.length,
                     resp.content);
        }
        client_response_free(&resp);
    }
    close(s.fd);
    return NULL;
}

Test(reload, requests_during_three_hundred_swaps_each_see_one_whole_set,
     .init = start_server, .fini = stop_server, .timeout = 120)
{
    /* Long answers, so that a mix of two sets or a freed one would show. */
    char set_a[2048], set_b[2048], err[512];
    snprintf(set_a, sizeof set_a, "{\"k\": \"from set A\", \"pad\": \"%0900d\"}", 0);
    snprintf(set_b, sizeof set_b, "{\"other\": \"%0900d\", \"k\": \"from set B\"}", 0);
    write_file("data.json", set_b);
    cr_assert_eq(server_reload(srv, err, sizeof err), 0, "%s", err);
    atomic_bool over;
    atomic_init(&over, false);
    struct searcher sr[4] = {0};
    for (int i = 0; i < 4; i++) {
        sr[i].over = &over;
        pthread_create(&sr[i].thread, NULL, search_all_along, &sr[i]);
    }
    for (int i = 0; i < 300; i++) {
        write_file("data.json", i % 2 ? set_a : set_b);
        cr_assert_eq(server_reload(srv, err, sizeof err), 0, "%s", err);
    }
    atomic_store(&over, true);
    int answers = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(sr[i].thread, NULL);
        cr_assert_eq(sr[i].wrong, 0, "searcher %d: %s", i, sr[i].last_wrong);
        answers += sr[i].answers;
    }
    fprintf(stderr, "300 reloads under 4 searching clients: %d answers, each from one whole set\n",
            answers);
    cr_assert_gt(answers, 0);
    cr_assert_eq(snapshot().reloads_done, 301);
}

/* --- the binary: SIGHUP --------------------------------------------------------- */

/* Reads err_fd until a line with needle; copies it into line. */
static bool log_line(int err_fd, const char *needle, char *line, size_t cap)
{
    size_t n = 0;
    long long until = ts_now_ms() + 10000;
    while (ts_now_ms() < until) {
        char c;
        ssize_t got = read(err_fd, &c, 1);
        if (got <= 0)
            return false;
        if (c != '\n') {
            if (n + 1 < cap)
                line[n++] = c;
            continue;
        }
        line[n] = '\0';
        if (strstr(line, needle))
            return true;
        n = 0;
    }
    return false;
}

/* The data file starts with the tutorial's answer for morpheus, which
 * enchufe-bench checks, and neo's. */
static pid_t spawn_with_files(int *clear_port, int *tls, int *err_fd)
{
    make_dir();
    write_file("data.json", "{\"neo\": \"The One.\", "
                            "\"morpheus\": \"Follow the white rabbit. \xf0\x9f\x90\xb0\"}");
    copy_file(ts_tls_path("server.pem"), "cert.pem");
    copy_file(ts_tls_path("server.key"), "key.pem");
    name_files();
    const char *args[] = {"--tls-port", "0", "--tls-cert", cert_path, "--tls-key", key_path,
                          "--data", data_path, "--workers", "4", NULL};
    pid_t pid = ts_spawn_server(ts_bin_dir(), args, clear_port, err_fd);
    cr_assert_gt(pid, 0);
    char line[512];
    cr_assert(log_line(*err_fd, "(TLS)", line, sizeof line), "the TLS listener's line");
    const char *at = strstr(line, "127.0.0.1:"); /* "Listening on 127.0.0.1:PORT (TLS)" */
    cr_assert(at && sscanf(at + 10, "%d", tls) == 1, "%s", line);
    return pid;
}

Test(sighup, reloads_the_data_and_says_so_and_a_bad_file_is_logged_with_its_place,
     .fini = remove_dir, .timeout = 60)
{
    int clear, tls, err_fd;
    pid_t pid = spawn_with_files(&clear, &tls, &err_fd);
    struct stream s = {.fd = ts_connect(clear)};
    char line[512];
    expect_search(&s, "neo", "The One.");
    write_file("data.json", "{\"neo\": \"Mr. Anderson\", \"smith\": \"Agent\"}");
    kill(pid, SIGHUP);
    cr_assert(log_line(err_fd, "Reloaded", line, sizeof line), "a line for the reload");
    cr_assert(strstr(line, "2 answers from") && strstr(line, "valid until"), "%s", line);
    expect_search(&s, "neo", "Mr. Anderson");
    write_file("data.json", "{\"neo\": \"x\",\n  \"smith\": }");
    kill(pid, SIGHUP);
    cr_assert(log_line(err_fd, "Reload failed", line, sizeof line), "a line for the failure");
    cr_assert(strstr(line, "line 2, column") && strstr(line, "nothing changed"), "%s", line);
    expect_search(&s, "smith", "Agent");
    close(s.fd);
    kill(pid, SIGTERM);
    cr_assert_eq(ts_wait_exit(pid, 15000), 0);
    close(err_fd);
}

Test(sighup, data_in_echo_mode_or_a_missing_file_is_refused_at_the_start)
{
    char out[512];
    int rc = ts_run(out, sizeof out, "%s/enchufe-server --mode echo --data /nonexistent",
                    ts_bin_dir());
    cr_assert_eq(rc, 2, "a usage error: %s", out);
    cr_assert(strstr(out, "echo mode"), "%s", out);
    rc = ts_run(out, sizeof out, "%s/enchufe-server --port 0 --data /nonexistent/data.json",
                ts_bin_dir());
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, "cannot open data file /nonexistent/data.json: No such file"), "%s",
              out);
}

/* Reloads every 50 ms, the certificate alternating with its renewal. */
struct reloader {
    pthread_t thread;
    pid_t pid;
    atomic_bool over;
    int reloads;
};

static void *reload_all_along(void *arg)
{
    struct reloader *r = arg;
    while (!atomic_load(&r->over) && r->reloads < 200) {
        const char *name = r->reloads % 2 ? "server" : "renewed";
        char pem[32], key[32];
        snprintf(pem, sizeof pem, "%s.pem", name);
        snprintf(key, sizeof key, "%s.key", name);
        /* The key first, then the certificate: in between, a reload
         * meets a pair that does not match, fails, and changes nothing. */
        copy_file(ts_tls_path(key), "key.pem");
        copy_file(ts_tls_path(pem), "cert.pem");
        kill(r->pid, SIGHUP);
        r->reloads++;
        usleep(50 * 1000);
    }
    return NULL;
}

static void run_load(int target, SSL_CTX *tls, enum bench_mode mode, struct bench_result *res)
{
    struct bench_request mix[1];
    cr_assert_eq(bench_prepare(&mix[0], BENCH_HIT, 0), 0);
    char p[16], err[256];
    snprintf(p, sizeof p, "%d", target);
    struct bench_config c = {.host = "127.0.0.1", .port = p, .threads = 1, .connections = 8,
                             .mode = mode, .duration_s = 1.0, .pipeline = 1, .timeout_ms = 5000,
                             .mix = mix, .mix_len = 1, .tls = tls, .tls_name = "localhost"};
    cr_assert_eq(bench_run(&c, res, err, sizeof err), 0, "%s", err);
    bench_request_free(&mix[0]);
}

static uint64_t failures(const struct bench_result *res)
{
    uint64_t n = 0;
    for (int e = 0; e < BENCH_ERR_KINDS; e++)
        n += res->errors[e];
    return n;
}

Test(sighup, reloads_every_50_ms_under_load_in_clear_and_tls_fail_no_request,
     .fini = remove_dir, .timeout = 120)
{
    int clear, tls, err_fd;
    struct reloader r = {0};
    r.pid = spawn_with_files(&clear, &tls, &err_fd);
    atomic_init(&r.over, false);
    pthread_create(&r.thread, NULL, reload_all_along, &r);
    SSL_CTX *ctx = ts_tls_client(NULL);
    struct bench_result res[4];
    run_load(clear, NULL, BENCH_KEEPALIVE, &res[0]);
    run_load(tls, ctx, BENCH_KEEPALIVE, &res[1]);
    run_load(tls, ctx, BENCH_PER_CONN, &res[2]);
    run_load(clear, NULL, BENCH_PER_CONN, &res[3]);
    atomic_store(&r.over, true);
    pthread_join(r.thread, NULL);
    static const char *const rows[] = {"clear keep-alive", "TLS keep-alive", "TLS per-conn",
                                       "clear per-conn"};
    for (int i = 0; i < 4; i++) {
        fprintf(stderr, "%d reloads under load, %s: %llu answers, %llu failed\n", r.reloads,
                rows[i], (unsigned long long)res[i].completed,
                (unsigned long long)failures(&res[i]));
        cr_assert_gt(res[i].completed, 0, "%s", rows[i]);
        cr_assert_eq(failures(&res[i]), 0, "%s: no request fails", rows[i]);
    }
    cr_assert_gt(res[2].tls_full + res[2].tls_resumed, 10, "handshakes met the reloads");
    cr_assert_geq(r.reloads, 40);
    SSL_CTX_free(ctx);
    kill(r.pid, SIGTERM);
    cr_assert_eq(ts_wait_exit(r.pid, 15000), 0);
    close(err_fd);
}
