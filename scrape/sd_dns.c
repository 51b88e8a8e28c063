/*
 * sd_dns.c - dns_sd_configs: targets from DNS SRV, A, AAAA, MX or NS
 * records, looked up every refresh_interval with c-ares, as Prometheus'
 * discovery/dns does.
 *
 * Each name is one target group (source: the name) whose targets carry
 * __meta_dns_name and, by record type, __meta_dns_srv_record_target and
 * __meta_dns_srv_record_port (SRV: the address is target:port),
 * __meta_dns_mx_record_target or __meta_dns_ns_record_target (the address
 * is that name and the config's port), or the address and the config's
 * port (A, AAAA).  Record names keep their trailing dot in the meta labels
 * and lose it in the address, as in Prometheus.  A name that does not
 * exist or has no record of the type is an empty group; a lookup that
 * fails (timeout, server failure) keeps the name's previous group and
 * counts kiln_sd_dns_lookup_failures_total.
 *
 * The resolver is /etc/resolv.conf's (nameservers, search, ndots), or the
 * file named by the environment variable KILN_DNS_SD_RESOLV_CONF (a kiln
 * extension, for tests and for running beside another resolver): its
 * nameserver lines may carry a port (`nameserver 127.0.0.1:5353`,
 * `nameserver [::1]:5353`).  c-ares does the lookups asynchronously; its
 * sockets are polled by the SD thread beside curl's (poll_fds/poll_done).
 *
 * Threading: the SD thread (sd.c), except sd_dns_resolv (any thread).
 */
#include <ares.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scrape/sd.h"

#define DNS_MAX_ADDRS 512

typedef struct dns_sd {
    ares_channel ch;
    int ch_ok;
    size_t pending; /* lookups of the current refresh not answered yet */
    int failed;     /* one of them failed */
    sd_gb gb;
    /* the lookups of a refresh, one per name */
    struct dns_q {
        struct dns_sd *d;
        sd_provider *p;
        size_t i;
    } * qs;
} dns_sd;

/* ---- the resolver's configuration ---------------------------------------------- */

int sd_dns_resolv(const char *text, sd_dns_conf *out) {
    memset(out, 0, sizeof *out);
    out->ndots = 1;
    buf servers = BUF_INIT;
    const char *p = text;
    while (p && *p) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        char line[512];
        if (len >= sizeof line)
            len = sizeof line - 1;
        memcpy(line, p, len);
        line[len] = 0;
        p = eol ? eol + 1 : NULL;
        char *save = NULL, *kw = strtok_r(line, " \t\r", &save);
        if (!kw || kw[0] == '#' || kw[0] == ';')
            continue;
        if (strcmp(kw, "nameserver") == 0) {
            char *a = strtok_r(NULL, " \t\r", &save);
            if (!a)
                continue;
            unsigned char tmp[16];
            int v6 = strchr(a, ':') && a[0] != '[' && inet_pton(AF_INET6, a, tmp) == 1;
            if (servers.len)
                buf_putc(&servers, ',');
            /* a bare IPv6 address is bracketed for c-ares' host:port list */
            buf_printf(&servers, v6 ? "[%s]" : "%s", a);
            out->nservers++;
        } else if (strcmp(kw, "search") == 0 || strcmp(kw, "domain") == 0) {
            out->ndomains = 0;
            char *dname;
            while ((dname = strtok_r(NULL, " \t\r", &save)) && out->ndomains < SD_DNS_MAX_DOMAINS)
                snprintf(out->domains[out->ndomains++], sizeof out->domains[0], "%s", dname);
        } else if (strcmp(kw, "options") == 0) {
            char *o;
            while ((o = strtok_r(NULL, " \t\r", &save)))
                if (strncmp(o, "ndots:", 6) == 0)
                    out->ndots = atoi(o + 6);
        }
    }
    if (buf_error(&servers)) {
        buf_free(&servers);
        return KILN_ENOMEM;
    }
    snprintf(out->servers, sizeof out->servers, "%s", servers.data ? servers.data : "");
    buf_free(&servers);
    return 0;
}

