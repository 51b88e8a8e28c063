/*
 * test_template.c - the alert template engine (rules/template.c, tmplfuncs.c).
 *
 * The big table holds templates and what Prometheus 2.42 (Debian's
 * prometheus 2.42.0+ds) rendered for them: each was an annotation of an alert
 * rule run by `promtool test rules` on the data below (alert value 1234.5678,
 * series m{job="api",instance="host.example.com:9090"}, up{instance="a:1"} 0,
 * up{instance="b:1"} 1, external labels cluster="eu-1", env="prod", external
 * URL http://prom.example.com:9090/prefix), the "got" annotations copied as
 * they came.  The few rows that are not Prometheus' text say why.  A row
 * whose text starts "PARSE: " is a load-time error: Go reports only the line
 * ("template: __alert_A:1: msg"); kiln adds the column, checked in
 * test_parse_positions.  The value table renders one template for alert
 * values Prometheus formats in different ways (NaN, infinities, exponents).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules/template.h"

#define KILN_TEST_MAIN
#include "testutil.h"

static tmpl_label up_a[] = {{"__name__", "up"}, {"job", "api"}, {"instance", "a:1"}};
static tmpl_label up_b[] = {{"__name__", "up"}, {"job", "api"}, {"instance", "b:1"}};
static tmpl_label alert_labels[] = {{"job", "api"}, {"__name__", "m"}, {"instance", "host.example.com:9090"}};
static tmpl_label ext_labels[] = {{"env", "prod"}, {"cluster", "eu-1"}};

static int nqueries, nfrees;

/* A fake query engine: "up" is two series, a selector naming b:1 one. */
static int fake_query(void *data, const char *expr, int64_t ts_ms, tmpl_sample **out, size_t *n,
                      kiln_err *err) {
    (void)data;
    ck_assert_int_eq(ts_ms, 1700000000000);
    if (strcmp(expr, "bad(") == 0)
        return kiln_err_set(err, KILN_EINVAL, "1:5: parse error: unclosed left parenthesis");
    tmpl_sample *v = calloc(2, sizeof *v);
    ck_assert_ptr_nonnull(v);
    *out = v;
    *n = 0;
    if (strcmp(expr, "up") == 0) {
        v[0] = (tmpl_sample){up_a, 3, 0};
        v[1] = (tmpl_sample){up_b, 3, 1};
        *n = 2;
    } else if (strstr(expr, "b:1")) {
        v[0] = (tmpl_sample){up_b, 3, 1};
        *n = 1;
    }
    nqueries++;
    return 0;
}

static void fake_free(void *data, tmpl_sample *v, size_t n) {
    (void)data;
    (void)n;
    nfrees++;
    free(v);
}

static tmpl_data test_data(double value) {
    tmpl_data d = {alert_labels,  3,          ext_labels, 2,   "http://prom.example.com:9090/prefix", value,
                   1700000000000, fake_query, fake_free,  NULL};
    return d;
}

/* Parses and expands; a parse error comes back as "PARSE: " and the message. */
static char *render(const char *text, const tmpl_data *d) {
    tmpl *t = NULL;
    kiln_err err = {0};
    buf out = BUF_INIT;
    int rc = tmpl_parse(text, "__alert_A", &t, &err);
    if (rc < 0) {
        ck_assert_int_eq(rc, KILN_EINVAL);
        ck_assert_ptr_null(t);
        buf_printf(&out, "PARSE: %s", err.msg);
    } else {
        ck_assert_int_eq(tmpl_expand(t, d, &out), 0);
        tmpl_free(t);
    }
    ck_assert_int_eq(buf_error(&out), 0);
    buf_putc(&out, 0);
    return buf_steal(&out);
}

static void expect_render(const char *text, const tmpl_data *d, const char *want) {
    char *got = render(text, d);
    ck_assert_msg(strcmp(got, want) == 0, "template %s:\n got: %s\nwant: %s", text, got, want);
    free(got);
}

