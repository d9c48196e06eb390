/* girder trace: a node's scheduler timeline as Perfetto JSON and a self-contained HTML page. */
#include "obs.h"

int cli_cmd_trace(const cli_opts *o)
{
    (void)o;
    cli_err("trace: not written yet");
    return CLI_FAIL;
}
