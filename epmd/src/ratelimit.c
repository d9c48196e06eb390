/* Girder epmd log rate limiter: a few lines per event kind and peer per interval, then a count. */
#include <string.h>

#include "epmd_int.h"

void epmd__rl_init(epmd__ratelimit *rl, uint64_t interval_ms, uint32_t per_kind, uint32_t per_peer,
                   epmd__rl_emit_fn emit, void *emit_arg)
{
    memset(rl, 0, sizeof *rl);
    rl->interval_ms = interval_ms ? interval_ms : EPMD__RL_INTERVAL_MS;
    rl->per_kind = per_kind ? per_kind : EPMD__RL_PER_KIND;
    rl->per_peer = per_peer ? per_peer : EPMD__RL_PER_PEER;
    rl->emit = emit;
    rl->emit_arg = emit_arg;
}

/* The kind of `event`, created on first sight; the last slot ("other") is shared by any kinds
** beyond the table. */
static int kind_of(epmd__ratelimit *rl, const char *event, size_t len)
{
    if (len >= EPMD__RL_EVENT_CAP) len = EPMD__RL_EVENT_CAP - 1;
    for (int i = 0; i < EPMD__RL_KINDS - 1; i++) {
        epmd__rl_kind *k = &rl->kinds[i];
        if (k->event[0] == 0) {
            memcpy(k->event, event, len);
            k->event[len] = 0;
            return i;
        }
        if (strncmp(k->event, event, len) == 0 && k->event[len] == 0) return i;
    }
    epmd__rl_kind *last = &rl->kinds[EPMD__RL_KINDS - 1];
    strcpy(last->event, "other");
    return EPMD__RL_KINDS - 1;
}

static size_t peer_hash(int kind, const epmd__peer_key *key)
{
    uint32_t h = 2166136261u ^ (uint32_t)kind;
    for (size_t i = 0; i < sizeof key->b; i++) h = (h ^ key->b[i]) * 16777619u;
    return h;
}

/*
** The counters of (kind, key) for this window, or NULL when the probe run is full: such a peer is
** then held to the kind's budget alone. Entries are found by scanning the whole run, not up to the
** first free entry, so clearing one kind's entries never hides another's.
*/
static epmd__rl_peer *peer_of(epmd__ratelimit *rl, int kind, const epmd__peer_key *key)
{
    size_t h = peer_hash(kind, key);
    epmd__rl_peer *free_entry = NULL;
    for (size_t i = 0; i < EPMD__RL_PROBE; i++) {
        epmd__rl_peer *p = &rl->peers[(h + i) % EPMD__RL_PEERS];
        if (!p->used) {
            if (!free_entry) free_entry = p;
        } else if (p->kind == kind && memcmp(&p->key, key, sizeof *key) == 0) {
            return p;
        }
    }
    if (free_entry) {
        memset(free_entry, 0, sizeof *free_entry);
        free_entry->used = 1;
        free_entry->kind = (uint8_t)kind;
        free_entry->key = *key;
    }
    return free_entry;
}

/* Ends kind i's window: its summary if lines were held back, then fresh counters. */
static void end_window(epmd__ratelimit *rl, int i, uint64_t now_ms)
{
    epmd__rl_kind *k = &rl->kinds[i];
    const epmd__rl_peer *top = NULL;
    for (size_t j = 0; j < EPMD__RL_PEERS; j++) {
        epmd__rl_peer *p = &rl->peers[j];
        if (!p->used || p->kind != i) continue;
        if (p->suppressed && (!top || p->suppressed > top->suppressed)) top = p;
    }
    if (k->suppressed && rl->emit)
        rl->emit(rl->emit_arg, k->level, k->event, k->suppressed, now_ms - k->start_ms,
                 top ? &top->key : NULL, top ? top->suppressed : 0);
    for (size_t j = 0; j < EPMD__RL_PEERS; j++)
        if (rl->peers[j].used && rl->peers[j].kind == i) rl->peers[j].used = 0;
    k->shown = k->suppressed = 0;
    k->open = 0;
}

int epmd__rl_check(epmd__ratelimit *rl, const char *event, size_t event_len,
                   const epmd__peer_key *peer, int level, uint64_t now_ms)
{
    int i = kind_of(rl, event, event_len);
    epmd__rl_kind *k = &rl->kinds[i];
    if (k->open && now_ms - k->start_ms >= rl->interval_ms) end_window(rl, i, now_ms);
    if (!k->open) {
        k->open = 1;
        k->start_ms = now_ms;
    }
    epmd__rl_peer *p = peer ? peer_of(rl, i, peer) : NULL;
    if (k->shown < rl->per_kind && (!p || p->shown < rl->per_peer)) {
        k->shown++;
        if (p) p->shown++;
        return 1;
    }
    if (k->suppressed == 0 || level < k->level) k->level = level; /* most severe held back */
    k->suppressed++;
    if (p) p->suppressed++;
    return 0;
}

void epmd__rl_flush(epmd__ratelimit *rl, uint64_t now_ms)
{
    for (int i = 0; i < EPMD__RL_KINDS; i++) {
        epmd__rl_kind *k = &rl->kinds[i];
        if (k->open && now_ms - k->start_ms >= rl->interval_ms) end_window(rl, i, now_ms);
    }
}

void epmd__rl_finish(epmd__ratelimit *rl, uint64_t now_ms)
{
    for (int i = 0; i < EPMD__RL_KINDS; i++)
        if (rl->kinds[i].open) end_window(rl, i, now_ms);
}