static const struct {
    const char *in, *want;
} cases[] = {
    {"{{ $value }}", "1234.5678"},
    {"{{ $labels.job }}/{{ .Labels.instance }}", "api/host.example.com:9090"},
    {"{{ $externalLabels.cluster }} {{ .ExternalLabels.env }}", "eu-1 prod"},
    {"{{ $externalURL }}", "http://prom.example.com:9090/prefix"},
    /* not Prometheus' text: promtool passes no external URL (nil); the server passes --web.external-url */
    {"{{ externalURL }}|{{ pathPrefix }}", "http://prom.example.com:9090/prefix|/prefix"},
    {"{{ humanize 0 }}|{{ humanize 0.0001234 }}|{{ humanize 1e30 }}|{{ humanize -1500 }}|{{ humanize "
     "999.99999 }}|{{ humanize \"1e3\" }}",
     "0|123.4u|1e+06Y|-1.5k|1000|1k"},
    {"{{ humanize1024 1 }}|{{ humanize1024 1024 }}|{{ humanize1024 -2048.5 }}|{{ humanize1024 0.5 }}",
     "1|1ki|-2ki|0.5"},
    {"{{ humanizeDuration 0 }}|{{ humanizeDuration 0.0015 }}|{{ humanizeDuration 59.99 }}|{{ "
     "humanizeDuration 3600 }}|{{ humanizeDuration -61 }}|{{ humanizeDuration 1.5 }}",
     "0s|1.5ms|59.99s|1h 0m 0s|-1m 1s|1.5s"},
    {"{{ humanizePercentage 0 }}|{{ humanizePercentage 1 }}|{{ humanizePercentage 0.000012345 }}",
     "0%|100%|0.001234%"},
    {"{{ humanizeTimestamp 0 }}|{{ humanizeTimestamp 1435065584 }}|{{ humanizeTimestamp 1.5 }}|{{ "
     "humanizeTimestamp -1.5 }}",
     "1970-01-01 00:00:00 +0000 UTC|2015-06-23 13:19:44 +0000 UTC|1970-01-01 00:00:01.5 +0000 UTC|1969-12-31 "
     "23:59:58.5 +0000 UTC"},
    {"{{ printf \"%.2f %d %s %v %q %x %5.1f|%-4d|%03d|%e|%g\" 3.14159 42 \"s\" 2.5 \"q\" 255 2.25 7 7 1234.5 "
     "0.00001 }}",
     "3.14 42 s 2.5 \"q\" ff   2.2|7   |007|1.234500e+03|1e-05"},
    {"{{ printf \"%v %v %v %s\" $value $labels.job 1e21 1.0 }}", "1234.5678 api 1e+21 %!s(float64=1)"},
    {"{{ printf \"%d\" 1.5 }}|{{ printf \"%s\" 3 }}|{{ printf \"%d %d\" 1 }}|{{ printf \"%d\" 1 2 }}|{{ "
     "printf \"%z\" 1 }}",
     "%!d(float64=1.5)|%!s(int=3)|1 %!d(MISSING)|1%!(EXTRA int=2)|%!z(int=1)"},
    {"{{ toUpper \"abc\" }} {{ toLower \"ABC\" }} {{ title \"hello wORLD foo-bar x_y 1a\" }}",
     "ABC abc Hello WORLD Foo-Bar X_y 1a"},
    {"{{ reReplaceAll \"(a+)b\" \"${1}X$1\" \"aab ab c\" }}|{{ reReplaceAll \":.*\" \"\" $labels.instance }}",
     "aaXaa aXa c|host.example.com"},
    {"{{ if match \"^host\" $labels.instance }}yes{{ else }}no{{ end }}", "yes"},
    {"{{ if gt $value 1000.0 }}big{{ else if gt $value 10.0 }}mid{{ else }}small{{ end }}", "big"},
    {"{{ if eq $labels.job \"api\" }}A{{ end }}{{ if ne 1 2 }}B{{ end }}{{ if lt 1 2 }}C{{ end }}{{ if le 2 "
     "2 }}D{{ end }}{{ if ge 3 2 }}E{{ end }}",
     "ABCDE"},
    {"{{ and 1 0 }}|{{ and 1 2 }}|{{ or 0 \"\" }}|{{ or 0 3 }}|{{ not 0 }}|{{ not \"x\" }}|{{ eq 1 2 1 }}",
     "0|2||3|true|false|true"},
    {"{{ len \"abcd\" }}|{{ len $labels }}|{{ index $labels \"job\" }}|{{ index $labels \"nope\" }}|",
     "4|3|api||"},
    {"{{ range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end }}",
     "__name__=m;instance=host.example.com:9090;job=api;"},
    {"{{ range $labels }}{{ . }},{{ end }}", "m,host.example.com:9090,api,"},
    /* not Prometheus' text: promtool returned b:1 first in this run; a vector's order is not fixed */
    {"{{ range query \"up\" }}{{ .Labels.instance }}:{{ .Value }} {{ end }}", "a:1:0 b:1:1 "},
    {"{{ range sortByLabel \"instance\" (query \"up\") }}{{ label \"instance\" . }}={{ value . }} {{ end }}",
     "a:1=0 b:1=1 "},
    {"{{ with query \"up{instance='b:1'}\" }}{{ . | first | value | humanize }}{{ end }}", "1"},
    {"{{ with query \"nothing\" }}has{{ else }}empty{{ end }}", "empty"},
    {"{{ query \"up\" | len }}", "2"},
    {"{{ with $x := 5 }}{{ $x }}{{ end }} {{ $y := 1 }}{{ $y = 2 }}{{ $y }}", "5 2"},
    {"a  {{- \" b \" -}}  c {{/* comment */}} d {{- /* c2 */ -}} e", "a b c  de"},
    {"{{ args 1 \"x\" }}", "map[arg0:1 arg1:x]"},
    {"{{ with args 1 \"x\" }}{{ .arg0 }}-{{ .arg1 }}{{ end }}", "1-x"},
    {"{{ safeHtml \"<b>\" }}|{{ \"<b>&'\" }}|{{ html \"<b>&'\\\"\" }}|{{ urlquery \"a b&c/d\" }}",
     "<b>|<b>&'|&lt;b&gt;&amp;&#39;&#34;|a+b%26c%2Fd"},
    {"{{ stripPort \"host:9090\" }}|{{ stripPort \"host\" }}|{{ stripPort \"[::1]:80\" }}|{{ stripPort "
     "\"a:b:c\" }}",
     "host|host|::1|a:b:c"},
    {"{{ stripDomain \"foo.example.com\" }}|{{ stripDomain \"foo.example.com:9090\" }}|{{ stripDomain "
     "\"10.0.0.1:80\" }}|{{ stripDomain \"[::1]:80\" }}",
     "foo|foo:9090|10.0.0.1:80|[::1]:80"},
    {"{{ tableLink \"up{job=\\\"a b\\\"}\" }}|{{ graphLink \"rate(x[5m])\" }}",
     "/graph\?g0.expr=up%7Bjob%3D%22a+b%22%7D&g0.tab=1|/graph\?g0.expr=rate%28x%5B5m%5D%29&g0.tab=0"},
    {"{{ parseDuration \"1h30m\" }}|{{ parseDuration \"1.5s\" }}",
     "<error expanding template: error executing template __alert_A: template: __alert_A:1:143: executing "
     "\"__alert_A\" at <parseDuration \"1.5s\">: error calling parseDuration: not a valid duration string: "
     "\"1.5s\">"},
    {"{{ parseDuration \"foo\" }}",
     "<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "
     "\"__alert_A\" at <parseDuration \"foo\">: error calling parseDuration: not a valid duration string: "
     "\"foo\">"},
    {"{{ toTime 1435065584 }}", "2015-06-23 13:19:44 +0000 UTC"},
    {"{{ strvalue (first (query \"up\")) }}|", "|"},
    {"{{ (first (query \"up\")).Labels.job }}", "api"},
    {"{{ index $labels \"job\" | toUpper | printf \"%s!\" }}", "API!"},
    {"{{ $value | printf \"%.1f\" }}|{{ $value | humanize1024 }}", "1234.6|1.206ki"},
    {"{{ 1 }} {{ 1.0 }} {{ -2 }} {{ 0x10 }} {{ 1e3 }} {{ 'a' }} {{ true }} {{ nil | print }} {{ `raw\\n` }} "
     "{{ \"esc\\tx\" }}",
     "<error expanding template: error executing template __alert_A: template: __alert_A:1:184: executing "
     "\"__alert_A\" at <nil>: nil is not a command>"},
    {"{{ print 1 2 \"a\" \"b\" 3 }}|{{ println 1 \"a\" }}|{{ print }}", "1 2ab3|1 a\n|"},
    {"{{ .Value }}{{ .Nope }}",
     "<error expanding template: error executing template __alert_A: template: __alert_A:1:127: executing "
     "\"__alert_A\" at <.Nope>: can't evaluate field Nope in type struct { Labels map[string]string; "
     "ExternalLabels map[string]string; ExternalURL string; Value float64 }>"},
    {"{{ $labels.nope }}|{{ .Labels.nope }}", "|"},
    {"{{ humanize $labels.job }}",
     "<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "
     "\"__alert_A\" at <humanize $labels.job>: error calling humanize: strconv.ParseFloat: parsing \"api\": "
     "invalid syntax>"},
    {"{{ index $labels 1 }}",
     "<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "
     "\"__alert_A\" at <index $labels 1>: error calling index: value has type int; should be string>"},
    {"{{ len 3 }}",
     "<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "
     "\"__alert_A\" at <len 3>: error calling len: len of type int>"},
    /* not Prometheus' text: define/template/block are not supported */
    {"{{ template \"x\" }}", "PARSE: 1:4: {{template}} is not supported in alert templates"},
    /* not Prometheus' text: define/template/block are not supported */
    {"{{ define \"t\" }}T{{ end }}{{ template \"t\" }}",
     "PARSE: 1:4: {{define}} is not supported in alert templates"},
    /* not Prometheus' text: define/template/block are not supported */
    {"{{ block \"b\" . }}B{{ end }}", "PARSE: 1:4: {{block}} is not supported in alert templates"},
    /* Go: template: __alert_A:1: {{break}} outside {{range}} */
    {"{{ break }}", "PARSE: 1:\?: {{break}} outside {{range}}"},
    {"{{ range $i, $s := query \"up\" }}{{ $i }}{{ if eq $i 0 }}{{ continue }}{{ end }}x{{ end }}", "01x"},
    {"{{ 1 | printf \"%d-%d\" 2 }}", "2-1"},
    {"{{ match \"(\" \"x\" }}", "<error expanding template: error executing template __alert_A: template: "
                                "__alert_A:1:115: executing \"__alert_A\" at <match \"(\" \"x\">: error "
                                "calling match: error parsing regexp: missing closing ): `(`>"},
    {"{{ reReplaceAll \"(\" \"\" \"x\" }}",
     "<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "
     "\"__alert_A\" at <reReplaceAll \"(\" \"\" \"x\">: error calling reReplaceAll: regexp: Compile(`(`): "
     "error parsing regexp: missing closing ): `(`>"},
    {"{{ first 1 }}",
     "<error expanding template: error executing template __alert_A: template: __alert_A:1:121: executing "
     "\"__alert_A\" at <1>: can't handle 1 for arg of type template.queryResult>"},
    {"{{ label \"job\" 3 }}",
     "<error expanding template: error executing template __alert_A: template: __alert_A:1:127: executing "
     "\"__alert_A\" at <3>: can't handle 3 for arg of type *template.sample>"},
    {"{{ if $labels.nope }}set{{ else }}unset{{ end }}", "unset"},
    {"{{ eq \"a\" 1 }}",
     "<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "
     "\"__alert_A\" at <eq \"a\" 1>: error calling eq: incompatible types for comparison>"},
    {"{{ lt \"a\" \"b\" }}{{ lt 1.5 2 }}{{ eq 1.0 1 }}",
     "<error expanding template: error executing template __alert_A: template: __alert_A:1:131: executing "
     "\"__alert_A\" at <lt 1.5 2>: error calling lt: incompatible types for comparison>"},
    {"{{ not }}", "<error expanding template: error executing template __alert_A: template: __alert_A:1:115: "
                  "executing \"__alert_A\" at <not>: wrong number of args for not: want 1 got 0>"},
    /* Go: template: __alert_A:1: undefined variable "$x" */
    {"{{ $x }}", "PARSE: 1:\?: undefined variable \"$x\""},
    /* Go: template: __alert_A:1: missing value for if */
    {"{{ if }}{{ end }}", "PARSE: 1:\?: missing value for if"},
    /* Go: template: __alert_A:1: unexpected {{end}} */
    {"{{ end }}", "PARSE: 1:\?: unexpected {{end}}"},
    /* Go: template: __alert_A:1: unexpected EOF */
    {"{{ if 1 }}", "PARSE: 1:\?: unexpected EOF"},
    /* Go: template: __alert_A:1: unterminated quoted string */
    {"{{ \"unterminated }}", "PARSE: 1:\?: unterminated quoted string"},
    {"{{ printf \"%6.2f|%-8s|%+d|%x|%X|%o|%c|%U|%t|%5s|%.3s|%%\" 3.14159 \"ab\" 5 \"hi\" 255 8 65 65 true "
     "\"ab\" \"abcdef\" }}",
     "  3.14|ab      |+5|6869|FF|10|A|U+0041|true|   ab|abc|%"},
    {"{{ printf \"%v|%v|%v|%v\" 1e-05 123456789.0 1e20 0.1 }}", "1e-05|1.23456789e+08|1e+20|0.1"},
    {"{{ printf \"%s\" $labels }}", "map[__name__:m instance:host.example.com:9090 job:api]"},
    {"{{ humanize 1e-30 }}|{{ humanize 1e300 }}|{{ humanize1024 1e30 }}", "1e-06y|1e+276Y|8.272e+05Yi"},
    {"{{ humanizeDuration 1e-30 }}|{{ humanizeDuration 86400.7 }}|{{ humanizeDuration \"nan\" }}|{{ humanize "
     "\"Inf\" }}|{{ humanize \"-inf\" }}",
     "1e-06ys|1d 0h 0m 0s|NaN|+Inf|-Inf"},
    {"{{ humanizeTimestamp 1e20 }}",
     "<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "
     "\"__alert_A\" at <humanizeTimestamp 1e20>: error calling humanizeTimestamp: 1e+20 cannot be "
     "represented as a nanoseconds timestamp since it overflows int64>"},
    {"{{ humanizeTimestamp \"NaN\" }}", "NaN"},
    {"{{ 1 2 }}", "<error expanding template: error executing template __alert_A: template: __alert_A:1:115: "
                  "executing \"__alert_A\" at <1>: can't give argument to non-function 1>"},
    {"{{ .Labels.job.x }}",
     "<error expanding template: error executing template __alert_A: template: __alert_A:1:122: executing "
     "\"__alert_A\" at <.Labels.job.x>: can't evaluate field x in type string>"},
    {"{{ $value.x }}",
     "<error expanding template: error executing template __alert_A: template: __alert_A:1:121: executing "
     "\"__alert_A\" at <$value.x>: can't evaluate field x in type float64>"},
    {"{{ title \"élan ÉCOLE\" }}|{{ toUpper \"straße\" }}", "Élan ÉCOLE|STRAßE"},
    {"{{ printf \"%v %v %v %v %v %v\" 0.1 1e6 1e-7 123456.0 1234567.0 -0.0 }}",
     "0.1 1e+06 1e-07 123456 1.234567e+06 -0"},
    {"{{ printf \"%.0f %.1f %.3f %8.3f %-8.2f| %+.2f %08.3f\" 2.5 0.05 1.0005 3.14159 2.5 2.5 -3.5 }}",
     "2 0.1 1.000    3.142 2.50    | +2.50 -003.500"},
    {"{{ printf \"%e %.2e %E %g %.3g %G\" 123456.789 0.000123 1e100 1e-7 1234567.0 1e-10 }}",
     "1.234568e+05 1.23e-04 1.000000E+100 1e-07 1.23e+06 1E-10"},
    {"{{ printf \"%5d|%-5d|%05d|%x|%X|%#x|%o|%b|%+d\" 42 42 -42 -255 255 255 8 5 0 }}",
     "   42|42   |-0042|-ff|FF|0xff|10|101|+0"},
    {"{{ printf \"%s|%10s|%-10s|%q|%x|%.2s\" \"abc\" \"abc\" \"abc\" \"a\\\"b\\n\" \"hi\" \"été\" }}",
     "abc|       abc|abc       |\"a\\\"b\\n\"|6869|ét"},
    {"{{ printf \"%v %d %s\" true 1 }}{{ printf \"%t\" 1 }}", "true 1 %!s(MISSING)%!t(int=1)"},
    {"{{ printf \"%f %v %.2f\" $value $value $value }}", "1234.567800 1234.5678 1234.57"},
    {"{{ humanize 1 }}|{{ humanize 12345 }}|{{ humanize 123456789 }}|{{ humanize 0.1 }}|{{ humanize 0.001 "
     "}}|{{ humanize -0.0005 }}|{{ humanize 1.23456789e-9 }}",
     "1|12.35k|123.5M|100m|1m|-500u|1.235n"},
    {"{{ humanize1024 1023 }}|{{ humanize1024 1048576 }}|{{ humanize1024 1.5e12 }}|{{ humanize1024 -1 }}|{{ "
     "humanize1024 \"4096\" }}",
     "1023|1Mi|1.364Ti|-1|4ki"},
    {"{{ humanizeDuration 0.000001 }}|{{ humanizeDuration 60 }}|{{ humanizeDuration 3599.9 }}|{{ "
     "humanizeDuration 86399 }}|{{ humanizeDuration 1e10 }}|{{ humanizeDuration -0.5 }}",
     "1us|1m 0s|59m 59s|23h 59m 59s|115740d 17h 46m 40s|-500ms"},
    {"{{ humanizePercentage 0.5 }}|{{ humanizePercentage 1.23456 }}|{{ humanizePercentage \"0.25\" }}|{{ "
     "humanizePercentage -0.0001 }}",
     "50%|123.5%|25%|-0.01%"},
    {"{{ humanizeTimestamp 1700000000.999 }}|{{ humanizeTimestamp 1700000000.0001 }}|{{ humanizeTimestamp "
     "\"1e9\" }}|{{ humanizeTimestamp 253402300800 }}",
     "<error expanding template: error executing template __alert_A: template: __alert_A:1:224: executing "
     "\"__alert_A\" at <humanizeTimestamp 253402300800>: error calling humanizeTimestamp: 2.534023008e+11 "
     "cannot be represented as a nanoseconds timestamp since it overflows int64>"},
    {"line1\n  {{- $labels.job -}}  \nline3 {{ if true -}}\n  yes\n{{- end }}", "line1apiline3 yes"},
    {"{{ range $i, $s := query \"up\" }}{{ if $i }}, {{ end }}{{ $i }}:{{ $s.Labels.instance }}{{ end }}",
     "0:a:1, 1:b:1"},
    {"{{ range query \"up\" }}{{ if eq .Value 0.0 }}{{ break }}{{ end }}{{ .Labels.instance }}{{ end }}|{{ "
     "range query \"up\" }}{{ if eq .Value 1.0 }}{{ continue }}{{ end }}{{ .Labels.instance }}{{ end }}",
     "|a:1"},
    {"{{ range query \"nothing\" }}x{{ else }}none{{ end }}", "none"},
    {"{{ range $k, $v := $externalLabels }}{{ $k }}={{ $v }} ({{ $.Value }}) {{ end }}",
     "cluster=eu-1 (1234.5678) env=prod (1234.5678) "},
    {"{{ with $labels.job }}job={{ . }}{{ else }}nojob{{ end }} {{ with $labels.nope }}x{{ else }}none{{ end "
     "}}",
     "job=api none"},
    {"{{ if and (gt $value 1.0) (eq $labels.job \"api\") }}both{{ end }} {{ if or (lt $value 1.0) (ne "
     "$labels.job \"api\") }}either{{ else }}neither{{ end }}",
     "both neither"},
    {"{{ $a := 1 }}{{ if true }}{{ $a = 2 }}{{ $b := 3 }}{{ $b }}{{ end }}{{ $a }}", "32"},
    {"{{ (query \"up\" | first).Labels.instance }}|{{ (index (query \"up\") 1).Value }}", "a:1|1"},
    {"{{ index (query \"up\") 5 }}",
     "<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "
     "\"__alert_A\" at <index (query \"up\") 5>: error calling index: index out of range: 5>"},
    {"{{ printf \"%s\" (index (query \"up\") 0).Labels }}", "map[__name__:up instance:a:1 job:api]"},
    {"{{ len (query \"up\") }}|{{ len $externalLabels }}|{{ len \"é\" }}", "2|2|2"},
    {"{{ \"x\" | printf \"%s-%s\" \"y\" }}|{{ 3 | printf \"%d\" }}|{{ $value | humanize | printf \"%s!\" }}",
     "y-x|3|1.235k!"},
    {"{{ toUpper $labels.instance | reReplaceAll \"\\\\.\" \"_\" }}", "HOST_EXAMPLE_COM:9090"},
    {"{{ reReplaceAll \"a*\" \"-\" \"baaac\" }}|{{ reReplaceAll \"(\?P<first>\\\\w+) (\?P<second>\\\\w+)\" "
     "\"$second $first\" \"hello world\" }}|{{ reReplaceAll \"x\" \"$$\" \"axb\" }}|{{ reReplaceAll \"(x)\" "
     "\"${1\" \"axb\" }}",
     "-b-c-|world hello|a$b|a${1b"},
    {"{{ match \"^api$\" $labels.job }}|{{ match \"API\" $labels.job }}|{{ match \"(\?i)API\" $labels.job }}",
     "true|false|true"},
    {"{{ title \"foo bar\" }}|{{ toUpper \"éè\" }}|{{ toLower \"ÉÈABC\" }}", "Foo Bar|ÉÈ|éèabc"},
    {"{{ stripPort \"[::1]\" }}|{{ stripPort \":80\" }}|{{ stripPort \"host:\" }}|{{ stripDomain "
     "\"localhost\" }}|{{ stripDomain \"a.b.c:\" }}|{{ stripDomain \"::1\" }}",
     "[::1]||host|localhost|a|::1"},
    {"{{ graphLink \"sum by (job) (rate(http_requests_total{code=~\\\"5..\\\"}[5m])) > 0.1\" }}",
     "/graph\?g0.expr=sum+by+%28job%29+%28rate%28http_requests_total%7Bcode%3D~%225..%22%7D%5B5m%5D%29%29+%"
     "3E+0.1&g0.tab=0"},
    {"{{ args }}|{{ args 1 2 3 4 5 6 7 8 9 10 11 }}",
     "map[]|map[arg0:1 arg1:2 arg10:11 arg2:3 arg3:4 arg4:5 arg5:6 arg6:7 arg7:8 arg8:9 arg9:10]"},
    {"{{ print nil }}|{{ print \"a\" 1 2 \"b\" }}|{{ print 1.5 true }}", "<nil>|a1 2b|1.5 true"},
    {"{{ html \"a<b\" 1 }}|{{ urlquery \"é x\" }}", "a&lt;b1|%C3%A9+x"},
    {"{{ eq $labels.job \"x\" \"y\" \"api\" }}|{{ ne \"a\" \"b\" }}|{{ eq true true }}|{{ lt 1 2 }}|{{ gt "
     "\"b\" \"a\" }}|{{ le 2.0 2.0 }}|{{ ge 1 2 }}",
     "true|true|true|true|true|true|false"},
    {"{{ eq }}", "<error expanding template: error executing template __alert_A: template: __alert_A:1:115: "
                 "executing \"__alert_A\" at <eq>: wrong number of args for eq: want at least 1 got 0>"},
    {"{{ lt true false }}",
     "<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "
     "\"__alert_A\" at <lt true false>: error calling lt: invalid type for comparison>"},
    {"{{ eq $labels $labels }}",
     "<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "
     "\"__alert_A\" at <eq $labels $labels>: error calling eq: non-comparable type map[__name__:m "
     "instance:host.example.com:9090 job:api]: map[string]string>"},
    {"{{ not 1 2 }}",
     "<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "
     "\"__alert_A\" at <not>: wrong number of args for not: want 1 got 2>"},
    {"{{ humanize true }}",
     "<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "
     "\"__alert_A\" at <humanize true>: error calling humanize: can't convert bool to float>"},
    {"{{ humanize \"\" }}", "<error expanding template: error executing template __alert_A: template: "
                            "__alert_A:1:115: executing \"__alert_A\" at <humanize \"\">: error calling "
                            "humanize: strconv.ParseFloat: parsing \"\": invalid syntax>"},
    {"{{ humanize \"1e400\" }}",
     "<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "
     "\"__alert_A\" at <humanize \"1e400\">: error calling humanize: strconv.ParseFloat: parsing \"1e400\": "
     "value out of range>"},
    {"{{ humanize \" 1\" }}", "<error expanding template: error executing template __alert_A: template: "
                              "__alert_A:1:115: executing \"__alert_A\" at <humanize \" 1\">: error calling "
                              "humanize: strconv.ParseFloat: parsing \" 1\": invalid syntax>"},
    {"{{ toUpper 1 }}", "<error expanding template: error executing template __alert_A: template: "
                        "__alert_A:1:123: executing \"__alert_A\" at <1>: expected string; found 1>"},
    {"{{ toUpper $value }}",
     "<error expanding template: error executing template __alert_A: template: __alert_A:1:123: executing "
     "\"__alert_A\" at <$value>: wrong type for value; expected string; got float64>"},
    {"{{ first \"x\" }}",
     "<error expanding template: error executing template __alert_A: template: __alert_A:1:121: executing "
     "\"__alert_A\" at <\"x\">: can't handle \"x\" for arg of type template.queryResult>"},
    {"{{ query \"up\" | first | label \"job\" }}|{{ query \"up\" | sortByLabel \"instance\" | first | value "
     "}}",
     "api|0"},
    {"{{ value nil }}|{{ label \"x\" nil }}|{{ strvalue nil }}",
     "<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "
     "\"__alert_A\" at <value nil>: error calling value: runtime error: invalid memory address or nil "
     "pointer dereference>"},
    {"{{ nil }}", "<error expanding template: error executing template __alert_A: template: __alert_A:1:115: "
                  "executing \"__alert_A\" at <nil>: nil is not a command>"},
    {"{{ . | printf \"%v\" }}", "{map[__name__:m instance:host.example.com:9090 job:api] map[cluster:eu-1 "
                                "env:prod] http://prom.example.com:9090/prefix 1234.5678}"},
    {"{{ .Value.X }}",
     "<error expanding template: error executing template __alert_A: template: __alert_A:1:121: executing "
     "\"__alert_A\" at <.Value.X>: can't evaluate field X in type float64>"},
    {"{{ $labels.job | len }}", "3"},
    {"{{ len nil }}",
     "<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "
     "\"__alert_A\" at <len nil>: error calling len: reflect: call of reflect.Value.Type on zero Value>"},
    {"{{ index \"abc\" 1 }}|{{ index $labels \"job\" }}", "98|api"},
    {"{{ index 1 1 }}",
     "<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "
     "\"__alert_A\" at <index 1 1>: error calling index: can't index item of type int>"},
    {"{{ index (query \"up\") \"x\" }}",
     "<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "
     "\"__alert_A\" at <index (query \"up\") \"x\">: error calling index: cannot index slice/array with type "
     "string>"},
    {"{{ toTime \"NaN\" }}",
     "<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "
     "\"__alert_A\" at <toTime \"NaN\">: error calling toTime: value is NaN or Inf>"},
    {"{{ parseDuration \"\" }}",
     "<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "
     "\"__alert_A\" at <parseDuration \"\">: error calling parseDuration: empty duration string>"},
    {"{{ parseDuration \"1d2h\" }}|{{ parseDuration \"0\" }}|{{ parseDuration \"500ms\" }}|{{ parseDuration "
     "\"1y\" }}",
     "93600|0|0.5|3.1536e+07"},
    /* not Prometheus' text: the message is the query engine's; the fake engine here gives PromQL's */
    {"{{ query \"bad(\" }}",
     "<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "
     "\"__alert_A\" at <query \"bad(\">: error calling query: 1:5: parse error: unclosed left parenthesis>"},
    {"a\n{{ humanize \"x\" }}", "<error expanding template: error executing template __alert_A: template: "
                                "__alert_A:2:3: executing \"__alert_A\" at <humanize \"x\">: error calling "
                                "humanize: strconv.ParseFloat: parsing \"x\": invalid syntax>"},
    {"a\nb {{ if true }}\n  {{ $value.Y }}{{ end }}",
     "<error expanding template: error executing template __alert_A: template: __alert_A:3:11: executing "
     "\"__alert_A\" at <$value.Y>: can't evaluate field Y in type float64>"},
    {"{{ range 5 }}x{{ end }}",
     "<error expanding template: error executing template __alert_A: template: __alert_A:1:121: executing "
     "\"__alert_A\" at <5>: range can't iterate over 5>"},
    {"{{ range $labels.job }}x{{ end }}",
     "<error expanding template: error executing template __alert_A: template: __alert_A:1:128: executing "
     "\"__alert_A\" at <$labels.job>: range can't iterate over api>"},
    {"{{ range $i, $e := args \"a\" \"b\" }}{{ $i }}={{ $e }};{{ end }}", "arg0=a;arg1=b;"},
    {"{{ with args 1 }}{{ .arg0 }}{{ .arg1 }}|{{ .nope }}{{ end }}", "1<no value>|<no value>"},
    {"{{ if 0 }}a{{ else if \"\" }}b{{ else if 0.0 }}c{{ else }}d{{ end }}", "d"},
    {"{{ 'x' }} {{ '\\n' }} {{ 0x1F }} {{ 1_000 }}", "120 10 31 1000"},
    {"{{ -1.5 }} {{ +2 }} {{ .5 }} {{ 1. }}", "-1.5 2 0.5 1"},
    {"{{ \"\\u00e9\\x41\\101\" }}", "éAA"},
    {"{{/* a comment */}}x{{- /* trimmed */ -}}  y", "xy"},
    /* Go: template: __alert_A:1: comment ends before closing delimiter */
    {"{{ $value }}{{/*c*/ }}", "PARSE: 1:\?: comment ends before closing delimiter"},
    /* Go: template: __alert_A:1: unexpected "}" in operand */
    {"{{ $labels.job }", "PARSE: 1:\?: unexpected \"}\" in operand"},
    {"{{ $labels.job }}}}", "api}}"},
    /* Go: template: __alert_A:1: unclosed left paren */
    {"{{ ( }}", "PARSE: 1:\?: unclosed left paren"},
    /* Go: template: __alert_A:1: unexpected ")" in command */
    {"{{ ) }}", "PARSE: 1:\?: unexpected \")\" in command"},
    /* Go: template: __alert_A:1: unexpected "|" in command */
    {"{{ | }}", "PARSE: 1:\?: unexpected \"|\" in command"},
    {"{{ printf \"%d\" | }}", "%!d(MISSING)"},
    /* Go: template: __alert_A:1: non executable command in pipeline stage 2 */
    {"{{ 1 | 2 }}", "PARSE: 1:\?: non executable command in pipeline stage 2"},
    {"{{ $x := 1 }}{{ $x := 2 }}{{ $x }}", "2"},
    {"{{ $y = 1 }}", "<error expanding template: error executing template __alert_A: template: "
                     "__alert_A:1:120: executing \"__alert_A\" at <1>: undefined variable: $y>"},
    /* Go: template: __alert_A:1: too many declarations in range */
    {"{{ range $a, $b, $c := query \"up\" }}{{ end }}", "PARSE: 1:\?: too many declarations in range"},
    /* Go: template: __alert_A:1: expected end; found {{else}} */
    {"{{ if $labels.job }}x{{ else }}y{{ else }}z{{ end }}", "PARSE: 1:\?: expected end; found {{else}}"},
    /* Go: template: __alert_A:1: function "foo" not defined */
    {"{{ foo }}", "PARSE: 1:\?: function \"foo\" not defined"},
    /* Go: template: __alert_A:2: function "nosuchfunc" not defined */
    {"x\n  {{ nosuchfunc 1 }}", "PARSE: 2:\?: function \"nosuchfunc\" not defined"},
    /* Go: template: __alert_A:1: function "nosuch" not defined */
    {"{{ .Labels.job | nosuch }}", "PARSE: 1:\?: function \"nosuch\" not defined"},
    /* Go: template: __alert_A:1: {{continue}} outside {{range}} */
    {"{{ continue }}", "PARSE: 1:\?: {{continue}} outside {{range}}"},
    /* Go: template: __alert_A:1: {{break}} outside {{range}} */
    {"{{ with 1 }}{{ break }}{{ end }}", "PARSE: 1:\?: {{break}} outside {{range}}"},
    {"{{ range query \"up\" }}{{ with . }}{{ break }}{{ end }}{{ end }}done", "done"},
    {"{{ \"a\" \"b\" }}",
     "<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "
     "\"__alert_A\" at <\"a\">: can't give argument to non-function \"a\">"},
    {"{{ $labels.job \"x\" }}",
     "<error expanding template: error executing template __alert_A: template: __alert_A:1:122: executing "
     "\"__alert_A\" at <$labels.job>: job is not a method but has arguments>"},
    {"{{ .Labels \"x\" }}",
     "<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "
     "\"__alert_A\" at <.Labels>: Labels has arguments but cannot be invoked as function>"},
    {"{{ (1) 2 }}",
     "<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "
     "\"__alert_A\" at <(1) 2>: can't give argument to non-function 1>"},
    {"{{ (1) }}{{ (printf \"%d\" 2) }}", "12"},
    {"{{ humanize (humanize 1234) }}",
     "<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "
     "\"__alert_A\" at <humanize (humanize 1234)>: error calling humanize: strconv.ParseFloat: parsing "
     "\"1.234k\": invalid syntax>"},
    {"{{ 1 | humanize | humanize }}", "1"},
};

