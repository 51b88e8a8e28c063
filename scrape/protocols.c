/*
 * protocols.c - scrape protocol negotiation, as Prometheus 3 does it: the
 * Accept header a scrape config's scrape_protocols make, and the format a
 * response's Content-Type (or the config's fallback_scrape_protocol)
 * selects.
 *
 * Accept lists the protocols in the config's order with weights counting
 * down from 0.6 (Prometheus starts from the size of its protocol table, 5,
 * plus one), then any type with the next weight down.  The
 * 1.0.0 text formats carry escaping=underscores: kiln validates names the
 * legacy way, so it asks targets to escape other characters as Prometheus
 * does under metric_name_validation_scheme: legacy.
 *
 *   protocol              media type (Accept)
 *   PrometheusProto       application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;
 *                         encoding=delimited
 *   OpenMetricsText1.0.0  application/openmetrics-text;version=1.0.0;escaping=underscores
 *   OpenMetricsText0.0.1  application/openmetrics-text;version=0.0.1
 *   PrometheusText1.0.0   text/plain;version=1.0.0;escaping=underscores
 *   PrometheusText0.0.4   text/plain;version=0.0.4
 *
 * The response: a blank Content-Type, one that does not parse as a media
 * type, or one that is none of application/openmetrics-text,
 * application/vnd.google.protobuf, text/plain, fails the scrape with
 * Prometheus' message unless the config names a fallback_scrape_protocol,
 * whose format is then used (and the message logged as a warning).
 *
 * Called by fetch.c (the header, loop thread) and append.c (the format,
 * worker thread); pure functions.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "scrape/internal.h"

static const struct {
    const char *name, *accept;
    int format;
} protocols[] = {
    {"PrometheusProto",
     "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited",
     SCRAPE_FMT_PROTO},
    {"OpenMetricsText1.0.0", "application/openmetrics-text;version=1.0.0;escaping=underscores",
     SCRAPE_FMT_OM},
    {"OpenMetricsText0.0.1", "application/openmetrics-text;version=0.0.1", SCRAPE_FMT_OM},
    {"PrometheusText1.0.0", "text/plain;version=1.0.0;escaping=underscores", SCRAPE_FMT_TEXT},
    {"PrometheusText0.0.4", "text/plain;version=0.0.4", SCRAPE_FMT_TEXT},
};
#define NPROTOCOLS (sizeof protocols / sizeof protocols[0])

void protocols_accept(const scrape_config *sc, buf *b) {
    int weight = (int)NPROTOCOLS + 1;
    buf_puts(b, "Accept: ");
    for (size_t i = 0; i < sc->nscrape_protocols; i++)
        for (size_t j = 0; j < NPROTOCOLS; j++)
            if (strcmp(sc->scrape_protocols[i], protocols[j].name) == 0 && weight > 1)
                buf_printf(b, "%s;q=0.%d,", protocols[j].accept, weight--);
    buf_printf(b, "*/*;q=0.%d", weight);
}

/* The format of a protocol name (config-checked), -1 when none. */
static int format_of_protocol(const char *name) {
    for (size_t j = 0; name && j < NPROTOCOLS; j++)
        if (strcmp(name, protocols[j].name) == 0)
            return protocols[j].format;
    return -1;
}

static int tspecial(int c) {
    return strchr("()<>@,;:\\\"/[]?=", c) != NULL;
}

/* RFC 2045 token characters. */
static size_t token_len(const char *s) {
    size_t n = 0;
    while (s[n] && (unsigned char)s[n] > 0x20 && (unsigned char)s[n] < 0x7f && !tspecial((unsigned char)s[n]))
        n++;
    return n;
}

/*
 * Go's mime.ParseMediaType, reduced to what decides validity: type "/"
 * subtype tokens, then ";" name "=" (token | quoted string) parameters
 * (a duplicate parameter is an error).  Writes the lowercased type/subtype
 * to mt.  0 or -1.
 */
static int parse_media_type(const char *s, char *mt, size_t mtn) {
    while (*s == ' ' || *s == '\t')
        s++;
    size_t a = token_len(s);
    if (!a || s[a] != '/')
        return -1;
    size_t b = token_len(s + a + 1);
    if (!b || a + 1 + b >= mtn)
        return -1;
    for (size_t i = 0; i < a + 1 + b; i++)
        mt[i] = (char)tolower((unsigned char)s[i]);
    mt[a + 1 + b] = 0;
    s += a + 1 + b;
    char seen[8][32];
    size_t nseen = 0;
    for (;;) {
        while (*s == ' ' || *s == '\t')
            s++;
        if (!*s)
            return 0;
        if (*s != ';')
            return -1;
        s++;
        while (*s == ' ' || *s == '\t')
            s++;
        if (!*s)
            return 0; /* a trailing ";" is allowed */
        size_t k = token_len(s);
        if (!k || s[k] != '=')
            return -1;
        for (size_t i = 0; i < nseen; i++)
            if (strlen(seen[i]) == k && strncasecmp(seen[i], s, k) == 0)
                return -1;
        if (nseen < 8 && k < sizeof seen[0])
            snprintf(seen[nseen++], sizeof seen[0], "%.*s", (int)k, s);
        s += k + 1;
        if (*s == '"') {
            for (s++; *s && *s != '"'; s++)
                if (*s == '\\' && s[1])
                    s++;
            if (*s != '"')
                return -1;
            s++;
        } else {
            size_t v = token_len(s);
            if (!v)
                return -1;
            s += v;
        }
    }
}

int protocols_format(const char *ctype, const char *fallback, char *why, size_t whyn) {
    int fb = format_of_protocol(fallback);
    why[0] = 0;
    if (!ctype || !*ctype) {
        if (fb < 0) {
            snprintf(why, whyn,
                     "non-compliant scrape target sending blank Content-Type and no fallback_scrape_protocol "
                     "specified for target");
            return -1;
        }
        snprintf(why, whyn,
                 "non-compliant scrape target sending blank Content-Type, using fallback_scrape_protocol %s",
                 fallback);
        return fb;
    }
    char mt[128];
    if (parse_media_type(ctype, mt, sizeof mt) != 0) {
        if (fb < 0) {
            snprintf(why, whyn,
                     "cannot parse Content-Type \"%.100s\" and no fallback_scrape_protocol for target",
                     ctype);
            return -1;
        }
        snprintf(why, whyn,
                 "could not parse received Content-Type \"%.100s\", using fallback_scrape_protocol %s", ctype,
                 fallback);
        return fb;
    }
    if (!strcmp(mt, "application/openmetrics-text"))
        return SCRAPE_FMT_OM;
    if (!strcmp(mt, "application/vnd.google.protobuf"))
        return SCRAPE_FMT_PROTO;
    if (!strcmp(mt, "text/plain"))
        return SCRAPE_FMT_TEXT;
    if (fb < 0) {
        snprintf(why, whyn,
                 "received unsupported Content-Type \"%.100s\" and no fallback_scrape_protocol specified for "
                 "target",
                 ctype);
        return -1;
    }
    snprintf(why, whyn, "received unsupported Content-Type \"%.100s\", using fallback_scrape_protocol %s",
             ctype, fallback);
    return fb;
}
