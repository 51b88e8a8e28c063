/*
 * webconfig.c - the web configuration file (`--web.config.file`): TLS for
 * kiln's HTTP server, the headers it sets, its basic-auth users; the format
 * of Prometheus' exporter-toolkit (config.h has the model).
 *
 * A file goes through the steps of a prometheus.yml: yamltree_parse, then
 * decode_section with the tables below (shapes, types, unknown keys, each
 * with file:line:col), then the document's finish hook, which checks what
 * the toolkit's Validate checks after decoding, in its order: the headers,
 * each user's bcrypt hash (Go's bcrypt.Cost, with its words), then the TLS
 * settings (cert_file and key_file, client_auth_type, a client CA without a
 * policy).  Reading the certificate, key and CA files is the TLS server's
 * (api/tls.c): a file that cannot be loaded stops kiln at start.
 *
 * Beyond promtool 2.42 (whose toolkit is older): client_allowed_sans is
 * accepted (the reference format has it); header values holding a control
 * character are refused (they would split the answer); a hash libcrypt
 * cannot check (other than $2a$, $2b$, $2y$) is refused instead of failing
 * every login.
 *
 * Called by cmd/kiln/main.c at start.  Threading: a load touches nothing
 * shared; a config_web is read-only once loaded.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/schema.h"

#define FIELD(T, f) .off = offsetof(T, f)
#define ARRAY(T, f) .off = offsetof(T, f), .noff = offsetof(T, n##f)
#define SECTION(name_, keys_, ...)                                                                           \
    { .name = name_, .keys = keys_, .nkeys = sizeof keys_ / sizeof keys_[0], __VA_ARGS__ }

/* ---- names ------------------------------------------------------------------------- */

/* Go's tls.CipherSuites() (Go 1.19, Prometheus 2.42's) and OpenSSL's names;
 * "" for TLS 1.3 suites, which Go accepts here and does not configure. */