START_TEST(test_prometheus_outputs) {
    tmpl_data d = test_data(1234.5678);
    nqueries = nfrees = 0;
    char *got = render(cases[_i].in, &d);
    const char *want = cases[_i].want;
    const char *q = strstr(want, ":?: ");
    if (strncmp(want, "PARSE: ", 7) == 0 && q) {
        /* the line as Go gives it, any column, then Go's message */
        const char *colon = strchr(got + 7, ':');
        ck_assert_msg(colon && strncmp(got, want, (size_t)(q - want) + 1) == 0 && strchr(colon + 1, ':') &&
                          strcmp(strchr(colon + 1, ':') + 2, q + 4) == 0,
                      "template %s: got \"%s\", want \"%s\"", cases[_i].in, got, want);
    } else {
        ck_assert_msg(strcmp(got, want) == 0, "template %s:\n got: %s\nwant: %s", cases[_i].in, got, want);
    }
    ck_assert_int_eq(nqueries, nfrees); /* every query result is given back */
    free(got);
}
END_TEST

static const char value_template[] =
    "{{ $value }}|{{ .Value }}|{{ humanize $value }}|{{ humanize1024 $value }}|{{ printf \"%.2f\" $value }}|"
    "{{ printf \"%v|%g|%e|%6.1f\" $value $value $value $value }}|{{ $value | humanizeDuration }}|"
    "{{ humanizePercentage $value }}|{{ humanizeTimestamp $value }}|"
    "{{ if gt $value 0.0 }}pos{{ else }}nonpos{{ end }}";

