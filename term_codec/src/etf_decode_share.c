/* The decoder's pass once more, for etf_decode_opts.share (see the top of etf_decode.c). */
#define ETF_DECODE_SHARE 1
#include "etf_decode.c"
