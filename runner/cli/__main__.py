"""`python -m runner.cli`: the same as the `ukl` console script."""
import sys

from runner.cli.main import main

sys.exit(main())
