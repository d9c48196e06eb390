/* epmd-probe: command-line front end to the Girder epmd client, for integration tests. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "girder/epmd.h"

#define T_MS 5000

static int usage(void)
{
    fprintf(stderr, "usage: epmd-probe EPMD_PORT lookup NAME\n"
                    "       epmd-probe EPMD_PORT names\n"
                    "       epmd-probe EPMD_PORT register NAME NODE_PORT SECONDS\n");
    return 64;
}

int main(int argc, char **argv)
{
    if (argc < 3) return usage();
    uint16_t port = (uint16_t)atoi(argv[1]);
    const char *cmd = argv[2];
    int r;
    if (!strcmp(cmd, "lookup") && argc == 4) {
        epmd_node_info n;
        r = epmd_port_please(NULL, port, argv[3], T_MS, &n);
        if (r == EPMD_ENOENT) {
            printf("not found\n");
            return 2;
        }
        if (r) goto fail;
        printf("port=%u type=%u proto=%u high=%u low=%u name=%s extra_len=%zu\n", n.port,
               n.node_type, n.protocol, n.highest_version, n.lowest_version, n.name, n.extra_len);
        return 0;
    }
    if (!strcmp(cmd, "names") && argc == 3) {
        epmd_name_list l;
        if ((r = epmd_names(NULL, port, T_MS, &l))) goto fail;
        printf("epmd_port=%u count=%zu\n", l.epmd_port, l.count);
        for (size_t i = 0; i < l.count; i++)
            printf("%s %u\n", l.entries[i].name, l.entries[i].port);
        epmd_names_free(&l);
        return 0;
    }
    if (!strcmp(cmd, "register") && argc == 6) {
        epmd_node_info n;
        if ((r = epmd_node_info_init(&n, argv[3], (uint16_t)atoi(argv[4])))) goto fail;
        epmd_registration reg;
        if ((r = epmd_register(NULL, port, &n, T_MS, &reg))) goto fail;
        printf("creation=%u extended=%d\n", reg.creation, reg.extended);
        fflush(stdout);
        /* Hold the registration; stop early if epmd drops it. */
        for (int i = 0; i < atoi(argv[5]) * 10; i++) {
            if ((r = epmd_registration_check(&reg))) {
                printf("registration lost: %s\n", epmd_strerror(r));
                return 3;
            }
            usleep(100000);
        }
        epmd_unregister(&reg);
        return 0;
    }
    return usage();
fail:
    fprintf(stderr, "epmd-probe: %s: %s (%s)\n", cmd, epmd_strerror(r), epmd_err_name(r));
    return 1;
}