static const struct {
    const char *value, *want;
} values[] = {
    {"NaN", "NaN|NaN|NaN|NaN|NaN|NaN|NaN|NaN|   NaN|NaN|NaN%|NaN|pos"},
    {"Inf", "+Inf|+Inf|+Inf|+Inf|+Inf|+Inf|+Inf|+Inf|  +Inf|+Inf|+Inf%|+Inf|pos"},
    {"-Inf", "-Inf|-Inf|-Inf|-Inf|-Inf|-Inf|-Inf|-Inf|  -Inf|-Inf|-Inf%|-Inf|nonpos"},
    {"0.30000000000000004",
     "0.30000000000000004|0.30000000000000004|300m|0.3|0.30|0.30000000000000004|0.30000000000000004|3."
     "000000e-01|   0.3|300ms|30%|1970-01-01 00:00:00.3 +0000 UTC|pos"},
    {"1e-7", "1e-07|1e-07|100n|1e-07|0.00|1e-07|1e-07|1.000000e-07|   0.0|100ns|1e-05%|1970-01-01 00:00:00 "
             "+0000 UTC|pos"},
    {"123456789", "1.23456789e+08|1.23456789e+08|123.5M|117.7Mi|123456789.00|1.23456789e+08|1.23456789e+08|1."
                  "234568e+08|123456789.0|1428d 21h 33m 9s|1.235e+10%|1973-11-29 21:33:09 +0000 UTC|pos"},
    {"5e21", "<error expanding template: error executing template __alert_A: template: __alert_A:1:338: "
             "executing \"__alert_A\" at <humanizeTimestamp $value>: error calling humanizeTimestamp: 5e+21 "
             "cannot be represented as a nanoseconds timestamp since it overflows int64>"},
    {"-0.000123", "-0.000123|-0.000123|-123u|-0.000123|-0.00|-0.000123|-0.000123|-1.230000e-04|  "
                  "-0.0|-123us|-0.0123%|1970-01-01 00:00:00 +0000 UTC|nonpos"},
    {"1700000000.5",
     "1.7000000005e+09|1.7000000005e+09|1.7G|1.583Gi|1700000000.50|1.7000000005e+09|1.7000000005e+09|1."
     "700000e+09|1700000000.5|19675d 22h 13m 20s|1.7e+11%|2023-11-14 22:13:20.5 +0000 UTC|pos"},
    {"42", "42|42|42|42|42.00|42|42|4.200000e+01|  42.0|42s|4200%|1970-01-01 00:00:42 +0000 UTC|pos"},
    {"-90061", "-90061|-90061|-90.06k|-87.95ki|-90061.00|-90061|-90061|-9.006100e+04|-90061.0|-1d 1h 1m "
               "1s|-9.006e+06%|1969-12-30 22:58:59 +0000 UTC|nonpos"},
};

