/*
 * test_parse.c - the PromQL lexer, parser, printer and function table.
 *
 * The format and error tables were checked one by one against Prometheus
 * (its /api/v1/format_query); the few cases where Prometheus 3.x differs from
 * the 2.42 used for checking (experimental functions, numbers as durations,
 * holt_winters removed) follow 3.x.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "query/ast.h"

#define KILN_TEST_MAIN
#include "testutil.h"

/* promql_prettify: each output is Prometheus 2.42's /api/v1/format_query
 * answer (parser.Prettify), copied verbatim. */
static const struct {
    const char *in, *out;
} pretty_cases[] = {
    {"sum by (job, instance) (rate(http_requests_total{job=\"api-server\", handler=\"/api/v1/query\", "
     "code=~\"5..\"}[5m])) / sum by (job, instance) (rate(http_requests_total{job=\"api-server\"}[5m]))",
     "  sum by (job, instance) (\n"
     "    rate(http_requests_total{code=~\"5..\",handler=\"/api/v1/query\",job=\"api-server\"}[5m])\n"
     "  )\n"
     "/\n"
     "  sum by (job, instance) (rate(http_requests_total{job=\"api-server\"}[5m]))"},
    {"histogram_quantile(0.99, sum by (le, job, instance, handler) "
     "(rate(http_request_duration_seconds_bucket{job=\"api-server\"}[5m])))",
     "histogram_quantile(\n"
     "  0.99,\n"
     "  sum by (le, job, instance, handler) (\n"
     "    rate(http_request_duration_seconds_bucket{job=\"api-server\"}[5m])\n"
     "  )\n"
     ")"},
    {"100 - (avg by (instance) (irate(node_cpu_seconds_total{mode=\"idle\", "
     "job=\"node-exporter-production-cluster\"}[5m])) * 100)",
     "  100\n"
     "-\n"
     "  (\n"
     "      avg by (instance) (\n"
     "        irate(node_cpu_seconds_total{job=\"node-exporter-production-cluster\",mode=\"idle\"}[5m])\n"
     "      )\n"
     "    *\n"
     "      100\n"
     "  )"},
    {"topk(10, sum without (cpu, mode) (rate(node_cpu_seconds_total{mode!=\"idle\", "
     "job=\"node-exporter-production-cluster\"}[5m])))",
     "topk(\n"
     "  10,\n"
     "  sum without (cpu, mode) (\n"
     "    rate(node_cpu_seconds_total{job=\"node-exporter-production-cluster\",mode!=\"idle\"}[5m])\n"
     "  )\n"
     ")"},
    {"-sum by (instance) (rate(node_network_receive_bytes_total{device!~\"lo|veth.*|docker.*\", "
     "job=\"node-exporter\"}[5m]))",
     "-sum by (instance) (\n"
     "  rate(node_network_receive_bytes_total{device!~\"lo|veth.*|docker.*\",job=\"node-exporter\"}[5m])\n"
     ")"},
    {"max_over_time(sum by (instance) (rate(node_disk_read_bytes_total{device=~\"sd.*|nvme.*\", "
     "job=\"node-exporter-prod\"}[5m]))[1h:5m])",
     "max_over_time(\n"
     "  sum by (instance) (\n"
     "    rate(node_disk_read_bytes_total{device=~\"sd.*|nvme.*\",job=\"node-exporter-prod\"}[5m])\n"
     "  )[1h:5m]\n"
     ")"},
    {"a_metric_with_a_long_name_number_one_total{job=\"x\"} > bool on (instance, job) group_left (version, "
     "revision) build_info_with_long_name{job=\"x\"}",
     "  a_metric_with_a_long_name_number_one_total{job=\"x\"}\n"
     "> bool on (instance, job) group_left (version, revision)\n"
     "  build_info_with_long_name{job=\"x\"}"},
    {"sum by (namespace) (kube_pod_container_resource_requests{resource=\"memory\"}) / ignoring (resource) "
     "sum by (namespace) (kube_pod_container_resource_limits{resource=\"memory\"}) and on (namespace) "
     "kube_namespace_labels{label_team=\"platform\"}",
     "    sum by (namespace) (kube_pod_container_resource_requests{resource=\"memory\"})\n"
     "  / ignoring (resource)\n"
     "    sum by (namespace) (kube_pod_container_resource_limits{resource=\"memory\"})\n"
     "and on (namespace)\n"
     "  kube_namespace_labels{label_team=\"platform\"}"},
    {"predict_linear(rate(x[5m])[30m:1m], "
     "scalar(sum(some_very_long_metric_name_used_only_to_make_this_query_longer_total)))",
     "predict_linear(\n"
     "rate(x[5m])[30m:1m],\n"
     "  scalar(sum(some_very_long_metric_name_used_only_to_make_this_query_longer_total))\n"
     ")"},
    {"-(rate(x[5m])) + sum(rate(yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy[5m])) + "
     "sum(rate(zzzzzzzzzzzzzzzzzzzzzzzz[5m]))",
     "  -(rate(x[5m])) + sum(rate(yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy[5m]))\n"
     "+\n"
     "  sum(rate(zzzzzzzzzzzzzzzzzzzzzzzz[5m]))"},
    {"-(sum(rate(yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy[5m])) + "
     "sum(rate(zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz[5m])))",
     "-(\n"
     "    sum(rate(yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy[5m]))\n"
     "  +\n"
     "    sum(rate(zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz[5m]))\n"
     ")"},
    {"a_very_long_metric_name_number_one_that_goes_on_and_on_total{job="
     "\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}",
     "a_very_long_metric_name_number_one_that_goes_on_and_on_total{job="
     "\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}"},
    {"sum(rate(foo[5m])) / sum(rate(bar[5m]))", "sum(rate(foo[5m])) / sum(rate(bar[5m]))"},
    {"quantile_over_time(0.95, rate(http_request_duration_seconds_sum{job=\"api-server\", "
     "handler=\"/api/v1/query\"}[5m])[30m:1m] @ 1700000000)",
     "quantile_over_time(\n"
     "  0.95,\n"
     "  rate(http_request_duration_seconds_sum{handler=\"/api/v1/query\",job=\"api-server\"}[5m])[30m:1m] @ "
     "1700000000.000\n"
     ")"},
    {"sort_desc(sum by (instance) (rate(node_network_receive_bytes_total{device!~\"lo|veth.*|docker.*\", "
     "job=\"node-exporter\"}[5m])))[10m:1m]",
     "sort_desc(\n"
     "  sum by (instance) (\n"
     "    rate(node_network_receive_bytes_total{device!~\"lo|veth.*|docker.*\",job=\"node-exporter\"}[5m])\n"
     "  )\n"
     ")[10m:1m]"},
    {"count_values(\"version\", "
     "build_info{job=\"kubernetes-apiservers-with-a-very-long-job-name-to-make-this-long-enough\"})",
     "count_values(\n"
     "  \"version\",\n"
     "  build_info{job=\"kubernetes-apiservers-with-a-very-long-job-name-to-make-this-long-enough\"}\n"
     ")"},
};

