/*
 * test_address.c - every address family end to end: IPv6 on ::1 (bare
 * and bracketed), Unix domain sockets (fresh, stale and live socket
 * files), and the one-line messages for the errors people meet.
 */
#include "client.h"
#include "net.h"
#include "server.h"
#include "support.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>


static void search_over(const struct net_endpoint *ep)
{
    char err[512], expected[256];
    int fd = net_connect_endpoint(ep, 5000, err, sizeof err);
    cr_assert_geq(fd, 0, "%s", err);
    struct client_response resp;
    cr_assert_eq(ts_search(fd, "ring", &resp), 0);
    ts_expected_search("ring", expected, sizeof expected);
    cr_assert(ts_content_is(&resp, expected));
    client_response_free(&resp);
    close(fd);
}

static struct server *srv;
static struct server_config cfg;

static void start_at(const char *host, const char *unix_path)
{
    json_object_seed(0);
    server_config_defaults(&cfg);
    cfg.host = host;
    cfg.port = "0";
    cfg.unix_path = unix_path;
    char err[512];
    cr_assert_eq((srv = server_start(&cfg, err, sizeof err)) != NULL, 1, "%s", err);
}

Test(address, ipv6_loopback_bare_and_bracketed, .timeout = 30)
{
    start_at("::1", NULL);
    char addr[128], port[16];
    cr_assert_eq(server_address(srv, 0, addr, sizeof addr), 0);
    snprintf(port, sizeof port, "%d", server_port(srv));
    char want[64];
    snprintf(want, sizeof want, "[::1]:%s", port);
    cr_assert_str_eq(addr, want, "IPv6 addresses are shown in brackets");
    search_over(&(struct net_endpoint){.host = "::1", .port = port});
    search_over(&(struct net_endpoint){.host = "[::1]", .port = port});
    server_stop(srv);
}

Test(address, ipv6_from_the_cli, .timeout = 30)
{
    int p, err_fd;
    const char *args[] = {"--host", "[::1]", NULL};
    pid_t pid = ts_spawn_server(ts_bin_dir(), args, &p, &err_fd);
    cr_assert_gt(pid, 0, "the server listens on a bracketed IPv6 literal");
    char out[1024];
    cr_assert_eq(ts_run(out, sizeof out, "%s/enchufe-cli --host '[::1]' --port %d search morpheus",
                     ts_bin_dir(), p),
                 0, "%s", out);
    cr_assert(strstr(out, "Got result: Follow the white rabbit."), "%s", out);
    kill(pid, SIGTERM);
    cr_assert_eq(ts_wait_exit(pid, 10000), 0);
    close(err_fd);
}

static void socket_path(char *out, size_t cap)
{
    snprintf(out, cap, "/tmp/enchufe-test-%d.sock", (int)getpid());
    unlink(out);
}

Test(address, unix_socket_serves_and_is_removed_at_stop, .timeout = 30)
{
    char path[108];
    socket_path(path, sizeof path);
    start_at("127.0.0.1", path);
    char addr[160];
    server_address(srv, 0, addr, sizeof addr);
    cr_assert(strstr(addr, "unix:") == addr, "shown as unix:PATH, got %s", addr);
    search_over(&(struct net_endpoint){.unix_path = path});
    server_stop(srv);
    cr_assert_neq(access(path, F_OK), 0, "the socket file is removed at the stop");
}

Test(address, stale_unix_socket_file_is_replaced, .timeout = 30)
{
    char path[108];
    socket_path(path, sizeof path);
    /* A socket file with nobody behind it, as a crashed server leaves. */
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    strcpy(un.sun_path, path);
    cr_assert_eq(bind(fd, (struct sockaddr *)&un, sizeof un), 0);
    close(fd);
    cr_assert_eq(access(path, F_OK), 0);
    start_at("127.0.0.1", path);
    search_over(&(struct net_endpoint){.unix_path = path});
    server_stop(srv);
}

Test(address, live_unix_socket_is_not_clobbered, .timeout = 30)
{
    char path[108], out[1024];
    socket_path(path, sizeof path);
    start_at("127.0.0.1", path);
    cr_assert_eq(ts_run(out, sizeof out, "%s/enchufe-server --unix %s", ts_bin_dir(), path), 1);
    cr_assert(strstr(out, "a server is already listening there"), "%s", out);
    search_over(&(struct net_endpoint){.unix_path = path}); /* the first still serves */
    server_stop(srv);
}

