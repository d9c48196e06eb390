/* dist internals: protocol constants, the handshake machine, frame codec, connections. */
#ifndef DIST_INT_H
#define DIST_INT_H

#include <girder/dist.h>
#include <girder/node_dist.h>
#include <girder/term.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>

/* Every multi-byte field of the protocol is big-endian: girder__get16/32/64, girder__put16/32/64.
 */
#include <girder_be.h>

/* ================================================================ distribution flags */

#define DFLAG_PUBLISHED           0x01ULL
#define DFLAG_ATOM_CACHE          0x02ULL
#define DFLAG_EXTENDED_REFERENCES 0x04ULL
#define DFLAG_DIST_MONITOR        0x08ULL
#define DFLAG_FUN_TAGS            0x10ULL
#define DFLAG_DIST_MONITOR_NAME   0x20ULL
#define DFLAG_HIDDEN_ATOM_CACHE   0x40ULL
#define DFLAG_NEW_FUN_TAGS        0x80ULL
#define DFLAG_EXTENDED_PIDS_PORTS 0x100ULL
#define DFLAG_EXPORT_PTR_TAG      0x200ULL
#define DFLAG_BIT_BINARIES        0x400ULL
#define DFLAG_NEW_FLOATS          0x800ULL
#define DFLAG_UNICODE_IO          0x1000ULL
#define DFLAG_DIST_HDR_ATOM_CACHE 0x2000ULL
#define DFLAG_SMALL_ATOM_TAGS     0x4000ULL
#define DFLAG_UTF8_ATOMS          0x10000ULL
#define DFLAG_MAP_TAG             0x20000ULL
#define DFLAG_BIG_CREATION        0x40000ULL
#define DFLAG_SEND_SENDER         0x80000ULL
#define DFLAG_BIG_SEQTRACE_LABELS 0x100000ULL
#define DFLAG_EXIT_PAYLOAD        0x400000ULL
#define DFLAG_FRAGMENTS           0x800000ULL
#define DFLAG_HANDSHAKE_23        0x1000000ULL
#define DFLAG_UNLINK_ID           0x2000000ULL
#define DFLAG_MANDATORY_25_DIGEST (1ULL << 36)
#define DFLAG_SPAWN               (1ULL << 32)
#define DFLAG_NAME_ME             (1ULL << 33)
#define DFLAG_V4_NC               (1ULL << 34)
#define DFLAG_ALIAS               (1ULL << 35)
#define DFLAG_ALTACT_SIG          (1ULL << 37) /* OTP 28: ALTACT_SIG_SEND */

/* ALTACT_SIG_SEND flags (the Flags element of {37, Flags, SenderPid, To [, Token]}) */
enum {
    ALTACT_PRIO = 1 << 0,  /* a priority signal */
    ALTACT_TOKEN = 1 << 1, /* a sequential trace token follows To */
    ALTACT_ALIAS = 1 << 2, /* To is a process alias (a reference) */
    ALTACT_NAME = 1 << 3,  /* To is a registered name (an atom) */
    ALTACT_EXIT = 1 << 4   /* an exit signal: the payload is the reason (else a message) */
};

/* What OTP 25 folds into DFLAG_MANDATORY_25_DIGEST (kernel/include/dist.hrl). */
#define DFLAG_MANDATORY_25                                                                         \
    (DFLAG_EXTENDED_REFERENCES | DFLAG_FUN_TAGS | DFLAG_EXTENDED_PIDS_PORTS | DFLAG_NEW_FUN_TAGS | \
     DFLAG_EXPORT_PTR_TAG | DFLAG_BIT_BINARIES | DFLAG_NEW_FLOATS | DFLAG_UTF8_ATOMS |             \
     DFLAG_MAP_TAG | DFLAG_BIG_CREATION | DFLAG_HANDSHAKE_23)

