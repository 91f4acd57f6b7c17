"""stream-scorer's application: config, CLI, Kafka loop, batching, offsets, features, metrics."""
