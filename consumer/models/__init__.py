"""The models served: a registry of loaded artifacts and its hot-reload watcher.

- `registry`: `ModelRegistry` (one `ModelSet` snapshot per batch, routing, shadows);
- `watch`: `ModelWatcher`, reloading changed artifacts off the hot path.

May import: `consumer.{errors,metrics}`, `scoring`. Never imports Kafka, the API or the service.
"""
