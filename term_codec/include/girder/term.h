/* Girder terms: immutable Erlang values, the external term format, text syntax and patterns. */
#ifndef GIRDER_TERM_H
#define GIRDER_TERM_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include <girder/error.h>
#include <girder/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
** OWNERSHIP (the whole of it):
** 1. A term_t you get from a function whose name contains new/make/dup/decode/parse/put
**    (or that says "returns a reference") is a reference you own; drop it with term_free().
** 2. Constructors that take terms as arguments (term_tuple(), term_cons(), ...) consume the
**    references you pass, even when they fail; pass term_dup(t) to keep your own.
** 3. Accessors (term_tuple_elem(), term_hd(), term_map_get(), match bindings, ...) return
**    borrowed terms, valid as long as the term you got them from is alive; term_dup() one to
**    keep it longer.
** 4. Terms never change after construction, so any term may be read, dup'ed and freed from
**    any thread at the same time; reference counts are atomic.
** 5. Immediates (small integers, interned atoms, []) need no freeing and term_free() on them is
**    a no-op, but a foreign atom (term_atom_is_interned() false) is counted like any box.
*/

/* A term is one machine word: an immediate or a pointer to a reference-counted box. */
typedef uint64_t term_t;

/* ---------------------------------------------------------------- error codes */

/* Every fallible call returns 0 or a negative code of Girder's one error space (error.h).
** The TERM_ names are the codes this library returns, kept as aliases for existing callers. */
enum {
    TERM_OK = GIRDER_OK,
    TERM_ENOMEM = GIRDER_ENOMEM,
    TERM_EINVAL = GIRDER_EINVAL,
    TERM_ETRUNC = GIRDER_ETRUNC,
    TERM_EVERSION = GIRDER_EVERSION,
    TERM_ETAG = GIRDER_ETAG,
    TERM_EATOM = GIRDER_EATOM,
    TERM_EATOMLIMIT = GIRDER_EATOMLIMIT,
    TERM_EUTF8 = GIRDER_EUTF8,
    TERM_EBIG = GIRDER_EBIG,
    TERM_EFLOAT = GIRDER_EFLOAT,
    TERM_ESIZE = GIRDER_ESIZE,
    TERM_EZLIB = GIRDER_EZLIB,
    TERM_EBITS = GIRDER_EBITS,
    TERM_EDUPKEY = GIRDER_EDUPKEY,
    TERM_ECACHE = GIRDER_ECACHE,
    TERM_ETRAILING = GIRDER_ETRAILING,
    TERM_ESYNTAX = GIRDER_ESYNTAX,
    TERM_ENOTSUP = GIRDER_ENOTSUP,
    TERM_EDEPTH = GIRDER_EDEPTH,
    TERM_ETYPE = GIRDER_ETYPE,
    TERM_ERANGE = GIRDER_ERANGE,
};

/* Aliases of girder_strerror() and girder_err_name(), which know every Girder code. */
static inline const char *term_strerror(int err)
{
    return girder_strerror(err);
}
static inline const char *term_err_name(int err)
{
    return girder_err_name(err);
}

/* --------------------------------------------------------------- allocation */

/* One hook through which every allocation of this library goes (tests fail the Nth).
** realloc semantics: (p, 0) frees; (NULL, n) allocates. Set before creating any term. */
typedef void *(*term_alloc_fn)(void *ud, void *p, size_t old, size_t n);
GIRDER_API void term_set_allocator(term_alloc_fn fn, void *ud);
/* With the default allocator, freed blocks of 32 KB to 1 MiB (large binaries, encode and
** reassembly buffers) are kept for reuse, at most 32 MiB in all. term_cache_release() gives
** them back to malloc; term_cache_release_idle() does so only if none was taken or kept since
** its previous call (true if it gave some back): libnode's watchdog calls it every second. */
GIRDER_API void term_cache_release(void);
GIRDER_API bool term_cache_release_idle(void);
/* Bytes so kept (usable sizes, as malloc reports them). */
GIRDER_API size_t term_cache_bytes(void);