static const struct {
    const char *in, *out;
} format_cases[] = {
    /* Found by fuzzing: forms that must read back as the same tree. */
    {"Inf ^ 2", "Inf ^ 2"},
    {"-2 ^ 2 % inf ^ 0", "-2 ^ 2 % Inf ^ 0"},
    {"Inf * 2", "+Inf * 2"},
    {"sum by (\"nan\", \"Inf\", a) (x)", "sum by (\"nan\", \"Inf\", a) (x)"},
    {"a + on(\"inf\") b", "a + on (\"inf\") b"},
    {"x{nan=\"1\"}", "x{nan=\"1\"}"},
    {"sum", "sum"},
    {"-2^2", "-2 ^ 2"},
    {"- -1", "1"},
    {"+1", "1"},
    {"-(1)", "-(1)"},
    {"1e6", "1e+06"},
    {"100000", "100000"},
    {"0x1f", "31"},
    {"1h", "3600"},
    {"predict_linear(x[50m], 1h)", "predict_linear(x[50m], 3600)"},
    {"time() - 1m30s", "time() - 90"},
    {"017", "15"},
    {"1.5e-7", "1.5e-07"},
    {"Inf", "+Inf"},
    {"-inf", "-Inf"},
    {"nan", "NaN"},
    {"{__name__=\"foo\"}", "{__name__=\"foo\"}"},
    {"a + ignoring() group_left b", "a + ignoring () group_left () b"},
    {"a + on() b", "a + on () b"},
    {"\"a\\x41\\u00e9\"", "\"aA\303\251\""},
    {"'a\"b'", "\"a\\\"b\""},
    {"foo offset 5", "foo offset 5s"},
    {"x[5m:]", "x[5m:]"},
    {"x[5m:1m] offset 1m", "x[5m:1m] offset 1m"},
    {"sum without () (x)", "sum without () (x)"},
    {"sum by () (x)", "sum(x)"},
    {"x @ start()", "x @ start()"},
    {"foo[5m] offset 1m @ 10", "foo[5m] @ 10.000 offset 1m"},
    {"foo @ -1", "foo @ -1.000"},
    {"foo{a=\"b\",}", "foo{a=\"b\"}"},
    {"foo{}", "foo"},
    {"{a=~\".+\"}", "{a=~\".+\"}"},
    {"a > bool b", "a > bool b"},
    {"'\\''", "\"'\""},
    {"x # comment", "x"},
    {"sum(x) without(a,b,)", "sum without (a, b) (x)"},
    {"x offset 1h30m", "x offset 1h30m"},
    {"x offset -1h30m", "x offset -1h30m"},
    {"x offset - 5m", "x offset -5m"},
    {"and", "and"},
    {"by", "by"},
    {"offset", "offset"},
    {"start", "start"},
    {"end", "end"},
    {"x and and", "x and and"},
    {"a + on(x) group_left c", "a + on (x) group_left () c"},
    {"sum{a=\"b\"}", "sum{a=\"b\"}"},
    {"x[5m] @ 1 offset 1m", "x[5m] @ 1.000 offset 1m"},
    {"x offset 1m @ 1", "x @ 1.000 offset 1m"},
    {"x[5m:1m] @ end()", "x[5m:1m] @ end()"},
    {"1 + -2", "1 + -2"},
    {"2 ^ -1 ^ 2", "2 ^ -1 ^ 2"},
    {"-a * b", "-a * b"},
    {"- a ^ b", "-a ^ b"},
    {"a - - b", "a - -b"},
    {"a / b % c atan2 d", "a / b % c atan2 d"},
    {"1 < bool 2 > bool 3", "1 < bool 2 > bool 3"},
    {"a or b and c unless d", "a or b and c unless d"},
    {"a == bool b + 1", "a == bool b + 1"},
    {"x @ 1.2345", "x @ 1.235"},
    {"x @ -0.0005", "x @ -0.001"},
    {"foo{a=\"b\", c!=\"d\", e=~\"f\", g!~\"h\"}", "foo{a=\"b\",c!=\"d\",e=~\"f\",g!~\"h\"}"},
    {"foo{c=\"d\", a=\"b\"}", "foo{a=\"b\",c=\"d\"}"},
    {"SUM(x) BY (a)", "sum by (a) (x)"},
    {"sum(rate(x[5m])) by (job) > 0", "sum by (job) (rate(x[5m])) > 0"},
    {"x{a=\"\\n\\t\\\\\"}", "x{a=\"\\n\\t\\\\\"}"},
    {"x{a=`a\\nb`}", "x{a=\"a\\\\nb\"}"},
    {"`raw\\n`", "\"raw\\\\n\""},
    {".5", "0.5"},
    {"5.", "5"},
    {"a:b:c", "a:b:c"},
    {"x offset 1y2w3d4h5m6s7ms", "x offset 382d4h5m6s7ms"},
    {"x[1000ms]", "x[1s]"},
    {"x[90s]", "x[1m30s]"},
    {"x[3600s]", "x[1h]"},
    {"x{a=\"\303\251\"}", "x{a=\"\303\251\"}"},
    {"\"\\u00e9\\U0001F600\\101\"", "\"\303\251\360\237\230\200A\""},
    {"\"\\377\"", "\"\\xff\""},
    {"\"a\\x00b\"", "\"a\\x00b\""},
    {"x[5m:1m] offset -1m @ start()", "x[5m:1m] @ start() offset -1m"},
    {"a + on(b) group_right(c, d) e", "a + on (b) group_right (c, d) e"},
    {"a * ignoring(b) group_left e", "a * ignoring (b) group_left () e"},
    {"a unless ignoring(b) c", "a unless ignoring (b) c"},
    {"absent(nonexistent{job=\"myjob\"})", "absent(nonexistent{job=\"myjob\"})"},
    {"histogram_quantile(0.9, sum by (le) (rate(x[5m])))",
     "histogram_quantile(0.9, sum by (le) (rate(x[5m])))"},
    {"label_replace(up, \"foo\", \"$1\", \"service\", \"(.*):.*\")",
     "label_replace(up, \"foo\", \"$1\", \"service\", \"(.*):.*\")"},
    {"quantile_over_time(0.5, x[5m])", "quantile_over_time(0.5, x[5m])"},
    {"count_values(\"v\", x)", "count_values(\"v\", x)"},
    {"topk(3, x)", "topk(3, x)"},
    {"sum(x) without (a)", "sum without (a) (x)"},
    {"-x", "-x"},
    {"-sum(x)", "-sum(x)"},
    {"+x", "+x"},
    {"1 - -1", "1 - -1"},
    {"1 - - 1", "1 - -1"},
    {"2 * -3 ^ 2", "2 * -3 ^ 2"},
    {"-1 ^ 2", "-1 ^ 2"},
    {"(-1) ^ 2", "(-1) ^ 2"},
    {"-1 * 2", "-1 * 2"},
    {"1 + 2 * 3", "1 + 2 * 3"},
    {"(1 + 2) * 3", "(1 + 2) * 3"},
    {"1 == bool 2", "1 == bool 2"},
    {"a == b", "a == b"},
    {"a != bool b", "a != bool b"},
    {"x @ +5", "x @ 5.000"},
    {"x @ - 5", "x @ -5.000"},
    {"x @ 0", "x @ 0.000"},
    {"x # c", "x"},
    {" + y", "+y"},
    {"time()", "time()"},
    {"pi()", "pi()"},
    {"vector(1)", "vector(1)"},
    {"scalar(x)", "scalar(x)"},
    {"days_in_month()", "days_in_month()"},
    {"year(x)", "year(x)"},
    {"round(x)", "round(x)"},
    {"round(x, 5)", "round(x, 5)"},
    {"label_join(x, \"a\", \",\", \"b\", \"c\")", "label_join(x, \"a\", \",\", \"b\", \"c\")"},
    {"sort_by_label(x, \"a\", \"b\")", "sort_by_label(x, \"a\", \"b\")"},
    {"double_exponential_smoothing(x[5m], 0.5, 0.5)", "double_exponential_smoothing(x[5m], 0.5, 0.5)"},
    {"mad_over_time(x[5m])", "mad_over_time(x[5m])"},
    {"info(x)", "info(x)"},
    {"limitk(2, x)", "limitk(2, x)"},
    {"limit_ratio(0.5, x)", "limit_ratio(0.5, x)"},
    {"group(x)", "group(x)"},
    {"stddev(x)", "stddev(x)"},
    {"rate(http_requests_total[5m])", "rate(http_requests_total[5m])"},
    {"irate(x[1m])", "irate(x[1m])"},
    {"increase(x[1h])", "increase(x[1h])"},
    {"delta(x[10m])", "delta(x[10m])"},
    {"idelta(x[10m])", "idelta(x[10m])"},
    {"deriv(x[10m])", "deriv(x[10m])"},
    {"changes(x[10m])", "changes(x[10m])"},
    {"resets(x[10m])", "resets(x[10m])"},
    {"predict_linear(x[1h], 3600)", "predict_linear(x[1h], 3600)"},
    {"avg_over_time(x[5m])", "avg_over_time(x[5m])"},
    {"min_over_time(x[5m])", "min_over_time(x[5m])"},
    {"max_over_time(x[5m])", "max_over_time(x[5m])"},
    {"sum_over_time(x[5m])", "sum_over_time(x[5m])"},
    {"count_over_time(x[5m])", "count_over_time(x[5m])"},
    {"stddev_over_time(x[5m])", "stddev_over_time(x[5m])"},
    {"stdvar_over_time(x[5m])", "stdvar_over_time(x[5m])"},
    {"last_over_time(x[5m])", "last_over_time(x[5m])"},
    {"present_over_time(x[5m])", "present_over_time(x[5m])"},
    {"absent_over_time(x[5m])", "absent_over_time(x[5m])"},
    {"abs(x)", "abs(x)"},
    {"ceil(x)", "ceil(x)"},
    {"floor(x)", "floor(x)"},
    {"exp(x)", "exp(x)"},
    {"sqrt(x)", "sqrt(x)"},
    {"ln(x)", "ln(x)"},
    {"log2(x)", "log2(x)"},
    {"log10(x)", "log10(x)"},
    {"sgn(x)", "sgn(x)"},
    {"deg(x)", "deg(x)"},
    {"rad(x)", "rad(x)"},
    {"sin(x)", "sin(x)"},
    {"cos(x)", "cos(x)"},
    {"tan(x)", "tan(x)"},
    {"asin(x)", "asin(x)"},
    {"acos(x)", "acos(x)"},
    {"atan(x)", "atan(x)"},
    {"sinh(x)", "sinh(x)"},
    {"cosh(x)", "cosh(x)"},
    {"tanh(x)", "tanh(x)"},
    {"asinh(x)", "asinh(x)"},
    {"acosh(x)", "acosh(x)"},
    {"atanh(x)", "atanh(x)"},
    {"clamp(x, 0, 1)", "clamp(x, 0, 1)"},
    {"clamp_min(x, 0)", "clamp_min(x, 0)"},
    {"clamp_max(x, 1)", "clamp_max(x, 1)"},
    {"timestamp(x)", "timestamp(x)"},
    {"sort(x)", "sort(x)"},
    {"sort_desc(x)", "sort_desc(x)"},
    {"hour()", "hour()"},
    {"minute(x)", "minute(x)"},
    {"month()", "month()"},
    {"day_of_month()", "day_of_month()"},
    {"day_of_year(x)", "day_of_year(x)"},
    {"histogram_fraction(0, 1, x)", "histogram_fraction(0, 1, x)"},
    {"histogram_count(x)", "histogram_count(x)"},
    {"histogram_sum(x)", "histogram_sum(x)"},
    {"histogram_avg(x)", "histogram_avg(x)"},
    {"histogram_stddev(x)", "histogram_stddev(x)"},
    {"histogram_stdvar(x)", "histogram_stdvar(x)"},
    {"bottomk(1, x)", "bottomk(1, x)"},
    {"stdvar by (a) (x)", "stdvar by (a) (x)"},
    {"min without (a, b) (x)", "min without (a, b) (x)"},
    {"max(x) by (a, b, c)", "max by (a, b, c) (x)"},
    {"sum by (a,) (x)", "sum by (a) (x)"},
    {"group without (le) (x)", "group without (le) (x)"},
    {"count(x) without ()", "count without () (x)"},
    {"sum by (__name__) (x)", "sum by (__name__) (x)"},
    {"x > 1", "x > 1"},
    {"x > bool 1", "x > bool 1"},
    {"1 > bool x", "1 > bool x"},
    {"1 + 2", "1 + 2"},
    {"1 + x", "1 + x"},
    {"x + 1", "x + 1"},
    {"x + y", "x + y"},
    {"x - y * z", "x - y * z"},
    {"x * y - z", "x * y - z"},
    {"x ^ y ^ z", "x ^ y ^ z"},
    {"(x ^ y) ^ z", "(x ^ y) ^ z"},
    {"x / y / z", "x / y / z"},
    {"x / (y / z)", "x / (y / z)"},
    {"x or y or z", "x or y or z"},
    {"x and y or z", "x and y or z"},
    {"x or y and z", "x or y and z"},
    {"x unless y and z", "x unless y and z"},
    {"x == y + 1", "x == y + 1"},
    {"x + y == 1", "x + y == 1"},
    {"x > y < z", "x > y < z"},
    {"x atan2 y", "x atan2 y"},
    {"1 atan2 2", "1 atan2 2"},
    {"x % 2", "x % 2"},
    {"-x ^ 2", "-x ^ 2"},
    {"-x * 2", "-x * 2"},
    {"-(x) ^ 2", "-(x) ^ 2"},
    {"x + -y", "x + -y"},
    {"x - -1", "x - -1"},
    {"x * -1", "x * -1"},
    {"+-x", "+-x"},
    {"-+x", "-+x"},
    {"x and y", "x and y"},
    {"x or on(a) y", "x or on (a) y"},
    {"x unless ignoring(a) y", "x unless ignoring (a) y"},
    {"x + on(a) group_left(b) y", "x + on (a) group_left (b) y"},
    {"x + on(a) group_right(b) y", "x + on (a) group_right (b) y"},
    {"x + ignoring(a) group_left y", "x + ignoring (a) group_left () y"},
    {"x == bool on(a) y", "x == bool on (a) y"},
    {"x == bool ignoring(a) group_left(b) y", "x == bool ignoring (a) group_left (b) y"},
    {"x + on(a, b) y", "x + on (a, b) y"},
    {"x + ignoring(a) group_left(a) y", "x + ignoring (a) group_left (a) y"},
    {"x{job=\"a\"}[5m] offset 1h", "x{job=\"a\"}[5m] offset 1h"},
    {"x{job=\"a\"}[5m:] offset 1h", "x{job=\"a\"}[5m:] offset 1h"},
    {"x{job=\"a\"}[5m:30s] @ 100", "x{job=\"a\"}[5m:30s] @ 100.000"},
    {"rate(x[5m])[30m:1m]", "rate(x[5m])[30m:1m]"},
    {"max_over_time(rate(x[5m])[30m:1m])", "max_over_time(rate(x[5m])[30m:1m])"},
    {"max_over_time(deriv(rate(x[1m])[5m:1m])[10m:])", "max_over_time(deriv(rate(x[1m])[5m:1m])[10m:])"},
    {"sum(x)[5m:]", "sum(x)[5m:]"},
    {"(x + y)[5m:1m]", "(x + y)[5m:1m]"},
    {"x offset 5m + y offset 1h", "x offset 5m + y offset 1h"},
    {"x @ 100 + y @ 200", "x @ 100.000 + y @ 200.000"},
    {"x @ 100 offset 5m", "x @ 100.000 offset 5m"},
    {"x offset 5m @ 100", "x @ 100.000 offset 5m"},
    {"x[5m] offset 5m @ 100", "x[5m] @ 100.000 offset 5m"},
    {"x @ start() offset 1m", "x @ start() offset 1m"},
    {"x @ end()", "x @ end()"},
    {"x[1m:] @ start()", "x[1m:] @ start()"},
    {"x[1m:] @ end() offset -5m", "x[1m:] @ end() offset -5m"},
    {"x offset -1ms", "x offset -1ms"},
    {"x offset 1ms", "x offset 1ms"},
    {"x offset 1d", "x offset 1d"},
    {"x[2w]", "x[2w]"},
    {"x[1y]", "x[1y]"},
    {"x[52w]", "x[52w]"},
    {"x[105w]", "x[105w]"},
    {"x[365d]", "x[1y]"},
    {"x[366d]", "x[366d]"},
    {"x[1h30m]", "x[1h30m]"},
    {"x[90m]", "x[1h30m]"},
    {"x[7200s]", "x[2h]"},
    {"x[100ms]", "x[100ms]"},
    {"x[1s500ms]", "x[1s500ms]"},
    {"x{a=\"b\",a=\"c\"}", "x{a=\"b\",a=\"c\"}"},
    {"x{a=~\"b|c\"}", "x{a=~\"b|c\"}"},
    {"x{a!~\"b|c\"}", "x{a!~\"b|c\"}"},
    {"x{a!=\"\"}", "x{a!=\"\"}"},
    {"{a!=\"\"}", "{a!=\"\"}"},
    {"{a=~\".+\",b=\"c\"}", "{a=~\".+\",b=\"c\"}"},
    {"{__name__=~\"x|y\"}", "{__name__=~\"x|y\"}"},
    {"{__name__=\"x\",a=\"b\"}", "{__name__=\"x\",a=\"b\"}"},
    {"x{}", "x"},
    {"x{a=\"b\"}", "x{a=\"b\"}"},
    {"x{a=\"b\",}", "x{a=\"b\"}"},
    {"x{ a = \"b\" , c = \"d\" }", "x{a=\"b\",c=\"d\"}"},
    {"x{a=\"\",b=\"c\"}", "x{a=\"\",b=\"c\"}"},
    {"x{a='b'}", "x{a=\"b\"}"},
    {"x{a=`b`}", "x{a=\"b\"}"},
    {"x{a=\"\\\"\"}", "x{a=\"\\\"\"}"},
    {"x{a=\"'\"}", "x{a=\"'\"}"},
    {"x{a='\"'}", "x{a=\"\\\"\"}"},
    {"x{a=\"\\\\d\"}", "x{a=\"\\\\d\"}"},
    {"x{a=~\"\\\\d+\"}", "x{a=~\"\\\\d+\"}"},
    {"x{a=\"\\u0041\"}", "x{a=\"A\"}"},
    {"x{a=\"\\101\"}", "x{a=\"A\"}"},
    {"x{a=\"\\x41\"}", "x{a=\"A\"}"},
    {"x{a=\"\\a\\b\\f\\n\\r\\t\\v\"}", "x{a=\"\\a\\b\\f\\n\\r\\t\\v\"}"},
    {"x{a=\"\346\227\245\346\234\254\"}", "x{a=\"\346\227\245\346\234\254\"}"},
    {"x{a=\"\\u200b\"}", "x{a=\"\\u200b\"}"},
    {"x{a=\"\\x7f\"}", "x{a=\"\\x7f\"}"},
    {"\"\\u00ad\"", "\"\\u00ad\""},
    {"\"\\x01\"", "\"\\x01\""},
    {"\"\\U0010FFFF\"", "\"\\U0010ffff\""},
    {"\"ab\"", "\"ab\""},
    {"'ab'", "\"ab\""},
    {"`ab`", "\"ab\""},
    {"`a\"b`", "\"a\\\"b\""},
    {"`a'b`", "\"a'b\""},
    {"`a\\b`", "\"a\\\\b\""},
    {"\"a b c d e f g h i j k\"", "\"a b c d e f g h i j k\""},
    {"x[5s5ms]", "x[5s5ms]"},
    {"x @ 1.5e3", "x @ 1500.000"},
    {"x @ 0x10", "x @ 16.000"},
    {"x @ 1e15", "x @ 1000000000000000.000"},
    {"x [5m]", "x[5m]"},
    {"x [ 5m ]", "x[5m]"},
    {"x [ 5m : 1m ]", "x[5m:1m]"},
    {"sum (x)", "sum(x)"},
    {"sum ( x )", "sum(x)"},
    {"sum\t(x)", "sum(x)"},
    {"(x)", "(x)"},
    {"x", "x"},
    {"y", "y"},
    {"x # a", "x"},
    {"+ y", "+y"},
    {"(((x)))", "(((x)))"},
    {"((x + y))", "((x + y))"},
    {"-(-(x))", "-(-(x))"},
    {"--x", "--x"},
    {"- - - x", "---x"},
    {"-1", "-1"},
    {"--1", "1"},
    {"-0", "-0"},
    {"-0.0", "-0"},
    {"0.1", "0.1"},
    {"1.0", "1"},
    {"123456789", "1.23456789e+08"},
    {"12345678901234567890", "1.2345678901234567e+19"},
    {"1e21", "1e+21"},
    {"1e20", "1e+20"},
    {"1e-5", "1e-05"},
    {"0.0001", "0.0001"},
    {"0.00001", "1e-05"},
    {"1.23e+45", "1.23e+45"},
    {"0X1F", "31"},
    {"0xff", "255"},
    {"0x7fffffffffffffff", "9.223372036854776e+18"},
    {"0755", "493"},
    {"0789", "789"},
    {"09", "9"},
    {"0.5e1", "5"},
    {"5e-1", "0.5"},
    {".5e1", "5"},
    {"1e+2", "100"},
    {"1E2", "100"},
    {"infx", "infx"},
    {"nan1", "nan1"},
    {"Inf + 1", "+Inf + 1"},
    {"NaN", "NaN"},
    {"nAn", "NaN"},
    {"InF", "+Inf"},
    {"-Inf", "-Inf"},
    {"+Inf", "+Inf"},
    {"x + Inf", "x + +Inf"},
};