/* Everything Girder implements (PUBLISHED is added for visible nodes). */
#define DIST_OUR_FLAGS                                                                      \
    (DFLAG_MANDATORY_25 | DFLAG_DIST_MONITOR | DFLAG_DIST_MONITOR_NAME | DFLAG_UNICODE_IO | \
     DFLAG_DIST_HDR_ATOM_CACHE | DFLAG_SMALL_ATOM_TAGS | DFLAG_SEND_SENDER |                \
     DFLAG_BIG_SEQTRACE_LABELS | DFLAG_EXIT_PAYLOAD | DFLAG_FRAGMENTS | DFLAG_UNLINK_ID |   \
     DFLAG_MANDATORY_25_DIGEST | DFLAG_SPAWN | DFLAG_V4_NC | DFLAG_ALIAS | DFLAG_ALTACT_SIG)

/* What a peer must offer: OTP 25's mandatory set, the new link protocol (OTP 26 makes it
** mandatory; libnode speaks only it) and full-size pids (libnode ids exceed 15 bits). */
#define DIST_REQUIRED_FLAGS (DFLAG_MANDATORY_25 | DFLAG_UNLINK_ID | DFLAG_V4_NC)

/* ================================================================ handshake (pure) */

typedef enum { HS_INITIATOR = 1, HS_ACCEPTOR } hs_role;

/* The acceptor's answer once it knows who connects (erl_dist_protocol step 3). */
typedef enum {
    HS_ST_OK = 1,
    HS_ST_OK_SIMULTANEOUS,
    HS_ST_NOK,
    HS_ST_ALIVE,
    HS_ST_NOT_ALLOWED
} hs_status;

enum { HS_CONT = 0, HS_DONE = 1, HS_FAIL = -1 };

#define HS_MAX_NAME   1023 /* bytes of a node name (255 UTF-8 characters) plus room */
#define HS_MAX_PACKET 4096
#define HS_MAX_COOKIE 1024

typedef struct dist_hs dist_hs;

struct dist_hs {
    hs_role role;
    int state;
    /* this node */
    char my_name[HS_MAX_NAME + 1];
    uint64_t my_flags;
    uint32_t my_creation;
    char cookie[HS_MAX_COOKIE + 1];
    int send_version; /* initiator: 5 sends the old 'n' name message, 6 the new 'N' */
    /* initiator: the name we dialled (the challenge must carry it) */
    char expect_name[HS_MAX_NAME + 1];
    /* the peer */
    char peer_name[HS_MAX_NAME + 1];
    uint64_t peer_flags;
    uint32_t peer_creation;
    bool peer_old_name; /* acceptor: the peer sent the version-5 name message */
    uint32_t my_challenge, peer_challenge;
    uint64_t flags; /* negotiated: ours & theirs */
    /* acceptor: decides the status for peer_name (simultaneous connects, already up) */
    hs_status (*decide)(void *ud, dist_hs *hs);
    void *ud;
    uint32_t (*rand32)(void *ud); /* challenges, names, creations (required) */
    /* length-prefix bytes of every handshake packet: 2 over TCP, 4 inside TLS */
    int plen;
    /* input reassembly and output to write */
    uint8_t in[HS_MAX_PACKET + 4];
    size_t in_len;
    uint8_t out[2 * HS_MAX_PACKET];
    size_t out_len;
    /* failure: short reason (log line) and whether it is a cookie mismatch */
    char why[200];
    bool bad_cookie;
    bool nok; /* initiator: the peer answered nok (it wins a simultaneous connect) */
    /* dynamic node names (DFLAG_NAME_ME): the acceptor named the peer (peer_name, peer_creation
    ** were made up here); the initiator (my_flags has NAME_ME, my_name is only the host) was
    ** named by the peer: my_name and my_creation now hold what it gave */
    bool named;
};

/* Initialises for a role; cookie, names and flags are copied. Packets get 2-byte length
** prefixes (set hs->plen = 4 afterwards for TLS). */
void dist__hs_init(dist_hs *hs, hs_role role, const char *my_name, uint64_t my_flags,
                   uint32_t my_creation, const char *cookie);