/* ------------------------------------------------------------------- types */

typedef enum term_type {
    TERM_T_NONE = 0, /* TERM_NONE: "no term" (missing value, unbound variable, error) */
    TERM_T_INT,      /* small integer or bignum */
    TERM_T_FLOAT,
    TERM_T_ATOM,
    TERM_T_REF,
    TERM_T_FUN, /* local fun or export fun */
    TERM_T_PORT,
    TERM_T_PID,
    TERM_T_TUPLE,
    TERM_T_MAP,
    TERM_T_NIL,
    TERM_T_LIST,     /* a cons cell */
    TERM_T_BITSTRING /* binaries are bitstrings whose bit size is a multiple of 8 */
} term_type;

#define TERM_NONE ((term_t)0)
#define TERM_NIL  ((term_t)0x6)

GIRDER_API term_type term_typeof(term_t t);
GIRDER_API const char *term_type_name(term_type ty);

/* Small integers: 62-bit signed, stored in the word. term_int() boxes larger values. */
#define TERM_SMALL_MAX ((int64_t)((UINT64_C(1) << 61) - 1))
#define TERM_SMALL_MIN (-TERM_SMALL_MAX - 1)
static inline bool term_is_small(term_t t)
{
    return (t & 3) == 1;
}
static inline int64_t term_small_value(term_t t)
{
    return (int64_t)t >> 2;
}
/* The small integer v without a call or an allocation, for values known to fit (constants,
** counters): v must lie in TERM_SMALL_MIN..TERM_SMALL_MAX, else the result is TERM_NONE. The
** result needs no term_free(). term_int() takes any int64_t. */
static inline term_t term_small(int64_t v)
{
    if (v < TERM_SMALL_MIN || v > TERM_SMALL_MAX) return TERM_NONE;
    return ((uint64_t)v << 2) | 1;
}

/*
** Atoms come in two representations that are the same atom in every observable way (type,
** name, equality, order, hash, printing, encoding, pattern matching):
** - an interned atom is an immediate holding its index in the node-global atom table; it lives
**   forever and needs no reference counting;
** - a foreign atom is a reference-counted box holding the name, made by the decoder for atoms
**   from outside that may not be interned (etf_decode_opts.foreign_atoms); it is dup'ed and
**   freed like any boxed term, and dies with its last reference.
** Only identity differs: atoms compare with term_equal(), not ==, unless both are interned
** (term_atom_canonical() gives the interned one when it exists). A decoder never makes a
** foreign atom for a name interned before the decode, so == against atoms interned at start-up
** (constants) stays exact for decoded terms.
*/
#define TERM__BOX_FATOM 14 /* box type of a foreign atom, at byte 8 of its box (term_int.h) */
static inline bool term_atom_is_interned(term_t t)
{
    return (t & 7) == 2;
}
static inline bool term_is_atom(term_t t)
{
    return (t & 7) == 2 ||
           (t != 0 && (t & 7) == 0 && ((const uint8_t *)(uintptr_t)t)[8] == TERM__BOX_FATOM);
}
/* The table index of an interned atom; TERM_ATOM_NO_INDEX for a foreign atom (or a non-atom).
** Tables keyed by the index hold interned atoms only: canonicalise first. */
#define TERM_ATOM_NO_INDEX UINT32_MAX
static inline uint32_t term_atom_index(term_t t)
{
    return term_atom_is_interned(t) ? (uint32_t)(t >> 3) : TERM_ATOM_NO_INDEX;
}
static inline bool term_is_nil(term_t t)
{
    return t == TERM_NIL;
}
static inline bool term_is_boxed(term_t t)
{
    return t != 0 && (t & 7) == 0;
}

/* ---------------------------------------------------------------- reference counting */

