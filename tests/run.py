#!/usr/bin/env python3
"""Runs kiln's tests and ends with one line: "N passed, N failed, N skipped".

Suites, each counted on its own line and all in the last one:
  unit             Check binaries (one per source file) in build/asan/tests/unit;
                   each prints "NN%: Checks: N, Failures: F, Errors: E".  A
                   test that cannot check what it is for prints
                   "SKIP <test>: <why>" and counts as skipped, not passed.
  promql           kiln's own tests/promql/*.test through the promql runner.
  conformance      Prometheus' PromQL test scripts (reference data outside the
                   repo, see find_conformance) through the same runner; missing
                   scripts are a failure.
  integration      tests/integration/test_*.py against the ASan build
                   (build/asan/kiln), and again as integration-opt against the
                   shipped optimised binary (bin/kiln).  Each pass runs in its
                   own process, as the modules read KILN_BIN when imported.

A skip is a failure unless tests/skips.txt lists it: the suite, the number
of skips and the reason exactly as the suite reports it.  More skips than
listed count the extra ones as failed; fewer count one failure, so the list
is kept true (lower the number).  Exit status 0 only when nothing failed.

  tests/run.py                        every suite (make test / make check)
  tests/run.py --conformance          the conformance suite only (make conformance)
"""
import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SKIPS_FILE = os.path.join(ROOT, "tests", "skips.txt")
CHECK_RE = re.compile(r"Checks: (\d+), Failures: (\d+), Errors: (\d+)")
UNIT_SKIP_RE = re.compile(r"^SKIP (\S+): (.+)$", re.M)
PROMQL_SUMMARY_RE = re.compile(r"^(\d+) passed, (\d+) failed, (\d+) skipped$", re.M)
PROMQL_SKIP_RE = re.compile(r"^skipped (\d+): (.+)$", re.M)


class Result:
    """One suite's counts; skips maps a reason to how many were skipped for it."""

    def __init__(self, name):
        self.name = name
        self.passed = self.failed = 0
        self.skips = collections.Counter()
        self.secs = 0.0
        self.ran = True  # False when the suite could not run at all

    def cannot_run(self, why):
        print(f"{self.name}: FAILED: {why}")
        self.failed += 1
        self.ran = False
        return self

    @property
    def skipped(self):
        return sum(self.skips.values())


