/* `girder cluster up|status|down`: a local cluster of girderd and erl nodes. */
#include "session.h"

int cli_cmd_cluster_up(const cli_opts *o)
{
    (void)o;
    return CLI_FAIL;
}
int cli_cmd_cluster_status(const cli_opts *o)
{
    (void)o;
    return CLI_FAIL;
}
int cli_cmd_cluster_down(const cli_opts *o)
{
    (void)o;
    return CLI_FAIL;
}