/* Returns t with one more reference (t itself). */
GIRDER_API term_t term_dup(term_t t);
/* Drops one reference; frees the value when it was the last. Accepts TERM_NONE. */
GIRDER_API void term_free(term_t t);

/* ---------------------------------------------------------------- atoms */

/* Atom names are UTF-8, at most 255 characters. The table is global and thread-safe;
** interned atoms are never freed. term_atom() and term_atom_n() intern (for local code: the
** external quota does not apply). Returns TERM_NONE (and *err if given) on invalid name or
** full table. */
GIRDER_API term_t term_atom(const char *name);
GIRDER_API term_t term_atom_n(const char *name, size_t len, int *err);
/* Looks up an existing interned atom without creating it; TERM_NONE if absent. */
GIRDER_API term_t term_atom_existing(const char *name, size_t len);
/* Name of an atom (NUL-terminated; valid forever for an interned atom, as long as the atom for
** a foreign one); len may be NULL. NULL for a non-atom. */
GIRDER_API const char *term_atom_name(term_t atom, size_t *len);
/* Number of interned atoms. */
GIRDER_API size_t term_atom_count(void);
/* Upper bound on the atom table (default 1048576, as Erlang); set before use. */
GIRDER_API void term_atom_set_limit(size_t max_atoms);
GIRDER_API size_t term_atom_limit(void);

/* A new foreign atom named name, whether or not the name is interned (tests, and callers that
** must not grow the table). Returns a reference; TERM_NONE with *err on an invalid name. */
GIRDER_API term_t term_atom_foreign_new(const char *name, size_t len, int *err);
/* An atom for a name that came from outside (UTF-8): the interned atom if the name is interned;
** else, while *budget > 0 and the external quota and the table allow, a newly interned one
** (--*budget, *created true); else a new foreign atom. budget NULL interns nothing new. Returns
** a reference (term_free() it); TERM_NONE with *err on an invalid name or out of memory. */
GIRDER_API term_t term_atom_from_outside(const char *name, size_t len, size_t *budget,
                                         bool *created, int *err);
/* The interned atom with t's name if there is one by now, else a new reference to t (so the
** result is always term_free()d). t must be an atom, else TERM_NONE. Never interns. */
GIRDER_API term_t term_atom_canonical(term_t t);
/* The interned atom with t's name, for tables keyed by interned atoms: t itself when interned;
** for a foreign atom the interned one, interned now when make (a name local code is about to
** keep as a key, outside the external quota) else only looked up. TERM_NONE when there is none,
** t is not an atom, or the table is full. No reference to drop. */
GIRDER_API term_t term_atom_interned(term_t t, bool make);

/* The external quota: the most atoms decodes may intern in all, node-wide, so that local code
** and node names keep room in the table (default: no quota, SIZE_MAX). A decode that meets it
** makes foreign atoms or fails with EATOMLIMIT (etf_decode_opts.foreign_atoms). Lowering it
** below the count only stops further interning. */
GIRDER_API void term_atom_set_external_quota(size_t max_atoms);
GIRDER_API size_t term_atom_external_quota(void);
/* Atoms interned by decodes so far (counted against the quota). */
GIRDER_API size_t term_atom_external_count(void);

/* Common atoms, interned at first use of the library. */
extern GIRDER_API term_t TERM_ATOM_TRUE, TERM_ATOM_FALSE, TERM_ATOM_OK, TERM_ATOM_ERROR,
    TERM_ATOM_UNDEFINED;
extern GIRDER_API term_t TERM_ATOM_NONODE; /* 'nonode@nohost' */
GIRDER_API void term_init(void); /* idempotent; called by every constructor that needs it */

/* ---------------------------------------------------------------- numbers */

