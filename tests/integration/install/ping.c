/* A program outside Girder's tree: starts a hidden node and pings a node (exit 0 on pong). */
#include <girder/girder.h>

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: ping NAME COOKIE NODE   (port mapper: ERL_EPMD_PORT)\n");
        return 2;
    }
    /* The library found at run time must be the one compiled against. */
    printf("girder %s, headers %s\n", girder_version(), GIRDER_VERSION_STRING);
    if (strcmp(girder_version(), GIRDER_VERSION_STRING) != 0) return 2;
    int rc = nd_init(NULL);
    if (rc != 0) {
        fprintf(stderr, "nd_init: %s (%s)\n", girder_strerror(rc), girder_err_name(rc));
        return 2;
    }
    dist_config cfg = {
        .name = argv[1], .cookie = argv[2], .hidden = true, .listen_addr = "127.0.0.1"};
    rc = dist_start(&cfg);
    if (rc != 0) {
        fprintf(stderr, "dist_start: %s (%s)\n", girder_strerror(rc), girder_err_name(rc));
        nd_shutdown(5000);
        return 2;
    }
    rc = dist_ping(term_atom(argv[3]), 10000);
    printf("%s\n", rc == 0 ? "pong" : "pang");
    if (rc != 0) fprintf(stderr, "dist_ping: %s (%s)\n", girder_strerror(rc), girder_err_name(rc));
    dist_stop(5000);
    nd_shutdown(5000);
    return rc == 0 ? 0 : 1;
}