static const struct {
    const char *in, *err;
} error_cases[] = {
    {"-", "1:2: parse error: unexpected end of input"},
    {"1+", "1:3: parse error: unexpected end of input"},
    {"(", "1:2: parse error: unclosed left parenthesis"},
    {"on", "1:1: parse error: unexpected <on>"},
    {"foo }", "1:5: parse error: unexpected character: '}'"},
    {"1 > 2", "1:3: parse error: comparisons between scalars must use BOOL modifier"},
    {"x{", "1:3: parse error: unexpected end of input inside braces"},
    {"rate(foo)",
     "1:6: parse error: expected type range vector in call to function \"rate\", got instant vector"},
    {"a and 1", "1:1: parse error: set operator \"and\" not allowed in binary scalar expression"},
    {"topk(x)",
     "1:1: parse error: wrong number of arguments for aggregate expression provided, expected 2, got 1"},
    {"foo[0s]", "1:5: parse error: duration must be greater than 0"},
    {"foo offset 0s", "1:12: parse error: duration must be greater than 0"},
    {"foo @ inf", "1:1: parse error: timestamp out of bounds for @ modifier: +Inf"},
    {"foo @ 1h @ 2m", "1:1: parse error: @ <timestamp> may not be set multiple times"},
    {"foo[5m", "1:7: parse error: unclosed left bracket"},
    {"foo[5m:1m:1m]", "1:10: parse error: unexpected colon ':'"},
    {"1 offset 5m", "1:1: parse error: offset modifier must be preceded by an instant vector selector or "
                    "range vector selector or a subquery"},
    {"(foo) offset 5m", "1:1: parse error: offset modifier must be preceded by an instant vector selector or "
                        "range vector selector or a subquery"},
    {"(foo)[5m]", "1:6: parse error: ranges only allowed for vector selectors"},
    {"foo offset 5m[5m]", "1:14: parse error: no offset modifiers allowed before range"},
    {"foo[5m] offset 5m offset 1m", "1:1: parse error: offset may not be set multiple times"},
    {"foo @ 1 @ 2", "1:1: parse error: @ <timestamp> may not be set multiple times"},
    {"sum(x) by (a) by (b)", "1:15: parse error: unexpected <by>"},
    {"sum by (a) (x) by (b)", "1:16: parse error: unexpected <by>"},
    {"sum x", "1:5: parse error: unexpected identifier \"x\""},
    {"sum(x,)", "1:6: parse error: trailing commas not allowed in function call args"},
    {"rate(x[5m],)", "1:11: parse error: trailing commas not allowed in function call args"},
    {"foo{a}", "1:6: parse error: unexpected \"}\" in label matching, expected label matching operator"},
    {"foo{a=}", "1:7: parse error: unexpected \"}\" in label matching, expected string"},
    {"foo{a=\"b\" c=\"d\"}",
     "1:11: parse error: unexpected identifier \"c\" in label matching, expected \",\" or \"}\""},
    {"foo{,}", "1:5: parse error: unexpected \",\" in label matching, expected identifier or \"}\""},
    {"{}", "1:1: parse error: vector selector must contain at least one non-empty matcher"},
    {"{a=\"\"}", "1:1: parse error: vector selector must contain at least one non-empty matcher"},
    {"{a=~\".*\"}", "1:1: parse error: vector selector must contain at least one non-empty matcher"},
    {"foo{__name__=\"bar\"}", "1:1: parse error: metric name must not be set twice: \"foo\" or \"bar\""},
    {"a + bool b", "1:3: parse error: bool modifier can only be used on comparison operators"},
    {"a and on(x) group_left b", "1:1: parse error: no grouping allowed for \"and\" operation"},
    {"1 + on(x) 2", "1:1: parse error: vector matching only allowed between instant vectors"},
    {"a + on(x) group_left(x) b",
     "1:3: parse error: label \"x\" must not occur in ON and GROUP clause at once"},
    {"abc(x)", "1:1: parse error: unknown function with name \"abc\""},
    {"x[5m:][5m:]", "1:1: parse error: subquery is only allowed on instant vector, got matrix instead"},
    {"1[5m:]", "1:1: parse error: subquery is only allowed on instant vector, got scalar instead"},
    {"\"a\"[5m:]", "1:1: parse error: subquery is only allowed on instant vector, got string instead"},
    {"x[1m][5m:]", "1:1: parse error: subquery is only allowed on instant vector, got matrix instead"},
    {"-\"a\"", "1:1: parse error: unary expression only allowed on expressions of type scalar or instant "
               "vector, got \"string\""},
    {"-x[5m]", "1:1: parse error: unary expression only allowed on expressions of type scalar or instant "
               "vector, got \"range vector\""},
    {"time(1)", "1:1: parse error: expected 0 argument(s) in call to \"time\", got 1"},
    {"round(x,1,2)", "1:1: parse error: expected at most 2 argument(s) in call to \"round\", got 3"},
    {"label_join(x)", "1:1: parse error: expected at least 3 argument(s) in call to \"label_join\", got 1"},
    {"label_join(x,\"a\",\"b\",\"c\",1)",
     "1:26: parse error: expected type string in call to function \"label_join\", got scalar"},
    {"clamp(x,1,2,3)", "1:1: parse error: expected 3 argument(s) in call to \"clamp\", got 4"},
    {"\"\\q\"", "1:1: parse error: unknown escape sequence U+0071 'q'"},
    {"\"\\xZZ\"", "1:1: parse error: illegal character U+005A 'Z' in escape sequence"},
    {"\"\\ud800\"", "1:1: parse error: escape sequence is an invalid Unicode code point"},
    {"\"abc", "1:1: parse error: unterminated quoted string"},
    {"sum(x) by (1)", "1:12: parse error: unexpected number \"1\" in grouping opts, expected label"},
    {"x[5m1h]", "1:3: parse error: not a valid duration string: \"5m1h\""},
    {"x[1y2y]", "1:3: parse error: bad duration syntax: \"1y2\""},
    {"foo bar", "1:5: parse error: unexpected identifier \"bar\""},
    {"1 2", "1:3: parse error: unexpected number \"2\""},
    {"(1 2)", "1:4: parse error: unexpected number \"2\""},
    {"rate(x y)", "1:8: parse error: unexpected identifier \"y\""},
    {"sum(x y)", "1:7: parse error: unexpected identifier \"y\" in aggregation"},
    {"foo[]", "1:5: parse error: missing unit character in duration"},
    {"foo[5m 1m]",
     "1:8: parse error: unexpected duration \"1m\" in subquery or range, expected \":\" or \"]\""},
    {"foo[5m:1m 1m]", "1:11: parse error: unexpected duration \"1m\" in subquery selector, expected \"]\""},
    {"x @ start", "1:10: parse error: unexpected end of input in @, expected timestamp"},
    {"x @ start(1)", "1:11: parse error: unexpected number \"1\" in @, expected timestamp"},
    {"x @", "1:4: parse error: unexpected end of input in @, expected timestamp"},
    {"x offset", "1:9: parse error: unexpected end of input in offset, expected duration"},
    {"bool", "1:1: parse error: unexpected <bool>"},
    {"atan2", "1:1: parse error: unexpected <op:atan2>"},
    {"ignoring", "1:1: parse error: unexpected <ignoring>"},
    {"sum by x", "1:8: parse error: unexpected identifier \"x\" in grouping opts, expected \"(\""},
    {"sum by (a", "1:10: parse error: unclosed left parenthesis"},
    {"sum by (a b)",
     "1:11: parse error: unexpected identifier \"b\" in grouping opts, expected \",\" or \")\""},
    {"a + on b", "1:8: parse error: unexpected identifier \"b\" in grouping opts, expected \"(\""},
    {"a + on(x) group_left (x,) c",
     "1:3: parse error: label \"x\" must not occur in ON and GROUP clause at once"},
    {"a + bool on(x) b", "1:3: parse error: bool modifier can only be used on comparison operators"},
    {"a > on(x) bool b", "1:11: parse error: unexpected <bool>"},
    {"foo{a=\"b\"}{c=\"d\"}", "1:11: parse error: unexpected \"{\""},
    {"a:b(x)", "1:4: parse error: unexpected \"(\""},
    {"sum(x) by (a) (y)", "1:15: parse error: unexpected \"(\""},
    {"count_values(5, other_metric)",
     "1:14: parse error: expected type string in aggregation parameter, got scalar"},
    {"topk(some_metric, other_metric)",
     "1:6: parse error: expected type scalar in aggregation parameter, got instant vector"},
    {"sum()", "1:1: parse error: no arguments for aggregate expression provided"},
    {"sum(1,2,3)",
     "1:1: parse error: wrong number of arguments for aggregate expression provided, expected 1, got 3"},
    {"quantile(x)",
     "1:1: parse error: wrong number of arguments for aggregate expression provided, expected 2, got 1"},
    {"rate(x[5m]) @ 123", "1:1: parse error: @ modifier must be preceded by an instant vector selector or "
                          "range vector selector or a subquery"},
    {"x @ 1e20", "1:1: parse error: timestamp out of bounds for @ modifier: 100000000000000000000.000000"},
    {"1e400",
     "1:1: parse error: error parsing number: strconv.ParseFloat: parsing \"1e400\": value out of range"},
    {"1e", "1:1: parse error: error parsing number: strconv.ParseFloat: parsing \"1e\": invalid syntax"},
    {"0x", "1:1: parse error: error parsing number: strconv.ParseFloat: parsing \"0x\": invalid syntax"},
    {"1.5.2", "1:4: parse error: unexpected number \".2\""},
    {")", "1:2: parse error: unexpected right parenthesis ')'"},
    {"]", "1:1: parse error: unexpected right bracket ']'"},
    {"x]", "1:2: parse error: unexpected right bracket ']'"},
    {"[", "1:1: parse error: unexpected \"[\""},
    {"x[5m]]", "1:6: parse error: unexpected right bracket ']'"},
    {"x{a=\"b\"}}", "1:9: parse error: unexpected character: '}'"},
    {"foo !", "1:5: parse error: unexpected character after '!': '\357\277\275'"},
    {"foo ~ bar", "1:5: parse error: unexpected character: '~'"},
    {"foo =~ bar", "1:5: parse error: unexpected character after '=': '~'"},
    {"x{a!b}", "1:4: parse error: unexpected character after '!' inside braces: 'b'"},
    {"x{a='b}", "1:5: parse error: unterminated quoted string"},
    {"x{{}", "1:3: parse error: unexpected left brace '{'"},
    {"{a=\"b\"", "1:7: parse error: unexpected end of input inside braces"},
    {"rate(", "1:6: parse error: unclosed left parenthesis"},
    {"#only a comment", "1:1: parse error: no expression found in input"},
    {"day_of_week(x, x)",
     "1:1: parse error: expected at most 1 argument(s) in call to \"day_of_week\", got 2"},
    {"holt_winters(x[5m], 0.5, 0.5)", "1:1: parse error: unknown function with name \"holt_winters\""},
    {"rate(x)",
     "1:6: parse error: expected type range vector in call to function \"rate\", got instant vector"},
    {"rate(1)", "1:6: parse error: expected type range vector in call to function \"rate\", got scalar"},
    {"rate(\"a\")", "1:6: parse error: expected type range vector in call to function \"rate\", got string"},
    {"abs(x[5m])",
     "1:5: parse error: expected type instant vector in call to function \"abs\", got range vector"},
    {"abs(\"a\")", "1:5: parse error: expected type instant vector in call to function \"abs\", got string"},
    {"clamp(x, \"a\", 1)",
     "1:10: parse error: expected type scalar in call to function \"clamp\", got string"},
    {"vector(x)",
     "1:8: parse error: expected type scalar in call to function \"vector\", got instant vector"},
    {"scalar(x[5m])",
     "1:8: parse error: expected type instant vector in call to function \"scalar\", got range vector"},
    {"histogram_quantile(x, x)", "1:20: parse error: expected type scalar in call to function "
                                 "\"histogram_quantile\", got instant vector"},
    {"label_replace(x, \"a\", \"b\", \"c\")",
     "1:1: parse error: expected 5 argument(s) in call to \"label_replace\", got 4"},
    {"label_replace(x, 1, \"b\", \"c\", \"d\")",
     "1:18: parse error: expected type string in call to function \"label_replace\", got scalar"},
    {"predict_linear(x[5m], x)",
     "1:23: parse error: expected type scalar in call to function \"predict_linear\", got instant vector"},
    {"quantile_over_time(x, x[5m])", "1:20: parse error: expected type scalar in call to function "
                                     "\"quantile_over_time\", got instant vector"},
    {"sum(x[5m])",
     "1:5: parse error: expected type instant vector in aggregation expression, got range vector"},
    {"sum(\"a\")", "1:5: parse error: expected type instant vector in aggregation expression, got string"},
    {"avg(1)", "1:5: parse error: expected type instant vector in aggregation expression, got scalar"},
    {"count_values(x, x)",
     "1:14: parse error: expected type string in aggregation parameter, got instant vector"},
    {"quantile(\"a\", x)", "1:10: parse error: expected type scalar in aggregation parameter, got string"},
    {"topk(1, x[5m])",
     "1:9: parse error: expected type instant vector in aggregation expression, got range vector"},
    {"x and 1", "1:1: parse error: set operator \"and\" not allowed in binary scalar expression"},
    {"1 or x", "1:1: parse error: set operator \"or\" not allowed in binary scalar expression"},
    {"\"a\" + 1", "1:1: parse error: binary expression must contain only scalar and instant vector types"},
    {"x + \"a\"", "1:5: parse error: binary expression must contain only scalar and instant vector types"},
    {"x[5m] + 1", "1:1: parse error: binary expression must contain only scalar and instant vector types"},
    {"1 + x[5m]", "1:5: parse error: binary expression must contain only scalar and instant vector types"},
    {"x + on(a) group_left(a) y",
     "1:3: parse error: label \"a\" must not occur in ON and GROUP clause at once"},
    {"1 + x[5m:]", "1:5: parse error: binary expression must contain only scalar and instant vector types"},
    {"{a=~\"a*\"}", "1:1: parse error: vector selector must contain at least one non-empty matcher"},
    {"{__name__!=\"x\"}", "1:1: parse error: vector selector must contain at least one non-empty matcher"},
    {"\"\\U00110000\"", "1:1: parse error: escape sequence is an invalid Unicode code point"},
    {"\"\\400\"", "1:1: parse error: escape sequence is an invalid Unicode code point"},
    {"\"\\8\"", "1:1: parse error: unknown escape sequence U+0038 '8'"},
    {"\"\\u12\"", "1:1: parse error: illegal character U+0022 '\"' in escape sequence"},
    {"\"\\u123\"", "1:1: parse error: illegal character U+0022 '\"' in escape sequence"},
    {"\"\\x4\"", "1:1: parse error: illegal character U+0022 '\"' in escape sequence"},
    {"\"abc\\", "1:1: parse error: escape sequence not terminated"},
    {"\"", "1:1: parse error: unterminated quoted string"},
    {"'abc", "1:1: parse error: unterminated quoted string"},
    {"x{a=\"b\" c}",
     "1:9: parse error: unexpected identifier \"c\" in label matching, expected \",\" or \"}\""},
    {"x{a=\"b\",,}", "1:9: parse error: unexpected \",\" in label matching, expected identifier or \"}\""},
    {"x{a==\"b\"}", "1:5: parse error: unexpected \"=\" in label matching, expected string"},
    {"x{a=!\"b\"}", "1:5: parse error: unexpected character after '!' inside braces: '\"'"},
    {"x{a!\"b\"}", "1:4: parse error: unexpected character after '!' inside braces: '\"'"},
    {"x{1=\"b\"}", "1:3: parse error: unexpected character inside braces: '1'"},
    {"x{a=1}", "1:5: parse error: unexpected character inside braces: '1'"},
    {"x{a=b}", "1:5: parse error: unexpected identifier \"b\" in label matching, expected string"},
    {"x{=}", "1:3: parse error: unexpected \"=\" in label matching, expected identifier or \"}\""},
    {"x{\"a\"}", "1:1: parse error: metric name must not be set twice: \"x\" or \"a\""},
    {"x{a=\"b\"", "1:8: parse error: unexpected end of input inside braces"},
    {"x{a=\"b\"]", "1:8: parse error: unexpected character inside braces: ']'"},
    {"x[5m}", "1:5: parse error: unexpected character: '}'"},
    {"x[5", "1:4: parse error: unclosed left bracket"},
    {"x[5m][5m]", "1:6: parse error: ranges only allowed for vector selectors"},
    {"x[5m", "1:5: parse error: unclosed left bracket"},
    {"x[5m:", "1:6: parse error: unclosed left bracket"},
    {"x[5m:1m", "1:8: parse error: unclosed left bracket"},
    {"x[:1m]", "1:3: parse error: missing unit character in duration"},
    {"x[-5m]", "1:3: parse error: duration must be greater than 0"},
    {"x[5m:-1m]", "1:6: parse error: unexpected <op:-> in subquery selector, expected duration or \"]\""},
    {"x[1.5m]", "1:3: parse error: not a valid duration string: \"1.5m\""},
    {"x[5M]", "1:3: parse error: bad duration syntax: \"5\""},
    {"x[5mm]", "1:3: parse error: bad duration syntax: \"5mm\""},
    {"x[5ms5s]", "1:3: parse error: not a valid duration string: \"5ms5s\""},
    {"x[1h1h]", "1:3: parse error: not a valid duration string: \"1h1h\""},
    {"x offset 5m offset 5m", "1:1: parse error: offset may not be set multiple times"},
    {"x offset 1ms 1ms", "1:14: parse error: unexpected duration \"1ms\""},
    {"x offset -", "1:11: parse error: unexpected end of input in offset, expected duration"},
    {"x offset --5m", "1:11: parse error: unexpected <op:-> in offset, expected duration"},
    {"x offset 5m5m", "1:10: parse error: not a valid duration string: \"5m5m\""},
    {"x @ 1 offset 5m @ 2", "1:1: parse error: @ <timestamp> may not be set multiple times"},
    {"x @ \"a\"", "1:5: parse error: unexpected string \"\\\"a\\\"\" in @, expected timestamp"},
    {"x @ x", "1:5: parse error: unexpected identifier \"x\" in @, expected timestamp"},
    {"x @ (1)", "1:5: parse error: unexpected \"(\" in @, expected timestamp"},
    {"x @ end() @ start()", "1:1: parse error: @ <timestamp> may not be set multiple times"},
    {"x @ -inf", "1:1: parse error: timestamp out of bounds for @ modifier: -Inf"},
    {"x @ nan", "1:1: parse error: timestamp out of bounds for @ modifier: NaN"},
    {"x @ 9.3e18", "1:1: parse error: timestamp out of bounds for @ modifier: 9300000000000000000.000000"},
    {"sum(x) offset 5m", "1:1: parse error: offset modifier must be preceded by an instant vector selector "
                         "or range vector selector or a subquery"},
    {"sum(x) @ 5", "1:1: parse error: @ modifier must be preceded by an instant vector selector or range "
                   "vector selector or a subquery"},
    {"rate(x[5m]) offset 5m", "1:1: parse error: offset modifier must be preceded by an instant vector "
                              "selector or range vector selector or a subquery"},
    {"\"a\" offset 5m", "1:1: parse error: offset modifier must be preceded by an instant vector selector or "
                        "range vector selector or a subquery"},
    {"1 @ 5", "1:1: parse error: @ modifier must be preceded by an instant vector selector or range vector "
              "selector or a subquery"},
    {"x offset 5m [5m]", "1:13: parse error: no offset modifiers allowed before range"},
    {"x @ 5 [5m]", "1:7: parse error: no @ modifiers allowed before range"},
    {"+", "1:2: parse error: unexpected end of input"},
    {"# b", "1:1: parse error: no expression found in input"},
    {"0x8000000000000000", "1:1: parse error: error parsing number: strconv.ParseFloat: parsing "
                           "\"0x8000000000000000\": invalid syntax"},
    {"x[5m:1m 1m]", "1:9: parse error: unexpected duration \"1m\" in subquery selector, expected \"]\""},
};