GIRDER_API term_t term_int(int64_t v); /* small or boxed; TERM_NONE on ENOMEM */
GIRDER_API term_t term_uint(uint64_t v);
/* Integer from sign and magnitude bytes in little-endian order (ETF bignum layout). */
GIRDER_API term_t term_big_from_bytes(bool negative, const uint8_t *le, size_t n);
GIRDER_API bool term_is_int(term_t t);
GIRDER_API bool term_is_bignum(term_t t);
/* Exact value if it fits, else ERANGE (ETYPE if not an integer). */
GIRDER_API int term_get_int64(term_t t, int64_t *out);
GIRDER_API int term_get_uint64(term_t t, uint64_t *out);
/* Bignum view: sign and little-endian magnitude (64-bit limbs). Small ints give ETYPE. */
GIRDER_API int term_big_view(term_t t, bool *negative, const uint64_t **limbs, size_t *nlimbs);

GIRDER_API term_t term_float(double d); /* NaN/infinity are not Erlang floats: TERM_NONE */
GIRDER_API bool term_is_float(term_t t);
GIRDER_API double term_float_value(term_t t);

/* ---------------------------------------------------------------- tuples */

/* Builds a tuple from n consumed elements. */
GIRDER_API term_t term_tuple(size_t n, const term_t *elems);
GIRDER_API term_t term_tuplev(size_t n, ...); /* varargs convenience; consumes each */
GIRDER_API bool term_is_tuple(term_t t);
GIRDER_API size_t term_tuple_arity(term_t t);
GIRDER_API term_t term_tuple_elem(term_t t, size_t i); /* borrowed; 0-based */

/* ---------------------------------------------------------------- lists */

GIRDER_API term_t term_cons(term_t head, term_t tail); /* consumes both */
/* A proper list of n consumed elements. */
GIRDER_API term_t term_list(size_t n, const term_t *elems);
/* A list of n consumed elements ending in tail (consumed): improper if tail is not []. */
GIRDER_API term_t term_list_tail(size_t n, const term_t *elems, term_t tail);
GIRDER_API bool term_is_cons(term_t t);
GIRDER_API bool term_is_list(term_t t); /* [] or a cons */
GIRDER_API term_t term_hd(term_t t);    /* borrowed */
GIRDER_API term_t term_tl(term_t t);    /* borrowed */
/* Length of a proper list; -1 for an improper list or a non-list. */
GIRDER_API long term_list_length(term_t t);
/* A list of small integers (a string in Erlang's sense) from bytes / UTF-8 code points. */
GIRDER_API term_t term_string(const char *s, size_t len);
GIRDER_API term_t term_string_utf8(const char *s, size_t len, int *err);

/* ---------------------------------------------------------------- maps */

/* Builds a map from n consumed keys and values; later duplicates replace earlier ones. */
GIRDER_API term_t term_map(size_t n, const term_t *keys, const term_t *vals);
GIRDER_API bool term_is_map(term_t t);
GIRDER_API size_t term_map_size(term_t t);
/* Borrowed value for key, or TERM_NONE. Keys compare exactly (1 and 1.0 differ). */
GIRDER_API term_t term_map_get(term_t map, term_t key);
/* New map with key set to val; consumes map, key and val. */
GIRDER_API term_t term_map_put(term_t map, term_t key, term_t val);
/* New map without key; consumes map (key borrowed). */
GIRDER_API term_t term_map_remove(term_t map, term_t key);
/* i-th entry in map-key order (integers before floats, then term order); borrowed. */
GIRDER_API term_t term_map_key(term_t map, size_t i);
GIRDER_API term_t term_map_value(term_t map, size_t i);

/* ---------------------------------------------------------------- binaries and bitstrings */