START_TEST(test_value_formatting) {
    tmpl_data d = test_data(strtod(values[_i].value, NULL));
    char *got = render(value_template, &d);
    ck_assert_msg(strcmp(got, values[_i].want) == 0, "value %s:\n got: %s\nwant: %s", values[_i].value, got,
                  values[_i].want);
    free(got);
}
END_TEST

/* Load-time errors carry line:col of the offending token (1-based). */
START_TEST(test_parse_positions) {
    static const struct {
        const char *in, *want;
    } errs[] = {
        {"{{ foo }}", "1:4: function \"foo\" not defined"},
        {"x\n  {{ nosuchfunc 1 }}", "2:6: function \"nosuchfunc\" not defined"},
        {"{{ .Labels.job | nosuch }}", "1:18: function \"nosuch\" not defined"},
        {"{{ $x }}", "1:4: undefined variable \"$x\""},
        {"{{ if $labels.job }}{{ $v := 1 }}{{ end }}{{ $v }}", "1:46: undefined variable \"$v\""},
        {"{{ if }}{{ end }}", "1:7: missing value for if"},
        {"{{ end }}", "1:4: unexpected {{end}}"},
        {"{{ if 1 }}{{ else }}", "1:21: unexpected EOF"},
        {"{{ if 1 }}x", "1:12: unexpected EOF"},
        {"{{ \"abc }}", "1:4: unterminated quoted string"},
        {"{{ `abc }}", "1:4: unterminated raw quoted string"},
        {"{{ $labels.job", "1:15: unclosed action"},
        {"{{ ( }}", "1:6: unclosed left paren"},
        {"{{/* x */ }}", "1:1: comment ends before closing delimiter"},
        {"{{/* x }}", "1:1: unclosed comment"},
        {"{{ \"\\q\" }}", "1:4: invalid syntax"},
        {"{{ 1x }}", "1:4: bad number syntax: \"1x\""},
        {"{{ 1 | 2 }}", "1:8: non executable command in pipeline stage 2"},
        {"{{ \"a\"\"b\" }}", "1:7: unexpected \"\\\"b\\\"\" in operand"},
        {"{{ else }}", "1:4: unexpected {{else}}"},
        {"{{ break }}", "1:4: {{break}} outside {{range}}"},
        {"{{ \x01 }}", "1:4: bad character U+0001"},
        {"{{ define \"x\" }}{{ end }}", "1:4: {{define}} is not supported in alert templates"},
    };
    for (size_t k = 0; k < sizeof errs / sizeof errs[0]; k++) {
        tmpl *t = NULL;
        kiln_err err = {0};
        ck_assert_int_eq(tmpl_parse(errs[k].in, "__alert_A", &t, &err), KILN_EINVAL);
        ck_assert_msg(strcmp(err.msg, errs[k].want) == 0, "%s: got \"%s\", want \"%s\"", errs[k].in, err.msg,
                      errs[k].want);
        ck_assert_ptr_null(t);
    }
}
END_TEST

