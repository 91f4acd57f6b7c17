"""Where a micro-batch's user and item features come from.

- `source`: the `FeatureSource` protocol and `BatchFeatures`;
- `fetcher`: `BatchFetcher`, the one seam callers use ("features for this batch, within this
  budget") and `FeatureFetcher`, the one sync-to-async bridge;
- `files`: the embedded store's CSV files; `parquet`: its Parquet snapshots (hashed once per
  distinct value); `snapshot`: `SnapshotStore`, the embedded store swapping (users, items) as one
  reference; `snapshot_watch`: hot reload of changed snapshot files; `prepared`: the kernel's
  per-item state built off the hot path (before the fork, and for each reloaded snapshot);
- `http` + `feast`: the HTTP client of Feast's online feature server; `cache`: its item cache;
  `breaker`: its circuit breaker; `auth`: bearer tokens and TLS for it.

May import: `consumer.{config,clock,errors,metrics}`, `scoring`. Never imports the Kafka loop,
the API or the service.
"""
