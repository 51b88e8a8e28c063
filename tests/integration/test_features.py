"""--enable-feature: repeatable comma-separated names, unknown ones warned about,
the PromQL features off by default (a bad_data error naming the flag) and on by it."""
import json
import unittest
import urllib.parse

from kilntest import Kiln


def query(k, q):
    st, _, body = k.get("/api/v1/query?" + urllib.parse.urlencode({"query": q, "time": "100"}))
    return st, json.loads(body)


class TestFeatureFlags(unittest.TestCase):
    def test_off_by_default(self):
        k = Kiln()
        try:
            k.start()
            for q in ('sort_by_label(vector(1), "a")', "limitk(1, vector(1))", "vector(step())"):
                st, doc = query(k, q)
                self.assertEqual(st, 400, q)
                self.assertEqual(doc["errorType"], "bad_data", q)
                self.assertIn("--enable-feature=promql-experimental-functions", doc["error"], q)
            st, doc = k.get_json("/api/v1/features")
            self.assertEqual(st, 200)
            d = doc["data"]
            self.assertIs(d["promql"]["at_modifier"], True)
            self.assertIs(d["promql"]["anchored"], False)
            self.assertIs(d["promql_functions"]["rate"], True)
            self.assertIs(d["promql_functions"]["mad_over_time"], False)
            self.assertIs(d["promql_operators"]["limitk"], False)
            self.assertIs(d["promql_operators"]["+"], True)
            self.assertIs(d["api"]["admin"], False)
        finally:
            k.stop()
            k.cleanup()

    def test_enabled_and_unknown(self):
        k = Kiln(args=["--enable-feature=promql-experimental-functions,no-such-feature",
                       "--enable-feature", "promql-delayed-name-removal"])
        try:
            k.start()
            st, doc = query(k, 'sort_by_label(vector(1), "a")')
            self.assertEqual(st, 200, doc)
            self.assertEqual(doc["data"]["result"][0]["value"][1], "1")
            st, doc = query(k, "min_of(3, 2)")
            self.assertEqual(st, 200, doc)
            self.assertEqual(doc["data"]["result"][1], "2")
            st, doc = k.get_json("/api/v1/features")
            self.assertIs(doc["data"]["promql_functions"]["mad_over_time"], True)
            self.assertIs(doc["data"]["promql_operators"]["limitk"], True)
            self.assertIs(doc["data"]["promql"]["delayed_name_removal"], True)
            self.assertIs(doc["data"]["promql"]["anchored"], False)
            st, doc = k.get_json("/api/v1/status/flags")
            self.assertEqual(doc["data"]["enable-feature"],
                             "promql-experimental-functions,no-such-feature,promql-delayed-name-removal")
            log = k.read_log()
            self.assertIn('msg="Unknown option for --enable-feature" option=no-such-feature', log)
            self.assertIn("Experimental PromQL functions enabled.", log)
        finally:
            k.stop()
            k.cleanup()


if __name__ == "__main__":
    unittest.main()