/* Parses q and returns its canonical form in a static buffer, or the error. */
static const char *fmt_or_err(const char *q, int *ok) {
    static char out[8192];
    promql_ast *a = NULL;
    kiln_err err = {0};
    int rc = promql_parse(q, &a, &err);
    if (rc < 0) {
        ck_assert_msg(a == NULL, "%s: tree returned on error", q);
        ck_assert_int_eq(rc, err.code);
        snprintf(out, sizeof out, "%s", err.msg);
        *ok = 0;
        return out;
    }
    buf b = BUF_INIT;
    ck_assert_int_eq(promql_format(&b, a->root), 0);
    snprintf(out, sizeof out, "%s", b.data ? b.data : "");
    buf_free(&b);
    promql_ast_free(a);
    *ok = 1;
    return out;
}

START_TEST(test_prettify_table) {
    for (size_t i = 0; i < sizeof pretty_cases / sizeof pretty_cases[0]; i++) {
        promql_ast *a = NULL, *back = NULL;
        kiln_err err = {0};
        ck_assert_msg(promql_parse(pretty_cases[i].in, &a, &err) == 0, "%s: %s", pretty_cases[i].in, err.msg);
        buf pretty = BUF_INIT, flat = BUF_INIT, flat2 = BUF_INIT;
        ck_assert_int_eq(promql_prettify(&pretty, a->root), 0);
        ck_assert_msg(strcmp(pretty.data, pretty_cases[i].out) == 0, "%s:\ngot\n%s\nwant\n%s",
                      pretty_cases[i].in, pretty.data, pretty_cases[i].out);
        /* the split form reads back as the same tree */
        ck_assert_msg(promql_parse(pretty.data, &back, &err) == 0, "%s: %s", pretty.data, err.msg);
        ck_assert_int_eq(promql_format(&flat, a->root), 0);
        ck_assert_int_eq(promql_format(&flat2, back->root), 0);
        ck_assert_str_eq(flat.data, flat2.data);
        /* what fits in a line is the one-line form; a selector is never split */
        if (flat.len <= PROMQL_PRETTY_MAX_LINE || a->root->kind == PROMQL_VECTOR_SELECTOR)
            ck_assert_str_eq(pretty.data, flat.data);
        else
            ck_assert_ptr_nonnull(strchr(pretty.data, '\n'));
        buf_free(&pretty);
        buf_free(&flat);
        buf_free(&flat2);
        promql_ast_free(back);
        promql_ast_free(a);
    }
}
END_TEST