/* Copies len bytes. Binaries over 64 bytes are shared by reference when sent. */
GIRDER_API term_t term_binary(const void *data, size_t len);
/* A bitstring of nbits bits from the first bytes of data (bits taken MSB first). */
GIRDER_API term_t term_bitstring(const void *data, size_t nbits);
/* Takes ownership of a buffer allocated through term_alloc_raw(): no copy. */
GIRDER_API term_t term_binary_adopt(void *data, size_t len);
GIRDER_API void *term_alloc_raw(size_t n);
/* Resizes such a buffer from old to n bytes (n > 0): the new pointer, or NULL with p intact. */
GIRDER_API void *term_realloc_raw(void *p, size_t old, size_t n);
GIRDER_API void term_free_raw(void *p, size_t n);
/* A sub-binary sharing bin's bytes: bit offset and bit size within bin (bin borrowed). */
GIRDER_API term_t term_sub_binary(term_t bin, size_t bit_offset, size_t nbits);
GIRDER_API bool term_is_bitstring(term_t t);
GIRDER_API bool term_is_binary(term_t t); /* whole bytes */
GIRDER_API size_t term_bitstring_bits(term_t t);
GIRDER_API size_t term_binary_size(term_t t); /* bytes, rounded up for bitstrings */
/* Pointer to the bytes when the value is byte-aligned in memory, else NULL
** (sub-bitstrings at an odd bit offset: use term_bitstring_copy()). */
GIRDER_API const uint8_t *term_binary_data(term_t t);
/* Copies the bits MSB-first into out (term_binary_size() bytes); unused low bits are 0. */
GIRDER_API void term_bitstring_copy(term_t t, uint8_t *out);

/* ---------------------------------------------------------------- pids, ports, refs */

/* node is an atom (borrowed). Pid: id and serial as on the wire (15 + 13 bits in old nodes,
** 32 + 32 bits in new ones), creation 32 bits. */
GIRDER_API term_t term_pid(term_t node, uint32_t id, uint32_t serial, uint32_t creation);
GIRDER_API term_t term_port(term_t node, uint64_t id, uint32_t creation);
/* References carry 1..5 32-bit words. */
GIRDER_API term_t term_ref(term_t node, uint32_t creation, size_t nwords, const uint32_t *words);
GIRDER_API bool term_is_pid(term_t t);
GIRDER_API bool term_is_port(term_t t);
GIRDER_API bool term_is_ref(term_t t);

typedef struct term_pid_info {
    term_t node; /* atom */
    uint32_t id, serial, creation;
} term_pid_info;
typedef struct term_port_info {
    term_t node;
    uint64_t id;
    uint32_t creation;
} term_port_info;
typedef struct term_ref_info {
    term_t node;
    uint32_t creation;
    size_t nwords;
    uint32_t words[5];
} term_ref_info;
GIRDER_API int term_pid_get(term_t t, term_pid_info *out);
GIRDER_API int term_port_get(term_t t, term_port_info *out);
GIRDER_API int term_ref_get(term_t t, term_ref_info *out);

/* ---------------------------------------------------------------- funs */

/* Funs cannot run here; they are carried opaquely and round-trip exactly. */
typedef struct term_fun_info {
    bool is_export;  /* fun M:F/A (EXPORT_EXT) */
    term_t module;   /* atom */
    term_t function; /* export: atom */
    uint32_t arity;  /* 0..255 */
    /* local funs (NEW_FUN_EXT; FUN_EXT when old_form): */
    bool old_form;
    uint8_t uniq[16]; /* md5 of the module */
    uint32_t index;
    term_t old_index; /* integer */
    term_t old_uniq;  /* integer */
    term_t pid;       /* creator pid */
    size_t nfree;
    const term_t *free; /* borrowed free variables */
} term_fun_info;
GIRDER_API term_t term_export_fun(term_t module, term_t function,
                                  uint32_t arity); /* atoms borrowed */
/* Builds a local fun; info's terms and free variables are borrowed (dup'ed inside). */
GIRDER_API term_t term_local_fun(const term_fun_info *info);
GIRDER_API bool term_is_fun(term_t t);
GIRDER_API int term_fun_get(term_t t, term_fun_info *out);

/* ---------------------------------------------------------------- order */

