/* libFuzzer target for the distribution handshake machine, in both roles, fed hostile bytes. */
#include "dist_int.h"

#include <stdlib.h>
#include <string.h>

static uint32_t fixed_rand(void *ud)
{
    (void)ud;
    return 0x12345678u;
}

static hs_status answer;
static hs_status decide(void *ud, dist_hs *hs)
{
    (void)ud;
    (void)hs;
    return answer;
}

/* First byte: role, status, dynamic name (0x08, initiator); the rest is what the peer sends, cut
 * into reads of varying size. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static dist_hs hs;
    if (size < 2) return 0;
    uint8_t ctl = data[0];
    data++;
    size--;
    hs_role role = (ctl & 1) ? HS_INITIATOR : HS_ACCEPTOR;
    if (role == HS_INITIATOR && (ctl & 0x08)) /* a dynamic name request: only the host */
        dist__hs_init(&hs, role, "host", DIST_OUR_FLAGS | DFLAG_NAME_ME, 0, "cookie");
    else
        dist__hs_init(&hs, role, "girder@host", DIST_OUR_FLAGS | DFLAG_PUBLISHED, 42, "cookie");
    hs.rand32 = fixed_rand;
    hs.decide = decide;
    answer = (hs_status)(1 + ((ctl >> 1) % 5));
    if (role == HS_INITIATOR)
        dist__hs_start(&hs, (ctl & 0x10) ? "peer@host" : NULL, (ctl & 0x20) ? 5 : 6);
    size_t pos = 0, chunk = 1 + (ctl >> 6) * 7;
    int rc = HS_CONT;
    while (pos < size && rc == HS_CONT) {
        size_t n = size - pos < chunk ? size - pos : chunk, used = 0;
        rc = dist__hs_feed(&hs, data + pos, n, &used);
        if (used > n) abort();
        if (rc == HS_CONT && used != n) abort(); /* a running handshake takes everything */
        pos += used;
        if (hs.out_len > sizeof hs.out) abort();
        hs.out_len = 0;
    }
    if (rc == HS_DONE && !(hs.flags & DFLAG_UTF8_ATOMS)) abort(); /* mandatory flags enforced */
    return 0;
}
