/* Girder epmd registry: live node names and a bounded memory of old ones for creation numbering. */
#include <stdlib.h>
#include <string.h>

#include "epmd_int.h"

void epmd__registry_init(epmd__registry *r, size_t unreg_max)
{
    memset(r, 0, sizeof *r);
    r->unreg_max = unreg_max;
}

static void free_list(epmd__node *n)
{
    while (n) {
        epmd__node *next = n->next;
        free(n);
        n = next;
    }
}

void epmd__registry_free(epmd__registry *r)
{
    free_list(r->reg);
    free_list(r->unreg);
    memset(r, 0, sizeof *r);
}

static int same_name(const epmd__node *n, const uint8_t *name, size_t len)
{
    return n->info.name_len == len && memcmp(n->info.name, name, len) == 0;
}

/*
** Creations as Erlang's epmd hands them out: a counter per name, started at
** the clock for a new name and bumped on every re-registration, never below
** 4 (0..3 are the old 2-bit creations). Version-5 clients see counter%3+1.
*/
static void bump_creation(epmd__node *n)
{
    if (++n->cr_counter < 4) n->cr_counter = 4;
}

uint32_t epmd__node_creation(const epmd__node *n)
{
    if (n->info.highest_version >= 6) return n->cr_counter;
    return n->cr_counter % 3 + 1;
}

epmd__node *epmd__registry_find(const epmd__registry *r, const uint8_t *name, size_t len)
{
    for (epmd__node *n = r->reg; n; n = n->next)
        if (same_name(n, name, len)) return n;
    return NULL;
}

/* Unlinks `n` (whose predecessor link is *link) from the live list into the old-names FIFO. */
static epmd__node *retire(epmd__registry *r, epmd__node **link, epmd__node *n)
{
    *link = n->next;
    r->reg_count--;
    n->next = NULL;
    n->conn_id = 0;
    if (r->unreg_tail)
        r->unreg_tail->next = n;
    else
        r->unreg = n;
    r->unreg_tail = n;
    r->unreg_count++;
    return n;
}

epmd__node *epmd__registry_remove_conn(epmd__registry *r, uint64_t conn_id)
{
    if (conn_id == 0) return NULL;
    for (epmd__node **link = &r->reg; *link; link = &(*link)->next)
        if ((*link)->conn_id == conn_id) return retire(r, link, *link);
    return NULL;
}

epmd__node *epmd__registry_remove_name(epmd__registry *r, const uint8_t *name, size_t len)
{
    for (epmd__node **link = &r->reg; *link; link = &(*link)->next)
        if (same_name(*link, name, len)) return retire(r, link, *link);
    return NULL;
}

/* Takes the old entry for `name` out of the FIFO, or NULL. */
static epmd__node *take_old(epmd__registry *r, const uint8_t *name, size_t len)
{
    epmd__node *prev = NULL;
    for (epmd__node *n = r->unreg; n; prev = n, n = n->next) {
        if (!same_name(n, name, len)) continue;
        if (prev)
            prev->next = n->next;
        else
            r->unreg = n->next;
        if (r->unreg_tail == n) r->unreg_tail = prev;
        r->unreg_count--;
        n->next = NULL;
        return n;
    }
    return NULL;
}

epmd__node *epmd__registry_add(epmd__registry *r, const epmd__request *req, uint64_t conn_id,
                               int fd, uint32_t now, int *err)
{
    if (!epmd__name_valid(req->name, req->name_len) || req->extra_len > EPMD_MAX_EXTRA) {
        *err = EPMD_EINVAL;
        return NULL;
    }
    if (epmd__registry_find(r, req->name, req->name_len)) {
        *err = EPMD_EEXIST;
        return NULL;
    }
    epmd__node *n = take_old(r, req->name, req->name_len);
    if (n) {
        bump_creation(n);
    } else if (r->unreg_count > r->unreg_max && r->unreg) {
        /* Memory of old names is full: recycle the oldest entry (and its counter). */
        n = r->unreg;
        r->unreg = n->next;
        if (!r->unreg) r->unreg_tail = NULL;
        r->unreg_count--;
        bump_creation(n);
    } else {
        n = malloc(sizeof *n);
        if (!n) {
            *err = EPMD_ENOMEM;
            return NULL;
        }
        n->cr_counter = now;
        bump_creation(n);
    }
    n->conn_id = conn_id;
    n->fd = fd;
    n->info.port = req->port;
    n->info.node_type = req->node_type;
    n->info.protocol = req->protocol;
    n->info.highest_version = req->highest_version;
    n->info.lowest_version = req->lowest_version;
    n->info.name_len = req->name_len;
    memcpy(n->info.name, req->name, req->name_len);
    n->info.name[req->name_len] = 0;
    n->info.extra_len = req->extra_len;
    if (req->extra_len) memcpy(n->info.extra, req->extra, req->extra_len);
    n->next = r->reg;
    r->reg = n;
    r->reg_count++;
    *err = 0;
    return n;
}
