"""Tools for development, demos, tests and benchmarks; never on the serving path.

- `local_kafka` (+ `kafka_jars`, `kafka_node`, `kafka_topics`): a real single-node Apache Kafka
  broker (KRaft) on 127.0.0.1, its jars fetched with Maven;
- `demo` + `demo_data`: ``stream-scorer demo`` and its model and feature files;
- `generator`: the load generator (``stream-scorer produce``); `ranked_reader`: reads ranked lists
  back as a feed builder would;
- `impressions` + `train`: synthetic impressions and the training CLI (``stream-scorer train``).

May import anything in the project; nothing on the serving path imports this package.
"""
