"""``python -m benchmarks NAME [flags]`` from a checkout's root; see benchmarks/README.md."""

import sys

from benchmarks.cli import main

sys.exit(main())
