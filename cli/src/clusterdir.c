/* The cluster directory: a line-based state file, the cookie file, process identity checks. */
#include "clusterdir.h"

#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/*
** The state file, one record per line, fields separated by one tab (no field contains a tab
** or a newline; paths that would are refused when written):
**   girder-cluster 1
**   epmd <port> <pid> <starttime>          pid 0: a port mapper that was already running
**   node <name> <kind> <pid> <starttime> <log> <ctl or ->
**   tls <optfile>                          only for a cluster over TLS distribution
*/
#define CL_MAGIC "girder-cluster\t1"

static bool field_ok(const char *s)
{
    return !strpbrk(s, "\t\n");
}

int cl_save(const char *dir, const cl_state *st)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, CL_STATE_FILE) >= (int)sizeof path ||
        snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, CL_STATE_FILE) >= (int)sizeof tmp)
        return -ENAMETOOLONG;
    for (size_t i = 0; i < st->n; i++)
        if (!field_ok(st->nodes[i].name) || !field_ok(st->nodes[i].log) ||
            !field_ok(st->nodes[i].ctl))
            return -EINVAL;
    if (!field_ok(st->tls_optfile)) return -EINVAL;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return -errno;
    FILE *f = fdopen(fd, "w");
    if (!f) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return -e;
    }
    fprintf(f, "%s\n", CL_MAGIC);
    fprintf(f, "epmd\t%u\t%d\t%llu\n", st->epmd_port, (int)st->epmd.pid, st->epmd.start);
    if (st->tls_optfile[0]) fprintf(f, "tls\t%s\n", st->tls_optfile);
    for (size_t i = 0; i < st->n; i++) {
        const cl_node *nd = &st->nodes[i];
        fprintf(f, "node\t%s\t%s\t%d\t%llu\t%s\t%s\n", nd->name, nd->kind, (int)nd->proc.pid,
                nd->proc.start, nd->log, nd->ctl[0] ? nd->ctl : "-");
    }
    int rc = fflush(f) == 0 && fsync(fd) == 0 ? 0 : -errno;
    if (fclose(f) != 0 && !rc) rc = -errno;
    if (!rc && rename(tmp, path) != 0) rc = -errno;
    if (rc) unlink(tmp);
    return rc;
}

/* Splits line at tabs into at most max fields (in place); returns the count. */
static int split(char *line, char **f, int max)
{
    int n = 0;
    char *p = line;
    while (n < max) {
        f[n++] = p;
        char *t = strchr(p, '\t');
        if (!t) break;
        *t = 0;
        p = t + 1;
    }
    return n;
}

static bool parse_ull(const char *s, unsigned long long max, unsigned long long *out)
{
    char *end;
    errno = 0;
    if (!*s || *s == '-') return false;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > max) return false;
    *out = v;
    return true;
}

static bool copy_field(char *dst, size_t n, const char *src)
{
    size_t len = strlen(src);
    if (len >= n) return false;
    memcpy(dst, src, len + 1);
    return true;
}

int cl_load(const char *dir, cl_state *st)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, CL_STATE_FILE) >= (int)sizeof path)
        return -ENAMETOOLONG;
    FILE *f = fopen(path, "re");
    if (!f) return -errno;
    memset(st, 0, sizeof *st);
    char line[3 * PATH_MAX + 600];
    int lineno = 0, rc = 0;
    bool magic = false;
    while (!rc && fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strlen(line);
        if (len == 0 || line[len - 1] != '\n') {
            rc = -EINVAL;
            break;
        }
        line[len - 1] = 0;
        if (!magic) {
            magic = strcmp(line, CL_MAGIC) == 0;
            if (!magic) rc = -EINVAL;
            continue;
        }
        char *fl[8];
        int nf = split(line, fl, 8);
        unsigned long long a, b, c;
        if (!strcmp(fl[0], "epmd") && nf == 4 && parse_ull(fl[1], 65535, &a) &&
            parse_ull(fl[2], INT32_MAX, &b) && parse_ull(fl[3], ~0ULL, &c)) {
            st->epmd_port = (uint16_t)a;
            st->epmd.pid = (pid_t)b;
            st->epmd.start = c;
        } else if (!strcmp(fl[0], "tls") && nf == 2 && fl[1][0]) {
            if (!copy_field(st->tls_optfile, sizeof st->tls_optfile, fl[1])) rc = -EINVAL;
        } else if (!strcmp(fl[0], "node") && nf == 7 && st->n < CL_MAX_NODES &&
                   parse_ull(fl[3], INT32_MAX, &b) && parse_ull(fl[4], ~0ULL, &c)) {
            cl_node *nd = &st->nodes[st->n];
            if (!copy_field(nd->name, sizeof nd->name, fl[1]) ||
                !copy_field(nd->kind, sizeof nd->kind, fl[2]) ||
                !copy_field(nd->log, sizeof nd->log, fl[5]) ||
                !copy_field(nd->ctl, sizeof nd->ctl, strcmp(fl[6], "-") ? fl[6] : "")) {
                rc = -EINVAL;
            } else {
                nd->proc.pid = (pid_t)b;
                nd->proc.start = c;
                st->n++;
            }
        } else {
            rc = -EINVAL;
        }
    }
    if (!rc && !magic) rc = -EINVAL;
    fclose(f);
    if (rc == -EINVAL) cli_err("%s: not a cluster state file I understand (line %d)", path, lineno);
    return rc;
}

int cl_read_cookie(const char *dir, char *buf, size_t n)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, CL_COOKIE_FILE) >= (int)sizeof path)
        return -ENAMETOOLONG;
    FILE *f = fopen(path, "re");
    if (!f) return -errno;
    int rc = fgets(buf, (int)n, f) ? 0 : -EINVAL;
    fclose(f);
    if (!rc) buf[strcspn(buf, "\r\n")] = 0;
    if (!rc && !buf[0]) rc = -EINVAL;
    return rc;
}

int cl_write_cookie(const char *dir, const char *cookie)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, CL_COOKIE_FILE) >= (int)sizeof path)
        return -ENAMETOOLONG;
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0400);
    if (fd < 0) return -errno;
    size_t len = strlen(cookie);
    int rc = write(fd, cookie, len) == (ssize_t)len && write(fd, "\n", 1) == 1 ? 0 : -EIO;
    close(fd);
    return rc;
}

/* Reads /proc/PID/stat: the state letter and the start time (field 22). */
static bool proc_stat(pid_t pid, char *state, unsigned long long *start)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return false;
    buf[n] = 0;
    /* the command name is in parentheses and may contain anything: skip to the last ')' */
    char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ') return false;
    p += 2;
    *state = *p;
    /* fields after the name: 3 is the state; the start time is field 22 */
    for (int field = 3; field < 22; field++) {
        p = strchr(p, ' ');
        if (!p) return false;
        p++;
    }
    *start = strtoull(p, NULL, 10);
    return true;
}

unsigned long long cl_proc_start(pid_t pid)
{
    char state;
    unsigned long long start;
    return pid > 0 && proc_stat(pid, &state, &start) ? start : 0;
}

bool cl_proc_alive(const cl_proc *p)
{
    char state;
    unsigned long long start;
    if (p->pid <= 0 || !proc_stat(p->pid, &state, &start)) return false;
    return state != 'Z' && state != 'X' && start == p->start;
}

int cl_find(const cl_state *st, const char *name)
{
    for (size_t i = 0; i < st->n; i++)
        if (!strcmp(st->nodes[i].name, name)) return (int)i;
    return -1;
}