def run_unit(unit_dir):
    r = Result("unit")
    if not os.path.isdir(unit_dir):
        return r.cannot_run(f"no unit test directory {unit_dir}")
    env = dict(os.environ)
    env.setdefault("CK_FORK", "yes")
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    nbins = 0
    for name in sorted(os.listdir(unit_dir)):
        path = os.path.join(unit_dir, name)
        if not name.startswith("test_") or not os.access(path, os.X_OK) or name.endswith(".d"):
            continue
        nbins += 1
        t0 = time.time()
        p = subprocess.run([path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        out = p.stdout.decode("utf-8", "replace")
        m = CHECK_RE.search(out)
        n, f, e = map(int, m.groups()) if m else (0, 0, 0)
        skips = UNIT_SKIP_RE.findall(out)
        for test, why in skips:
            r.skips[f"{name} {test}: {why}"] += 1
        r.passed += n - f - e - len(skips)
        r.failed += f + e
        # a binary that fails after its tests (leak report, crash at exit)
        # or prints no summary counts as one more failure
        if p.returncode != 0 and f + e == 0:
            r.failed += 1
        if p.returncode != 0 or f + e:
            sys.stdout.write(out)
            print(f"unit {name}: FAILED (exit {p.returncode})")
        else:
            for test, why in skips:
                print(f"unit {name}: SKIP {test}: {why}")
            print(f"unit {name}: {n - len(skips)} ok ({time.time() - t0:.1f}s)")
    if nbins == 0:
        r.cannot_run(f"no test_* binaries in {unit_dir}")
    return r


def run_promql(name, promql_bin, scripts):
    """Runs .test scripts through the in-process runner."""
    r = Result(name)
    if not os.path.exists(promql_bin):
        return r.cannot_run(f"no promql runner {promql_bin}")
    p = subprocess.run([promql_bin] + scripts, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT)
    out = p.stdout.decode("utf-8", "replace")
    sys.stdout.write(out)
    m = PROMQL_SUMMARY_RE.search(out)
    if not m:
        return r.cannot_run(f"the runner exited {p.returncode} without its summary line")
    r.passed, r.failed = int(m.group(1)), int(m.group(2))
    for n, why in PROMQL_SKIP_RE.findall(out):
        r.skips[why] += int(n)
    if r.skipped != int(m.group(3)):
        print(f"{name}: FAILED: the runner's skip reasons add up to {r.skipped}, its total says {m.group(3)}")
        r.failed += 1
    if p.returncode != 0 and r.failed == 0:
        print(f"{name}: FAILED: the runner exited {p.returncode}")
        r.failed += 1
    return r


def find_conformance():
    """Where Prometheus' PromQL test scripts are: $KILN_PROMQL_TESTS, else
    <repo>/../shared/promql-tests, else (a clone of a local repository, as CI
    makes) <origin>/../shared/promql-tests.  Returns (dir, scripts, places
    looked in); dir is None when none of them holds *.test files."""
    places = []
    if os.environ.get("KILN_PROMQL_TESTS"):
        places.append(os.environ["KILN_PROMQL_TESTS"])
    places.append(os.path.join(ROOT, "..", "shared", "promql-tests"))
    try:
        url = subprocess.run(["git", "config", "--get", "remote.origin.url"], cwd=ROOT, capture_output=True,
                             text=True).stdout.strip()
    except OSError:
        url = ""
    if url.startswith("file://"):
        url = url[len("file://"):]
    elif re.match(r"^[\w.+-]+://", url) or re.match(r"^[^/]*:", url):
        url = ""  # a remote URL (https://, ssh://, host:path): nothing local to look beside
    if url:
        places.append(os.path.join(ROOT, url, "..", "shared", "promql-tests"))
    for d in places:
        d = os.path.normpath(d)
        if os.path.isdir(d):
            scripts = sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".test"))
            if scripts:
                return d, scripts, places
    return None, [], places


def run_conformance(promql_bin):
    d, scripts, places = find_conformance()
    if d is None:
        r = Result("conformance").cannot_run("no PromQL conformance scripts (*.test) found; looked in:")
        for p in places:
            print(f"  {os.path.normpath(p)}")
        print("  (set KILN_PROMQL_TESTS to the directory holding them)")
        return r
    print(f"conformance: {len(scripts)} scripts in {d}")
    return run_promql("conformance", promql_bin, scripts)