static int dns_channel(sd_provider *p, dns_sd *d) {
    const char *path = getenv("KILN_DNS_SD_RESOLV_CONF");
    if (!path || !*path)
        path = "/etc/resolv.conf";
    sd_dns_conf rc;
    FILE *f = fopen(path, "r");
    buf text = BUF_INIT;
    if (f) {
        char tmp[4096];
        size_t n;
        while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
            buf_append(&text, tmp, n);
        fclose(f);
    } else {
        LOG_WARN("Cannot read the resolver configuration", "discovery=dns scrape_pool=%s path=%s", p->job,
                 path);
    }
    buf_putc(&text, 0);
    int e = buf_error(&text) ? KILN_ENOMEM : sd_dns_resolv(text.data, &rc);
    buf_free(&text);
    if (e != 0)
        return e;
    struct ares_options o;
    memset(&o, 0, sizeof o);
    char *doms[SD_DNS_MAX_DOMAINS];
    for (size_t i = 0; i < rc.ndomains; i++)
        doms[i] = rc.domains[i];
    o.domains = doms;
    o.ndomains = (int)rc.ndomains;
    o.ndots = rc.ndots;
    o.timeout = 2000;
    o.tries = 2;
    o.lookups = (char *)"b";
    int mask = ARES_OPT_DOMAINS | ARES_OPT_NDOTS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_LOOKUPS;
    int st = ares_init_options(&d->ch, &o, mask);
    if (st != ARES_SUCCESS) {
        LOG_ERROR("Cannot set the resolver up", "discovery=dns scrape_pool=%s err=%s", p->job,
                  ares_strerror(st));
        return KILN_EIO;
    }
    d->ch_ok = 1;
    if (rc.nservers && (st = ares_set_servers_ports_csv(d->ch, rc.servers)) != ARES_SUCCESS)
        LOG_ERROR("Bad nameserver in the resolver configuration",
                  "discovery=dns scrape_pool=%s path=%s err=%s", p->job, path, ares_strerror(st));
    return 0;
}

/* ---- answers -------------------------------------------------------------------- */

/* host:port, bracketed when host is an IPv6 address (Go's net.JoinHostPort). */
static void host_port(char *out, size_t n, const char *host, unsigned port) {
    size_t hl = strlen(host);
    while (hl && host[hl - 1] == '.')
        hl--;
    snprintf(out, n, strchr(host, ':') ? "[%.*s]:%u" : "%.*s:%u", (int)hl, host, port);
}

/* rooted: the name with its trailing dot, as miekg/dns gives it */
static void rooted(char *out, size_t n, const char *name) {
    size_t l = strlen(name);
    snprintf(out, n, l && name[l - 1] == '.' ? "%s" : "%s.", name);
}

static void add_target(sd_gb *b, const char *name, const char *addr, const char *lname, const char *value,
                       const char *port) {
    sd_gb_target(b, addr);
    sd_gb_tlabel(b, "__meta_dns_name", name);
    if (lname)
        sd_gb_tlabel(b, lname, value);
    if (port)
        sd_gb_tlabel(b, "__meta_dns_srv_record_port", port);
}