/* Initiator: queues send_name for a peer that supports `version` (5 or 6) named expect. */
void dist__hs_start(dist_hs *hs, const char *expect_name, int version);
/*
** Feeds bytes from the socket. Consumes whole packets while the handshake runs and stops at
** its end: *used is how many bytes were taken (the rest is distribution data). Output to
** write is appended to hs->out (the caller drains it). Returns HS_CONT, HS_DONE or HS_FAIL
** (with hs->why).
*/
int dist__hs_feed(dist_hs *hs, const uint8_t *data, size_t len, size_t *used);
/* True while the initiator waits for the challenge ack: a peer that closes now refused our
** challenge reply, which is what a node with another cookie does. */
bool dist__hs_awaiting_ack(const dist_hs *hs);
/* md5(cookie ++ decimal(challenge)) */
void dist__digest(const char *cookie, uint32_t challenge, uint8_t out[16]);

/* ================================================================ frames and control messages */

/* Control message operations (erl_dist_protocol "Protocol between Connected Nodes"). */
enum {
    DOP_LINK = 1,
    DOP_SEND = 2,
    DOP_EXIT = 3,
    DOP_UNLINK = 4,
    DOP_NODE_LINK = 5,
    DOP_REG_SEND = 6,
    DOP_GROUP_LEADER = 7,
    DOP_EXIT2 = 8,
    DOP_SEND_TT = 12,
    DOP_EXIT_TT = 13,
    DOP_REG_SEND_TT = 16,
    DOP_EXIT2_TT = 18,
    DOP_MONITOR_P = 19,
    DOP_DEMONITOR_P = 20,
    DOP_MONITOR_P_EXIT = 21,
    DOP_SEND_SENDER = 22,
    DOP_SEND_SENDER_TT = 23,
    DOP_PAYLOAD_EXIT = 24,
    DOP_PAYLOAD_EXIT_TT = 25,
    DOP_PAYLOAD_EXIT2 = 26,
    DOP_PAYLOAD_EXIT2_TT = 27,
    DOP_PAYLOAD_MONITOR_P_EXIT = 28,
    DOP_SPAWN_REQUEST = 29,
    DOP_SPAWN_REQUEST_TT = 30,
    DOP_SPAWN_REPLY = 31,
    DOP_SPAWN_REPLY_TT = 32,
    DOP_ALIAS_SEND = 33,
    DOP_ALIAS_SEND_TT = 34,
    DOP_UNLINK_ID = 35,
    DOP_UNLINK_ID_ACK = 36,
    DOP_ALTACT_SIG_SEND = 37 /* OTP 28 */
};

/*
** A control message in normalised form: the _TT variants carry their token in `token`, the
** PAYLOAD variants and the old ones with Reason inside the tuple both put it in `payload`.
** All terms are borrowed from the decoded tuple/payload (dist_ctl_free releases those).
*/
typedef struct dist_ctl {
    int op;          /* DOP_ without _TT / PAYLOAD_: SEND, SEND_SENDER, REG_SEND, EXIT, ... */
    term_t from, to; /* pids, or atoms for names (REG_SEND to, MONITOR_P to, MONITOR_P_EXIT from) */
    term_t ref;      /* MONITOR_P*, SPAWN_*: ReqId; ALIAS_SEND: the alias (in `to`) */
    term_t payload;  /* message, exit reason, spawn argument list, spawn reply result */
    term_t token;    /* sequential trace token or TERM_NONE */
    uint64_t id;     /* UNLINK_ID*, SPAWN_REPLY flags */
    term_t mfa;      /* SPAWN_REQUEST {M, F, A} */
    term_t opts;     /* SPAWN_REQUEST option list */
    term_t group_leader;
    /* owned */
    term_t ctl_term, payload_term;
} dist_ctl;

