"""`kiln --check-rules FILE...` against Debian's `promtool check rules` on the
same files: the same pass/fail for each file, the same exit code for a run
over several files, the same stdout ("Checking FILE", "  SUCCESS: N rules
found"), errors on stderr after "  FAILED:".  The two known differences
(Prometheus 3's group keys, which promtool 2.42 does not know, and files of
several YAML documents) are checked to stay what kiln documents."""
import os
import shutil
import subprocess
import tempfile
import unittest

from kilntest import KILN_BIN, require

PROMTOOL = "/usr/bin/promtool"

APM = """groups:
  - name: apm-recording
    interval: 30s
    rules:
      - record: job:http_requests:rate5m
        expr: sum by (job) (rate(http_requests_total[5m]))
      - record: job:http_errors:ratio5m
        expr: |
          sum by (job) (rate(http_requests_total{code=~"5.."}[5m]))
            /
          sum by (job) (rate(http_requests_total[5m]))
      - record: job:http_latency:p99_5m
        expr: histogram_quantile(0.99, sum by (job, le) (rate(http_request_duration_seconds_bucket[5m])))
  - name: apm-alerts
    rules:
      - alert: HighErrorRatio
        expr: job:http_errors:ratio5m > 0.05
        for: 10m
        keep_firing_for: 5m
        labels:
          severity: page
        annotations:
          summary: "{{ $labels.job }}: {{ $value | humanizePercentage }} of requests fail"
          runbook: 'https://runbooks.example/{{ .Labels.job }}'
      - alert: SlowRequests
        expr: job:http_latency:p99_5m > 0.5
        for: 15m
        annotations:
          description: >-
            {{ if gt $value 1.0 }}over a second{{ else }}slow{{ end }} at {{ $labels.job }}
"""

# name -> file; each is checked by both tools and their verdicts compared
AGREE = {
    "apm": APM,
    "empty": "",
    "no_rules": "groups:\n  - name: x\n",
    "bad_record_name": "groups:\n  - name: a\n    rules:\n      - record: 'a b'\n        expr: up\n",
    "both": "groups:\n  - name: a\n    rules:\n      - {record: x, alert: y, expr: up}\n",
    "neither": "groups:\n  - name: a\n    rules:\n      - expr: up\n",
    "bad_expr": "groups:\n  - name: a\n    rules:\n      - record: r\n        expr: rate(x[5m]\n",
    "for_on_record": "groups:\n  - name: a\n    rules:\n      - {record: r, expr: up, for: 5m}\n",
    "keep_firing_on_record": "groups:\n  - name: a\n    rules:\n      - {record: r, expr: up, keep_firing_for: 5m}\n",
    "annotations_on_record": "groups:\n  - name: a\n    rules:\n      - {record: r, expr: up, annotations: {a: b}}\n",
    "bad_label": "groups:\n  - name: a\n    rules:\n      - {alert: A, expr: up, labels: {1x: y}}\n",
    "name_label": "groups:\n  - name: a\n    rules:\n      - {alert: A, expr: up, labels: {__name__: y}}\n",
    "bad_annotation": "groups:\n  - name: a\n    rules:\n      - {alert: A, expr: up, annotations: {a.b: y}}\n",
    "unclosed_template": "groups:\n  - name: a\n    rules:\n      - {alert: A, expr: up, annotations: {a: '{{ x'}}\n",
    "dup_group": "groups:\n  - {name: a, rules: []}\n  - {name: a, rules: []}\n",
    "empty_group_name": "groups:\n  - {name: '', rules: []}\n",
    "unknown_key": "groups:\n  - name: a\n    rules:\n      - {record: r, expr: up, labelz: {}}\n",
    "bad_duration": "groups:\n  - name: a\n    interval: 1m30\n    rules: []\n",
    "bad_limit": "groups:\n  - name: a\n    limit: many\n    rules: []\n",
    "dup_key": "groups:\n  - name: a\n    name: b\n",
    "syntax": "groups:\n  - name: a\n   rules: [\n",
    "alert_name_with_spaces": "groups:\n  - name: a\n    rules:\n      - {alert: 'Disk almost full!', expr: up}\n",
}