/* The rule-file check words its errors as promtool does. */
START_TEST(test_check) {
    kiln_err err = {0};
    ck_assert_int_eq(tmpl_check("__alert_A", "{{ $labels.job }} {{ humanize $value }}", &err), 0);
    ck_assert_int_eq(tmpl_check("__alert_A", "x\n{{ end }}", &err), KILN_EINVAL);
    ck_assert_str_eq(err.msg, "template: __alert_A:2: unexpected {{end}}");
    ck_assert_int_eq(tmpl_check("__alert_X", "{{ urlQueryEscape \"a\" }}", &err), KILN_EINVAL);
    /* promtool check rules 2.42 on this annotation */
    ck_assert_str_eq(err.msg, "template: __alert_X:1: function \"urlQueryEscape\" not defined");
}
END_TEST

/* Deep nesting is an error, not a stack overflow. */
START_TEST(test_depth_limit) {
    char text[4096] = "{{ ";
    for (int k = 0; k < 500; k++)
        strcat(text, "(");
    tmpl *t = NULL;
    kiln_err err = {0};
    ck_assert_int_eq(tmpl_parse(text, "x", &t, &err), KILN_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "depth"));
    strcpy(text, "");
    for (int k = 0; k < 300; k++)
        strcat(text, "{{if 1}}");
    ck_assert_int_eq(tmpl_parse(text, "x", &t, &err), KILN_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "depth"));
}
END_TEST

