"""stream-scorer's application: config, CLI, the Kafka loop, batching, offsets, features, metrics."""
