/*
 * test_sd.c - the service discovery pieces that need no server: the strict
 * JSON reader (util/json.c), target groups and sets (scrape/sd.c), HTTP
 * SD's decoder (scrape/sd_http.c), and the *_sd_configs keys of the
 * configuration (config/schema_sd.c).
 */
#include <string.h>

#include "config/config.h"
#include "scrape/sd.h"
#include "util/util.h"

#define KILN_TEST_MAIN
#include "testutil.h"

/* ---- JSON ---------------------------------------------------------------- */

static int parses(const char *s) {
    arena a;
    arena_init(&a, 0);
    json_val *v = NULL;
    kiln_err err = {0};
    int rc = json_parse(s, strlen(s), &a, &v, &err);
    if (rc != 0)
        ck_assert_msg(strstr(err.msg, "json: ") == err.msg && strstr(err.msg, "offset"), "%s", err.msg);
    arena_free(&a);
    return rc == 0;
}

START_TEST(test_json_good_and_bad) {
    static const char *const good[] = {
        "null",
        "true",
        " false ",
        "0",
        "-0",
        "1.5e+10",
        "-12.25E-3",
        "\"\"",
        "\"a\\u00e9\\ud83d\\ude00\"",
        "[]",
        "{}",
        "[1,[2,[3]],{\"a\":{}}]",
        "{\"a\":1,\"a\":2}",
        "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"",
        "\"h\xc3\xa9\"",
    };
    static const char *const bad[] = {
        "",         "[1,]",     "{\"a\":1,}", "01",      "1.",          ".5",          "1e",  "+1",
        "[1 2]",    "{a:1}",    "{\"a\" 1}",  "\"\\x\"", "\"\\ud800\"", "\"\\udc00\"", "tru", "nul",
        "\"a\tb\"", "\"\xff\"", "[] []",      "\"abc",   "[",           "{\"a\":}",    "NaN", "\"\\u12\"",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        ck_assert_msg(parses(good[i]), "rejected %s", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(!parses(bad[i]), "accepted %s", bad[i]);
}
END_TEST

START_TEST(test_json_tree) {
    const char *s =
        "{\"s\":\"x\\u00e9\\ud83d\\ude00\",\"n\":-2.5e1,\"a\":[true,null],\"s\":\"last\",\"o\":{}}";
    arena a;
    arena_init(&a, 0);
    json_val *v = NULL;
    ck_assert_int_eq(json_parse(s, strlen(s), &a, &v, NULL), 0);
    ck_assert_int_eq(v->type, JSON_OBJ);
    ck_assert_uint_eq(v->n, 5);
    ck_assert_str_eq(json_get_str(v, "s"), "last");
    ck_assert_str_eq(v->kids[0].str, "x\xc3\xa9\xf0\x9f\x98\x80");
    const json_val *n = json_get(v, "n");
    ck_assert_int_eq(n->type, JSON_NUM);
    ck_assert(n->num == -25.0);
    ck_assert_str_eq(n->str, "-2.5e1");
    const json_val *arr = json_get(v, "a");
    ck_assert_uint_eq(arr->n, 2);
    ck_assert_int_eq(arr->kids[0].type, JSON_BOOL);
    ck_assert_int_eq(arr->kids[0].b, 1);
    ck_assert_int_eq(arr->kids[1].type, JSON_NULL);
    ck_assert_ptr_null(json_get(v, "missing"));
    ck_assert_ptr_null(json_get_str(v, "n"));
    ck_assert_ptr_null(json_get(arr, "a"));
    arena_free(&a);
}
END_TEST

START_TEST(test_json_depth) {
    char deep[2 * JSON_MAX_DEPTH + 8];
    size_t k = 0;
    for (int i = 0; i < JSON_MAX_DEPTH; i++)
        deep[k++] = '[';
    for (int i = 0; i < JSON_MAX_DEPTH; i++)
        deep[k++] = ']';
    deep[k] = 0;
    ck_assert(parses(deep));
    memmove(deep + 1, deep, k + 1);
    deep[0] = '[';
    deep[k + 1] = ']';
    deep[k + 2] = 0;
    ck_assert(!parses(deep));
}
END_TEST

/* ---- groups and sets ----------------------------------------------------------- */

static sd_tg *group(const char *source, const char *addr, const char *v) {
    sd_gb b;
    sd_gb_init(&b);
    sd_gb_label(&b, "__meta_x", v);
    sd_gb_label_san(&b, "__meta_l_", "app.kubernetes.io/name", "web");
    sd_gb_label(&b, "__meta_empty", "");
    sd_gb_target(&b, addr);
    sd_gb_tlabel(&b, "__meta_port", "80");
    sd_gb_target(&b, "other:1");
    sd_tg *g = sd_gb_done(&b, source);
    sd_gb_free(&b);
    return g;
}

START_TEST(test_group_builder) {
    sd_tg *g = group("src", "a:1", "v");
    ck_assert_ptr_nonnull(g);
    ck_assert_str_eq(g->source, "src");
    ck_assert_uint_eq(g->nls, 2); /* the empty value is left out; sorted by name */
    ck_assert_str_eq(g->ls[0].name, "__meta_l_app_kubernetes_io_name");
    ck_assert_str_eq(g->ls[1].name, "__meta_x");
    ck_assert_uint_eq(g->nt, 2);
    ck_assert_uint_eq(g->t[0].n, 2);
    ck_assert_str_eq(labels_get(g->t[0].ls, g->t[0].n, "__address__"), "a:1");
    ck_assert_str_eq(labels_get(g->t[0].ls, g->t[0].n, "__meta_port"), "80");
    ck_assert_uint_eq(g->t[1].n, 1);
    ck_assert_str_eq(g->t[1].ls[0].value, "other:1");
    sd_tg_unref(g);
}
END_TEST

START_TEST(test_set_changes) {
    sd_set s = {0};
    ck_assert_int_eq(sd_set_put(&s, group("a", "h:1", "1")), 1);
    ck_assert_int_eq(sd_set_put(&s, group("a", "h:1", "1")), 0); /* equal: no change */
    ck_assert_int_eq(sd_set_put(&s, group("a", "h:1", "2")), 1); /* new content */
    ck_assert_uint_eq(s.n, 1);
    char src[32];
    for (int i = 0; i < 100; i++) {
        snprintf(src, sizeof src, "g%d", i);
        ck_assert_int_eq(sd_set_put(&s, group(src, "h:2", "1")), 1);
    }
    ck_assert_uint_eq(s.n, 101);
    for (int i = 0; i < 100; i += 2) {
        snprintf(src, sizeof src, "g%d", i);
        ck_assert_int_eq(sd_set_del(&s, src), 1);
        ck_assert_int_eq(sd_set_del(&s, src), 0);
    }
    ck_assert_uint_eq(s.n, 51);
    /* a removed source can come back, found past the tombstones */
    ck_assert_int_eq(sd_set_put(&s, group("g0", "h:2", "1")), 1);
    ck_assert_int_eq(sd_set_put(&s, group("g1", "h:2", "1")), 0);
    ck_assert_uint_eq(s.n, 52);
    /* replace: the same set is no change, one group less is */
    sd_tg *gs[2] = {group("x", "h:1", "1"), group("y", "h:1", "1")};
    ck_assert_int_eq(sd_set_replace(&s, gs, 2), 1);
    sd_tg *same[2] = {group("y", "h:1", "1"), group("x", "h:1", "1")};
    ck_assert_int_eq(sd_set_replace(&s, same, 2), 0);
    sd_tg *fewer[1] = {group("y", "h:1", "1")};
    ck_assert_int_eq(sd_set_replace(&s, fewer, 1), 1);
    ck_assert_uint_eq(s.n, 1);
    ck_assert_int_eq(sd_set_replace(&s, NULL, 0), 1);
    ck_assert_uint_eq(s.n, 0);
    sd_set_free(&s);
}
END_TEST

/* ---- HTTP SD's answers ------------------------------------------------------------ */

START_TEST(test_http_decode) {
    const char *body = "[{\"targets\":[\"a:1\",\"b:2\"],\"labels\":{\"env\":\"prod\",\"__meta_x\":\"y\"}},"
                       "{\"targets\":[\"c:3\"]},{\"targets\":[],\"labels\":null},null]";
    sd_tg **gs = NULL;
    size_t n = 0;
    kiln_err err = {0};
    ck_assert_int_eq(sd_http_decode(body, strlen(body), "http://sd/t", &gs, &n, &err), 0);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(gs[0]->source, "http://sd/t:0");
    ck_assert_str_eq(gs[2]->source, "http://sd/t:2");
    ck_assert_str_eq(labels_get(gs[0]->ls, gs[0]->nls, "env"), "prod");
    ck_assert_str_eq(labels_get(gs[0]->ls, gs[0]->nls, "__meta_x"), "y");
    ck_assert_str_eq(labels_get(gs[0]->ls, gs[0]->nls, "__meta_url"), "http://sd/t");
    ck_assert_str_eq(labels_get(gs[1]->ls, gs[1]->nls, "__meta_url"), "http://sd/t");
    ck_assert_uint_eq(gs[0]->nt, 2);
    ck_assert_str_eq(gs[0]->t[1].ls[0].value, "b:2");
    ck_assert_uint_eq(gs[2]->nt, 0);
    for (size_t i = 0; i < n; i++)
        sd_tg_unref(gs[i]);
    free(gs);

    static const struct {
        const char *body, *msg;
    } bad[] = {
        {"{}", "expected a JSON list"},
        {"[1]", "expected an object"},
        {"[{\"targets\":\"a\"}]", "must be a list of strings"},
        {"[{\"targets\":[1]}]", "is not a string"},
        {"[{\"labels\":{\"0bad\":\"x\"}}]", "not a valid label name"},
        {"[{\"labels\":{\"a\":1}}]", "is not a string"},
        {"[{\"labels\":[]}]", "must be an object"},
        {"[{\"targets\":[\"a\"],}]", "json: "},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&err, 0, sizeof err);
        ck_assert_int_eq(sd_http_decode(bad[i].body, strlen(bad[i].body), "u", &gs, &n, &err), KILN_EINVAL);
        ck_assert_msg(strstr(err.msg, bad[i].msg), "%s: %s", bad[i].body, err.msg);
        ck_assert_ptr_null(gs);
    }
}
END_TEST

/* ---- DNS ------------------------------------------------------------------------ */

START_TEST(test_dns_resolv) {
    sd_dns_conf c;
    ck_assert_int_eq(
        sd_dns_resolv("# comment\nnameserver 127.0.0.1:5353\nnameserver ::1\n"
                      "nameserver [::1]:53\nsearch a.example b.example\noptions rotate ndots:3\n",
                      &c),
        0);
    ck_assert_str_eq(c.servers, "127.0.0.1:5353,[::1],[::1]:53");
    ck_assert_uint_eq(c.nservers, 3);
    ck_assert_uint_eq(c.ndomains, 2);
    ck_assert_str_eq(c.domains[1], "b.example");
    ck_assert_int_eq(c.ndots, 3);
    ck_assert_int_eq(sd_dns_resolv("domain x.example\n", &c), 0);
    ck_assert_uint_eq(c.nservers, 0);
    ck_assert_str_eq(c.domains[0], "x.example");
    ck_assert_int_eq(c.ndots, 1);
}
END_TEST

/* A DNS answer to one question, built by hand: the records' rdata as given. */
typedef struct dnsmsg {
    unsigned char b[1024];
    int n, an;
} dnsmsg;

static void put16(dnsmsg *m, unsigned v) {
    m->b[m->n++] = (unsigned char)(v >> 8);
    m->b[m->n++] = (unsigned char)v;
}

static void put_name(dnsmsg *m, const char *name) {
    while (*name) {
        const char *dot = strchr(name, '.');
        size_t l = dot ? (size_t)(dot - name) : strlen(name);
        m->b[m->n++] = (unsigned char)l;
        memcpy(m->b + m->n, name, l);
        m->n += (int)l;
        name += l + (dot ? 1 : 0);
    }
    m->b[m->n++] = 0;
}

static void msg_start(dnsmsg *m, const char *q, unsigned type, int an) {
    memset(m, 0, sizeof *m);
    put16(m, 0x1234);
    put16(m, 0x8180);
    put16(m, 1);
    put16(m, (unsigned)an);
    put16(m, 0);
    put16(m, 0);
    put_name(m, q);
    put16(m, type);
    put16(m, 1);
}

/* A record for the question's name; its rdata follows (rdlength patched by rr_end). */
static int rr_start(dnsmsg *m, unsigned type) {
    put16(m, 0xC00C);
    put16(m, type);
    put16(m, 1);
    put16(m, 0);
    put16(m, 60);
    put16(m, 0);
    return m->n;
}

static void rr_end(dnsmsg *m, int start) {
    unsigned len = (unsigned)(m->n - start);
    m->b[start - 2] = (unsigned char)(len >> 8);
    m->b[start - 1] = (unsigned char)len;
}

static sd_tg *decode(const char *type, const char *name, unsigned port, dnsmsg *m) {
    sd_gb b;
    sd_gb_init(&b);
    ck_assert_int_eq(sd_dns_decode(type, name, port, m->b, m->n, &b), 0);
    sd_tg *g = sd_gb_done(&b, name);
    sd_gb_free(&b);
    ck_assert_ptr_nonnull(g);
    return g;
}

static const char *tl(const sd_tg *g, size_t i, const char *name) {
    return labels_get(g->t[i].ls, g->t[i].n, name);
}

START_TEST(test_dns_decode) {
    dnsmsg m;
    /* SRV: the target's name without its dot and the port; the meta labels rooted */
    msg_start(&m, "_p._tcp.x", 33, 2);
    int s = rr_start(&m, 33);
    put16(&m, 10), put16(&m, 5), put16(&m, 9100), put_name(&m, "node1.x");
    rr_end(&m, s);
    s = rr_start(&m, 33);
    put16(&m, 10), put16(&m, 5), put16(&m, 9200), put_name(&m, "node2.x");
    rr_end(&m, s);
    sd_tg *g = decode("SRV", "_p._tcp.x", 0, &m);
    ck_assert_uint_eq(g->nt, 2);
    ck_assert_str_eq(tl(g, 0, "__address__"), "node1.x:9100");
    ck_assert_str_eq(tl(g, 0, "__meta_dns_srv_record_target"), "node1.x.");
    ck_assert_str_eq(tl(g, 0, "__meta_dns_srv_record_port"), "9100");
    ck_assert_str_eq(tl(g, 1, "__meta_dns_name"), "_p._tcp.x");
    ck_assert_ptr_null(tl(g, 1, "__meta_dns_mx_record_target"));
    sd_tg_unref(g);
    /* MX and NS: the name and the config's port */
    msg_start(&m, "x", 15, 1);
    s = rr_start(&m, 15);
    put16(&m, 10), put_name(&m, "mail.x");
    rr_end(&m, s);
    g = decode("MX", "x", 25, &m);
    ck_assert_str_eq(tl(g, 0, "__address__"), "mail.x:25");
    ck_assert_str_eq(tl(g, 0, "__meta_dns_mx_record_target"), "mail.x.");
    sd_tg_unref(g);
    msg_start(&m, "x", 2, 2);
    s = rr_start(&m, 2);
    put_name(&m, "ns1.x");
    rr_end(&m, s);
    s = rr_start(&m, 2);
    put_name(&m, "ns2.x");
    rr_end(&m, s);
    g = decode("NS", "x", 53, &m);
    ck_assert_uint_eq(g->nt, 2);
    ck_assert_str_eq(tl(g, 1, "__address__"), "ns2.x:53");
    ck_assert_str_eq(tl(g, 1, "__meta_dns_ns_record_target"), "ns2.x.");
    sd_tg_unref(g);
    /* A and AAAA: the address and port, an IPv6 one bracketed */
    msg_start(&m, "h.x", 1, 1);
    s = rr_start(&m, 1);
    m.b[m.n++] = 10, m.b[m.n++] = 0, m.b[m.n++] = 0, m.b[m.n++] = 7;
    rr_end(&m, s);
    g = decode("A", "h.x", 80, &m);
    ck_assert_str_eq(tl(g, 0, "__address__"), "10.0.0.7:80");
    ck_assert_uint_eq(g->t[0].n, 2);
    sd_tg_unref(g);
    msg_start(&m, "h.x", 28, 1);
    s = rr_start(&m, 28);
    memset(m.b + m.n, 0, 15);
    m.n += 15;
    m.b[m.n++] = 1;
    rr_end(&m, s);
    g = decode("AAAA", "h.x", 80, &m);
    ck_assert_str_eq(tl(g, 0, "__address__"), "[::1]:80");
    sd_tg_unref(g);
    /* a CNAME only, for an A question: no target, no error */
    msg_start(&m, "h.x", 1, 1);
    s = rr_start(&m, 5);
    put_name(&m, "other.x");
    rr_end(&m, s);
    g = decode("A", "h.x", 80, &m);
    ck_assert_uint_eq(g->nt, 0);
    sd_tg_unref(g);
    /* a truncated answer is an error */
    sd_gb b;
    sd_gb_init(&b);
    ck_assert_int_eq(sd_dns_decode("SRV", "x", 0, m.b, 14, &b), KILN_EINVAL);
    sd_gb_free(&b);
}
END_TEST

/* ---- Consul ------------------------------------------------------------------------ */

START_TEST(test_consul_services) {
    const char *body = "{\"consul\":[],\"web\":[\"prod\",\"v1\"],\"db\":null}";
    arena a;
    arena_init(&a, 0);
    const char **names = NULL;
    const json_val **tags = NULL;
    size_t n = 0;
    kiln_err err = {0};
    ck_assert_int_eq(sd_consul_services(body, strlen(body), &a, &names, &tags, &n, &err), 0);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(names[1], "web");
    ck_assert_uint_eq(tags[1]->n, 2);
    ck_assert_str_eq(tags[1]->kids[1].str, "v1");
    ck_assert_int_eq(tags[2]->type, JSON_NULL);
    const char *bad = "{\"web\":[1]}";
    ck_assert_int_eq(sd_consul_services(bad, strlen(bad), &a, &names, &tags, &n, &err), KILN_EINVAL);
    ck_assert(strstr(err.msg, "a tag of web is not a string"));
    ck_assert_int_eq(sd_consul_services("[]", 2, &a, &names, &tags, &n, &err), KILN_EINVAL);
    arena_free(&a);
}
END_TEST

START_TEST(test_consul_health) {
    const char *body =
        "[{\"Node\":{\"Node\":\"n1\",\"Address\":\"10.0.0.1\",\"TaggedAddresses\":{\"lan\":\"10.0.0.1\"},"
        "\"Meta\":{\"os.name\":\"linux\"}},"
        "\"Service\":{\"ID\":\"web-1\",\"Service\":\"web\",\"Tags\":[\"a\",\"b\"],\"Address\":\"\",\"Port\":"
        "80,"
        "\"Meta\":{\"v\":\"2\"},\"Namespace\":\"ns\",\"TaggedAddresses\":{\"lan\":{\"Address\":\"x\","
        "\"Port\":1}}},"
        "\"Checks\":[{\"CheckID\":\"serfHealth\",\"Status\":\"passing\"},{\"CheckID\":\"s\",\"Status\":"
        "\"warning\"}]},"
        "{\"Node\":{\"Node\":\"n2\",\"Address\":\"10.0.0.2\"},"
        "\"Service\":{\"ID\":\"web-2\",\"Tags\":null,\"Address\":\"fe80::1\",\"Port\":81},"
        "\"Checks\":[{\"CheckID\":\"_service_maintenance:web-2\",\"Status\":\"critical\"}]}]";
    sd_gb b;
    sd_gb_init(&b);
    sd_tg *g = NULL;
    kiln_err err = {0};
    ck_assert_int_eq(sd_consul_health(body, strlen(body), "web", "dc1", ",", &b, &g, &err), 0);
    ck_assert_str_eq(g->source, "web");
    ck_assert_str_eq(labels_get(g->ls, g->nls, "__meta_consul_service"), "web");
    ck_assert_str_eq(labels_get(g->ls, g->nls, "__meta_consul_dc"), "dc1");
    ck_assert_uint_eq(g->nt, 2);
    ck_assert_str_eq(tl(g, 0, "__address__"), "10.0.0.1:80");
    ck_assert_str_eq(tl(g, 0, "__meta_consul_address"), "10.0.0.1");
    ck_assert_str_eq(tl(g, 0, "__meta_consul_node"), "n1");
    ck_assert_str_eq(tl(g, 0, "__meta_consul_tags"), ",a,b,");
    ck_assert_str_eq(tl(g, 0, "__meta_consul_service_id"), "web-1");
    ck_assert_str_eq(tl(g, 0, "__meta_consul_service_port"), "80");
    ck_assert_str_eq(tl(g, 0, "__meta_consul_health"), "warning");
    ck_assert_str_eq(tl(g, 0, "__meta_consul_namespace"), "ns");
    ck_assert_str_eq(tl(g, 0, "__meta_consul_metadata_os_name"), "linux");
    ck_assert_str_eq(tl(g, 0, "__meta_consul_service_metadata_v"), "2");
    ck_assert_str_eq(tl(g, 0, "__meta_consul_tagged_address_lan"), "10.0.0.1");
    ck_assert_ptr_null(tl(g, 0, "__meta_consul_service_address"));
    ck_assert_str_eq(tl(g, 1, "__address__"), "[fe80::1]:81");
    ck_assert_str_eq(tl(g, 1, "__meta_consul_service_address"), "fe80::1");
    ck_assert_str_eq(tl(g, 1, "__meta_consul_tags"), ",,");
    ck_assert_str_eq(tl(g, 1, "__meta_consul_health"), "maintenance");
    sd_tg_unref(g);
    /* an empty answer is an empty group; a broken one an error */
    ck_assert_int_eq(sd_consul_health("[]", 2, "web", "dc1", ",", &b, &g, &err), 0);
    ck_assert_uint_eq(g->nt, 0);
    sd_tg_unref(g);
    static const char *const bad[] = {"{}", "[{\"Node\":{}}]",
                                      "[{\"Node\":{},\"Service\":{\"Port\":\"80\"}}]",
                                      "[{\"Node\":{\"Meta\":{\"a\":1}},\"Service\":{}}]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        g = NULL;
        ck_assert_int_eq(sd_consul_health(bad[i], strlen(bad[i]), "web", "dc1", ",", &b, &g, &err),
                         KILN_EINVAL);
        ck_assert_ptr_null(g);
    }
    sd_gb_free(&b);
}
END_TEST

/* ---- configuration ---------------------------------------------------------------- */

static config *load(const char *yaml, kiln_err *err) {
    config *c = NULL;
    memset(err, 0, sizeof *err);
    if (config_load_string("t.yml", yaml, strlen(yaml), &c, err) != 0)
        return NULL;
    return c;
}

START_TEST(test_config_defaults) {
    kiln_err err;
    config *c =
        load("scrape_configs:\n"
             "- job_name: j\n"
             "  http_sd_configs: [{url: 'https://sd/x', bearer_token: t}]\n"
             "  dns_sd_configs: [{names: [a.example], type: a, port: 9}]\n"
             "  consul_sd_configs: [{services: [s]}]\n"
             "  kubernetes_sd_configs: [{role: pod, namespaces: {names: [n1, n2]}, selectors: [{role: "
             "pod, label: 'a=b'}], attach_metadata: {node: true}}]\n",
             &err);
    ck_assert_msg(c != NULL, "%s", err.msg);
    const scrape_config *s = &c->scrape_configs[0];
    ck_assert_uint_eq(s->nhttp_sd_configs, 1);
    ck_assert_int_eq(s->http_sd_configs[0].refresh_interval_ms, 60000);
    ck_assert_int_eq(s->http_sd_configs[0].http.has_authorization, 1);
    ck_assert_str_eq(s->http_sd_configs[0].http.credentials, "t");
    ck_assert_str_eq(s->dns_sd_configs[0].type, "A");
    ck_assert_int_eq(s->dns_sd_configs[0].refresh_interval_ms, 30000);
    ck_assert_uint_eq(s->dns_sd_configs[0].port, 9);
    const config_consul_sd *cs = &s->consul_sd_configs[0];
    ck_assert_str_eq(cs->server, "localhost:8500");
    ck_assert_str_eq(cs->scheme, "http");
    ck_assert_str_eq(cs->tag_separator, ",");
    ck_assert_int_eq(cs->allow_stale, 1);
    ck_assert_int_eq(cs->refresh_interval_ms, 30000);
    const config_kubernetes_sd *k = &s->kubernetes_sd_configs[0];
    ck_assert_str_eq(k->role, "pod");
    ck_assert_ptr_null(k->api_server);
    ck_assert_uint_eq(k->nnamespaces, 2);
    ck_assert_str_eq(k->namespaces[1], "n2");
    ck_assert_str_eq(k->selectors[0].label, "a=b");
    ck_assert_int_eq(k->attach_node, 1);
    /* a reload with the same discoveries keeps them; another does not */
    config *d = load("scrape_configs:\n"
                     "- job_name: j\n"
                     "  http_sd_configs: [{url: 'https://sd/x', bearer_token: t}]\n",
                     &err);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(config_sd_equal(s, s), 1);
    ck_assert_int_eq(config_sd_equal(s, &d->scrape_configs[0]), 0);
    config_free(d);
    config_free(c);
}
END_TEST

START_TEST(test_config_errors) {
    static const struct {
        const char *sd, *msg;
    } cases[] = {
        {"http_sd_configs: [{refresh_interval: 1s}]", "t.yml:3:21: URL is missing"},
        {"http_sd_configs: [{url: 'ftp://x'}]", "URL scheme must be 'http' or 'https'"},
        {"dns_sd_configs: [{names: []}]", "must contain at least one SRV record name"},
        {"dns_sd_configs: [{names: [a], type: TXT}]", "invalid DNS-SD records type TXT"},
        {"dns_sd_configs: [{names: [a], type: A}]", "a port is required in DNS-SD configs"},
        {"consul_sd_configs: [{server: ' '}]", "requires a server address"},
        {"kubernetes_sd_configs: [{api_server: 'http://k'}]", "role missing"},
        {"kubernetes_sd_configs: [{role: pods}]", "unknown Kubernetes SD role pods"},
        {"kubernetes_sd_configs: [{role: pod, bearer_token: x}]", "please provide the 'api_server' URL"},
        {"kubernetes_sd_configs: [{role: node, api_server: 'http://k', selectors: [{role: pod}]}]",
         "node role supports only node selectors"},
        {"kubernetes_sd_configs: [{role: pod, api_server: 'http://k', kubeconfig_file: f}]",
         "cannot use 'kubeconfig_file' and 'api_server' simultaneously"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char yaml[512];
        snprintf(yaml, sizeof yaml, "scrape_configs:\n- job_name: j\n  %s\n", cases[i].sd);
        kiln_err err;
        config *c = load(yaml, &err);
        ck_assert_msg(c == NULL, "accepted %s", cases[i].sd);
        ck_assert_msg(strstr(err.msg, cases[i].msg), "%s: %s", cases[i].sd, err.msg);
    }
}
END_TEST

START_TEST(test_config_unused_keys) {
    kiln_err err;
    config *c = load(
        "global: {query_log_file: q.log}\nscrape_configs:\n- job_name: j\n  kubernetes_sd_configs: "
        "[{role: pod, attach_metadata: {namespace: true, deployment: true, job: true, cronjob: true}}]\n",
        &err);
    ck_assert_msg(c != NULL, "%s", err.msg);
    int found = 0;
    for (size_t i = 0; i < c->nunused_keys; i++) {
        found |= strstr(c->unused_keys[i].path, "query_log_file") != NULL;
        ck_assert_ptr_null(strstr(c->unused_keys[i].path, "attach_metadata")); /* all acted on */
    }
    ck_assert_msg(found, "global.query_log_file is not listed as unused");
    config_free(c);
}
END_TEST

Suite *make_suite(void) {
    Suite *s = suite_create("sd");
    TCase *tc = tcase_create("sd");
    tcase_add_test(tc, test_json_good_and_bad);
    tcase_add_test(tc, test_json_tree);
    tcase_add_test(tc, test_json_depth);
    tcase_add_test(tc, test_group_builder);
    tcase_add_test(tc, test_set_changes);
    tcase_add_test(tc, test_http_decode);
    tcase_add_test(tc, test_dns_resolv);
    tcase_add_test(tc, test_dns_decode);
    tcase_add_test(tc, test_consul_services);
    tcase_add_test(tc, test_consul_health);
    tcase_add_test(tc, test_config_defaults);
    tcase_add_test(tc, test_config_errors);
    tcase_add_test(tc, test_config_unused_keys);
    suite_add_tcase(s, tc);
    return s;
}
