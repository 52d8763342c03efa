"""`python -m paved`: the same as the `paved` command."""

from paved.cli import main

main()