/* Validates a decoded control tuple and its payload (TERM_NONE if none); takes ownership of
** both. 0, or DIST_EPROTO with *why pointing at a static reason. */
int dist__ctl_parse(term_t ctl, term_t payload, dist_ctl *out, const char **why);
void dist__ctl_free(dist_ctl *c);

/* Incoming frame state of one connection: the atom cache and fragments being reassembled. */
typedef struct dist_frag {
    uint64_t seq, next_id; /* next_id: the fragment id expected next */
    uint8_t *buf;
    size_t len, cap;
    etf_atom_cache *refs; /* atom cache references of the first fragment (owned: see dist_rx) */
    size_t nrefs;
    struct dist_frag *next;
} dist_frag;

/*
** The atoms one peer node added to the atom table, across its connections (the loop and the
** decoders of each connection spend it). Past max_new_atoms the peer's new names decode as
** foreign atoms (term.h), or with atoms_disconnect its connection is closed. Flags say what
** happened since, for one log line each.
*/
typedef struct dist_atom_budget {
    struct dist_atom_budget *next;
    term_t node;
    _Atomic size_t interned;
    atomic_bool over_budget, over_quota; /* a foreign atom was made for this reason */
    atomic_bool logged_budget, logged_quota;
} dist_atom_budget;

/*
** Every atom in cache, refs and the refs of fragments and jobs (dist_rxmsg.own_refs) holds a
** reference: a foreign atom lives as long as the last of them (interned ones need none).
*/
typedef struct dist_rx {
    etf_atom_cache cache; /* 2048 entries, the connection's atom cache */
    etf_atom_cache refs;  /* per message: index of ATOM_CACHE_REF -> atom (first 256 used) */
    size_t nrefs;
    dist_frag *frags;
    size_t nfrags;
    size_t frag_bytes; /* buffer bytes of every sequence in reassembly: at most max_message */
    size_t max_message;
    size_t max_heap;          /* what one decoded message may take */
    size_t max_new_atoms;     /* the peer's budget (budget->interned counts against it) */
    dist_atom_budget *budget; /* the peer node's, or own_budget */
    dist_atom_budget own_budget;
    bool atoms_disconnect; /* past the budget: a protocol error, not foreign atoms */
    bool hdr_cache;        /* DIST_HDR_ATOM_CACHE negotiated (else pass-through 'p' frames) */
} dist_rx;

/*
** A complete message taken from frames, not decoded yet: the bytes of its control message and
** payload, and the atom cache references of its header. `own`/`own_refs` (when set) belong to
** the message (a reassembled buffer, the refs saved with a first fragment).
*/
typedef struct dist_rxmsg {
    const uint8_t *data;
    size_t len;
    const etf_atom_cache *refs; /* NULL: pass-through, no cache */
    size_t nrefs;               /* entries of refs in use */
    bool versioned;             /* each term starts with 131 */
    term_t own; /* TERM_NONE, or a binary over storage holding data's bytes: large binaries
                ** in the message are decoded as references into it (etf_decode_opts.share) */
    etf_atom_cache *own_refs; /* holds a reference to each of its nrefs atoms */
} dist_rxmsg;

/* The sending side of the atom cache (acache.c): the texts the peer's cache holds per slot. */
#define DIST_ACACHE_SIZE 2048
typedef struct dist_acache {
    uint8_t *text[DIST_ACACHE_SIZE];
    uint16_t len[DIST_ACACHE_SIZE];
} dist_acache;
void dist__acache_free(dist_acache *a);
int dist__acache_apply(dist_acache *a, etf_buf *b);
/*
** The frame of a control message given as its n elements (borrowed), whose payload's encoding
** (without version byte, possibly empty) is already in b at [gap, b->len): the frame's length,
** the 131,68 header and the control message are written into the gap, right before the
** payload, the control message's atoms (pids' nodes among them) as references into a, the
** payload's left inline. So the payload is encoded once, straight into the buffer that is
** queued, with no pass over it afterwards. Returns where the frame starts in b, or -1 (b's
** gap too small, out of memory: nothing changed; the caller encodes the frame another way).
** Must run in wire order under the connection's lock, as dist__acache_apply.
*/
long dist__acache_frame(dist_acache *a, const term_t *el, size_t n, etf_buf *b, size_t gap);

