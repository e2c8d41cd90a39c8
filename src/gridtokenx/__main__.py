"""`python -m gridtokenx` runs the command line."""

from gridtokenx.cli import main

main()
