/*
 * tls.c - TLS for the HTTP server's connections, with OpenSSL over memory
 * BIOs (web.h has the model).
 *
 * A tls_server holds the SSL_CTX built from tls_server_config: the
 * certificate chain and key, min/max versions, the cipher suites (Go's
 * names mapped to OpenSSL's; they apply to TLS 1.2 and below, as in Go),
 * the curves, the server's cipher preference, the client-certificate
 * policy and CA.  The toolkit re-reads the certificate at each handshake;
 * here each new connection stats the certificate, key and client CA files
 * and, when one changed (mtime, size, inode), builds a new context for the
 * connections that follow; sessions already open keep the old one (OpenSSL
 * counts its references).  A new context that fails to load is logged and
 * the previous one kept; it is tried again when the files change again.
 *
 * A connection's first bytes are checked as Go's server checks them: a
 * plain HTTP request gets "400 Client sent an HTTP request to an HTTPS
 * server." and the connection closes.  Handshake failures are logged at
 * debug (they are the client's business) and close the connection, after a
 * best-effort write of the alert.  client_allowed_sans is checked once the
 * handshake is done: a client certificate must carry one of them as a DNS,
 * IP, e-mail or URI SAN.
 *
 * Called by http.c (connections) and webauth.c (the server).  Threading:
 * the loop thread only.
 */
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "api/web.h"

/* libuv reads this much ciphertext at a time: a whole TLS record and more. */
#define TLS_RX_SIZE (32 * 1024)
/* An answer is encrypted this much at a time, so OpenSSL's output BIO
 * stays small while a large body is encrypted. */
#define TLS_WRITE_CHUNK (256 * 1024)

enum { TLS_CERT, TLS_KEY, TLS_CA, TLS_NFILES };

struct tls_server {
    const config_web_tls *c;
    SSL_CTX *ctx;
    struct stat st[TLS_NFILES]; /* of the files the context was built from (or last tried) */
};

struct tls_conn {
    tls_server *srv;
    SSL *ssl;
    BIO *rbio, *wbio; /* ciphertext in and out; owned by ssl */
    int seen_bytes;   /* the first bytes were checked for plain HTTP */
    char rx[TLS_RX_SIZE];
};

/* OpenSSL's queued error as text ("error:0A000086:SSL routines::certificate verify failed"). */
static const char *ssl_error_text(char *b, size_t n) {
    unsigned long e = ERR_get_error();
    if (!e)
        snprintf(b, n, "unknown error");
    else
        ERR_error_string_n(e, b, n);
    ERR_clear_error();
    return b;
}

/* For RequestClientCert and RequireAnyClientCert: any certificate will do. */
static int accept_any(int ok, X509_STORE_CTX *x) {
    (void)ok;
    (void)x;
    return 1;
}

static int ctx_fail(SSL_CTX *ctx, kiln_err *err, const char *what, const char *file) {
    char e[256];
    ssl_error_text(e, sizeof e);
    SSL_CTX_free(ctx);
    if (file)
        return kiln_err_set(err, KILN_EINVAL, "%s %s: %s", what, file, e);
    return kiln_err_set(err, KILN_EINVAL, "%s: %s", what, e);
}

