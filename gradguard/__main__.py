"""`python -m gradguard`: the same as the `gradguard` command."""

import sys

from gradguard.cli import main

sys.exit(main())
