"""`python -m gridtokenx` runs the command line."""

from gridtokenx.cli.main import main

main()
