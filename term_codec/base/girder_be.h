/* Big-endian loads and stores: the byte order of every Erlang wire format. Internal, header-only.
 */
#ifndef GIRDER_BE_H
#define GIRDER_BE_H

#include <stdint.h>
#include <string.h>

/*
** p need not be aligned. memcpy plus a byte swap compiles to one load or store and one bswap
** (movbe) on little-endian machines; on big-endian ones the swap disappears.
*/
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define GIRDER__BSWAP16(v) (v)
#define GIRDER__BSWAP32(v) (v)
#define GIRDER__BSWAP64(v) (v)
#else
#define GIRDER__BSWAP16(v) __builtin_bswap16(v)
#define GIRDER__BSWAP32(v) __builtin_bswap32(v)
#define GIRDER__BSWAP64(v) __builtin_bswap64(v)
#endif

static inline uint16_t girder__get16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return GIRDER__BSWAP16(v);
}
static inline uint32_t girder__get32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return GIRDER__BSWAP32(v);
}
static inline uint64_t girder__get64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return GIRDER__BSWAP64(v);
}
static inline void girder__put16(uint8_t *p, uint16_t v)
{
    v = GIRDER__BSWAP16(v);
    memcpy(p, &v, 2);
}
static inline void girder__put32(uint8_t *p, uint32_t v)
{
    v = GIRDER__BSWAP32(v);
    memcpy(p, &v, 4);
}
static inline void girder__put64(uint8_t *p, uint64_t v)
{
    v = GIRDER__BSWAP64(v);
    memcpy(p, &v, 8);
}

#endif
