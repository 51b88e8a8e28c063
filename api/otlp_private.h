/*
 * otlp_private.h - private to api/: the parts of the OTLP receiver
 * api/otlp.c calls: the request decoders, protobuf (api/otlp_pb.c) and
 * JSON (api/otlp_json.c), both filling the protobuf-c structs of
 * api/otlp.proto; the delta-to-cumulative state (api/otlp_delta.c); and
 * histogram points as native histograms (api/otlp_hist.c).
 */
#ifndef KILN_API_OTLP_PRIVATE_H
#define KILN_API_OTLP_PRIVATE_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

#include "api/otlp.pb-c.h"
#include "storage/storage.h"
#include "util/util.h"

/*
 * Decodes an OTLP/HTTP JSON body (the protobuf JSON mapping with OTLP's
 * rules: lowerCamelCase keys or the proto's own names, 64-bit integers as
 * strings or numbers, enums as numbers or names, trace and span ids in hex,
 * other bytes in base64, unknown keys ignored) into a message of d, every
 * struct and string taken from al (which may fail: then KILN_ENOMEM).  0 and
 * *out; or KILN_EINVAL with a message saying what and at which byte in
 * msg[cap], or KILN_ENOMEM.
 */
KILN_MUST_CHECK int otlp_json_decode(const char *s, size_t n, const ProtobufCMessageDescriptor *d,
                                     ProtobufCAllocator *al, ProtobufCMessage **out, char *msg, size_t cap);

/*
 * Decodes a protobuf body into a message of d in one pass (protobuf-c's
 * unpack does two), every struct and string taken from al.  0 and *out; or
 * KILN_EINVAL (not a valid encoding of d) or KILN_ENOMEM (al failed).
 */
KILN_MUST_CHECK int otlp_pb_decode(const uint8_t *s, size_t n, const ProtobufCMessageDescriptor *d,
                                   ProtobufCAllocator *al, ProtobufCMessage **out);

/* The C width of one value of a field of type t (a repeated field's element). */
size_t otlp_field_size(ProtobufCType t);

/* ---- delta to cumulative (otlp_delta.c) ---- */

typedef struct otlp_delta otlp_delta;

/* A new, empty state (NULL: out of memory); free with otlp_delta_free. */
otlp_delta *otlp_delta_new(void);
void otlp_delta_free(otlp_delta *d);

/*
 * Adds the delta *v at time t (ms) to the stream key[keylen] (its series'
 * identity) and puts the stream's total in *v; now is the wall clock (ms),
 * for forgetting stale streams.  0; KILN_EORDER when t is not after the
 * stream's last delta (dropped); KILN_ELIMIT over the stream limit;
 * KILN_ENOMEM.
 */
KILN_MUST_CHECK int otlp_delta_sum(otlp_delta *d, const char *key, size_t keylen, int64_t t, int64_t now,
                                   double *v);

/* The same for a histogram's delta: *sum, *count and buckets[nb + 1] (per
 * bucket, not cumulative) become the stream's totals; bounds[nb] other than
 * the stream's start it again from this delta. */
KILN_MUST_CHECK int otlp_delta_histogram(otlp_delta *d, const char *key, size_t keylen, int64_t t,
                                         int64_t now, double *sum, uint64_t *count, const double *bounds,
                                         size_t nb, uint64_t *buckets);

/* ---- native histograms (otlp_hist.c) ---- */

/*
 * An exponential histogram point as a native histogram in *h (its arrays in
 * a; gauge: a delta's, hinted as a gauge histogram).  0; KILN_EINVAL with
 * the reason in why[cap] (a scale below -4); KILN_ENOMEM.
 */
KILN_MUST_CHECK int otlp_exp_histogram(arena *a, const Kiln__Otlp__ExponentialHistogramDataPoint *p,
                                       int gauge, histogram *h, char *why, size_t cap);

/* An explicit-bucket histogram point as a native histogram with custom
 * buckets (schema -53; convert_histograms_to_nhcb) in *h; custom_values
 * borrows p's bounds.  0 or KILN_ENOMEM. */
KILN_MUST_CHECK int otlp_nhcb(arena *a, const Kiln__Otlp__HistogramDataPoint *p, histogram *h);

#endif
