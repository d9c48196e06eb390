/* Girder epmd error texts, generated from the one EPMD_ERRNO_MAP table in the public header. */
#include "girder/epmd.h"

const char *epmd_strerror(int err)
{
    if (err == 0) return "success";
    switch (-err) {
#define XX(code, text) \
    case code:         \
        return text;
        EPMD_ERRNO_MAP(XX)
#undef XX
    default:
        return "unknown error";
    }
}

const char *epmd_err_name(int err)
{
    if (err == 0) return "OK";
    switch (-err) {
#define XX(code, _) \
    case code:      \
        return #code;
        EPMD_ERRNO_MAP(XX)
#undef XX
    default:
        return "EUNKNOWN";
    }
}
