"""The Kafka loop: consume a micro-batch, process it, deliver its outputs, commit its offsets.

- `records`: the loop's own records (`InMessage`, `OutRecord`, `Delivery`, `TopicPartition`) and
  seams (`Source`, `Sink`, `TransactionalSink`, `Processor`); no confluent_kafka import.
- `kafka`: the only module that creates librdkafka clients (`KafkaSource`, `KafkaSink`);
  `kafka_rules`: the properties delivery guarantees depend on, refused when set;
  `kafka_health`: security failures (authentication, TLS, ACLs) logged once and bounded;
  `connection`: is the cluster reachable (readiness, ``kafka.unreachable_exit_s``).
- `loop`: `ScoringLoop`, polling, backpressure, pause/retry, revocation, shutdown.
- `delivery`: at-least-once and exactly-once delivery modes; `offsets`: the pure offset tracker;
  `dead_letter`: dead-letter records.
- `processor`: one batch from payload bytes to encoded ranked lists (`BatchProcessor`, shared with
  the ranking API through `score_columns`); `jobs`: vectorized job validation; `outcome`: what a
  batch produced; `tracing`: each job's trace context continued on its outputs.

May import: `consumer.{config,clock,errors,metrics}`, `consumer.features.{source,fetcher}`,
`consumer.models`, `schemas`, `scoring`. Never imports the API, the service or devtools.
"""