int sd_dns_decode(const char *type, const char *name, unsigned port, const unsigned char *abuf, int alen,
                  sd_gb *b) {
    char addr[1100], lv[1030], num[16];
    int st = ARES_SUCCESS;
    if (strcmp(type, "SRV") == 0) {
        struct ares_srv_reply *srv = NULL;
        if ((st = ares_parse_srv_reply(abuf, alen, &srv)) == ARES_SUCCESS)
            for (struct ares_srv_reply *r = srv; r; r = r->next) {
                host_port(addr, sizeof addr, r->host, r->port);
                rooted(lv, sizeof lv, r->host);
                snprintf(num, sizeof num, "%u", (unsigned)r->port);
                add_target(b, name, addr, "__meta_dns_srv_record_target", lv, num);
            }
        ares_free_data(srv);
    } else if (strcmp(type, "MX") == 0) {
        struct ares_mx_reply *mx = NULL;
        if ((st = ares_parse_mx_reply(abuf, alen, &mx)) == ARES_SUCCESS)
            for (struct ares_mx_reply *r = mx; r; r = r->next) {
                host_port(addr, sizeof addr, r->host, port);
                rooted(lv, sizeof lv, r->host);
                add_target(b, name, addr, "__meta_dns_mx_record_target", lv, NULL);
            }
        ares_free_data(mx);
    } else if (strcmp(type, "NS") == 0) {
        struct hostent *h = NULL;
        if ((st = ares_parse_ns_reply(abuf, alen, &h)) == ARES_SUCCESS)
            for (char **a = h->h_aliases; a && *a; a++) {
                host_port(addr, sizeof addr, *a, port);
                rooted(lv, sizeof lv, *a);
                add_target(b, name, addr, "__meta_dns_ns_record_target", lv, NULL);
            }
        if (h)
            ares_free_hostent(h);
    } else if (strcmp(type, "A") == 0 || strcmp(type, "AAAA") == 0) {
        int v6 = type[1] == 'A', n = DNS_MAX_ADDRS;
        struct ares_addrttl *a4 = v6 ? NULL : calloc(DNS_MAX_ADDRS, sizeof *a4);
        struct ares_addr6ttl *a6 = v6 ? calloc(DNS_MAX_ADDRS, sizeof *a6) : NULL;
        if (!a4 && !a6)
            return KILN_ENOMEM;
        st = v6 ? ares_parse_aaaa_reply(abuf, alen, NULL, a6, &n)
                : ares_parse_a_reply(abuf, alen, NULL, a4, &n);
        for (int i = 0; st == ARES_SUCCESS && i < n; i++) {
            char ip[INET6_ADDRSTRLEN];
            inet_ntop(v6 ? AF_INET6 : AF_INET,
                      v6 ? (const void *)&a6[i].ip6addr : (const void *)&a4[i].ipaddr, ip, sizeof ip);
            host_port(addr, sizeof addr, ip, port);
            add_target(b, name, addr, NULL, NULL, NULL);
        }
        free(a4);
        free(a6);
    } else {
        return KILN_EINVAL;
    }
    /* an answer with no record of the type (a CNAME only, say) is no target */
    if (st == ARES_ENODATA)
        return 0;
    return st == ARES_SUCCESS ? 0 : st == ARES_ENOMEM ? KILN_ENOMEM : KILN_EINVAL;
}

static void refresh_done(sd_provider *p, dns_sd *d) {
    const config_dns_sd *c = p->conf;
    sd_count_refresh(p, d->failed);
    sd_publish(p);
    p->due_ms = time_now_ms() + c->refresh_interval_ms;
}

static void on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen) {
    struct dns_q *q = arg;
    dns_sd *d = q->d;
    sd_provider *p = q->p;
    const config_dns_sd *c = p->conf;
    const char *name = c->names[q->i];
    (void)timeouts;
    if (status == ARES_EDESTRUCTION)
        return; /* the provider goes away */
    metric_add(sd_metric(p->rt, "kiln_sd_dns_lookups_total", NULL), 1);
    int rc = 0;
    if (status == ARES_SUCCESS)
        rc = sd_dns_decode(c->type, name, (unsigned)c->port, abuf, alen, &d->gb);
    else if (status != ARES_ENOTFOUND && status != ARES_ENODATA)
        rc = KILN_EIO;
    sd_tg *g = NULL;
    if (rc == 0 && (g = sd_gb_done(&d->gb, name)) && sd_set_put(&p->cur, g) > 0)
        p->dirty = 1;
    if (rc != 0 || !g) {
        sd_gb_reset(&d->gb);
        LOG_ERROR("Error refreshing DNS targets", "discovery=dns scrape_pool=%s name=%s type=%s err=%s",
                  p->job, name, c->type, rc == KILN_EIO ? ares_strerror(status) : "bad answer");
        metric_add(sd_metric(p->rt, "kiln_sd_dns_lookup_failures_total", NULL), 1);
        d->failed = 1;
    }
    if (--d->pending == 0)
        refresh_done(p, d);
}

