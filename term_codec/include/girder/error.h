/* Girder's one error space: every code any Girder library returns, with its name and text. */
#ifndef GIRDER_ERROR_H
#define GIRDER_ERROR_H

#include <errno.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
** Every fallible call of every Girder library returns 0 or one of these negative codes.
** Where an errno means the same thing the code is that errno, negated (libuv's rule), so a
** negative errno from the system or from libuv is a Girder code too. Codes without an errno
** counterpart count down from -1000. No two codes are equal; new codes go at the end of their
** group with the next free value, and a value is never reused.
**
** XX(NAME, value, "message"): the enum constant is GIRDER_<NAME>.
*/
#define GIRDER_ERRNO_MAP(XX)                                                      \
    /* errno counterparts */                                                      \
    XX(ENOMEM, -ENOMEM, "out of memory")                                          \
    XX(EINVAL, -EINVAL, "invalid argument")                                       \
    XX(ETIMEDOUT, -ETIMEDOUT, "timed out")                                        \
    XX(ENOENT, -ENOENT, "no such entry (name not found)")                         \
    XX(EEXIST, -EEXIST, "already exists (name taken or already done)")            \
    XX(EPERM, -EPERM, "operation refused")                                        \
    XX(ECONNREFUSED, -ECONNREFUSED, "connection refused")                         \
    XX(ECONNRESET, -ECONNRESET, "connection closed by the peer")                  \
    XX(EPROTO, -EPROTO, "protocol error (malformed data from the peer)")          \
    XX(ENAMETOOLONG, -ENAMETOOLONG, "name too long")                              \
    XX(EMSGSIZE, -EMSGSIZE, "message or request too large")                       \
    XX(EHOSTUNREACH, -EHOSTUNREACH, "host unreachable or unknown")                \
    XX(EADDRINUSE, -EADDRINUSE, "address already in use")                         \
    XX(EIO, -EIO, "input/output error")                                           \
    XX(ERANGE, -ERANGE, "value out of range")                                     \
    XX(ENOTSUP, -ENOTSUP, "not supported")                                        \
    XX(EAGAIN, -EAGAIN, "resource temporarily unavailable")                       \
    XX(EINTR, -EINTR, "interrupted by a signal")                                  \
    XX(EPIPE, -EPIPE, "broken pipe (the peer has gone)")                          \
    XX(EACCES, -EACCES, "permission denied")                                      \
    XX(EBADF, -EBADF, "bad file descriptor")                                      \
    XX(EMFILE, -EMFILE, "too many open files in this process")                    \
    XX(ENFILE, -ENFILE, "too many open files in the system")                      \
    XX(ENOSPC, -ENOSPC, "no space left")                                          \
    XX(ENOTCONN, -ENOTCONN, "socket not connected")                               \
    XX(ECONNABORTED, -ECONNABORTED, "connection aborted")                         \
    XX(EADDRNOTAVAIL, -EADDRNOTAVAIL, "address not available on this host")       \
    XX(ENETUNREACH, -ENETUNREACH, "network unreachable")                          \
    XX(ENETDOWN, -ENETDOWN, "network is down")                                    \
    XX(EAFNOSUPPORT, -EAFNOSUPPORT, "address family not supported")               \
    XX(ENOBUFS, -ENOBUFS, "no buffer space available")                            \
    XX(ECANCELED, -ECANCELED, "cancelled")                                        \
    XX(EALREADY, -EALREADY, "operation already in progress")                      \
    XX(EINPROGRESS, -EINPROGRESS, "operation in progress")                        \
    XX(EBUSY, -EBUSY, "resource busy")                                            \
    /* terms: the external term format, text syntax and patterns */               \
    XX(ETRUNC, -1000, "input ends too early")                                     \
    XX(EVERSION, -1001, "missing or wrong version byte (131)")                    \
    XX(ETAG, -1002, "unknown or unsupported tag")                                 \
    XX(EATOM, -1003, "invalid atom (too long, bad UTF-8 or bad length)")          \
    XX(EATOMLIMIT, -1004, "atom table full or new-atom budget exceeded")          \
    XX(EUTF8, -1005, "invalid UTF-8")                                             \
    XX(EBIG, -1006, "integer too large")                                          \
    XX(EFLOAT, -1007, "invalid float (NaN, infinity or unparsable)")              \
    XX(ESIZE, -1008, "size field inconsistent or too large")                      \
    XX(EZLIB, -1009, "compressed data invalid or size mismatch")                  \
    XX(EBITS, -1010, "invalid bit count")                                         \
    XX(EDUPKEY, -1011, "duplicate map key")                                       \
    XX(ECACHE, -1012, "atom cache reference without cache entry")                 \
    XX(ETRAILING, -1013, "trailing bytes after the term")                         \
    XX(ESYNTAX, -1014, "syntax error")                                            \
    XX(EDEPTH, -1015, "nesting too deep")                                         \
    XX(ETYPE, -1016, "wrong term type")                                           \
    /* processes */                                                               \
    XX(ENOPROC, -1017, "no such process")                                         \
    XX(ENOTPROC, -1018, "must be called from inside a process")                   \
    XX(ENOTREG, -1019, "name not registered")                                     \
    XX(ELIMIT, -1020, "process table full")                                       \
    XX(ESTATE, -1021, "not started, or already started")                          \
    XX(ENOTIMER, -1022, "no such timer (fired or cancelled)")                     \
    XX(EEXIT, -1023, "the called process exited")                                 \
    XX(ENODIST, -1024, "remote target but no distribution hook installed")        \
    XX(ENOCHILD, -1025, "no such child")                                          \
    XX(ERUNNING, -1026, "child is running")                                       \
    XX(ESTART, -1027, "start function failed")                                    \
    /* distribution */                                                            \
    XX(ENAME, -1028, "invalid node name")                                         \
    XX(ECOOKIE, -1029, "no cookie given and ~/.erlang.cookie unreadable")         \
    XX(ELISTEN, -1030, "cannot listen for distribution connections")              \
    XX(EEPMD, -1031, "registration with the port mapper failed")                  \
    XX(ENOCONN, -1032, "node not reachable (no port mapper entry, refused, ...)") \
    XX(EAUTH, -1033, "the peer refused our cookie (the cookies differ)")          \
    XX(EHEAP, -1034, "the decoded term would exceed its memory limit")            \
    XX(ECOMPRESSED, -1035, "a compressed term where none is accepted")            \
    XX(ETLS, -1036, "TLS failure (certificate, handshake or record)")             \
    XX(ETLSCONF, -1037, "TLS configuration refused (file, option or key)")

enum {
    GIRDER_OK = 0,
#define GIRDER__ERR_ENUM(name, value, msg) GIRDER_##name = (value),
    GIRDER_ERRNO_MAP(GIRDER__ERR_ENUM)
#undef GIRDER__ERR_ENUM
};

/*
** The text of a code ("timed out"); "success" for 0, "unknown error" for a value not in the
** table. Never NULL; the string is static. Inline so that every library (and girder-epmd, which
** links nothing else of Girder) answers for every code without linking another library.
*/
static inline const char *girder_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
#define GIRDER__ERR_TEXT(name, value, msg) \
    case GIRDER_##name:                    \
        return msg;
        GIRDER_ERRNO_MAP(GIRDER__ERR_TEXT)
#undef GIRDER__ERR_TEXT
    }
    return "unknown error";
}

/* The symbolic name of a code ("ETIMEDOUT"); "OK" for 0, "EUNKNOWN" otherwise. Never NULL. */
static inline const char *girder_err_name(int err)
{
    switch (err) {
    case 0:
        return "OK";
#define GIRDER__ERR_NAME(name, value, msg) \
    case GIRDER_##name:                    \
        return #name;
        GIRDER_ERRNO_MAP(GIRDER__ERR_NAME)
#undef GIRDER__ERR_NAME
    }
    return "EUNKNOWN";
}

#ifdef __cplusplus
}
#endif
#endif