/* A new context from c. */
static int ctx_build(const config_web_tls *c, SSL_CTX **out, kiln_err *err) {
    *out = NULL;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return ctx_fail(NULL, err, "creating the TLS context", NULL);
    SSL_CTX_set_min_proto_version(ctx, config_tls_version(c->min_version));
    SSL_CTX_set_max_proto_version(ctx, config_tls_version(c->max_version));
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
                                 (c->prefer_server_cipher_suites ? SSL_OP_CIPHER_SERVER_PREFERENCE : 0));
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    /* sessions resumed with a verified client certificate need an id context */
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"kiln", 4);

    char list[1024] = "";
    for (size_t i = 0; i < c->ncipher_suites; i++) {
        const char *name = config_web_cipher_openssl(c->cipher_suites[i]);
        if (name && *name)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", list[0] ? ":" : "", name);
    }
    if (list[0] && SSL_CTX_set_cipher_list(ctx, list) != 1)
        return ctx_fail(ctx, err, "cipher_suites", NULL);
    list[0] = 0;
    for (size_t i = 0; i < c->ncurve_preferences; i++) {
        const char *name = config_web_curve_openssl(c->curve_preferences[i]);
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", list[0] ? ":" : "",
                 name ? name : "");
    }
    if (list[0] && SSL_CTX_set1_groups_list(ctx, list) != 1)
        return ctx_fail(ctx, err, "curve_preferences", NULL);

    /* Go's message: failed to load X509KeyPair */
    if (SSL_CTX_use_certificate_chain_file(ctx, c->cert_file) != 1)
        return ctx_fail(ctx, err, "failed to load X509KeyPair: cert_file", c->cert_file);
    if (SSL_CTX_use_PrivateKey_file(ctx, c->key_file, SSL_FILETYPE_PEM) != 1)
        return ctx_fail(ctx, err, "failed to load X509KeyPair: key_file", c->key_file);
    if (SSL_CTX_check_private_key(ctx) != 1)
        return ctx_fail(ctx, err, "failed to load X509KeyPair: key_file", c->key_file);

    if (c->client_ca_file) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(c->client_ca_file);
        if (!names || SSL_CTX_load_verify_locations(ctx, c->client_ca_file, NULL) != 1) {
            sk_X509_NAME_pop_free(names, X509_NAME_free);
            return ctx_fail(ctx, err, "client_ca_file", c->client_ca_file);
        }
        SSL_CTX_set_client_CA_list(ctx, names); /* the CAs the server names in its request */
    } else if (c->client_auth >= CONFIG_CLIENT_AUTH_VERIFY_IF_GIVEN) {
        SSL_CTX_set_default_verify_paths(ctx); /* Go verifies against the system's roots then */
    }
    switch (c->client_auth) {
    case CONFIG_CLIENT_AUTH_REQUEST:
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, accept_any);
        break;
    case CONFIG_CLIENT_AUTH_REQUIRE_ANY:
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, accept_any);
        break;
    case CONFIG_CLIENT_AUTH_VERIFY_IF_GIVEN:
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        break;
    case CONFIG_CLIENT_AUTH_REQUIRE_AND_VERIFY:
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
        break;
    default:
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    *out = ctx;
    return 0;
}

/* The files' states now; a missing file reads as all zeros. */
static void stat_files(const config_web_tls *c, struct stat st[TLS_NFILES]) {
    const char *paths[TLS_NFILES] = {c->cert_file, c->key_file, c->client_ca_file};
    for (int i = 0; i < TLS_NFILES; i++)
        if (!paths[i] || stat(paths[i], &st[i]) != 0)
            memset(&st[i], 0, sizeof st[i]);
}