/* A template expands many times, with different data, appending to out; an
 * error replaces only what this expansion wrote. */
START_TEST(test_expand_reuse) {
    tmpl *t = NULL;
    kiln_err err = {0};
    ck_assert_int_eq(tmpl_parse("{{ $labels.job }}={{ $value | humanize }}", "n", &t, &err), 0);
    buf out = BUF_INIT;
    buf_puts(&out, "pre:");
    tmpl_data d = test_data(1500);
    ck_assert_int_eq(tmpl_expand(t, &d, &out), 0);
    d.value = 0.002;
    d.nlabels = 0;
    ck_assert_int_eq(tmpl_expand(t, &d, &out), 0);
    ck_assert_str_eq(out.data, "pre:api=1.5k=2m");
    tmpl_free(t);

    ck_assert_int_eq(tmpl_parse("lost{{ humanize \"x\" }}", "n", &t, &err), 0);
    buf_reset(&out);
    buf_puts(&out, "keep|");
    ck_assert_int_eq(tmpl_expand(t, &d, &out), 0);
    ck_assert_str_eq(out.data,
                     "keep|<error expanding template: error executing template n: template: n:1:119: "
                     "executing \"n\" at <humanize \"x\">: error calling humanize: strconv.ParseFloat: "
                     "parsing \"x\": invalid syntax>");
    tmpl_free(t);
    buf_free(&out);
}
END_TEST

