"""`python -m webgrove` is the `webgrove` command."""
import sys

from webgrove.cli import main

sys.exit(main())
