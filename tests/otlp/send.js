// send.js - exports one batch of metrics to an OTLP/HTTP endpoint with the
// real OpenTelemetry JavaScript SDK (sdk-metrics + exporter-metrics-otlp-proto),
// for kiln's OTLP receiver tests (tests/integration/test_otlp.py).
//
//   node send.js URL [delta] [gzip] [json]
//
// Prints one JSON line: {"code": <ExportResultCode>, "error": "..."} for
// each export the SDK made.  "delta" asks for delta temporality, "gzip" for
// gzip bodies, "json" for OTLP/HTTP's JSON encoding (application/json).
'use strict';
const { diag, DiagConsoleLogger, DiagLogLevel } = require('@opentelemetry/api');
const {
  MeterProvider, PeriodicExportingMetricReader, View, ExponentialHistogramAggregation,
  AggregationTemporality,
} = require('@opentelemetry/sdk-metrics');
const proto = require('@opentelemetry/exporter-metrics-otlp-proto');
const json = require('@opentelemetry/exporter-metrics-otlp-http');
const { Resource } = require('@opentelemetry/resources');
const {
  ATTR_SERVICE_NAME, SEMRESATTRS_SERVICE_NAMESPACE, SEMRESATTRS_SERVICE_INSTANCE_ID,
} = require('@opentelemetry/semantic-conventions');

diag.setLogger(new DiagConsoleLogger(), DiagLogLevel.WARN);

async function main() {
  const url = process.argv[2];
  const delta = process.argv.includes('delta');
  const { OTLPMetricExporter } = process.argv.includes('json') ? json : proto;
  const inner = new OTLPMetricExporter({
    url,
    compression: process.argv.includes('gzip') ? 'gzip' : 'none',
    temporalityPreference: delta ? AggregationTemporality.DELTA : AggregationTemporality.CUMULATIVE,
  });
  const results = [];
  const exporter = {
    export(metrics, cb) {
      inner.export(metrics, (r) => {
        results.push({ code: r.code, error: r.error ? String(r.error.message || r.error) : '' });
        cb(r);
      });
    },
    forceFlush: () => inner.forceFlush(),
    shutdown: () => inner.shutdown(),
    selectAggregationTemporality: (k) => inner.selectAggregationTemporality(k),
  };
  const resource = new Resource({
    [ATTR_SERVICE_NAME]: 'checkout',
    [SEMRESATTRS_SERVICE_NAMESPACE]: 'shop',
    [SEMRESATTRS_SERVICE_INSTANCE_ID]: 'pod-1',
    'deployment.environment': 'test',
    'host.name': 'h1',
  });
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3600000 });
  const provider = new MeterProvider({
    resource,
    readers: [reader],
    views: [new View({ instrumentName: 'latency.exp', aggregation: new ExponentialHistogramAggregation() })],
  });
  const meter = provider.getMeter('kiln-test', '1.0.0');

  const requests = meter.createCounter('http.server.requests', { unit: '{request}' });
  requests.add(5, { method: 'GET', 'http.status_code': 200 });
  requests.add(2, { method: 'GET', 'http.status_code': 200 });
  requests.add(1, { method: 'POST', 'http.status_code': 500 });
  meter.createCounter('bytes.sent', { unit: 'By' }).add(1024);
  meter.createCounter('network.io', { unit: 'By' }).add(4096, { direction: 'in' });
  const depth = meter.createUpDownCounter('queue.depth', { unit: '1' });
  depth.add(5);
  depth.add(-2);
  meter.createGauge('cpu.utilization', { unit: '1' }).record(0.25, { cpu: '0' });
  meter.createObservableGauge('room.temperature', { unit: 'Cel' }).addCallback((r) => r.observe(21.5));
  const dur = meter.createHistogram('request.duration', {
    unit: 's', advice: { explicitBucketBoundaries: [0.1, 0.5, 1] },
  });
  for (const v of [0.05, 0.3, 0.7, 2]) dur.record(v, { route: '/cart' });
  const exp = meter.createHistogram('latency.exp', { unit: 'ms' });
  for (const v of [1, 2, 4, 8]) exp.record(v);

  await provider.shutdown(); // one export, then the exporter closes
  console.log(JSON.stringify(results));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