# name -> (file, kiln's verdict: True = passes); promtool 2.42 gives the other
DIFFER = {
    "v3_group_keys": ("groups:\n  - name: a\n    query_offset: 1m\n    labels: {team: x}\n"
                      "    rules:\n      - {record: r, expr: up}\n", True),
    "two_documents": ("groups: []\n---\ngroups: []\n", False),
}


def run(tool, files, cwd):
    args = [KILN_BIN, "--check-rules"] if tool == "kiln" else [PROMTOOL, "check", "rules"]
    return subprocess.run(args + list(files), cwd=cwd, capture_output=True, text=True, timeout=60)


class TestCheckRules(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require(PROMTOOL, KILN_BIN)
        cls.dir = tempfile.mkdtemp(prefix="kiln-rules-")
        for name, text in list(AGREE.items()) + [(n, t) for n, (t, _) in DIFFER.items()]:
            with open(os.path.join(cls.dir, name + ".yml"), "w") as f:
                f.write(text)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_same_verdict_as_promtool(self):
        for name in AGREE:
            with self.subTest(file=name):
                k, p = run("kiln", [name + ".yml"], self.dir), run("promtool", [name + ".yml"], self.dir)
                self.assertEqual(k.returncode, p.returncode,
                                 f"kiln:\n{k.stdout}{k.stderr}\npromtool:\n{p.stdout}{p.stderr}")
                self.assertEqual(k.stdout, p.stdout)
                if k.returncode:
                    self.assertTrue(k.stderr.startswith("  FAILED:\n"), k.stderr)
                    # every error names the file with line:col
                    for line in k.stderr.splitlines()[1:]:
                        self.assertRegex(line, rf"^{name}\.yml:\d+:\d+: ")
                else:
                    self.assertEqual(k.stderr, "")

    def test_known_differences(self):
        for name, (_, kiln_passes) in DIFFER.items():
            with self.subTest(file=name):
                k, p = run("kiln", [name + ".yml"], self.dir), run("promtool", [name + ".yml"], self.dir)
                self.assertEqual(k.returncode == 0, kiln_passes, k.stderr)
                self.assertEqual(p.returncode == 0, not kiln_passes,
                                 "promtool agrees with kiln now: move the file to AGREE")

    def test_many_files(self):
        files = ["apm.yml", "empty.yml", "bad_expr.yml", "dup_group.yml"]
        k, p = run("kiln", files, self.dir), run("promtool", files, self.dir)
        self.assertEqual((k.returncode, k.stdout), (p.returncode, p.stdout))
        self.assertEqual(k.returncode, 1)
        self.assertIn("Checking apm.yml\n  SUCCESS: 5 rules found\n\n", k.stdout)
        self.assertEqual(k.stderr.count("  FAILED:\n"), 2)
        self.assertIn('bad_expr.yml:5:15: group "a", rule 1, "r": could not parse expression: ', k.stderr)
        self.assertIn('dup_group.yml:3:5: groupname: "a" is repeated in the same file', k.stderr)
        good = run("kiln", ["apm.yml", "no_rules.yml"], self.dir)
        self.assertEqual(good.returncode, 0)
        self.assertEqual(good.stdout, "Checking apm.yml\n  SUCCESS: 5 rules found\n\n"
                                      "Checking no_rules.yml\n  SUCCESS: 0 rules found\n\n")

    def test_missing_file_and_usage(self):
        k = run("kiln", ["nope.yml"], self.dir)
        self.assertEqual(k.returncode, 1)
        self.assertIn("open nope.yml: No such file or directory", k.stderr)
        k = run("kiln", [], self.dir)
        self.assertEqual(k.returncode, 2)
        self.assertIn("--check-rules needs at least one rule file", k.stderr)


if __name__ == "__main__":
    unittest.main()