static int same_file(const struct stat *a, const struct stat *b) {
    return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

int tls_server_new(const config_web_tls *c, tls_server **out, kiln_err *err) {
    *out = NULL;
    tls_server *t = calloc(1, sizeof *t);
    if (!t)
        return kiln_err_set(err, KILN_ENOMEM, "out of memory");
    t->c = c;
    stat_files(c, t->st);
    int rc = ctx_build(c, &t->ctx, err);
    if (rc) {
        free(t);
        return rc;
    }
    *out = t;
    return 0;
}

void tls_server_free(tls_server *t) {
    if (!t)
        return;
    SSL_CTX_free(t->ctx);
    free(t);
}

/* A new context when a file changed since the current one was built. */
static void maybe_reload(tls_server *t) {
    struct stat st[TLS_NFILES];
    stat_files(t->c, st);
    int changed = 0;
    for (int i = 0; i < TLS_NFILES; i++)
        changed |= !same_file(&st[i], &t->st[i]);
    if (!changed)
        return;
    memcpy(t->st, st, sizeof st);
    SSL_CTX *ctx;
    kiln_err e = {0};
    if (ctx_build(t->c, &ctx, &e) != 0) {
        LOG_ERROR("TLS certificate reload failed, keeping the previous one", "err=%s", e.msg);
        return;
    }
    SSL_CTX_free(t->ctx); /* sessions still open hold their own reference */
    t->ctx = ctx;
    LOG_INFO("TLS certificate reloaded", "cert_file=%s", t->c->cert_file);
}

tls_conn *tls_conn_new(tls_server *t) {
    maybe_reload(t);
    tls_conn *c = malloc(sizeof *c);
    if (!c)
        return NULL;
    c->srv = t;
    c->seen_bytes = 0;
    c->ssl = SSL_new(t->ctx);
    c->rbio = BIO_new(BIO_s_mem());
    c->wbio = BIO_new(BIO_s_mem());
    if (!c->ssl || !c->rbio || !c->wbio) {
        BIO_free(c->rbio);
        BIO_free(c->wbio);
        SSL_free(c->ssl);
        free(c);
        ERR_clear_error();
        return NULL;
    }
    /* an empty memory BIO means "try again later", not end of file */
    BIO_set_mem_eof_return(c->rbio, -1);
    SSL_set_bio(c->ssl, c->rbio, c->wbio);
    SSL_set_accept_state(c->ssl);
    return c;
}

void tls_conn_free(tls_conn *c) {
    if (!c)
        return;
    SSL_free(c->ssl); /* frees the BIOs */
    free(c);
}

void tls_conn_alloc(tls_conn *c, uv_buf_t *b) {
    *b = uv_buf_init(c->rx, sizeof c->rx);
}

/* ---- writing ---------------------------------------------------------------- */

typedef struct tls_wreq {
    uv_write_t w;
    uv_write_t *outer;
    uv_write_cb cb;
    buf data;
} tls_wreq;

static void on_tls_written(uv_write_t *w, int status) {
    tls_wreq *r = (tls_wreq *)w;
    if (r->cb)
        r->cb(r->outer, status);
    buf_free(&r->data);
    free(r);
}

/* Moves what OpenSSL has queued to send into b. */
static void drain(tls_conn *c, buf *b) {
    size_t n = BIO_ctrl_pending(c->wbio);
    if (n == 0 || buf_reserve(b, n) != 0)
        return;
    int r = BIO_read(c->wbio, b->data + b->len, (int)n);
    if (r > 0)
        b->len += (size_t)r;
}

/* Writes what OpenSSL has queued (handshake messages, session tickets). */
static int flush(tls_conn *c, uv_stream_t *s) {
    if (BIO_ctrl_pending(c->wbio) == 0)
        return 0;
    tls_wreq *r = calloc(1, sizeof *r);
    if (!r)
        return -1;
    drain(c, &r->data);
    uv_buf_t b = uv_buf_init(r->data.data, (unsigned)r->data.len);
    if (buf_error(&r->data) != 0 || uv_write(&r->w, s, &b, 1, on_tls_written) != 0) {
        buf_free(&r->data);
        free(r);
        return -1;
    }
    return 0;
}

int tls_write(tls_conn *c, uv_write_t *req, uv_stream_t *s, const uv_buf_t bufs[], unsigned n,
              uv_write_cb cb) {
    if (!c)
        return uv_write(req, s, bufs, n, cb);
    tls_wreq *r = calloc(1, sizeof *r);
    if (!r)
        return UV_ENOMEM;
    r->outer = req;
    r->cb = cb;
    for (unsigned i = 0; i < n; i++) {
        for (size_t off = 0; off < bufs[i].len;) {
            size_t len = bufs[i].len - off < TLS_WRITE_CHUNK ? bufs[i].len - off : TLS_WRITE_CHUNK, done = 0;
            if (SSL_write_ex(c->ssl, bufs[i].base + off, len, &done) != 1) {
                char e[256];
                LOG_DEBUG("TLS write failed", "err=%s", ssl_error_text(e, sizeof e));
                goto fail;
            }
            off += done;
            drain(c, &r->data);
        }
    }
    uv_buf_t b = uv_buf_init(r->data.data, (unsigned)r->data.len);
    if (buf_error(&r->data) != 0)
        goto fail;
    int rc = uv_write(&r->w, s, &b, 1, on_tls_written);
    if (rc == 0)
        return 0;
    buf_free(&r->data);
    free(r);
    return rc;
fail:
    buf_free(&r->data);
    free(r);
    return UV_EIO;
}

/* ---- reading ---------------------------------------------------------------- */

/* Go's looksLikeHTTP: the first five bytes of a plain request. */
static int looks_like_http(const char *p, size_t n) {
    static const char *const starts[] = {"GET /", "HEAD ", "POST ", "PUT /", "OPTIO"};
    for (size_t i = 0; n >= 5 && i < sizeof starts / sizeof starts[0]; i++)
        if (memcmp(p, starts[i], 5) == 0)
            return 1;
    return 0;
}

/* Whether san (a GENERAL_NAME) is written s, as Go writes it. */
static int san_equals(const GENERAL_NAME *g, const char *s) {
    int type;
    const ASN1_STRING *v = GENERAL_NAME_get0_value(g, &type);
    if (!v)
        return 0;
    const unsigned char *d = ASN1_STRING_get0_data(v);
    int len = ASN1_STRING_length(v);
    if (type == GEN_DNS || type == GEN_EMAIL || type == GEN_URI)
        return (size_t)len == strlen(s) && memcmp(d, s, (size_t)len) == 0;
    if (type == GEN_IPADD && (len == 4 || len == 16)) {
        char ip[INET6_ADDRSTRLEN];
        return inet_ntop(len == 4 ? AF_INET : AF_INET6, d, ip, sizeof ip) && strcmp(ip, s) == 0;
    }
    return 0;
}

/* client_allowed_sans: a client certificate must carry one of them. */
static int sans_allowed(tls_conn *c) {
    const config_web_tls *cfg = c->srv->c;
    X509 *peer = SSL_get0_peer_certificate(c->ssl);
    if (!cfg->nclient_allowed_sans || !peer)
        return 1;
    GENERAL_NAMES *names = X509_get_ext_d2i(peer, NID_subject_alt_name, NULL, NULL);
    int ok = 0;
    for (int i = 0; names && !ok && i < sk_GENERAL_NAME_num(names); i++)
        for (size_t j = 0; !ok && j < cfg->nclient_allowed_sans; j++)
            ok = san_equals(sk_GENERAL_NAME_value(names, i), cfg->client_allowed_sans[j]);
    GENERAL_NAMES_free(names);
    return ok;
}

/* The connection ends: the alert OpenSSL queued, if any, goes out if the
 * socket takes it at once. */
static ssize_t fail_conn(tls_conn *c, uv_stream_t *s, const char *what) {
    char e[256], peer[64] = "?";
    struct sockaddr_storage sa;
    int salen = sizeof sa;
    if (uv_tcp_getpeername((uv_tcp_t *)s, (struct sockaddr *)&sa, &salen) == 0) {
        char ip[INET6_ADDRSTRLEN] = "";
        int port = sa.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&sa)->sin6_port)
                                            : ntohs(((struct sockaddr_in *)&sa)->sin_port);
        if (sa.ss_family == AF_INET6)
            uv_ip6_name((struct sockaddr_in6 *)&sa, ip, sizeof ip);
        else
            uv_ip4_name((struct sockaddr_in *)&sa, ip, sizeof ip);
        snprintf(peer, sizeof peer, sa.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", ip, port);
    }
    LOG_DEBUG(strcmp(what, "handshake") == 0 ? "TLS handshake error" : "TLS error",
              "remote=%s err=\"%s: %s\"", peer, what, ssl_error_text(e, sizeof e));
    buf b = BUF_INIT;
    drain(c, &b);
    if (b.len) {
        uv_buf_t ub = uv_buf_init(b.data, (unsigned)b.len);
        (void)uv_try_write(s, &ub, 1);
    }
    buf_free(&b);
    return -1;
}