START_TEST(test_format_table) {
    for (size_t i = 0; i < sizeof format_cases / sizeof format_cases[0]; i++) {
        int ok;
        const char *got = fmt_or_err(format_cases[i].in, &ok);
        ck_assert_msg(ok, "%s: failed: %s", format_cases[i].in, got);
        ck_assert_msg(strcmp(got, format_cases[i].out) == 0, "%s: got %s want %s", format_cases[i].in, got,
                      format_cases[i].out);
        /* Round trip: the canonical form is a fixed point. */
        char first[8192];
        snprintf(first, sizeof first, "%s", got);
        got = fmt_or_err(first, &ok);
        ck_assert_msg(ok, "%s: reparse failed: %s", first, got);
        ck_assert_msg(strcmp(got, first) == 0, "round trip %s -> %s", first, got);
    }
}
END_TEST

START_TEST(test_error_table) {
    for (size_t i = 0; i < sizeof error_cases / sizeof error_cases[0]; i++) {
        int ok;
        const char *got = fmt_or_err(error_cases[i].in, &ok);
        ck_assert_msg(!ok, "%s: accepted as %s", error_cases[i].in, got);
        ck_assert_msg(strcmp(got, error_cases[i].err) == 0, "%s: got '%s' want '%s'", error_cases[i].in, got,
                      error_cases[i].err);
    }
}
END_TEST

