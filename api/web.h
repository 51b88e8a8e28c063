/*
 * web.h - private to api/: what the web configuration file (config_web)
 * adds to the HTTP server: TLS on its connections (tls.c), basic
 * authentication of its requests and the headers set on its answers
 * (webauth.c).  http.c calls these from its accept, read, write and
 * dispatch paths.
 *
 * TLS runs over memory BIOs: libuv reads ciphertext into the connection's
 * TLS buffer, tls_conn_input turns it into plaintext in the connection's
 * input buffer (writing the handshake's answers itself), and tls_write
 * encrypts an answer before it goes to uv_write.  The HTTP code never sees
 * ciphertext.
 *
 * Threading: TLS runs on the loop thread only.  web_auth_check runs on the
 * loop thread (the cache only); web_auth_verify runs on a worker (bcrypt).
 */
#ifndef KILN_API_WEB_H
#define KILN_API_WEB_H

#include <sys/types.h>
#include <uv.h>

#include "api/api.h"
#include "config/config.h"

typedef struct tls_server tls_server;
typedef struct tls_conn tls_conn;

/* ---- tls.c ---- */

/*
 * A TLS server context from c: certificate and key, versions, ciphers,
 * curves, client-certificate policy and CA.  Borrows c while the server
 * lives.  Errors name the file that could not be loaded.
 */
KILN_MUST_CHECK int tls_server_new(const config_web_tls *c, tls_server **out, kiln_err *err);
void tls_server_free(tls_server *t);

/* A session for a new connection; first reloads the certificate, key and
 * client CA when one of their files changed.  NULL when out of memory. */
tls_conn *tls_conn_new(tls_server *t);
void tls_conn_free(tls_conn *c);

/* The buffer libuv reads ciphertext into (libuv's alloc callback). */
void tls_conn_alloc(tls_conn *c, uv_buf_t *b);

/*
 * Takes n bytes of ciphertext read into the alloc'd buffer: handshakes,
 * writes what TLS has to send on s, and decrypts the application data into
 * plain after plain->len.  Returns the number of plaintext bytes written
 * there (the caller advances plain->len by it, as for a read), 0 when there
 * is none yet, or -1 when the connection must be closed: handshake failure
 * (logged at debug), the peer's close, or plain HTTP (answered 400 first,
 * as Go's server does).
 */
ssize_t tls_conn_input(tls_conn *c, uv_stream_t *s, size_t n, buf *plain);

/*
 * uv_write through TLS: bufs are encrypted into a buffer of tls.c's,
 * written on s, and cb(req, status) is called when that write completes;
 * req is only handed back (its data field is the caller's).  c NULL: a
 * plain uv_write.  Returns 0 or a libuv error (cb is then not called).
 */
int tls_write(tls_conn *c, uv_write_t *req, uv_stream_t *s, const uv_buf_t bufs[], unsigned n,
              uv_write_cb cb);

/* ---- webauth.c ---- */

typedef struct web_auth web_auth;

/* What http.c holds of the web configuration. */
typedef struct web {
    tls_server *tls; /* NULL: plain HTTP */
    buf headers;     /* "Name: value\r\n" for each header set on every answer */
    web_auth *auth;  /* NULL: no users, no authentication */
} web;

/* From w, which must outlive the server.  Errors as tls_server_new. */
KILN_MUST_CHECK int web_new(const config_web *w, web **out, kiln_err *err);
/* Frees a; NULL is fine. */
void web_free(web *a);

enum { WEB_AUTH_OK = 0, WEB_AUTH_DENIED, WEB_AUTH_VERIFY };

/* Loop thread: WEB_AUTH_OK when no users are configured or the request's
 * credentials are in the cache of verified ones; WEB_AUTH_DENIED when they
 * are missing or cached as wrong; WEB_AUTH_VERIFY when bcrypt must decide
 * (call web_auth_verify on a worker). */
int web_auth_check(web *a, const http_req *r);
/* Any thread: bcrypt-checks the request's credentials and caches the
 * verdict; WEB_AUTH_OK or WEB_AUTH_DENIED. */
int web_auth_verify(web *a, const http_req *r);
/* Fills resp with the 401 answer (WWW-Authenticate: Basic). */
void web_auth_deny(http_resp *resp);

#endif
