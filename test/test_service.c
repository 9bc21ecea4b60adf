/*
 * test_service.c - systemd's notify protocol, with this test playing the
 * service manager: a Unix datagram socket given to the server as
 * NOTIFY_SOCKET, and WATCHDOG_USEC asking for watchdog pings. READY=1
 * must come once the listener accepts, STATUS= with the live counts,
 * WATCHDOG=1 at half the asked interval, STOPPING=1 at SIGTERM.
 */
#include "net.h"
#include "support.h"

#include <criterion/criterion.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* One datagram within timeout_ms, into msg; false if none came. */
static bool receive(int fd, char *msg, size_t cap, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) <= 0)
        return false;
    ssize_t n = recv(fd, msg, cap - 1, 0);
    if (n < 0)
        return false;
    msg[n] = '\0';
    return true;
}

Test(service, notify_ready_status_watchdog_and_stopping, .timeout = 60)
{
    char path[108];
    snprintf(path, sizeof path, "/tmp/enchufe-notify-%d.sock", (int)getpid());
    unlink(path);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    strcpy(un.sun_path, path);
    cr_assert_eq(bind(fd, (struct sockaddr *)&un, sizeof un), 0);
    setenv("NOTIFY_SOCKET", path, 1);
    setenv("WATCHDOG_USEC", "1000000", 1); /* pings every 500 ms */
    unsetenv("WATCHDOG_PID");
    int port, err_fd;
    pid_t pid = ts_spawn_server(ts_bin_dir(), NULL, &port, &err_fd);
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    cr_assert_gt(pid, 0);

    char msg[512];
    bool ready = false, status = false;
    for (int i = 0; i < 20 && !ready; i++) {
        cr_assert(receive(fd, msg, sizeof msg, 5000), "a notification arrives");
        ready = strstr(msg, "READY=1") != NULL;
    }
    cr_assert(ready, "READY=1 is sent");
    /* Once READY=1 has come, the listener accepts and serves. */
    int c = ts_connect(port);
    cr_assert_geq(c, 0, "the listener accepts when READY=1 has come");
    struct client_response resp;
    cr_assert_eq(ts_search(c, "ring", &resp), 0);
    client_response_free(&resp);
    close(c);

    /* Three seconds of pings: about six, and never a gap as long as the
     * watchdog interval (1 s), which is all systemd asks. (The half
     * interval between pings leaves room for a busy machine.) */
    int pings = 0;
    long long start = ts_now_ms(), last = start, widest = 0;
    while (ts_now_ms() - start < 3000 && receive(fd, msg, sizeof msg, 2000)) {
        if (strstr(msg, "WATCHDOG=1")) {
            long long now = ts_now_ms();
            widest = now - last > widest ? now - last : widest;
            last = now;
            pings++;
        }
        status = status || strstr(msg, "STATUS=") != NULL;
    }
    fprintf(stderr, "notify: %d WATCHDOG=1 in 3 s (a 1 s watchdog: pinged at half), widest "
                    "gap %lld ms\n", pings, widest);
    cr_assert_geq(pings, 4, "pings at half the watchdog interval (%d in 3 s)", pings);
    cr_assert_lt(widest, 1000, "never a gap the watchdog would punish (%lld ms)", widest);
    cr_assert(status, "STATUS= lines with the live counts");

    kill(pid, SIGTERM);
    bool stopping = false;
    for (int i = 0; i < 50 && !stopping && receive(fd, msg, sizeof msg, 5000); i++)
        stopping = strstr(msg, "STOPPING=1") != NULL;
    cr_assert(stopping, "STOPPING=1 at SIGTERM");
    cr_assert_eq(ts_wait_exit(pid, 15000), 0);
    close(err_fd);
    close(fd);
    unlink(path);
}
