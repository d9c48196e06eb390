/* Error names and messages for libnode's negative error codes. */
#include "nd_int.h"

const char *nd_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
#define ND__STR(name, msg) \
    case ND_##name:        \
        return msg;
        ND_ERRNO_MAP(ND__STR)
#undef ND__STR
    }
    return "unknown error";
}

const char *nd_err_name(int err)
{
    switch (err) {
    case 0:
        return "OK";
#define ND__NAME(name, msg) \
    case ND_##name:         \
        return "ND_" #name;
        ND_ERRNO_MAP(ND__NAME)
#undef ND__NAME
    }
    return "ND_EUNKNOWN";
}
