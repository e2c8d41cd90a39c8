"""`python -m gridtokenx` runs the command line."""

from gridtokenx.cli.app import main

main()
