"""Who an address is, for people reading the market: the registry's participant name, or the
authority's code for an authority's or a validator's key.

An address alone (`gtxhwv5tab5o...`) tells a reader nothing, and cut to six characters it
cannot even be searched for. Tables show the name next to a shortened address that keeps
both ends; a record view shows the whole address. Names are looked up once per address
per command (the registry has no bulk lookup by address), so a table of 50 trades between
a dozen participants costs a dozen small reads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from gridtokenx.client import Client

HEAD: Final = 8  # "gtx" and five characters
TAIL: Final = 6


def short(address: str) -> str:
    """`gtxhwv5t…cfcyky`: both ends, so it can be matched against a full address."""
    if len(address) <= HEAD + TAIL + 1:
        return address
    return f"{address[:HEAD]}…{address[-TAIL:]}"


class Names:
    """Names of the addresses one command shows, read lazily from the node's API."""

    def __init__(self, api: Client) -> None:
        self._api = api
        self._known: dict[str, str | None] = {}
        self._authorities = False

    def _load_authorities(self) -> None:
        self._authorities = True
        for code, address in self._api.get("/governance")["authorities"].items():
            self._known[address] = code
        for member in self._api.get("/validators")["members"]:
            if member.get("authority"):
                self._known.setdefault(member["address"], member["authority"])

    def name(self, address: str) -> str | None:
        """The participant's registered name, an authority's code, or None."""
        if not self._authorities:
            self._load_authorities()
        if address not in self._known:
            from gridtokenx.client import ApiError

            try:
                self._known[address] = self._api.get(f"/participants/{address}")["name"] or None
            except ApiError as exc:
                if exc.code != "NOT_FOUND":
                    raise
                self._known[address] = None
        return self._known[address]

    def label(self, address: str, *, full: bool = False) -> str:
        """`Somchai gtxhwv5t…cfcyky` (or the whole address with `full`); the address alone
        when it has no name."""
        shown = address if full else short(address)
        found = self.name(address)
        return f"{found} {shown}" if found else shown