Test(address, a_file_that_is_not_a_socket_is_left_alone, .timeout = 30)
{
    char path[108], out[1024];
    socket_path(path, sizeof path);
    FILE *f = fopen(path, "w");
    fputs("precious", f);
    fclose(f);
    cr_assert_eq(ts_run(out, sizeof out, "%s/enchufe-server --unix %s", ts_bin_dir(), path), 1);
    cr_assert(strstr(out, "not a socket"), "%s", out);
    cr_assert_eq(access(path, F_OK), 0, "the file is still there");
    unlink(path);
}

/* Under umask 000 a bare bind makes the file 0777: any local user could
 * connect. The mode is set before the socket accepts anything. */
Test(address, unix_socket_is_owner_and_group_only_whatever_the_umask, .timeout = 30)
{
    char path[108];
    socket_path(path, sizeof path);
    umask(0);
    start_at("127.0.0.1", path);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0660, "default mode 0660, got %03o", st.st_mode & 0777);
    server_stop(srv);
}

Test(address, unix_mode_option_sets_the_socket_permissions, .timeout = 30)
{
    char path[108], mode[16];
    socket_path(path, sizeof path);
    int port, err_fd;
    umask(0);
    const char *args[] = {"--unix", path, "--unix-mode", "0600", NULL};
    /* ts_spawn_server passes --port 0 too; --unix takes precedence. */
    pid_t pid = ts_spawn_server(ts_bin_dir(), args, &port, &err_fd);
    cr_assert_gt(pid, 0);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    snprintf(mode, sizeof mode, "%03o", st.st_mode & 0777);
    cr_assert_str_eq(mode, "600");
    search_over(&(struct net_endpoint){.unix_path = path}); /* the owner still gets in */
    kill(pid, SIGTERM);
    cr_assert_eq(ts_wait_exit(pid, 10000), 0);
    close(err_fd);
    char out[512];
    cr_assert_eq(ts_run(out, sizeof out, "%s/enchufe-server --unix %s --unix-mode 999",
                        ts_bin_dir(), path), 2, "a bad mode is a usage error: %s", out);
    cr_assert(strstr(out, "octal"), "%s", out);
}

/* Server A's socket file was removed and server B made a new one at the
 * same path: stopping A must leave B's in place. */
Test(address, a_stop_removes_only_the_socket_file_it_made, .timeout = 30)
{
    char path[108];
    socket_path(path, sizeof path);
    start_at("127.0.0.1", path);
    cr_assert_eq(unlink(path), 0);
    struct server *b;
    struct server_config bcfg = cfg;
    char err[512];
    cr_assert_eq((b = server_start(&bcfg, err, sizeof err)) != NULL, 1, "%s", err);
    server_stop(srv);
    cr_assert_eq(access(path, F_OK), 0, "B's socket file is still there");
    search_over(&(struct net_endpoint){.unix_path = path});
    server_stop(b);
    cr_assert_neq(access(path, F_OK), 0, "B removes its own at its stop");
}

Test(address, cli_over_unix_socket_and_multiconn, .timeout = 30)
{
    char path[108], out[4096];
    socket_path(path, sizeof path);
    json_object_seed(0);
    server_config_defaults(&cfg);
    cfg.unix_path = path;
    cfg.mode = SERVER_MODE_ECHO;
    char err[256];
    cr_assert_eq((srv = server_start(&cfg, err, sizeof err)) != NULL, 1, "%s", err);
    cr_assert_eq(ts_run(out, sizeof out, "%s/enchufe-cli --unix %s multiconn 3", ts_bin_dir(), path),
                 0, "%s", out);
    cr_assert(strstr(out, "3 of 3 connections got every byte back"), "%s", out);
    server_stop(srv);
}

Test(address, errors_name_the_address_and_the_likely_cause, .timeout = 30)
{
    char out[1024];
    const char *bin = ts_bin_dir();
    cr_assert_eq(ts_run(out, sizeof out, "%s/enchufe-cli --unix /tmp/enchufe-nothing-here.sock "
                                      "search x", bin),
                 1);
    cr_assert(strstr(out, "unix:/tmp/enchufe-nothing-here.sock") &&
                  strstr(out, "No such file or directory"),
              "%s", out);
    cr_assert(strstr(out, "is the server running?"), "%s", out);
    /* (Name resolution failures are not tested here: looking up an
     * unknown name would query the machine's DNS server, off loopback.) */
}
