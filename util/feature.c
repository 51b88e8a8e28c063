/*
 * feature.c - the names --enable-feature knows, in one table: each maps to a
 * bit of the feature set (util.h's FEATURE_*) the layers read from their
 * options, and carries the line logged when it is turned on.
 *
 * Names Prometheus 3 made permanent (promql-at-modifier, ...) are accepted
 * with bit 0 and logged as no-ops, as Prometheus does; any other name is
 * warned about and ignored, never an error (Prometheus' behaviour: a flag
 * list written for a newer or older version still starts the server).
 *
 * Called by cmd/kiln/main.c while parsing flags, and by whoever names a
 * feature in a message.  Threading: the table is constant.
 */
#include <string.h>

#include "util/util.h"

static const char NOOP[] =
    "This option for --enable-feature is now permanently enabled and therefore a no-op.";

static const feature_desc features[] = {
    {"promql-experimental-functions", FEATURE_PROMQL_EXPERIMENTAL_FUNCTIONS,
     "Experimental PromQL functions enabled."},
    {"promql-duration-expr", FEATURE_PROMQL_DURATION_EXPR,
     "Experimental duration expression parsing enabled."},
    {"promql-extended-range-selectors", FEATURE_PROMQL_EXTENDED_RANGE_SELECTORS,
     "Experimental PromQL extended range selectors enabled."},
    {"promql-binop-fill-modifiers", FEATURE_PROMQL_BINOP_FILL_MODIFIERS,
     "Experimental PromQL binary operator fill modifiers enabled."},
    {"promql-delayed-name-removal", FEATURE_PROMQL_DELAYED_NAME_REMOVAL,
     "Experimental PromQL delayed name removal enabled."},
    {"exemplar-storage", FEATURE_EXEMPLAR_STORAGE, "Experimental in-memory exemplar storage enabled."},
    {"created-timestamp-zero-ingestion", FEATURE_CREATED_TIMESTAMP_ZERO_INGESTION,
     "Experimental created timestamp zero ingestion enabled."},
    {"otlp-deltatocumulative", FEATURE_OTLP_DELTATOCUMULATIVE,
     "Converting delta OTLP metrics to cumulative."},
    {"native-histograms", FEATURE_NATIVE_HISTOGRAMS,
     "Experimental native histogram support enabled. Changed default scrape_protocols to prefer "
     "PrometheusProto "
     "format."},
    {"promql-at-modifier", 0, NOOP},
    {"promql-negative-offset", 0, NOOP},
};

const feature_desc *feature_table(size_t *n) {
    *n = sizeof features / sizeof features[0];
    return features;
}

const feature_desc *feature_lookup(const char *name, size_t len) {
    for (size_t i = 0; i < sizeof features / sizeof features[0]; i++)
        if (strlen(features[i].name) == len && memcmp(features[i].name, name, len) == 0)
            return &features[i];
    return NULL;
}

const char *feature_name(uint32_t bit) {
    for (size_t i = 0; i < sizeof features / sizeof features[0]; i++)
        if (features[i].bit == bit)
            return features[i].name;
    return "?";
}

void feature_parse_list(const char *list, uint32_t *set) {
    const char *p = list;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len > 0) {
            const feature_desc *f = feature_lookup(p, len);
            if (f == NULL) {
                LOG_WARN("Unknown option for --enable-feature", "option=%.*s", (int)len, p);
            } else {
                *set |= f->bit;
                if (f->bit)
                    LOG_INFO(f->log, NULL);
                else
                    LOG_WARN(f->log, "option=%s", f->name);
            }
        }
        if (!comma)
            break;
        p = comma + 1;
    }
}
