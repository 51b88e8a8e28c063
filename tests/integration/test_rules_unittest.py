"""`kiln test rules FILE...` against Debian's `promtool test rules` (2.42) on
the same files, tests/rules/pass*.yml and fail_*.yml: the same exit code,
the same stdout ("Unit Testing:  FILE", "  SUCCESS" or the blank line of each
error) and the same stderr ("  FAILED:" and every error in promtool's words),
byte for byte, for a passing file and for each kind of failure: a wrong
value, a missing alert, an extra alert, a wrong annotation, wrong labels, bad
series notation, a file that is not valid YAML or has unknown keys and wrong
types, a bad duration, a rule file that does not load, a rule whose
evaluation fails, a repeated group in group_eval_order and the smaller
mistakes of fail_misc.yml.  Then what only kiln does: its own message for a
missing file, and the temporary directory of the test data removed."""
import glob
import os
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
