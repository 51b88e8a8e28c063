/*
 * relabel.h - relabeling as Prometheus does it (relabel_configs,
 * metric_relabel_configs): every action of config_relabel applied in order
 * to a label set in a builder.
 *
 * Threading: any thread; the steps are read-only.
 */
#ifndef KILN_SCRAPE_RELABEL_H
#define KILN_SCRAPE_RELABEL_H

#include "config/config.h"
#include "storage/storage.h"

/*
 * Applies steps[0..n) to the labels in b, in place.  Returns 1 when the set
 * is kept, 0 when a step drops it, or KILN_ENOMEM.  New names and values
 * (expanded templates, hashmod results, lowercase copies) are allocated from
 * a, which must outlive the use of b's labels.
 */
int relabel_apply(const config_relabel *steps, size_t n, labels_builder *b, arena *a);

/* Prometheus' hashmod: the last 8 bytes of MD5(s) as a big-endian integer. */
uint64_t relabel_md5_sum64(const char *s, size_t n);

#endif
