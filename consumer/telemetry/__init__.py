"""What SREs see of the scorer beyond its metrics: trace context, spans, logs, process health.

- `tracecontext`: W3C Trace Context parsing and formatting (stdlib only, never raises);
- `tracing`: the propagation rules shared by the stream and the API (what a ranked list or an
  answer carries for an incoming context; drops counted);
- `otel`: OpenTelemetry spans and the OTLP exporter, imported only when spans are turned on
  (``pip install stream-scorer[otel]``);
- `logs`: plain or JSON log lines, librdkafka's lines routed in and rate-limited;
- `process`: process, platform and GC collectors on the injected registry;
- `health`: the state of each dependency (Kafka, schema registry, feature store) for readiness,
  ``stream_scorer_dependency_up`` and the alerts; `ratelimit`: repeated log lines once per
  interval.

May import: `consumer.{config,errors,metrics,clock}`, `schemas` (the observed registry),
`consumer.stream.{records,outcome}` (record types only). Never imports the loop, the API, the
service or devtools.
"""
