"""`python -m impala_tf ...`: the `impala-tf` program (impala_tf.cli.main)."""

import sys

from impala_tf.cli import main

if __name__ == "__main__":
    sys.exit(main.main())
