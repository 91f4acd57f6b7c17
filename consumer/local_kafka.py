"""Entry point kept for scripts: ``python -m consumer.local_kafka`` runs the local Apache Kafka
broker of `consumer.devtools.local_kafka` (fetch its jars, start, stop)."""

import sys

from consumer.devtools.local_kafka import main

if __name__ == "__main__":
    sys.exit(main())