class CountingResult(unittest.TextTestResult):
    """Counts the tests that passed (a failing setUpClass fails no counted test)."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.passed = 0

    def addSuccess(self, test):
        super().addSuccess(test)
        self.passed += 1


def integration_pass(kiln_bin, result_file):
    """One integration pass in this process; writes its counts to result_file."""
    os.environ["KILN_BIN"] = os.path.abspath(kiln_bin)
    os.environ.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    idir = os.path.join(ROOT, "tests", "integration")
    sys.path.insert(0, idir)
    suite = unittest.TestLoader().discover(idir, pattern="test_*.py", top_level_dir=idir)
    res = unittest.TextTestRunner(stream=sys.stdout, verbosity=2, resultclass=CountingResult).run(suite)
    skips = collections.Counter(f"{t.id()}: {why}" for t, why in res.skipped)
    # an expected failure is a hatch like a skip: it counts as failed
    failed = len(res.failures) + len(res.errors) + len(res.unexpectedSuccesses) + len(res.expectedFailures)
    with open(result_file, "w") as f:
        json.dump({"passed": res.passed, "failed": failed, "skips": skips}, f)


def run_integration(name, kiln_bin):
    r = Result(name)
    if not os.access(kiln_bin, os.X_OK):
        return r.cannot_run(f"no kiln binary {kiln_bin}")
    print(f"{name}: against {kiln_bin}")
    sys.stdout.flush()
    with tempfile.NamedTemporaryFile(prefix="kiln-run-", suffix=".json") as tf:
        p = subprocess.run([sys.executable, os.path.abspath(__file__), "--integration-pass", tf.name,
                            "--kiln", kiln_bin], cwd=ROOT)
        try:
            with open(tf.name) as f:
                d = json.load(f)
        except ValueError:
            return r.cannot_run(f"the pass exited {p.returncode} without its counts")
    r.passed, r.failed = d["passed"], d["failed"]
    r.skips.update(d["skips"])
    return r


def load_allowlist(path):
    """tests/skips.txt: `<suite> <count> <reason>` lines; # starts a comment."""
    allowed = {}
    with open(path) as f:
        for no, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split(None, 2)
            if len(parts) != 3 or not parts[1].isdigit():
                raise SystemExit(f"{path}:{no}: want `<suite> <count> <reason>`: {line}")
            allowed[(parts[0], parts[2])] = int(parts[1])
    return allowed


def check_skips(results, allowed):
    """Turns skips tests/skips.txt does not allow into failures; prints why."""
    rel = os.path.relpath(SKIPS_FILE, ROOT)
    ran = {r.name for r in results if r.ran}
    for r in results:
        for why, n in sorted(r.skips.items()):
            ok = allowed.get((r.name, why), 0)
            if n > ok:
                extra = n - ok
                print(f"UNEXPECTED SKIP {r.name}: {extra} not allowed by {rel} ({n} skipped, {ok} allowed): {why}")
                r.skips[why] -= extra
                r.failed += extra
    for (suite, why), n in sorted(allowed.items()):
        if suite not in ran:
            continue
        got = next(r for r in results if r.name == suite).skips.get(why, 0)
        if got < n:
            print(f"FAIL {rel}: allows {n} skips in {suite}, there were {got}: lower the count: {why}")
            next(r for r in results if r.name == suite).failed += 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--unit", default=os.path.join(ROOT, "build/asan/tests/unit"))
    ap.add_argument("--kiln", default=os.path.join(ROOT, "build/asan/kiln"))
    ap.add_argument("--kiln-opt", default=os.path.join(ROOT, "bin/kiln"))
    ap.add_argument("--promql-bin", default=os.path.join(ROOT, "build/asan/tests/promql/promqltest"))
    ap.add_argument("--conformance", action="store_true", help="run the conformance suite only")
    ap.add_argument("--integration-pass", metavar="RESULT_FILE", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.integration_pass:
        integration_pass(args.kiln, args.integration_pass)
        return 0

    allowed = load_allowlist(SKIPS_FILE)
    steps = [lambda: run_conformance(args.promql_bin)]
    if not args.conformance:
        pd = os.path.join(ROOT, "tests", "promql")
        own = sorted(os.path.join(pd, f) for f in os.listdir(pd) if f.endswith(".test"))
        steps = [lambda: run_unit(args.unit),
                 lambda: run_promql("promql", args.promql_bin, own),
                 steps[0],
                 lambda: run_integration("integration", args.kiln),
                 lambda: run_integration("integration-opt", args.kiln_opt)]
    results = []
    for step in steps:
        t0 = time.time()
        r = step()
        r.secs = time.time() - t0
        results.append(r)
        sys.stdout.flush()

    check_skips(results, allowed)
    print()
    for r in results:
        print(f"{r.name}: {r.passed} passed, {r.failed} failed, {r.skipped} skipped ({r.secs:.0f}s)")
        for why, n in sorted(r.skips.items()):
            if n:
                print(f"  skipped {n}: {why}")
    passed = sum(r.passed for r in results)
    failed = sum(r.failed for r in results)
    skipped = sum(r.skipped for r in results)
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
