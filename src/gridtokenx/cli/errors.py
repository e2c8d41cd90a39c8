"""The error contract of every `gridtokenx` command.

A command that cannot do what it was asked writes its failure on stderr, one line per
problem, each

    error: CODE: message

and nothing else: no colour, no traceback, nothing more on stdout. CODE is stable (a script
branches on it and on the exit status); the message is for a person. The exit status says
whose move it is:

2, bad input: the command line as typed cannot run, and nothing was done or sent. A value
   that does not parse or is out of range, options that do not go together or a missing
   one, an unknown command, a file or directory named on the command line that does not
   exist, cannot be read or is not what it must be (not a key file, not a store, not a node
   home; a genesis file that reads but does not decode or validate is a refusal below,
   INVALID_GENESIS, with every problem listed). The fix is a different command line.
   Codes: BAD_INPUT, and the API's INVALID_REQUEST (the node found a parameter malformed).
1, refused or failed: the command was understood and tried, and was refused or failed.
   A node's or the ledger's refusal (their codes pass through unchanged), a dropped or
   unconfirmed transaction, an unreachable node, a genesis file with problems, a
   destination that already exists (without --force), no passphrase or a wrong one, a
   store that cannot open because its node still runs or its files are damaged, a port in
   use, a devnet or demo that stopped, an export that does not match the chain. The same
   command line can succeed at another time or place.

A wrong passphrase is 1, not 2: the secret is not on the command line, and the keystore
cannot tell a mistyped passphrase from a damaged file ("wrong passphrase, or the file is
corrupted").

The codes the command line gives itself, all exit 1 except BAD_INPUT:

    BAD_INPUT          bad input, as above (exit 2)
    NO_PASSPHRASE      no GRIDTOKENX_PASSPHRASE and no terminal to ask in
    KEYSTORE           the keystore refused a key file (wrong passphrase, damaged file)
    INSECURE_KEY       an unencrypted dev key without the flag that accepts one
    KEY_EXISTS         a key file is in the way; key files are never overwritten silently
    EXISTS             another destination is in the way (genesis, home, backup, export)
    INVALID_GENESIS    a genesis file with problems, one line for each
    GENESIS_HASH_MISMATCH  `init --genesis-hash` given another hash than the file's
    INVALID_AUTHORITY  the genesis ceremony (`genesis build`): not an authority document,
                       or one whose claim is malformed (its address not its key's)
    BAD_SIGNATURE      an authority document its key did not sign as it stands
    WRONG_CHAIN        an authority document signed for another chain id
    UNKNOWN_ROLE       an authority document for a role the genesis does not have
    DUPLICATE_ROLE     two authority documents for one authority
    DUPLICATE_KEY      one key in two authority documents
    MISSING_AUTHORITY  an authority of the genesis without a document
    POWER_MISMATCH     a document's voting power other than the one agreed (`--power`)
    INVALID_HOME       a node home the node cannot start from
    NO_STATUS          a node home without status.json: the node has not run
    STORE_LOCKED       a store another process has open (most often its node, still running)
    STORE_CORRUPT      a store whose files are damaged (restore a backup, or resync)
    STORE_UNAVAILABLE  a store that does not open for another reason (RocksDB's is given)
    PORT_IN_USE        a port a node's config names is taken (P2P, API or metrics)
    STORE              the store refused the operation
    RESTORE_MISMATCH   a restored store differs from its backup
    MISMATCH           an audit export differs from the chain, one line for each finding
    DEVNET_STOPPED     a validator of `gridtokenx devnet` stopped by itself
    DEMO_FAILED        the demo's devnet stopped or did not come up
    FUNDING_FAILED     `devnet --fund` could not register or fund its participants
    UNKNOWN_METER      `tx reading --now` signed with a key that is not a registered meter
    NO_INTERVAL_TO_READ  `tx reading --now` before the meter's next interval is accepted
    UNKNOWN_SENDER     the signing key has no account on the node
    INVALID_DELEGATE   a delegate address that is not an authority
    UNREACHABLE        no answer from the node
    FINALITY_TIMEOUT   a transaction not committed in --timeout seconds
    ABORTED            a prompt was interrupted
    UNEXPECTED         anything else; still one line, never a traceback

A dropped transaction reports the mempool's reason (e.g. EXPIRED) as its code.

Commands raise `BadInput` or `Refused`; the SDK's, keystore's and store's errors and a
port in use mean the same in every command and are translated here; `ContractGroup`, the
root command group, writes whatever escapes a command (and Click's own usage errors) in
this form.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, Final

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

EXIT_BAD_INPUT: Final = 2
EXIT_REFUSED: Final = 1


class BadInput(Exception):
    """Input the command refuses before doing or sending anything (exit 2)."""


class Refused(Exception):
    """A refusal or failure with a stable code (exit 1); one stderr line per message."""

    def __init__(self, code: str, message: str, *more: str) -> None:
        super().__init__("; ".join((message, *more)))
        self.code = code
        self.lines = (message, *more)


Failure = tuple[str, Sequence[str], int]  # code, message lines, exit status


def _usage(exc: TyperException) -> Failure:
    """Typer's own parsing errors (missing or malformed options, unknown commands): usage
    errors exit 2 like any bad input, with the command whose --help explains it."""
    ctx = getattr(exc, "ctx", None)
    hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    status = EXIT_BAD_INPUT if exc.exit_code == EXIT_BAD_INPUT else EXIT_REFUSED
    return "BAD_INPUT", [exc.format_message() + hint], status


def _library(exc: Exception) -> Failure | None:
    """The SDK's, the keystore's and httpx's errors, which mean the same in every command.
    Imported only when something failed: `gridtokenx --help` does not load httpx."""
    import httpx

    from gridtokenx.client import ApiError, FinalityTimeout, TxDropped
    from gridtokenx.node.keystore import KeystoreError

    if isinstance(exc, ApiError):
        bad = exc.code == "INVALID_REQUEST"
        return exc.code, [exc.message], EXIT_BAD_INPUT if bad else EXIT_REFUSED
    if isinstance(exc, TxDropped):
        return exc.code, [exc.message], EXIT_REFUSED
    if isinstance(exc, FinalityTimeout):
        return "FINALITY_TIMEOUT", [str(exc)], EXIT_REFUSED
    if isinstance(exc, KeystoreError):
        return "KEYSTORE", [str(exc)], EXIT_REFUSED
    if isinstance(exc, httpx.HTTPError):
        return "UNREACHABLE", [f"{_node(exc)}: {exc or type(exc).__name__}"], EXIT_REFUSED
    return _local(exc)


def _local(exc: Exception) -> Failure | None:
    """A store that does not open and a port in use: what stops a node starting (and a
    `db` or `report` command), each with what to do about it. Imported only when no check
    above matched."""
    from gridtokenx.node.service import PortInUse
    from gridtokenx.storage.store import (
        StoreCorrupt,
        StoreLocked,
        StoreOfAnotherChain,
        StoreUnavailable,
    )

    if isinstance(exc, StoreLocked):
        return "STORE_LOCKED", [f"{exc}: is its node still running? Stop it first"], EXIT_REFUSED
    if isinstance(exc, StoreCorrupt):
        fix = "restore it from a backup (`gridtokenx db restore`), or move it aside to resync"
        return "STORE_CORRUPT", [f"{exc}: {fix}"], EXIT_REFUSED
    if isinstance(exc, StoreOfAnotherChain):
        return "STORE_OF_ANOTHER_CHAIN", [str(exc)], EXIT_REFUSED
    if isinstance(exc, StoreUnavailable):
        return "STORE_UNAVAILABLE", [str(exc)], EXIT_REFUSED
    if isinstance(exc, PortInUse):
        return "PORT_IN_USE", [str(exc.strerror)], EXIT_REFUSED
    return None


def _node(exc: Any) -> str:
    """The base URL of the node a failed request went to."""
    try:
        url = exc.request.url
    except RuntimeError:  # httpx raises it for an error without a request
        return "the node"
    return f"{url.scheme}://{url.netloc.decode('ascii')}"


def classify(exc: Exception) -> Failure:
    """The code, message lines and exit status of any failure of a command."""
    if isinstance(exc, BadInput):
        return "BAD_INPUT", [str(exc)], EXIT_BAD_INPUT
    if isinstance(exc, Refused):
        return exc.code, exc.lines, EXIT_REFUSED
    if isinstance(exc, TyperException):
        return _usage(exc)
    if isinstance(exc, typer.Abort):
        return "ABORTED", ["aborted"], EXIT_REFUSED
    return _library(exc) or ("UNEXPECTED", [f"{type(exc).__name__}: {exc}"], EXIT_REFUSED)


def report(exc: Exception) -> int:
    """Write `exc` on stderr in the contract's form; the exit status to end with."""
    code, lines, status = classify(exc)
    for line in lines:
        print(f"error: {code}: {' '.join(str(line).split())}", file=sys.stderr)
    return status


class ContractGroup(TyperGroup):
    """The root command group: runs the command line and ends every failure, whichever
    command or Click itself raised it, as the contract's lines and exit status."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:  # a caller that handles errors itself
            return super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        try:
            status = super().main(
                args, prog_name, complete_var, False, windows_expand_args, **extra
            )
        except Exception as exc:  # the promise is no traceback, whatever went wrong
            status = _no_args_help(exc) if _is_no_args_help(exc) else report(exc)
        sys.exit(status if isinstance(status, int) else 0)


def _is_no_args_help(exc: Exception) -> bool:
    """A group run without a command: typer has shown its help (the check typer makes
    itself, as the class is not public)."""
    return type(exc).__name__ == "NoArgsIsHelpError"


def _no_args_help(exc: Any) -> int:
    message = str(exc.format_message())
    if message.strip():  # the help text, where typer has not printed it itself
        print(message)
    return int(exc.exit_code)