static const struct {
    const char *go, *openssl;
} ciphers[] = {
    {"TLS_RSA_WITH_AES_128_CBC_SHA", "AES128-SHA"},
    {"TLS_RSA_WITH_AES_256_CBC_SHA", "AES256-SHA"},
    {"TLS_RSA_WITH_AES_128_GCM_SHA256", "AES128-GCM-SHA256"},
    {"TLS_RSA_WITH_AES_256_GCM_SHA384", "AES256-GCM-SHA384"},
    {"TLS_AES_128_GCM_SHA256", ""},
    {"TLS_AES_256_GCM_SHA384", ""},
    {"TLS_CHACHA20_POLY1305_SHA256", ""},
    {"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "ECDHE-ECDSA-AES128-SHA"},
    {"TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", "ECDHE-ECDSA-AES256-SHA"},
    {"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "ECDHE-RSA-AES128-SHA"},
    {"TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", "ECDHE-RSA-AES256-SHA"},
    {"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256"},
    {"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "ECDHE-ECDSA-AES256-GCM-SHA384"},
    {"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "ECDHE-RSA-AES128-GCM-SHA256"},
    {"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "ECDHE-RSA-AES256-GCM-SHA384"},
    {"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-RSA-CHACHA20-POLY1305"},
    {"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305"},
};

static const struct {
    const char *go, *openssl;
} curves[] = {
    {"CurveP256", "P-256"},
    {"CurveP384", "P-384"},
    {"CurveP521", "P-521"},
    {"X25519", "X25519"},
};

const char *config_web_cipher_openssl(const char *go_name) {
    for (size_t i = 0; go_name && i < sizeof ciphers / sizeof ciphers[0]; i++)
        if (strcmp(go_name, ciphers[i].go) == 0)
            return ciphers[i].openssl;
    return NULL;
}

const char *config_web_curve_openssl(const char *go_name) {
    for (size_t i = 0; go_name && i < sizeof curves / sizeof curves[0]; i++)
        if (strcmp(go_name, curves[i].go) == 0)
            return curves[i].openssl;
    return NULL;
}

int config_tls_version(const char *name) {
    static const char *const names[] = {"TLS10", "TLS11", "TLS12", "TLS13"};
    for (int i = 0; name && i < 4; i++)
        if (strcmp(name, names[i]) == 0)
            return 0x0301 + i;
    return 0;
}

/* The toolkit's client_auth_type names; RequireClientCert is its old name
 * for RequireAnyClientCert. */
static const struct {
    const char *name;
    int policy;
} client_auths[] = {
    {"NoClientCert", CONFIG_CLIENT_AUTH_NONE},
    {"RequestClientCert", CONFIG_CLIENT_AUTH_REQUEST},
    {"RequireAnyClientCert", CONFIG_CLIENT_AUTH_REQUIRE_ANY},
    {"RequireClientCert", CONFIG_CLIENT_AUTH_REQUIRE_ANY},
    {"VerifyClientCertIfGiven", CONFIG_CLIENT_AUTH_VERIFY_IF_GIVEN},
    {"RequireAndVerifyClientCert", CONFIG_CLIENT_AUTH_REQUIRE_AND_VERIFY},
};

/* The headers the toolkit lets a file set, and the values it allows (none
 * listed: any). */
static const struct {
    const char *name;
    const char *values[3];
} allowed_headers[] = {
    {"Strict-Transport-Security", {NULL}},
    {"X-Content-Type-Options", {"nosniff", NULL}},
    {"X-Frame-Options", {"deny", "sameorigin", NULL}},
    {"X-XSS-Protection", {NULL}},
    {"Content-Security-Policy", {NULL}},
};

/* ---- checks of single keys ------------------------------------------------------------ */

/* A list of names, each known to lookup (NULL: unknown), else "unknown what: name". */
static int check_names(dec *d, const ynode *v, char **names, size_t n, const char *(*lookup)(const char *),
                       const char *what) {
    for (size_t i = 0; i < n; i++)
        if (!lookup(names[i]))
            return decode_fail(d, v->kids[i], "unknown %s: %.100s", what, names[i]);
    return 0;
}

static int check_ciphers(dec *d, const ynode *v, void *field, size_t n) {
    return check_names(d, v, *(char ***)field, n, config_web_cipher_openssl, "cipher");
}

static int check_curves(dec *d, const ynode *v, void *field, size_t n) {
    return check_names(d, v, *(char ***)field, n, config_web_curve_openssl, "curve");
}

/* The toolkit's validateHeaderConfig, in its words; and no control
 * characters, which would end the header line early. */
static int check_headers(dec *d, const ynode *v, void *field, size_t n) {
    const config_label *h = *(config_label **)field;
    for (size_t i = 0; i < n; i++) {
        const ynode *kn = v->kids[2 * i], *vn = v->kids[2 * i + 1];
        size_t j = 0;
        while (j < sizeof allowed_headers / sizeof allowed_headers[0] &&
               strcmp(h[i].name, allowed_headers[j].name))
            j++;
        if (j == sizeof allowed_headers / sizeof allowed_headers[0])
            return decode_fail(d, kn, "HTTP header \"%.100s\" can not be configured", h[i].name);
        const char *const *vals = allowed_headers[j].values;
        int ok = vals[0] == NULL;
        char list[64] = "";
        for (size_t k = 0; vals[k]; k++) {
            ok |= strcmp(h[i].value, vals[k]) == 0;
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s\"%s\"", k ? " " : "", vals[k]);
        }
        if (!ok)
            return decode_fail(d, vn, "invalid value for %s. Expected one of: [%s], but got: \"%.100s\"",
                               h[i].name, list, h[i].value);
        for (const char *p = h[i].value; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                return decode_fail(d, vn, "the value of HTTP header %s holds a control character", h[i].name);
    }
    return 0;
}

/* Go's bcrypt.Cost: what promtool checks of a hash, in its words. */
static int check_bcrypt(dec *d, const ynode *v, const char *h) {
    size_t len = strlen(h);
    if (len < 59)
        return decode_fail(d, v, "crypto/bcrypt: hashedSecret too short to be a bcrypted password");
    if (h[0] != '$')
        return decode_fail(
            d, v, "crypto/bcrypt: bcrypt hashes must start with '$', but hashedSecret started with '%c'",
            h[0]);
    if ((unsigned char)h[1] > '2')
        return decode_fail(
            d, v, "crypto/bcrypt: bcrypt algorithm version '%c' requested is newer than current version '2'",
            h[1]);
    const char *c = h + (h[2] != '$' ? 4 : 3);
    /* strconv.Atoi of two bytes: an optional sign and digits */
    int signed_ = c[0] == '-' || c[0] == '+';
    if ((!signed_ && !isdigit((unsigned char)c[0])) || !isdigit((unsigned char)c[1]))
        return decode_fail(d, v, "strconv.Atoi: parsing \"%.2s\": invalid syntax", c);
    int cost = signed_ ? c[1] - '0' : (c[0] - '0') * 10 + (c[1] - '0');
    if (c[0] == '-')
        cost = -cost;
    if (cost < 4 || cost > 31)
        return decode_fail(d, v, "crypto/bcrypt: cost %d is outside allowed range (4,31)", cost);
    if (h[1] != '2' || (h[2] != 'a' && h[2] != 'b' && h[2] != 'y') || h[3] != '$')
        return decode_fail(
            d, v, "kiln checks bcrypt hashes of the forms $2a$, $2b$ and $2y$ only, got \"%.4s\"", h);
    return 0;
}

/* ---- the tables -------------------------------------------------------------------------- */

static const schema_key tls_keys[] = {
    {"cert_file", SCHEMA_STRING, FIELD(config_web_tls, cert_file)},
    {"key_file", SCHEMA_STRING, FIELD(config_web_tls, key_file)},
    {"client_auth_type", SCHEMA_STRING, FIELD(config_web_tls, client_auth_type)},
    {"client_ca_file", SCHEMA_STRING, FIELD(config_web_tls, client_ca_file)},
    {"min_version", SCHEMA_STRING, FIELD(config_web_tls, min_version), .def_str = "TLS12",
     .check = schema_check_tls_version},
    {"max_version", SCHEMA_STRING, FIELD(config_web_tls, max_version), .def_str = "TLS13",
     .check = schema_check_tls_version},
    {"cipher_suites", SCHEMA_STRINGS, ARRAY(config_web_tls, cipher_suites), .check = check_ciphers},
    {"curve_preferences", SCHEMA_STRINGS, ARRAY(config_web_tls, curve_preferences), .check = check_curves},
    {"prefer_server_cipher_suites", SCHEMA_BOOL, FIELD(config_web_tls, prefer_server_cipher_suites),
     .def = 1},
    {"client_allowed_sans", SCHEMA_STRINGS, ARRAY(config_web_tls, client_allowed_sans)},
};

static const schema_section tls_sec = SECTION("tls_server_config", tls_keys, .null_ok = 1);

static const schema_key http_keys[] = {
    {"http2", SCHEMA_BOOL, FIELD(config_web, http2), .def = 1},
    {"headers", SCHEMA_LABELS, ARRAY(config_web, headers), .check = check_headers},
};

/* http_server_config's keys sit in config_web itself (INLINE would merge
 * them into the document's map): a section over the same struct. */
static const schema_section http_sec = SECTION("http_server_config", http_keys, .null_ok = 1);

/* Notes key (at node k) as set but not acted on. */
static int note_unused(dec *d, const char *path, const ynode *k) {
    config_unused_key *u = decode_array(d, d->nunused + 1, sizeof *u);
    if (!u || !(u[d->nunused].path = decode_strdup(d, path)))
        return decode_oom(d);
    if (d->nunused)
        memcpy(u, d->unused, d->nunused * sizeof *u);
    u[d->nunused].line = k->line;
    u[d->nunused].col = k->col;
    d->unused = u;
    d->nunused++;
    return 0;
}

/* The toolkit's checks after decoding: users, then TLS (ConfigToTLSConfig). */
static int doc_finish(dec *d, void *obj, const schema_seen *s) {
    config_web *w = obj;
    config_web_tls *t = &w->tls;
    int rc;
    const ynode *http = decode_at(s, "http_server_config");
    if (http != s->map && http->kind == YAMLTREE_MAP)
        for (size_t i = 0; i < http->n; i++)
            if (strcmp(http->kids[2 * i]->str, "http2") == 0 &&
                (rc = note_unused(d, "http_server_config.http2", http->kids[2 * i])) != 0)
                return rc;
    const ynode *users = decode_at(s, "basic_auth_users");
    for (size_t i = 0; i < w->nusers; i++)
        if ((rc = check_bcrypt(d, users->kids[2 * i + 1], w->users[i].value)) != 0)
            return rc;

    const ynode *tn = decode_at(s, "tls_server_config");
    const ynode *at = tn;
    if (tn != s->map && tn->kind == YAMLTREE_MAP)
        for (size_t i = 0; i < tn->n; i++)
            if (strcmp(tn->kids[2 * i]->str, "client_auth_type") == 0)
                at = tn->kids[2 * i + 1];
    /* Go tells "not set" from "" only by emptiness */
    int has_cert = t->cert_file && *t->cert_file, has_key = t->key_file && *t->key_file;
    int has_auth = t->client_auth_type && *t->client_auth_type,
        has_ca = t->client_ca_file && *t->client_ca_file;
    t->enabled = has_cert || has_key || has_auth || has_ca;
    if (!t->enabled)
        return 0;
    if (!has_cert)
        return decode_fail(d, tn, "missing cert_file");
    if (!has_key)
        return decode_fail(d, tn, "missing key_file");
    t->client_auth = -1;
    for (size_t i = 0; i < sizeof client_auths / sizeof client_auths[0]; i++)
        if (!has_auth || strcmp(t->client_auth_type, client_auths[i].name) == 0) {
            t->client_auth = client_auths[i].policy;
            break;
        }
    if (t->client_auth < 0)
        return decode_fail(d, at, "Invalid ClientAuth: %.100s", t->client_auth_type);
    if (has_ca && t->client_auth == CONFIG_CLIENT_AUTH_NONE)
        return decode_fail(d, tn, "Client CA's have been configured without a Client Auth Policy");
    t->cert_file = decode_path(d, t->cert_file);
    t->key_file = decode_path(d, t->key_file);
    if (has_ca)
        t->client_ca_file = decode_path(d, t->client_ca_file);
    else
        t->client_ca_file = NULL;
    if (!t->cert_file || !t->key_file || (has_ca && !t->client_ca_file))
        return decode_oom(d);
    return 0;
}

static const schema_key doc_keys[] = {
    {"tls_server_config", SCHEMA_MAP, FIELD(config_web, tls), .sub = &tls_sec},
    {"http_server_config", SCHEMA_MAP, .off = 0, .sub = &http_sec},
    {"basic_auth_users", SCHEMA_LABELS, ARRAY(config_web, users)},
};

static const schema_section doc_sec =
    SECTION("the web configuration", doc_keys, .null_ok = 1, .top = 1, .finish = doc_finish);

/* ---- loading ----------------------------------------------------------------------------- */

int config_web_load_string(const char *name, const char *dir, const char *yaml, size_t len, config_web **out,
                           kiln_err *err) {
    *out = NULL;
    if (!name)
        name = "<web config>";
    if (len > CONFIG_MAX_BYTES)
        return kiln_err_set(err, KILN_ELIMIT,
                            "%s: the document is %zu bytes, more than the limit of %u bytes", name, len,
                            (unsigned)CONFIG_MAX_BYTES);
    config_web *w = calloc(1, sizeof *w);
    if (!w)
        return kiln_err_set(err, KILN_ENOMEM, "%s: out of memory", name);
    arena_init(&w->mem, 0);
    int rc = (w->name = arena_strndup(&w->mem, name, strlen(name))) == NULL
                 ? kiln_err_set(err, KILN_ENOMEM, "%s: out of memory", name)
                 : decode_document(w->name, dir, yaml ? yaml : "", yaml ? len : 0, &w->mem, &doc_sec, w, NULL,
                                   &w->unused_keys, &w->nunused_keys, err);
    if (rc) {
        config_web_free(w);
        return rc;
    }
    *out = w;
    return 0;
}

int config_web_load_file(const char *path, config_web **out, kiln_err *err) {
    char *data = NULL;
    size_t len = 0;
    *out = NULL;
    int rc = config_read_doc(path, &data, &len, err);
    if (rc)
        return rc;
    char dir[4096];
    config_doc_dir(path, dir, sizeof dir);
    rc = config_web_load_string(path, dir, data, len, out, err);
    free(data);
    return rc;
}

void config_web_free(config_web *w) {
    if (!w)
        return;
    arena_free(&w->mem);
    free(w);
}

void config_web_log_unused(const config_web *w) {
    for (size_t i = 0; w && i < w->nunused_keys; i++)
        LOG_WARN("web configuration key is parsed but not acted on", "key=%s at=%s:%d:%d",
                 w->unused_keys[i].path, w->name, w->unused_keys[i].line, w->unused_keys[i].col);
}
