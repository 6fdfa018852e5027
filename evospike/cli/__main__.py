"""``python -m evospike.cli``: the ``evospike`` command."""

import sys

from evospike.cli.main import main

sys.exit(main())
