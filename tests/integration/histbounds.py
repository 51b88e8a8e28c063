#!/usr/bin/env python3
"""histbounds.py - the upper bounds Prometheus 2.42 writes for the buckets of native
histograms of schemas 1 to 8, as the JSON of its query API shows them.

    python3 tests/integration/histbounds.py > query/nhbounds.h

Prometheus computes a bucket's bound from a table of fractions, one per bucket of a power of
two, written in its source as decimal literals; a few of those are one unit in the last place
away from 2^(k/2^schema - 1) correctly rounded, so computing the bound gives a different last
digit in the JSON.  This script serves Debian's prometheus one native histogram per
schema whose buckets cover one power of two, lets it scrape them in the protobuf format, reads
the bounds back from /api/v1/query and prints them as a C table: the bounds themselves are the
facts, measured from the real binary.  test_hist_bounds.py checks the table against a running
Prometheus.
"""
import json
import os
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import protoexpo  # noqa: E402
from kilntest import Prometheus, wait_for  # noqa: E402


def body(step=0):
    fams = []
    for s in range(1, 9):
        n = 1 << s
        # buckets of indices 1..2^s: upper bounds 2^(k/2^s) for k = 1..2^s, one observation each
        h = protoexpo.native(s, [(1, n)], deltas=[1] + [0] * (n - 1), count=n, total=float(n),
                             zero_threshold=1e-128)
        fams.append(protoexpo.family(f"bounds_s{s}", protoexpo.HISTOGRAM, [protoexpo.metric(histogram=h)]))
    return b"".join(fams)


def fetch_fractions():
    """{schema: [fraction k for k in 0..2^schema-1]} as Prometheus writes the bounds."""
    target = protoexpo.Target(body)
    cfg = (f"scrape_configs:\n  - job_name: b\n    scrape_interval: 1s\n"
           f"    static_configs: [{{targets: ['127.0.0.1:{target.port}']}}]\n")
    try:
        with Prometheus(cfg, args=["--enable-feature=native-histograms"]) as p:
            def get(s):
                r = p.query("/api/v1/query?" + urllib.parse.urlencode({"query": f"bounds_s{s}"}))["result"]
                return r[0]["histogram"][1]["buckets"] if r and "histogram" in r[0] else None
            if not wait_for(lambda: all(get(s) for s in range(1, 9)), 30):
                raise RuntimeError("prometheus did not scrape the histograms")
            out = {}
            for s in range(1, 9):
                b = get(s)
                uppers = [float(x[2]) for x in b]
                if len(uppers) != 1 << s:
                    raise RuntimeError(f"schema {s}: {len(uppers)} buckets")
                # the upper bound of index k (1..2^s-1) is frac[k] * 2; that of 2^s is 2 (frac[0] = 0.5)
                out[s] = [0.5] + [u / 2 for u in uppers[:-1]]
            return out
    finally:
        target.close()


def main():
    fr = fetch_fractions()
    print("/* nhbounds.h - the fractions Prometheus' bucket bounds of schemas 1-8 are made of:")
    print(" * bound(index) = ldexp(NH_FRAC[schema][index mod 2^schema], index / 2^schema + 1).")
    print(" * Measured from Debian's Prometheus 2.42 by tests/integration/histbounds.py (which")
    print(" * says why a table); included by query/nhist.c only. */")
    print("static const double nh_frac_1[] = {%s};" % ", ".join(repr(v) for v in fr[1]))
    for s in range(2, 9):
        vals = [repr(v) for v in fr[s]]
        lines = []
        for i in range(0, len(vals), 4):
            lines.append("    " + ", ".join(vals[i:i + 4]) + ",")
        print("static const double nh_frac_%d[] = {\n%s\n};" % (s, "\n".join(lines)))
    print("static const double *const NH_FRAC[9] = {NULL, nh_frac_1, nh_frac_2, nh_frac_3, nh_frac_4,")
    print("                                        nh_frac_5, nh_frac_6, nh_frac_7, nh_frac_8};")


if __name__ == "__main__":
    main()
