"""`python -m quayside`: the same as the `quayside` command."""

from quayside.cli import main

main()
