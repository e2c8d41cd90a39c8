"""The command line's one passphrase reader.

From the environment (`GRIDTOKENX_PASSPHRASE`, the variable a node reads too) for scripts
and service managers, else asked in the terminal without echo; with neither, a clear error
(NO_PASSPHRASE) rather than a prompt that a script would hang on.
"""

from __future__ import annotations

import os
import sys

import typer

from gridtokenx.cli.errors import Refused


def read(confirm: bool) -> str:
    """The passphrase; `confirm` asks twice, for a passphrase that will encrypt a new file."""
    from gridtokenx.node.home import PASSPHRASE_ENV

    value = os.environ.get(PASSPHRASE_ENV, "")
    if value:
        return value
    if not sys.stdin.isatty():
        raise Refused(
            "NO_PASSPHRASE", f"no passphrase: set {PASSPHRASE_ENV} or run in a terminal to be asked"
        )
    return str(typer.prompt("passphrase", hide_input=True, confirmation_prompt=confirm))