/* Without a query engine, query is a runtime error; an empty external URL
 * prints nothing. */
START_TEST(test_no_query_engine) {
    tmpl_data d = {0};
    expect_render("{{ externalURL }}[{{ pathPrefix }}]{{ query \"up\" }}", &d,
                  "<error expanding template: error executing template __alert_A: template: "
                  "__alert_A:1:150: executing \"__alert_A\" at <query \"up\">: error calling query: "
                  "no query engine>");
    expect_render("{{ externalURL }}[{{ pathPrefix }}]{{ $value }}{{ len $labels }}", &d, "[]00");
}
END_TEST

/* Whitespace trimming and comments, as Go: "{{- " and " -}}" eat all white
 * space on their side, including newlines. */
START_TEST(test_trim) {
    tmpl_data d = test_data(1);
    expect_render("a \n\t {{- 1 -}} \n b{{/* c */}}c\n{{- /* d */ -}}\nd{{ 2 -}}\n", &d, "a1bcd2");
    expect_render("{{ -1 }}{{-1}}{{ 1 -}}x", &d, "-1-11x"); /* "{{-1" is the number -1, no trim marker */
}
END_TEST

/* A function named as an argument is called without arguments (Go's
 * evalArg of an identifier); the rest are the outer call's. */
START_TEST(test_function_as_argument) {
    tmpl_data d = test_data(1);
    expect_render("{{ print args 1 }}|{{ and 1 args }}|{{ or 0 args 2 }}|{{ len args }}", &d,
                  "map[] 1|map[]|2|0");
    expect_render("{{ print args 1 args 2 3 }}", &d, "map[] 1 map[] 2 3");
}
END_TEST

/* Go has no bound on an expansion's work; kiln stops at a million steps or
 * 16 MiB of output, an error like any other. */
START_TEST(test_work_bound) {
    tmpl_data d = test_data(1);
    char text[1024] = "";
    for (int k = 0; k < 15; k++) /* 3^15 iterations */
        strcat(text, "{{ range $labels }}");
    strcat(text, "x");
    for (int k = 0; k < 15; k++)
        strcat(text, "{{ end }}");
    char *got = render(text, &d);
    ck_assert_ptr_nonnull(strstr(got, "template too expensive to expand>"));
    ck_assert_int_eq(strncmp(got, "<error expanding template: ", 27), 0);
    free(got);
}
END_TEST

Suite *make_suite(void) {
    Suite *s = suite_create("template");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, test_prometheus_outputs, 0, (int)(sizeof cases / sizeof cases[0]));
    tcase_add_loop_test(tc, test_value_formatting, 0, (int)(sizeof values / sizeof values[0]));
    tcase_add_test(tc, test_parse_positions);
    tcase_add_test(tc, test_check);
    tcase_add_test(tc, test_work_bound);
    tcase_add_test(tc, test_function_as_argument);
    tcase_add_test(tc, test_depth_limit);
    tcase_add_test(tc, test_expand_reuse);
    tcase_add_test(tc, test_no_query_engine);
    tcase_add_test(tc, test_trim);
    suite_add_tcase(s, tc);
    return s;
}