START_TEST(test_multiline) {
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"x +\n  y }", "2:5: parse error: unexpected character: '}'"},
        {"sum(\n  rate(x[5m])\n) by (job) # c\n", "sum by (job) (rate(x[5m]))"},
        {"x\n# c\n+ foo{a=\n}", "4:1: parse error: unexpected \"}\" in label matching, expected string"},
        {"rate(\nx)",
         "2:1: parse error: expected type range vector in call to function \"rate\", got instant vector"},
        {"x{a=\"b\", # comment }\n c=\"d\"}", "x{a=\"b\",c=\"d\"}"},
        {"", "1:1: parse error: no expression found in input"},
        {"\n\n", "1:1: parse error: no expression found in input"},
        {"# only a comment", "1:1: parse error: no expression found in input"},
        {"x\n\n\n)", "4:2: parse error: unexpected right parenthesis ')'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int ok;
        const char *got = fmt_or_err(cases[i].in, &ok);
        ck_assert_msg(strcmp(got, cases[i].out) == 0, "%s: got '%s' want '%s'", cases[i].in, got,
                      cases[i].out);
    }
}
END_TEST

/* Fully parenthesised structure: binary "(l op r)", unary "(-e)", paren "[e]". */
static void shape(buf *b, const promql_expr *e) {
    switch (e->kind) {
    case PROMQL_BINARY:
        buf_putc(b, '(');
        shape(b, e->u.bin.lhs);
        buf_printf(b, " %s ", promql_binop_str(e->u.bin.op));
        shape(b, e->u.bin.rhs);
        buf_putc(b, ')');
        break;
    case PROMQL_UNARY:
        buf_printf(b, "(%s", e->u.unary.op == PROMQL_OP_SUB ? "-" : "+");
        shape(b, e->u.unary.expr);
        buf_putc(b, ')');
        break;
    case PROMQL_PAREN:
        buf_putc(b, '[');
        shape(b, e->u.paren);
        buf_putc(b, ']');
        break;
    default:
        ck_assert_int_eq(promql_format(b, e), 0);
        break;
    }
}

