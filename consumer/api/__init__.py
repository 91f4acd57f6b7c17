"""The synchronous ranking API (``POST /v1/rank``).

- `server`: the aiohttp handler, the standalone `serve` entry point (``stream-scorer serve``);
- `batcher`: coalesces concurrent requests into micro-batches scored off the event loop;
- `codec`: JSON / Avro request bodies to job columns, ranked lists to JSON.

Scores through the stream path's `consumer.stream.processor.BatchProcessor.score_columns`, so a
job ranks the same over HTTP as over Kafka. May import: `consumer.{config,clock,errors,metrics,
ops,wiring}`, `consumer.features`, `consumer.models`, `consumer.stream.{processor,outcome,jobs}`,
`schemas`, `scoring`. Never imports the stream service (`consumer.service` imports this package).
"""