ssize_t tls_conn_input(tls_conn *c, uv_stream_t *s, size_t n, buf *plain) {
    if (!c->seen_bytes) {
        c->seen_bytes = 1;
        if (looks_like_http(c->rx, n)) {
            static const char msg[] =
                "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";
            uv_buf_t b = uv_buf_init((char *)msg, sizeof msg - 1);
            (void)uv_try_write(s, &b, 1);
            return -1;
        }
    }
    if (BIO_write(c->rbio, c->rx, (int)n) != (int)n)
        return -1;
    if (!SSL_is_init_finished(c->ssl)) {
        int r = SSL_do_handshake(c->ssl);
        if (r != 1) {
            if (SSL_get_error(c->ssl, r) == SSL_ERROR_WANT_READ)
                return flush(c, s) == 0 ? 0 : -1;
            return fail_conn(c, s, "handshake");
        }
        if (!sans_allowed(c)) {
            LOG_DEBUG("TLS handshake error", "err=%s", "no allowed SAN in the client certificate");
            return -1;
        }
    }
    size_t got = 0;
    for (;;) {
        size_t nr = 0;
        if (buf_reserve(plain, got + 16384) != 0)
            return -1;
        int r = SSL_read_ex(c->ssl, plain->data + plain->len + got, plain->cap - plain->len - got - 1, &nr);
        if (r == 1) {
            got += nr;
            continue;
        }
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ)
            break;
        if (e == SSL_ERROR_ZERO_RETURN) /* the peer's close_notify */
            return got ? (ssize_t)got : -1;
        return fail_conn(c, s, "read");
    }
    if (flush(c, s) != 0)
        return -1;
    return (ssize_t)got;
}
