#!/usr/bin/env python3
"""Runs kiln's tests and prints one summary line: "N passed, N failed".

Unit tests are Check binaries (one per source file); each prints
"NN%: Checks: N, Failures: F, Errors: E", which is counted per test case.
Integration tests are Python unittest modules in tests/integration/ run
against the real kiln binary (KILN_BIN).  PromQL .test scripts are run by
the promql test binary when it exists.
"""
import argparse
import os
import re
import subprocess
import sys
import time
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECK_RE = re.compile(r"Checks: (\d+), Failures: (\d+), Errors: (\d+)")


def run_unit(unit_dir):
    passed = failed = 0
    if not os.path.isdir(unit_dir):
        return 0, 0
    env = dict(os.environ)
    env.setdefault("CK_FORK", "yes")
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    for name in sorted(os.listdir(unit_dir)):
        path = os.path.join(unit_dir, name)
        if not name.startswith("test_") or not os.access(path, os.X_OK) or name.endswith(".d"):
            continue
        t0 = time.time()
        p = subprocess.run([path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        out = p.stdout.decode("utf-8", "replace")
        m = CHECK_RE.search(out)
        n, f, e = map(int, m.groups()) if m else (0, 0, 0)
        passed += n - f - e
        failed += f + e
        # a binary that fails after its tests (leak report, crash at exit)
        # or prints no summary counts as one more failure
        if p.returncode != 0 and f + e == 0:
            failed += 1
        if p.returncode != 0 or f + e:
            sys.stdout.write(out)
            print(f"unit {name}: FAILED (exit {p.returncode})")
        else:
            print(f"unit {name}: {n} ok ({time.time() - t0:.1f}s)")
    return passed, failed


def run_integration(kiln_bin):
    os.environ["KILN_BIN"] = os.path.abspath(kiln_bin)
    os.environ.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    idir = os.path.join(ROOT, "tests", "integration")
    sys.path.insert(0, idir)
    loader = unittest.TestLoader()
    suite = loader.discover(idir, pattern="test_*.py", top_level_dir=idir)
    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=2)
    res = runner.run(suite)
    bad = len(res.failures) + len(res.errors) + len(res.unexpectedSuccesses)
    return res.testsRun - bad - len(res.skipped), bad, len(res.skipped)


def run_promql(promql_bin, scripts):
    """Runs .test scripts through the in-process runner; returns (passed, failed, skipped)."""
    if not os.path.exists(promql_bin) or not scripts:
        return 0, 0, 0
    p = subprocess.run([promql_bin] + scripts, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT)
    out = p.stdout.decode("utf-8", "replace")
    sys.stdout.write(out)
    m = re.search(r"(\d+) passed, (\d+) failed, (\d+) skipped", out)
    if not m:
        return 0, 1, 0
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--unit", default=os.path.join(ROOT, "build/asan/tests/unit"))
    ap.add_argument("--kiln", default=os.path.join(ROOT, "build/asan/kiln"))
    ap.add_argument("--promql-bin", default=os.path.join(ROOT, "build/asan/tests/promql/promqltest"))
    ap.add_argument("--conformance", action="store_true")
    args = ap.parse_args()

    if args.conformance:
        d = os.path.join(ROOT, "..", "shared", "promql-tests")
        scripts = sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".test")) if os.path.isdir(d) else []
        p, f, s = run_promql(args.promql_bin, scripts)
        print(f"{p} passed, {f} failed, {s} skipped")
        return 0 if f == 0 else 1

    up, uf = run_unit(args.unit)
    pd = os.path.join(ROOT, "tests", "promql")
    scripts = sorted(os.path.join(pd, f) for f in os.listdir(pd) if f.endswith(".test")) if os.path.isdir(pd) else []
    pp, pf, _ = run_promql(args.promql_bin, scripts)
    ip, iff, isk = run_integration(args.kiln)
    passed, failed = up + pp + ip, uf + pf + iff
    print(f"unit: {up} passed, {uf} failed; promql: {pp} passed, {pf} failed; "
          f"integration: {ip} passed, {iff} failed, {isk} skipped")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