/* dist_config.max_message when left 0 */
#define DIST__DEFAULT_MAX_MESSAGE ((size_t)256 << 20)

void dist__rx_init(dist_rx *rx, size_t max_message, size_t max_heap, size_t max_new_atoms,
                   bool hdr_cache);
void dist__rx_free(dist_rx *rx);
/* A copy of the first n entries of src, each atom with a reference of its own (the rest of the
** 256 an ATOM_CACHE_REF can name cleared); NULL when out of memory. */
etf_atom_cache *dist__refs_copy(const etf_atom_cache *src, size_t n);
/* Drops the references of the first n entries of r and frees it. */
void dist__refs_free(etf_atom_cache *r, size_t n);
/*
** Takes one frame (without its 4-byte length; not a tick): updates the atom cache from its
** header and reassembles fragments. Returns 1 with *m when a message is complete (m->data may
** point into f), 0 when a fragment was stored, or DIST_EPROTO / DIST_ENOMEM with *why. Cheap:
** it does not decode terms.
*/
int dist__rx_message(dist_rx *rx, const uint8_t *f, size_t len, dist_rxmsg *m, const char **why);
/*
** Decodes a message's control tuple and payload into *ctl. allow_compressed false refuses
** compressed terms with GIRDER_ECOMPRESSED (the caller decodes those elsewhere); a message
** whose terms would exceed rx->max_heap is GIRDER_EHEAP; else 0, DIST_EPROTO or DIST_ENOMEM
** with *why. Safe to call from another thread than dist__rx_message's, one call at a time.
*/
int dist__rx_decode(dist_rx *rx, const dist_rxmsg *m, bool allow_compressed, dist_ctl *ctl,
                    const char **why);
/* Frees what the message owns. */
void dist__rxmsg_release(dist_rxmsg *m);
/* dist__rx_message then dist__rx_decode (compressed terms allowed): 1 with *ctl, 0, or < 0. */
int dist__rx_frame(dist_rx *rx, const uint8_t *f, size_t len, dist_ctl *ctl, const char **why);

/*
** Encodes a control tuple and optional payload (TERM_NONE: none) as complete frames (each with
** its 4-byte length) appended to out. Large payloads are split into fragments of frag_size
** when the peer takes fragments; seq identifies the sequence. hdr_cache: 131,68 header, else
** pass-through frames.
*/
int dist__frame_encode(term_t ctl, term_t payload, uint64_t flags, size_t frag_size, uint64_t seq,
                       etf_buf *out);

/* The same with the control tuple given as its n elements (n <= 8): its bytes are those of
** term_tuple(n, elems) encoded, without that tuple being built (and freed) per message. */
int dist__frame_encode_v(const term_t *elems, size_t n, term_t payload, uint64_t flags,
                         size_t frag_size, uint64_t seq, etf_buf *out);

/*
** The fragments of the control tuple elems (n <= 8) and a payload already encoded (without
** version byte) in out from byte gap to out->len, more than frag_size bytes of it, for a peer
** with the atom cache header and fragments: the bytes dist__frame_encode_v() makes, built
** around the payload. The first fragment's payload bytes stay where they are (its length,
** header and control message go into the gap before them); each later chunk moves right by
** the headers before it. *at receives the offset the frames start at. DIST_EINVAL when the
** control message does not fit in the gap (nothing changed), else 0 or ENOMEM.
*/
int dist__frame_fragment(const term_t *elems, size_t n, size_t frag_size, uint64_t seq,
                         etf_buf *out, size_t gap, size_t *at);

/* ================================================================ logging */

/* One structured line "event=... key=value" at a level, through dist_config.log. */
void dist__log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