/* Erlang's total order: number < atom < reference < fun < port < pid < tuple < map < nil
** < list < bitstring. term_compare() is the == / < of Erlang (1 == 1.0);
** term_compare_exact() is the order of map keys and =:= (every integer before every float,
** at any depth: #{2 => a, 1.5 => b} keeps 2 first).
** Both return <0, 0, >0 and never recurse on the C stack. */
GIRDER_API int term_compare(term_t a, term_t b);
GIRDER_API int term_compare_exact(term_t a, term_t b);
GIRDER_API bool term_equal(term_t a, term_t b);       /* =:= */
GIRDER_API bool term_equal_arith(term_t a, term_t b); /* == */
/* A hash consistent with term_equal(). */
GIRDER_API uint64_t term_hash(term_t t);

/* Bytes of memory reachable from the term (storage shared by several parts counted each time). */
GIRDER_API size_t term_memory(term_t t);

/* ---------------------------------------------------------------- external term format */

/* The distribution atom cache: index (0..2047) -> atom; provided by dist/. Entries may be
** foreign atoms (the cache owns those references; a decoded term takes its own). */
typedef struct etf_atom_cache {
    term_t atoms[2048];
} etf_atom_cache;

/* What a decode did with atoms it did not find interned (filled in on success and failure). */
typedef struct etf_decode_stats {
    size_t interned; /* new atoms this decode added to the table */
    size_t foreign;  /* distinct foreign atoms this decode made */
} etf_decode_stats;

/*
** New atoms (names not interned yet) are interned while the decode's budget (max_new_atoms),
** the node-wide external quota and the table allow. Past that, without foreign_atoms the
** decode fails with EATOMLIMIT; with foreign_atoms each new name becomes a foreign atom, one
** per distinct name in the decode. With foreign_atoms, max_new_atoms is exact: 0 interns none
** (every new name is foreign), SIZE_MAX leaves only the quota. Atoms already interned always
** decode to the interned atom.
*/
typedef struct etf_decode_opts {
    const etf_atom_cache *cache; /* for ATOM_CACHE_REF (82); NULL: refused */
    size_t max_new_atoms;        /* atoms this decode may intern; 0 = no limit (see above) */
    size_t max_uncompressed;     /* bound for tag 80; 0 = 64 MiB */
    size_t max_heap;             /* bytes the decoded term may take (GIRDER_EHEAP past it, refused
                                 ** before the memory is allocated); 0 = 32 per input byte */
    bool no_compressed;          /* refuse tag 80 with GIRDER_ECOMPRESSED */
    bool no_version;             /* input starts at the tag, without the 131 byte */
    bool allow_trailing;         /* do not fail on bytes after the term */
    bool foreign_atoms;          /* past the budget or quota: foreign atoms, not EATOMLIMIT */
    etf_decode_stats *stats;     /* if not NULL: receives the counts of this decode */
    /* A binary whose bytes hold the whole input (TERM_NONE: none). A BINARY_EXT of more than
    ** 64 bytes that is also more than a quarter of share's size is then not copied: the
    ** decoded binary points into share's bytes and the term holds one reference to share's
    ** storage. (The quarter bounds what a small binary kept alive can hold on to.) */
    term_t share;
} etf_decode_opts;

typedef struct etf_error {
    int code;      /* TERM_E... */
    size_t offset; /* byte offset of the problem in the input */
} etf_error;

/* Decodes one term. With used == NULL the term must fill buf exactly (else ETRAILING, unless
** opts->allow_trailing); with used, *used gets the bytes consumed and bytes may follow.
** Returns TERM_NONE on error with *err (optional) filled in. Every length is checked before use;
** memory is bounded by a small constant times len (see docs/term_codec.md). */
GIRDER_API term_t etf_decode(const uint8_t *buf, size_t len, const etf_decode_opts *opts,
                             size_t *used, etf_error *err);

