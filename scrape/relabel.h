/*
 * relabel.h - relabeling as Prometheus 2.42 does it (relabel_configs,
 * metric_relabel_configs): every action of config_relabel applied in order
 * to a label set in a builder.
 *
 * Callers: target.c (relabel_configs, on the loop thread) and append.c
 * (metric_relabel_configs, on a worker thread, for a series new to a
 * target's cache).
 *
 * Threading: any thread, any number at once; the steps are read-only and
 * the PCRE2 scratch match data is per thread.
 */
#ifndef KILN_SCRAPE_RELABEL_H
#define KILN_SCRAPE_RELABEL_H

#include "config/config.h"
#include "storage/storage.h"

/*
 * Applies steps[0..n) to the labels in b, in place; each step sees the
 * result of the one before.  Returns 1 when the set is kept, 0 when a step
 * drops it (b is then left as it was at the drop), or KILN_ENOMEM.  A kept
 * set may be empty; callers treat that as dropped, as Prometheus does.
 * New names and values (expanded templates, hashmod results, lowercase
 * copies) are allocated from a, which must outlive the use of b's labels;
 * the strings already in b are borrowed, not copied.
 */
KILN_MUST_CHECK int relabel_apply(const config_relabel *steps, size_t n, labels_builder *b, arena *a);

/*
 * relabel_apply for a label set given as an array: ls[0..n) (any order,
 * borrowed for the call) is relabeled and, when kept, *out and *nout are the
 * result sorted by name, in memory from a (the array and any new strings;
 * unchanged strings still point into ls).  Returns 1, 0 (dropped: *out NULL,
 * *nout 0) or KILN_ENOMEM.
 */
KILN_MUST_CHECK int relabel_process(const config_relabel *steps, size_t nsteps, const label *ls, size_t n,
                                    arena *a, label **out, size_t *nout);

/* Prometheus' hashmod hash: bytes 8..15 of MD5(s[0..n)) as a big-endian
 * integer (the value is this modulo the step's modulus). */
uint64_t relabel_md5_sum64(const char *s, size_t n);

#endif
