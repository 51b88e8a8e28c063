/*
 * otlp_decode.h - private to api/: the OTLP request decoders api/otlp.c
 * calls, protobuf (api/otlp_pb.c) and JSON (api/otlp_json.c), both filling
 * the protobuf-c structs of api/otlp.proto.
 */
#ifndef KILN_API_OTLP_DECODE_H
#define KILN_API_OTLP_DECODE_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

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

#endif
