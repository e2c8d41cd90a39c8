"""The `gridtokenx` command line: one Typer app (cli.main) with a module per command group
and one error contract (cli.errors)."""
