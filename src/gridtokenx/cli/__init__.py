"""The `gridtokenx` command line."""
