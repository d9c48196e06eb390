/* daemon-ctl: test helper — one control-socket call, or a NOTIFY_SOCKET listener — for the shell
 * tests. */
#include "ctlclient.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int usage(void)
{
    fprintf(stderr, "usage: daemon-ctl call SOCKET METHOD [s:TEXT|i:N|e:TEXT|b:BOOL|opt:K=V ...]\n"
                    "       daemon-ctl notify-recv PATH SECONDS COUNT\n");
    return 2;
}

/* Prints "ok <result>" (exit 0) or "error <code> <message>" (exit 1). */
static int call(int argc, char **argv)
{
    if (argc < 4) return usage();
    ctl_conn c;
    int rc = ctl_connect(&c, argv[2]);
    if (rc) {
        fprintf(stderr, "daemon-ctl: %s: %s\n", argv[2], strerror(-rc));
        return 2;
    }
    msgpack_unpacked u;
    rc = ctl_call(&c, 1, argv[3], argc - 4, argv + 4, &u, 60000);
    if (rc <= 0) {
        fprintf(stderr, "daemon-ctl: %s\n", rc == 0 ? "connection closed" : "no answer");
        ctl_close(&c);
        return 2;
    }
    const msgpack_object *err = &u.data.via.array.ptr[2], *res = &u.data.via.array.ptr[3];
    int status = 0;
    if (err->type == MSGPACK_OBJECT_NIL) {
        fputs("ok ", stdout);
        ctl_print(stdout, res);
    } else {
        fputs("error ", stdout);
        if (err->type == MSGPACK_OBJECT_ARRAY && err->via.array.size == 2) {
            ctl_print(stdout, &err->via.array.ptr[0]);
            fputc(' ', stdout);
            ctl_print(stdout, &err->via.array.ptr[1]);
        } else {
            ctl_print(stdout, err);
        }
        status = 1;
    }
    fputc('\n', stdout);
    msgpack_unpacked_destroy(&u);
    ctl_close(&c);
    return status;
}

/* Binds a datagram socket at PATH and prints each datagram (one a line) until COUNT arrived
** or SECONDS passed; exit 0 when COUNT arrived. */
static int notify_recv(int argc, char **argv)
{
    if (argc != 5) return usage();
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(argv[2]) >= sizeof sa.sun_path) return usage();
    strcpy(sa.sun_path, argv[2]);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    unlink(argv[2]);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        fprintf(stderr, "daemon-ctl: bind %s: %s\n", argv[2], strerror(errno));
        return 2;
    }
    int left_ms = atoi(argv[3]) * 1000, want = atoi(argv[4]), got = 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    while (got < want && left_ms > 0) {
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, 100) == 1) {
            char buf[4096];
            ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
            if (n > 0) {
                buf[n] = 0;
                for (char *p = buf; *p; p++)
                    if (*p == '\n') *p = ' ';
                printf("%s\n", buf);
                got++;
            }
        }
        left_ms -= 100;
    }
    close(fd);
    unlink(argv[2]);
    return got >= want ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "call")) return call(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "notify-recv")) return notify_recv(argc, argv);
    return usage();
}
