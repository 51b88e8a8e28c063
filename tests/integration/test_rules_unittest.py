"""`kiln test rules FILE...` against Debian's `promtool test rules` (2.42) on
the same files, tests/rules/pass*.yml and fail_*.yml: the same exit code,
the same stdout ("Unit Testing:  FILE", "  SUCCESS" or the blank line of each
error) and the same stderr ("  FAILED:" and every error in promtool's words),
byte for byte, for a passing file and for each kind of failure: a wrong
value, a missing alert, an extra alert, a wrong annotation, wrong labels, bad
series notation, a file that is not valid YAML or has unknown keys and wrong
types, a bad duration, a rule file that does not load, a rule whose
evaluation fails, a repeated group in group_eval_order and the smaller
mistakes of fail_misc.yml.  Generated files (fixed seeds) compare the two
on hundreds of series lines and exp_samples labels drawn from pieces of good
and bad notation, and on alerts over random inputs.  Then what only kiln
does: its own message for a missing file, and the temporary directory of the
test data removed."""
import glob
import os
import random
import subprocess
import tempfile
import unittest

from kilntest import KILN_BIN, require

PROMTOOL = "/usr/bin/promtool"
RULES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "rules")


def run(argv, env=None):
    p = subprocess.run(argv, cwd=RULES_DIR, capture_output=True, text=True, timeout=300, env=env)
    return p.returncode, p.stdout, p.stderr


class RulesUnitTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require(PROMTOOL)

    def files(self, pattern):
        names = sorted(os.path.basename(f) for f in glob.glob(os.path.join(RULES_DIR, pattern)))
        self.assertTrue(names, pattern)
        return names

    def compare(self, names):
        want = run([PROMTOOL, "test", "rules", *names])
        got = run([KILN_BIN, "test", "rules", *names])
        self.assertEqual(got[0], want[0], f"exit code for {names}")
        self.assertEqual(got[1], want[1], f"stdout for {names}")
        self.assertEqual(got[2], want[2], f"stderr for {names}")
        return got

    def test_passing_files(self):
        for name in self.files("pass*.yml"):
            with self.subTest(name=name):
                rc, out, err = self.compare([name])
                self.assertEqual(rc, 0)
                self.assertEqual(out, f"Unit Testing:  {name}\n  SUCCESS\n\n")
                self.assertEqual(err, "")

    def test_failing_files(self):
        for name in self.files("fail_*.yml"):
            with self.subTest(name=name):
                rc, out, err = self.compare([name])
                self.assertEqual(rc, 1)
                self.assertIn("  FAILED:\n", err)

    def test_failure_kinds_are_reported(self):
        # each file fails for the reason it was written for
        expect = {
            "fail_value.yml": "        exp: {__name__=\"http_requests_total\", code=\"500\", job=\"api\"} 3.01E+02\n"
            "        got: {__name__=\"http_requests_total\", code=\"500\", job=\"api\"} 3E+02\n",
            "fail_missing_alert.yml": "Labels:{alertname=\"InstanceDown\", instance=\"b:9090\"",
            "fail_extra_alert.yml": "    alertname: InstanceDown, time: 6m, \n        exp:[], \n        got:[\n",
            "fail_annotation.yml": "summary=\"api: 10% of requests fail\"",
            "fail_labels.yml": "Labels:{alertname=\"SlowRequests\", job=\"api\", severity=\"page\", team=\"api-oncall\"}",
            "fail_series.yml": "1:17: parse error: unexpected identifier \"three\" in series values, "
            "expected number or \"stale\"\n",
            "fail_yaml.yml": "yaml: unmarshal errors:\n  line 3: field evaluation_intervals not found in type "
            "main.unitTestFile\n",
            "fail_syntax.yml": "yaml: line 1: did not find expected ',' or ']'\n",
            "fail_duration.yml": "not a valid duration string: \"5 minutes\"\n",
            "fail_rules.yml": "bad_rules.yml: 5:17: group \"bad\", rule 1, \"bad name\": invalid recording rule name",
            "fail_eval.yml": "    rule: dropped_job, time: 2m0s, err: vector cannot contain metrics with the same "
            "labelset\n",
            "fail_order.yml": "group name repeated in evaluation order: first\n",
            "fail_misc.yml": "an item under alert_rule_test misses required attribute alertname at eval_time 2m "
            "(in TestGroup no alertname)\n",
        }
        for name, text in expect.items():
            with self.subTest(name=name):
                rc, _, err = run([KILN_BIN, "test", "rules", name])
                self.assertEqual(rc, 1)
                self.assertIn(text, err)

    def test_several_files(self):
        rc, out, _ = self.compare(["pass.yml", "fail_value.yml", "pass_no_interval.yml"])
        self.assertEqual(rc, 1)
        self.assertTrue(out.startswith("Unit Testing:  pass.yml\n  SUCCESS\n\nUnit Testing:  fail_value.yml\n"))

    def generated_compare(self, files):
        with tempfile.TemporaryDirectory() as tmp:
            for name, text in files.items():
                with open(os.path.join(tmp, name), "w") as f:
                    f.write(text)
            want = subprocess.run([PROMTOOL, "test", "rules", "t.yml"], cwd=tmp, capture_output=True, text=True)
            got = subprocess.run([KILN_BIN, "test", "rules", "t.yml"], cwd=tmp, capture_output=True, text=True)
            self.assertEqual(got.returncode, want.returncode)
            self.assertEqual(got.stdout, want.stdout)
            self.assertEqual(got.stderr, want.stderr)
            return want.stderr

    def test_generated_series_notation(self):
        # series lines drawn from pieces of good and bad notation: each test
        # group fails with the parser's error, or shows what was loaded
        rnd = random.Random(4)
        metric = ["up", "a:b", "sum", "ignoring", "", "{", "}", '{a="b"}', '{a="b",}', "{a=b}", "{a}", "{,}",
                  '{a="\\q"}', '{a="x\\x41"}', "{a='s'}", "{a=`r`}", '{a!="b"}', "bool", "inf", "1", "(", " ",
                  "x", "_", "start", "atan2", "@", "#", '{a=""}', 'up{__name__="x"}']
        values = ["1", "2.5", "-1", "+3", "1+2x3", "1-2x3", "1x3", "_", "_x2", "stale", "stale+1x2", "1e3", ".5",
                  "0x1", "010", "Inf", "-Inf", "NaN", "a", "sum", "x", "+", "-", "1+x", "1x", "1x-1", "1x2.5", "1e",
                  "1e999", "#", "{", ",", "1+2", "_+1", "08", "-0", "1.5.5", "1x1x1", "(", "-stale", "1E+2"]
        lines = ["tests:"]
        for _ in range(300):
            m = "".join(rnd.choice(metric) for _ in range(rnd.randint(0, 2)))
            v = " ".join(rnd.choice(values) for _ in range(rnd.randint(0, 4)))
            lines += ["  - interval: 1m", "    input_series:", "      - series: '%s'" % m.replace("'", "''"),
                      "        values: '%s'" % v.replace("'", "''"), "    promql_expr_test:",
                      "      - expr: '{__name__=~\".+\"} or vector(7)'", "        eval_time: 0m",
                      "        exp_samples: [{labels: sentinel, value: 1}]"]
        err = self.generated_compare({"t.yml": "\n".join(lines) + "\n"})
        self.assertIn("parse error", err)

    def test_generated_metrics(self):
        # exp_samples' labels drawn from pieces of metrics and other PromQL
        rnd = random.Random(5)
        parts = ["up", "a:b", "sum", "", "{", "}", '{a="b"}', "{a=b}", "{a}", "{,}", "{a='s'}", '{a!="b"}', "1",
                 "(", ")", "[", "]", " ", "5m", "0x1F", '"a very long string"', "@", "#c", "by", "and", "==", "!",
                 ":", "$", "\u00e9", "1e", "offset", "start", "`raw`", "nan"]
        lines = ["tests:", "  - interval: 1m", "    input_series: [{series: up, values: '1'}]",
                 "    promql_expr_test:"]
        for _ in range(300):
            m = "".join(rnd.choice(parts) for _ in range(rnd.randint(0, 3)))
            lines += ["      - expr: vector(1)", "        eval_time: 0m",
                      "        exp_samples: [{labels: '%s', value: 1}]" % m.replace("'", "''")]
        err = self.generated_compare({"t.yml": "\n".join(lines) + "\n"})
        self.assertIn("parse error", err)

    def test_generated_alerts(self):
        # random inputs for alerts with for, keep_firing_for, templated
        # labels, two rules of one name and a recording rule in between; the
        # samples every 47 s, so none is exactly 5 minutes before an
        # evaluation (where Prometheus 3's left-open lookback and 2.42's differ)
        rnd = random.Random(11)
        rules = """groups:
- name: a
  rules:
  - alert: A1
    expr: m > 2
    for: 2m
    labels: {sev: "{{ $labels.job }}-x", v: "{{ $value }}"}
    annotations: {s: "{{ $value | humanize }} {{ $labels.instance }}"}
  - alert: A2
    expr: m > 4
    keep_firing_for: 3m
  - alert: A3
    expr: sum by (job) (m) > 5
    for: 1m
  - record: job:m:sum
    expr: sum by (job) (m)
  - alert: A4
    expr: job:m:sum > 3
- name: b
  rules:
  - alert: A1
    expr: m < 1
    for: 30s
"""
        lines = ["rule_files: [rules.yml]", "evaluation_interval: 30s", "tests:"]
        for _ in range(40):
            lines += ["  - interval: 47s", "    input_series:"]
            for i in range(rnd.randint(1, 3)):
                vals = " ".join(rnd.choice(["0", "1", "3", "5", "7", "_", "stale", "2x2", "6x1", "_x2"])
                                for _ in range(rnd.randint(3, 10)))
                lines += ["      - series: 'm{job=\"j%d\", instance=\"i%d\"}'" % (i % 2, i),
                          "        values: '%s'" % vals]
            lines.append("    alert_rule_test:")
            for _ in range(4):
                lines += ["      - eval_time: %ds" % (rnd.randint(0, 24) * 30),
                          "        alertname: %s" % rnd.choice(["A1", "A2", "A3", "A4"]),
                          "        exp_alerts: [{exp_labels: {job: none}}]"]
            lines += ["    promql_expr_test:", "      - expr: ALERTS_FOR_STATE",
                      "        eval_time: %dm" % rnd.randint(0, 12), "        exp_samples: [{labels: x, value: 1}]"]
        err = self.generated_compare({"rules.yml": rules, "t.yml": "\n".join(lines) + "\n"})
        self.assertGreater(err.count("alertname:"), 100)

    def test_missing_file(self):
        rc, out, err = run([KILN_BIN, "test", "rules", "pass.yml", "no_such_test.yml"])
        self.assertEqual(rc, 1)
        self.assertEqual(out, "")  # nothing runs, as with promtool's argument check
        self.assertEqual(err, "kiln: error: path 'no_such_test.yml' does not exist, try --help\n")
        self.assertEqual(run([PROMTOOL, "test", "rules", "pass.yml", "no_such_test.yml"])[0], 1)

    def test_temporary_data_removed(self):
        with tempfile.TemporaryDirectory() as tmp:
            env = dict(os.environ, TMPDIR=tmp)
            rc, _, _ = run([KILN_BIN, "test", "rules", "pass.yml", "fail_eval.yml"], env=env)
            self.assertEqual(rc, 1)
            self.assertEqual(os.listdir(tmp), [])


if __name__ == "__main__":
    unittest.main()