START_TEST(test_precedence) {
    static const struct {
        const char *in, *shape;
    } cases[] = {
        {"a + b * c", "(a + (b * c))"},
        {"a * b + c", "((a * b) + c)"},
        {"a - b - c", "((a - b) - c)"},
        {"a / b / c", "((a / b) / c)"},
        {"a ^ b ^ c", "(a ^ (b ^ c))"},
        {"a * b ^ c", "(a * (b ^ c))"},
        {"a ^ b * c", "((a ^ b) * c)"},
        {"-a ^ b", "(-(a ^ b))"},
        {"-2 ^ 2", "(-(2 ^ 2))"},
        {"-a * b", "((-a) * b)"},
        {"-a + b", "((-a) + b)"},
        {"a + -b * c", "(a + ((-b) * c))"},
        {"2 ^ -1 ^ 2", "(2 ^ (-(1 ^ 2)))"},
        {"-1 * 2", "(-1 * 2)"},
        {"a % b atan2 c", "((a % b) atan2 c)"},
        {"a atan2 b ^ c", "(a atan2 (b ^ c))"},
        {"a + b == c", "((a + b) == c)"},
        {"a == b + c", "(a == (b + c))"},
        {"a > b < c", "((a > b) < c)"},
        {"a and b == c", "(a and (b == c))"},
        {"a or b and c", "(a or (b and c))"},
        {"a and b or c", "((a and b) or c)"},
        {"a unless b and c", "((a unless b) and c)"},
        {"a or b or c", "((a or b) or c)"},
        {"a or b unless c", "(a or (b unless c))"},
        {"(a + b) * c", "([(a + b)] * c)"},
        {"a * (b + c)", "(a * [(b + c)])"},
        {"a == bool b + 1", "(a == (b + 1))"},
        {"a + b offset 5m", "(a + b offset 5m)"},
        {"-a offset 5m", "(-a offset 5m)"},
        {"- - a", "(-(-a))"},
        {"- -1", "1"},
        {"+-1", "-1"},
        {"-(1)", "(-[1])"},
        {"sum(a) + b", "(sum(a) + b)"},
        {"a + on(x) group_left b * c", "(a + (b * c))"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        promql_ast *a = NULL;
        kiln_err err = {0};
        ck_assert_msg(promql_parse(cases[i].in, &a, &err) == 0, "%s: %s", cases[i].in, err.msg);
        buf b = BUF_INIT;
        shape(&b, a->root);
        ck_assert_msg(strcmp(b.data, cases[i].shape) == 0, "%s: shape %s want %s", cases[i].in, b.data,
                      cases[i].shape);
        buf_free(&b);
        promql_ast_free(a);
    }
}
END_TEST

static promql_ast *must_parse(const char *q) {
    promql_ast *a = NULL;
    kiln_err err = {0};
    ck_assert_msg(promql_parse(q, &a, &err) == 0, "%s: %s", q, err.msg);
    return a;
}

START_TEST(test_selector_fields) {
    promql_ast *a = must_parse("http_requests{job=\"api\", code!~\"5..\"}[5m:30s] @ 1700000000.5 offset -1h");
    const promql_expr *sq = a->root;
    ck_assert_int_eq(sq->kind, PROMQL_SUBQUERY);
    ck_assert_int_eq(sq->u.sq.range_ms, 300000);
    ck_assert_int_eq(sq->u.sq.step_ms, 30000);
    ck_assert_int_eq(sq->u.sq.offset_ms, -3600000);
    ck_assert_int_eq(sq->u.sq.at, PROMQL_AT_TIMESTAMP);
    ck_assert_int_eq(sq->u.sq.at_ms, 1700000000500LL);
    ck_assert_int_eq(promql_expr_type(sq), PROMQL_TYPE_MATRIX);
    const promql_expr *vs = sq->u.sq.expr;
    ck_assert_int_eq(vs->kind, PROMQL_VECTOR_SELECTOR);
    ck_assert_str_eq(vs->u.vs.name, "http_requests");
    ck_assert_uint_eq(vs->u.vs.nmatchers, 3);
    ck_assert_str_eq(vs->u.vs.matchers[0].name, "job");
    ck_assert_int_eq(vs->u.vs.matchers[0].type, MATCH_EQ);
    ck_assert_str_eq(vs->u.vs.matchers[0].value, "api");
    ck_assert_str_eq(vs->u.vs.matchers[1].name, "code");
    ck_assert_int_eq(vs->u.vs.matchers[1].type, MATCH_NRE);
    ck_assert_str_eq(vs->u.vs.matchers[1].value, "5..");
    /* The metric name becomes the last matcher, as in Prometheus. */
    ck_assert_str_eq(vs->u.vs.matchers[2].name, "__name__");
    ck_assert_str_eq(vs->u.vs.matchers[2].value, "http_requests");
    ck_assert_int_eq(vs->u.vs.offset_ms, 0);
    ck_assert_int_eq(vs->u.vs.at, PROMQL_AT_NONE);
    ck_assert_uint_eq(vs->start, 0);
    ck_assert_uint_eq(vs->end, 37);
    ck_assert_uint_eq(sq->start, 0);
    ck_assert_uint_eq(sq->end, strlen(a->query));
    promql_ast_free(a);

    a = must_parse("rate(x[1m] offset 2m @ end())");
    const promql_expr *ms = a->root->u.call.args[0];
    ck_assert_int_eq(ms->kind, PROMQL_MATRIX_SELECTOR);
    ck_assert_int_eq(ms->u.ms.range_ms, 60000);
    ck_assert_int_eq(ms->u.ms.vs->u.vs.offset_ms, 120000);
    ck_assert_int_eq(ms->u.ms.vs->u.vs.at, PROMQL_AT_END);
    ck_assert_uint_eq(ms->start, 5);
    ck_assert_uint_eq(ms->end, 28);
    promql_ast_free(a);

    /* Quoted names (Prometheus 3): the name inside braces is a plain matcher. */
    a = must_parse("{\"my.metric\", \"a.b\"=\"c\"}");
    vs = a->root;
    ck_assert_ptr_null(vs->u.vs.name);
    ck_assert_uint_eq(vs->u.vs.nmatchers, 2);
    ck_assert_str_eq(vs->u.vs.matchers[0].name, "__name__");
    ck_assert_str_eq(vs->u.vs.matchers[0].value, "my.metric");
    ck_assert_str_eq(vs->u.vs.matchers[1].name, "a.b");
    buf b = BUF_INIT;
    ck_assert_int_eq(promql_format(&b, vs), 0);
    ck_assert_str_eq(b.data, "{\"a.b\"=\"c\",__name__=\"my.metric\"}");
    buf_free(&b);
    promql_ast_free(a);

    a = must_parse("x[5m:] @ start()");
    ck_assert_int_eq(a->root->u.sq.step_ms, 0);
    ck_assert_int_eq(a->root->u.sq.at, PROMQL_AT_START);
    promql_ast_free(a);

    /* Numbers as durations (seconds), as Prometheus 3 allows. */
    a = must_parse("x[90] offset 1.5");
    ck_assert_int_eq(a->root->u.ms.range_ms, 90000);
    ck_assert_int_eq(a->root->u.ms.vs->u.vs.offset_ms, 1500);
    promql_ast_free(a);
}
END_TEST

START_TEST(test_call_aggregate_binary_fields) {
    promql_ast *a = must_parse("topk by (job, \"a.b\") (3, rate(x[5m]))");
    const promql_expr *e = a->root;
    ck_assert_int_eq(e->kind, PROMQL_AGGREGATE);
    ck_assert_int_eq(e->u.agg.op, PROMQL_AGG_TOPK);
    ck_assert_int_eq(e->u.agg.without, 0);
    ck_assert_uint_eq(e->u.agg.ngrouping, 2);
    ck_assert_str_eq(e->u.agg.grouping[0], "job");
    ck_assert_str_eq(e->u.agg.grouping[1], "a.b");
    ck_assert_int_eq(e->u.agg.param->kind, PROMQL_NUMBER);
    ck_assert(e->u.agg.param->u.number == 3);
    ck_assert_int_eq(e->u.agg.expr->kind, PROMQL_CALL);
    ck_assert_ptr_eq(e->u.agg.expr->u.call.func, promql_func_lookup("rate"));
    ck_assert_uint_eq(e->u.agg.expr->u.call.nargs, 1);
    buf b = BUF_INIT;
    ck_assert_int_eq(promql_format(&b, e), 0);
    ck_assert_str_eq(b.data, "topk by (job, \"a.b\") (3, rate(x[5m]))");
    buf_free(&b);
    promql_ast_free(a);

    a = must_parse("sum(x) without (instance)");
    ck_assert_int_eq(a->root->u.agg.without, 1);
    ck_assert_ptr_null(a->root->u.agg.param);
    promql_ast_free(a);

    a = must_parse("a > bool on(x, y) group_left(z) b");
    e = a->root;
    ck_assert_int_eq(e->u.bin.op, PROMQL_OP_GTR);
    ck_assert_int_eq(e->u.bin.return_bool, 1);
    ck_assert_int_eq(e->u.bin.has_matching, 1);
    ck_assert_int_eq(e->u.bin.matching.card, PROMQL_CARD_MANY_TO_ONE);
    ck_assert_int_eq(e->u.bin.matching.on, 1);
    ck_assert_uint_eq(e->u.bin.matching.nmatching, 2);
    ck_assert_str_eq(e->u.bin.matching.matching[1], "y");
    ck_assert_uint_eq(e->u.bin.matching.ninclude, 1);
    ck_assert_str_eq(e->u.bin.matching.include[0], "z");
    promql_ast_free(a);

    a = must_parse("a and b");
    ck_assert_int_eq(a->root->u.bin.matching.card, PROMQL_CARD_MANY_TO_MANY);
    ck_assert_int_eq(a->root->u.bin.has_matching, 1);
    promql_ast_free(a);

    a = must_parse("a * ignoring(c) group_right b");
    ck_assert_int_eq(a->root->u.bin.matching.card, PROMQL_CARD_ONE_TO_MANY);
    ck_assert_int_eq(a->root->u.bin.matching.on, 0);
    ck_assert_uint_eq(a->root->u.bin.matching.ninclude, 0);
    promql_ast_free(a);

    a = must_parse("1 + on() 2");
    ck_assert_int_eq(a->root->u.bin.has_matching, 0);
    ck_assert_int_eq(promql_expr_type(a->root), PROMQL_TYPE_SCALAR);
    promql_ast_free(a);

    a = must_parse("x * 2");
    ck_assert_int_eq(a->root->u.bin.has_matching, 0);
    ck_assert_int_eq(promql_expr_type(a->root), PROMQL_TYPE_VECTOR);
    promql_ast_free(a);
}
END_TEST

START_TEST(test_types) {
    static const struct {
        const char *in;
        promql_type t;
    } cases[] = {
        {"1", PROMQL_TYPE_SCALAR},         {"\"s\"", PROMQL_TYPE_STRING},
        {"x", PROMQL_TYPE_VECTOR},         {"x[1m]", PROMQL_TYPE_MATRIX},
        {"x[1m:]", PROMQL_TYPE_MATRIX},    {"rate(x[1m])", PROMQL_TYPE_VECTOR},
        {"time()", PROMQL_TYPE_SCALAR},    {"scalar(x)", PROMQL_TYPE_SCALAR},
        {"sum(x)", PROMQL_TYPE_VECTOR},    {"1 + 1", PROMQL_TYPE_SCALAR},
        {"1 + x", PROMQL_TYPE_VECTOR},     {"-x", PROMQL_TYPE_VECTOR},
        {"-time()", PROMQL_TYPE_SCALAR},   {"(x[5m])", PROMQL_TYPE_MATRIX},
        {"(\"a\")", PROMQL_TYPE_STRING},   {"pi()", PROMQL_TYPE_SCALAR},
        {"vector(1)", PROMQL_TYPE_VECTOR}, {"max_of(1, 2)", PROMQL_TYPE_SCALAR},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        promql_ast *a = must_parse(cases[i].in);
        ck_assert_msg(promql_expr_type(a->root) == cases[i].t, "%s: %s", cases[i].in,
                      promql_type_name(promql_expr_type(a->root)));
        promql_ast_free(a);
    }
    ck_assert_str_eq(promql_type_name(PROMQL_TYPE_SCALAR), "scalar");
    ck_assert_str_eq(promql_type_name(PROMQL_TYPE_STRING), "string");
    ck_assert_str_eq(promql_type_name(PROMQL_TYPE_VECTOR), "instant vector");
    ck_assert_str_eq(promql_type_name(PROMQL_TYPE_MATRIX), "range vector");
    ck_assert_str_eq(promql_type_name(PROMQL_TYPE_NONE), "none");
    ck_assert_str_eq(promql_type_go_name(PROMQL_TYPE_SCALAR), "scalar");
    ck_assert_str_eq(promql_type_go_name(PROMQL_TYPE_STRING), "string");
    ck_assert_str_eq(promql_type_go_name(PROMQL_TYPE_VECTOR), "vector");
    ck_assert_str_eq(promql_type_go_name(PROMQL_TYPE_MATRIX), "matrix");
    ck_assert_str_eq(promql_type_go_name(PROMQL_TYPE_NONE), "none");
}
END_TEST

START_TEST(test_numbers) {
    static const struct {
        const char *in;
        double v;
    } cases[] = {
        {"1", 1},     {"0x1f", 31},  {"0X1F", 31},
        {"017", 15},  {"09", 9},     {"1.5e3", 1500},
        {".5", 0.5},  {"5.", 5},     {"1e-3", 0.001},
        {"-2", -2},   {"- -2", 2},   {"+3", 3},
        {"1E2", 100}, {"0755", 493}, {"12345678901234567890", 12345678901234567890.0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        promql_ast *a = must_parse(cases[i].in);
        ck_assert_int_eq(a->root->kind, PROMQL_NUMBER);
        ck_assert_msg(a->root->u.number == cases[i].v, "%s: %g", cases[i].in, a->root->u.number);
        promql_ast_free(a);
    }
    const char *special[] = {"Inf", "inf", "+Inf", "-INF", "NaN", "nan", "-nan"};
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++) {
        promql_ast *a = must_parse(special[i]);
        double v = a->root->u.number;
        if (strchr(special[i], 'a') || strchr(special[i], 'A'))
            ck_assert_msg(isnan(v), "%s", special[i]);
        else
            ck_assert_msg(isinf(v) && (v < 0) == (special[i][0] == '-'), "%s", special[i]);
        promql_ast_free(a);
    }
}
END_TEST

START_TEST(test_strings) {
    static const struct {
        const char *in;
        const char *v;
        size_t len;
    } cases[] = {
        {"\"abc\"", "abc", 3},
        {"'abc'", "abc", 3},
        {"`abc`", "abc", 3},
        {"\"a\\nb\\tc\"", "a\nb\tc", 5},
        {"\"\\\\\\\"\"", "\\\"", 2},
        {"'\\''", "'", 1},
        {"\"\\x41\\101\"", "AA", 2},
        {"\"\\u00e9\"", "\xc3\xa9", 2},
        {"\"\\U0001F600\"", "\xf0\x9f\x98\x80", 4},
        {"`a\\nb`", "a\\nb", 4},
        {"\"\\x00z\"", "\xc0\x80z", 3}, /* a NUL as kiln holds it (util/strnul.c) */
        {"\"\\u0000\\000\"", "\xc0\x80\xc0\x80", 4},
        {"\"\\377\"", "\xff", 1},
        {"\"\\a\\b\\f\\r\\v\"", "\a\b\f\r\v", 5},
        {"\"\"", "", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        promql_ast *a = must_parse(cases[i].in);
        ck_assert_int_eq(a->root->kind, PROMQL_STRING);
        ck_assert_uint_eq(a->root->u.string.len, cases[i].len);
        ck_assert_msg(memcmp(a->root->u.string.s, cases[i].v, cases[i].len) == 0, "%s", cases[i].in);
        promql_ast_free(a);
    }
    /* Label values get the same decoding. */
    promql_ast *a = must_parse("x{a=\"\\u00e9\\n\", b=`\\d`}");
    ck_assert_str_eq(a->root->u.vs.matchers[0].value, "\xc3\xa9\n");
    ck_assert_str_eq(a->root->u.vs.matchers[1].value, "\\d");
    promql_ast_free(a);
}
END_TEST

START_TEST(test_function_table) {
    for (int i = 0; i < PROMQL_FN_COUNT_; i++) {
        const promql_func *f = promql_func_by_id((promql_func_id)i);
        ck_assert_ptr_nonnull(f);
        ck_assert_int_eq(f->id, i);
        ck_assert_ptr_eq(promql_func_lookup(f->name), f);
        ck_assert_int_eq(f->nargs == 0, f->arg_types == NULL);
        if (f->variadic == 0) {
            ck_assert_int_eq(f->min_args, f->nargs);
            ck_assert_int_eq(f->max_args, f->nargs);
        } else {
            ck_assert_int_eq(f->min_args, f->nargs - 1);
            ck_assert_int_eq(f->max_args, f->variadic < 0 ? -1 : f->nargs - 1 + f->variadic);
        }
    }
    ck_assert_ptr_null(promql_func_by_id(PROMQL_FN_COUNT_));
    ck_assert_ptr_null(promql_func_lookup("holt_winters"));
    ck_assert_ptr_null(promql_func_lookup("sum"));
    ck_assert_ptr_null(promql_func_lookup(""));
    static const struct {
        const char *name;
        int min, max;
        promql_type ret, first;
    } sig[] = {
        {"rate", 1, 1, PROMQL_TYPE_VECTOR, PROMQL_TYPE_MATRIX},
        {"time", 0, 0, PROMQL_TYPE_SCALAR, PROMQL_TYPE_NONE},
        {"round", 1, 2, PROMQL_TYPE_VECTOR, PROMQL_TYPE_VECTOR},
        {"label_join", 3, -1, PROMQL_TYPE_VECTOR, PROMQL_TYPE_VECTOR},
        {"label_replace", 5, 5, PROMQL_TYPE_VECTOR, PROMQL_TYPE_VECTOR},
        {"year", 0, 1, PROMQL_TYPE_VECTOR, PROMQL_TYPE_VECTOR},
        {"histogram_quantile", 2, 2, PROMQL_TYPE_VECTOR, PROMQL_TYPE_SCALAR},
        {"histogram_fraction", 3, 3, PROMQL_TYPE_VECTOR, PROMQL_TYPE_SCALAR},
        {"quantile_over_time", 2, 2, PROMQL_TYPE_VECTOR, PROMQL_TYPE_SCALAR},
        {"scalar", 1, 1, PROMQL_TYPE_SCALAR, PROMQL_TYPE_VECTOR},
        {"vector", 1, 1, PROMQL_TYPE_VECTOR, PROMQL_TYPE_SCALAR},
        {"sort_by_label", 1, -1, PROMQL_TYPE_VECTOR, PROMQL_TYPE_VECTOR},
        {"double_exponential_smoothing", 3, 3, PROMQL_TYPE_VECTOR, PROMQL_TYPE_MATRIX},
        {"absent_over_time", 1, 1, PROMQL_TYPE_VECTOR, PROMQL_TYPE_MATRIX},
        {"predict_linear", 2, 2, PROMQL_TYPE_VECTOR, PROMQL_TYPE_MATRIX},
        {"clamp", 3, 3, PROMQL_TYPE_VECTOR, PROMQL_TYPE_VECTOR},
        {"pi", 0, 0, PROMQL_TYPE_SCALAR, PROMQL_TYPE_NONE},
        {"histogram_quantiles", 3, 12, PROMQL_TYPE_VECTOR, PROMQL_TYPE_VECTOR},
    };
    for (size_t i = 0; i < sizeof sig / sizeof sig[0]; i++) {
        const promql_func *f = promql_func_lookup(sig[i].name);
        ck_assert_msg(f != NULL, "%s", sig[i].name);
        ck_assert_int_eq(f->min_args, sig[i].min);
        ck_assert_int_eq(f->max_args, sig[i].max);
        ck_assert_int_eq(f->ret, sig[i].ret);
        if (f->nargs > 0)
            ck_assert_int_eq(f->arg_types[0], sig[i].first);
    }
}
END_TEST

START_TEST(test_depth_bound) {
    /* Deep nesting and long operator chains end in an error, not a crash. */
    size_t n = 5000;
    buf q = BUF_INIT;
    for (size_t i = 0; i < n; i++)
        buf_putc(&q, '(');
    buf_putc(&q, 'x');
    for (size_t i = 0; i < n; i++)
        buf_putc(&q, ')');
    promql_ast *a = NULL;
    kiln_err err = {0};
    ck_assert_int_eq(promql_parse(q.data, &a, &err), KILN_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "expression nesting too deep"));
    buf_reset(&q);
    buf_puts(&q, "x");
    for (size_t i = 0; i < n; i++)
        buf_puts(&q, " + x");
    ck_assert_int_eq(promql_parse(q.data, &a, &err), KILN_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "expression nesting too deep"));
    buf_reset(&q);
    for (size_t i = 0; i < n; i++)
        buf_putc(&q, '-');
    buf_putc(&q, 'x');
    ck_assert_int_eq(promql_parse(q.data, &a, &err), KILN_EINVAL);
    buf_reset(&q);
    buf_puts(&q, "x");
    for (size_t i = 0; i < n; i++)
        buf_puts(&q, "[1m:]");
    ck_assert_int_eq(promql_parse(q.data, &a, &err), KILN_EINVAL);
    /* Well below the bound is fine. */
    buf_reset(&q);
    buf_puts(&q, "x");
    for (size_t i = 0; i < 100; i++)
        buf_puts(&q, " + x");
    ck_assert_int_eq(promql_parse(q.data, &a, &err), 0);
    promql_ast_free(a);
    buf_free(&q);
}
END_TEST

