"""Entry point kept for scripts: ``python -m consumer.demo_data ROOT`` writes the demo model and
feature files of `consumer.devtools.demo_data` (the compose stack and Kubernetes job use it)."""

import sys

from consumer.devtools.demo_data import main

if __name__ == "__main__":
    sys.exit(main())