enum {
    ETF_ENC_DETERMINISTIC = 1, /* map keys sorted in every map (default: only maps <= 32) */
    ETF_ENC_COMPRESSED = 2,    /* tag 80 with zlib when it is smaller (as term_to_binary) */
    ETF_ENC_UTF8_ATOMS = 4,    /* always ATOM_UTF8_EXT (minor_version 2, OTP 26 default) */
    ETF_ENC_NO_VERSION = 8     /* omit the leading 131 (distribution payloads) */
};

/* A growable output buffer. Initialise to {0}; release with etf_buf_free(). */
typedef struct etf_buf {
    uint8_t *data;
    size_t len, cap;
} etf_buf;
GIRDER_API void etf_buf_free(etf_buf *b);
GIRDER_API int etf_buf_reserve(etf_buf *b, size_t extra);

/* Appends the encoding of t (as term_to_binary/1 of OTP 25 does) to out. 0 or error. */
GIRDER_API int etf_encode(term_t t, unsigned flags, etf_buf *out);
/* Exact encoded size (without compression), or a negative error. */
GIRDER_API long long etf_encoded_size(term_t t, unsigned flags);

/* ---------------------------------------------------------------- text syntax */

/* A node context for text: pids/ports/refs of this node print and parse as <0.ID.SERIAL>. */
typedef struct term_text_ctx {
    term_t node; /* atom; TERM_NONE means none is local */
    uint32_t creation;
} term_text_ctx;

enum {
    TERM_PRINT_W = 0,       /* like io:format("~w"): lists as lists, binaries as bytes */
    TERM_PRINT_P = 1,       /* like ~p on one line: printable lists as "strings", <<"text">> */
    TERM_PRINT_EXPLICIT = 2 /* pids/ports/refs/funs always in the explicit node-carrying form */
};

/* Appends the text of t to out (NUL-terminated, len excludes the NUL). */
GIRDER_API int term_print(term_t t, unsigned flags, const term_text_ctx *ctx, etf_buf *out);
/* Convenience: malloc'ed string (free with free()); NULL on ENOMEM. */
GIRDER_API char *term_to_string(term_t t, unsigned flags);

typedef struct term_parse_error {
    int code;
    size_t offset; /* byte offset in the text */
    char what[96]; /* short description, e.g. "expected ',' or '}'" */
} term_parse_error;

/* Parses one term written in Erlang syntax (a trailing '.' and whitespace are allowed).
** Returns a reference or TERM_NONE with *err filled. */
GIRDER_API term_t term_parse(const char *text, size_t len, const term_text_ctx *ctx,
                             term_parse_error *err);

/* ---------------------------------------------------------------- patterns */

/* A compiled pattern: Erlang term syntax plus variables (Name, _Name), _ , [H | T],
** #{k := P} (subset match), repeated variables meaning equality. Immutable and shareable. */
typedef struct term_pattern term_pattern;

GIRDER_API term_pattern *term_pattern_compile(const char *text, size_t len,
                                              const term_text_ctx *ctx, term_parse_error *err);
GIRDER_API void term_pattern_free(term_pattern *p);
/* Number of distinct named variables (_Name counts, as it binds; _ does not). */
GIRDER_API size_t term_pattern_nvars(const term_pattern *p);
/* Slot of a variable by name, or -1. Slots are numbered in order of first appearance. */
GIRDER_API int term_pattern_var(const term_pattern *p, const char *name);
GIRDER_API const char *term_pattern_var_name(const term_pattern *p, size_t slot);

/* Matches t against p. vars has term_pattern_nvars() slots: a slot holding TERM_NONE is
** unbound and gets bound to a borrowed sub-term of t; a slot holding a term is already bound
** and must be equal (=:=). On failure the slots are as they were. Allocates nothing. */
GIRDER_API bool term_match(const term_pattern *p, term_t t, term_t *vars);

#ifdef __cplusplus
}
#endif
#endif