START_TEST(test_bad_regex) {
    promql_ast *a = NULL;
    kiln_err err = {0};
    ck_assert_int_eq(promql_parse("x{a=~\"(\"}", &a, &err), KILN_EINVAL);
    ck_assert_ptr_null(a);
    ck_assert_msg(strncmp(err.msg, "1:3: parse error: ", 18) == 0, "%s", err.msg);
    /* Matchers already compiled before the bad one are released (ASan). */
    ck_assert_int_eq(promql_parse("x{b=~\"a.*\", c=\"d\", a=~\"(\"}", &a, &err), KILN_EINVAL);
    ck_assert_int_eq(promql_parse("x{b=~\"a.*\"} + y{c=~\"x\"} + z{", &a, &err), KILN_EINVAL);
}
END_TEST

Suite *make_suite(void) {
    Suite *s = suite_create("parse");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, test_format_table);
    tcase_add_test(tc, test_prettify_table);
    tcase_add_test(tc, test_error_table);
    tcase_add_test(tc, test_multiline);
    tcase_add_test(tc, test_precedence);
    tcase_add_test(tc, test_selector_fields);
    tcase_add_test(tc, test_call_aggregate_binary_fields);
    tcase_add_test(tc, test_types);
    tcase_add_test(tc, test_numbers);
    tcase_add_test(tc, test_strings);
    tcase_add_test(tc, test_function_table);
    tcase_add_test(tc, test_depth_bound);
    tcase_add_test(tc, test_bad_regex);
    suite_add_tcase(s, tc);
    return s;
}