static int qtype(const char *t) {
    static const struct {
        const char *name;
        int type;
    } types[] = {{"SRV", 33}, {"A", 1}, {"AAAA", 28}, {"MX", 15}, {"NS", 2}};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strcmp(t, types[i].name) == 0)
            return types[i].type;
    return 33;
}

static void dns_tick(sd_provider *p) {
    dns_sd *d = p->state;
    const config_dns_sd *c = p->conf;
    if (d->pending)
        return;
    d->failed = 0;
    d->pending = c->nnames;
    for (size_t i = 0; i < c->nnames; i++)
        ares_search(d->ch, c->names[i], 1 /* C_IN */, qtype(c->type), on_answer, &d->qs[i]);
}

static int dns_start(sd_provider *p) {
    const config_dns_sd *c = p->conf;
    dns_sd *d = calloc(1, sizeof *d);
    if (!d)
        return KILN_ENOMEM;
    p->state = d;
    sd_gb_init(&d->gb);
    if (!(d->qs = calloc(c->nnames ? c->nnames : 1, sizeof *d->qs)))
        return KILN_ENOMEM;
    for (size_t i = 0; i < c->nnames; i++)
        d->qs[i] = (struct dns_q){d, p, i};
    int rc = dns_channel(p, d);
    if (rc != 0)
        return rc;
    p->due_ms = 0;
    return 0;
}

static size_t dns_poll_fds(sd_provider *p, struct curl_waitfd *fds, size_t max, int64_t *timeout_ms) {
    dns_sd *d = p->state;
    if (!d || !d->ch_ok || !d->pending)
        return 0;
    ares_socket_t socks[ARES_GETSOCK_MAXNUM];
    /* ares' ARES_GETSOCK_WRITABLE shifts an int by up to 31: the bits are read unsigned */
    unsigned bits = (unsigned)ares_getsock(d->ch, socks, ARES_GETSOCK_MAXNUM);
    size_t n = 0;
    for (unsigned i = 0; i < ARES_GETSOCK_MAXNUM && n < max; i++) {
        short ev = (short)((bits & (1u << i) ? CURL_WAIT_POLLIN : 0) |
                           (bits & (1u << (i + ARES_GETSOCK_MAXNUM)) ? CURL_WAIT_POLLOUT : 0));
        if (!ev)
            continue;
        fds[n].fd = socks[i];
        fds[n].events = ev;
        fds[n].revents = 0;
        n++;
    }
    struct timeval tv, *t = ares_timeout(d->ch, NULL, &tv);
    if (t) {
        int64_t ms = (int64_t)t->tv_sec * 1000 + t->tv_usec / 1000 + 1;
        if (ms < *timeout_ms)
            *timeout_ms = ms;
    }
    return n;
}

static void dns_poll_done(sd_provider *p, struct curl_waitfd *fds, size_t n) {
    dns_sd *d = p->state;
    for (size_t i = 0; i < n; i++) {
        ares_socket_t r =
            fds[i].revents & (CURL_WAIT_POLLIN | CURL_WAIT_POLLPRI) ? fds[i].fd : ARES_SOCKET_BAD;
        ares_socket_t w = fds[i].revents & CURL_WAIT_POLLOUT ? fds[i].fd : ARES_SOCKET_BAD;
        if (r != ARES_SOCKET_BAD || w != ARES_SOCKET_BAD)
            ares_process_fd(d->ch, r, w);
    }
    /* the timeouts */
    if (d->pending)
        ares_process_fd(d->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
}

static void dns_free(sd_provider *p) {
    dns_sd *d = p->state;
    if (!d)
        return;
    if (d->ch_ok)
        ares_destroy(d->ch);
    sd_gb_free(&d->gb);
    free(d->qs);
    free(d);
    p->state = NULL;
}

const sd_ops sd_dns_ops = {
    .mechanism = "dns",
    .start = dns_start,
    .tick = dns_tick,
    .poll_fds = dns_poll_fds,
    .poll_done = dns_poll_done,
    .free = dns_free,
};
