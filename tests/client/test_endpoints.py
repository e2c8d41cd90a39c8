"""The endpoint table (client.endpoints) run by both transports, against httpx's
MockTransport: every operation makes the same request and gives the same typed result on
`Client` and `AsyncClient`; flows (the cached chain id, tracked nonces) run the same on
both; an entry added to the table is a method of both clients at once. What a real node
answers is decoded in tests/client/test_typed_reads.py."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import types
import typing
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from gridtokenx.client import ApiError, AsyncClient, Balance, Client, Receipt, to_json
from gridtokenx.client import results as r
from gridtokenx.client.endpoints import Api, Call, as_json, endpoint
from gridtokenx.wire import crypto, tx
from tests.conftest import key

ALICE = key("sdk/alice")
ALICE_TEXT = crypto.address_to_text(ALICE.address)
BOB = crypto.address_to_text(key("sdk/bob").address)
CHAIN = "gridtokenx-sdk-test"


class FakeNode:
    """Answers like a node's API and records every request as (method, path, query, body)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, str], Any]] = []
        self.nonce = 7
        self.refuse: dict[str, str] = {}  # path -> the error code of its next answer
        self.canned: Any = None  # the answer to any other path

    def answer(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/api/v1")
        body = orjson.loads(request.content) if request.content else None
        self.seen.append((request.method, path, dict(request.url.params), body))
        if code := self.refuse.pop(path, ""):
            return httpx.Response(409, json={"error": {"code": code, "message": "no"}})
        if path == "/broken":
            return httpx.Response(502, text="bad gateway")
        return httpx.Response(200, json=self._json(path, body))

    def _json(self, path: str, body: Any) -> Any:
        if self.canned is not None:
            return self.canned
        if path.startswith("/accounts/"):
            address = path.rsplit("/", 1)[1]
            return {"address": address, "grid_wh": 1, "thb_satang": 2, "nonce": self.nonce}
        if path == "/chain":
            return {"chain_id": CHAIN}
        if path == "/txs/simulate":  # a checked send's trial: this node would apply anything
            return {"ok": True, "height": 3, "time": 0,
                    "hash": tx.hash_of(bytes.fromhex(body["tx"])).hex()}  # fmt: skip
        if path.startswith("/txs/") and path != "/txs/batch":
            return {"hash": path.rsplit("/", 1)[1], "status": "committed", "height": 3}
        if path == "/txs":
            return {"hash": tx.hash_of(bytes.fromhex(body["tx"])).hex()}
        if path == "/txs/batch":
            return {"results": [{"code": "OK"} for _ in body["txs"]]}
        return None


def sample(kind: Any, n: int = 1) -> Any:
    """A value of a result type with every field filled (numbers from `n`), so a decoded
    answer can be compared field by field with what was served."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (types.UnionType, typing.Union):
        return sample(args[0], n)
    if origin is list:
        return [sample(args[0], n)]
    if origin is tuple:
        return tuple(sample(a, n + i) for i, a in enumerate(args))
    if origin is dict:
        return {"BKK": sample(args[1], n)}
    if dataclasses.is_dataclass(cls := origin or kind):
        hints = typing.get_type_hints(cls)
        base = next((b for b in getattr(cls, "__orig_bases__", ()) if typing.get_args(b)), None)
        item = args[0] if args else typing.get_args(base)[0] if base else None
        if item is not None:  # a page: Page[Order], or AuditPage (a Page[AuditEvent])
            hints["items"] = list[item]  # type: ignore[valid-type]
        fields = dataclasses.fields(cls)
        assert isinstance(cls, type)
        return cls(**{f.name: sample(hints[f.name], n + i) for i, f in enumerate(fields)})
    return {int: n, str: f"s{n}", bool: True, float: n / 2}.get(kind, {"k": n})


def both(node: FakeNode, use: Callable[[Any], Any]) -> tuple[Any, Any]:
    """`use(client)` on a Client and, awaited where it is a coroutine, on an AsyncClient;
    both results, after checking that both made the same requests."""
    mock = httpx.MockTransport(node.answer)
    node.seen = []
    with Client("http://node", transport=mock) as api:
        sync_result = use(api)
    sync_seen, node.seen = node.seen, []

    async def run() -> Any:
        async with AsyncClient("http://node", transport=mock) as api:
            result = use(api)
            return await result if inspect.isawaitable(result) else result

    async_result = asyncio.run(run())
    assert node.seen == sync_seen
    return sync_result, async_result


Answer = Any  # a result type; a list means the page's items are returned as a list
OPERATIONS: list[tuple[str, Callable[[Any], Any], tuple[str, str, dict[str, str]], Answer]] = [
    ("health", lambda a: a.health(), ("GET", "/health", {}), r.Health),
    ("chain", lambda a: a.chain(), ("GET", "/chain", {}), r.ChainInfo),
    ("validators", lambda a: a.validators(), ("GET", "/validators", {}), r.Validators),
    ("supply", lambda a: a.supply(), ("GET", "/supply", {}), r.Supply),
    ("get", lambda a: a.get("/grid", zone="BKK", after=None), ("GET", "/grid", {"zone": "BKK"}),
     dict[str, int]),
    ("balance", lambda a: a.balance(ALICE), ("GET", f"/accounts/{ALICE_TEXT}", {}), Balance),
    ("accounts", lambda a: a.accounts(2, after=ALICE),
     ("GET", "/accounts", {"limit": "2", "after": ALICE_TEXT}), r.Page[Balance]),
    ("block", lambda a: a.block(), ("GET", "/blocks/latest", {}), r.Block),
    ("block by hash", lambda a: a.block("ef" * 32), ("GET", f"/blocks/hash/{'ef' * 32}", {}),
     r.Block),
    ("blocks", lambda a: a.blocks(5, after=9), ("GET", "/blocks", {"limit": "5", "after": "9"}),
     r.Page[r.Block]),
    ("tx", lambda a: a.tx("ab" * 32), ("GET", f"/txs/{'ab' * 32}", {}), None),
    ("participant", lambda a: a.participant(BOB), ("GET", f"/participants/{BOB}", {}),
     r.Participant),
    ("participants", lambda a: a.participants(after=ALICE),
     ("GET", "/participants", {"limit": "100", "after": ALICE_TEXT}), r.Page[r.Participant]),
    ("meter", lambda a: a.meter(BOB), ("GET", f"/meters/{BOB}", {}), r.Meter),
    ("meters", lambda a: a.meters(ALICE), ("GET", "/meters", {"limit": "100", "owner": ALICE_TEXT}),
     r.Page[r.Meter]),
    ("readings", lambda a: a.readings(BOB, after=900),
     ("GET", f"/meters/{BOB}/readings", {"limit": "96", "after": "900"}), r.Page[r.Reading]),
    ("licences", lambda a: a.licences(BOB), ("GET", "/licences", {"holder": BOB, "limit": "100"}),
     r.Page[r.Licence]),
    ("order", lambda a: a.order(5), ("GET", "/orders/5", {}), r.Order),
    ("orders", lambda a: a.orders(BOB), ("GET", "/orders", {"account": BOB, "limit": "100"}),
     list[r.Order]),
    ("book orders", lambda a: a.orders(zone="BKK", interval=900),
     ("GET", "/orders", {"zone": "BKK", "interval": "900", "limit": "100"}), list[r.Order]),
    ("book", lambda a: a.book("BKK", 900), ("GET", "/book/BKK/900", {"levels": "50"}), r.Book),
    ("trade", lambda a: a.trade(8), ("GET", "/trades/8", {}), r.Trade),
    ("trades", lambda a: a.trades(zone="BKK"), ("GET", "/trades", {"zone": "BKK", "limit": "100"}),
     list[r.Trade]),
    ("settlement", lambda a: a.settlement(900), ("GET", "/settlements/900", {}), r.Settlement),
    ("prices", lambda a: a.prices("BKK", 900, 1800),
     ("GET", "/prices/BKK", {"from": "900", "to": "1800"}), r.Prices),
    ("grid", lambda a: a.grid(), ("GET", "/grid", {}), r.GridStatus),
    ("flows", lambda a: a.flows(900), ("GET", "/flows/900", {}), r.Flows),
    ("certificate", lambda a: a.certificate(12), ("GET", "/certificates/12", {}), r.Certificate),
    ("certificates", lambda a: a.certificates(issued_to=BOB, status="active", limit=5),
     ("GET", "/certificates", {"status": "active", "limit": "5", "issued_to": BOB}),
     r.Page[r.Certificate]),
    ("carbon", lambda a: a.carbon(BOB, from_day=20260101),
     ("GET", f"/carbon/participants/{BOB}", {"from_day": "20260101"}), r.Carbon),
    ("carbon zones", lambda a: a.carbon(), ("GET", "/carbon/zones", {}), r.Carbon),
    ("governance", lambda a: a.governance(), ("GET", "/governance", {}), r.Governance),
    ("proposals", lambda a: a.proposals("active"),
     ("GET", "/governance/proposals", {"status": "active", "limit": "50"}), r.Page[r.Proposal]),
    ("proposal", lambda a: a.proposal(3), ("GET", "/governance/proposals/3", {}), r.Proposal),
    ("audit", lambda a: a.audit(BOB, from_height=2),
     ("GET", f"/audit/{BOB}", {"from_height": "2", "limit": "50"}), r.AuditPage),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "use", "request_made", "kind"), OPERATIONS, ids=[o[0] for o in OPERATIONS]
)
def test_every_query_is_the_same_request_and_result_on_both_clients(
    name: str, use: Callable[[Any], Any], request_made: tuple[str, str, dict[str, str]], kind: Any
) -> None:
    """Each read asks what it should and decodes the answer into its typed result, on
    both clients alike."""
    node = FakeNode()
    expected = sample(kind) if kind is not None else None
    node.canned = to_json({"items": expected, "next": None} if isinstance(expected, list)
                          else expected)  # fmt: skip
    sync_result, async_result = both(node, use)
    assert sync_result == async_result
    (seen,) = node.seen
    assert seen == (*request_made, None)
    if kind is not None:
        assert sync_result == expected
        assert to_json(sync_result) == to_json(expected)


def test_results_are_typed() -> None:
    node = FakeNode()
    balance, _ = both(node, lambda a: a.balance(BOB))
    assert balance == Balance(BOB, 1, 2, 7)
    receipt, _ = both(node, lambda a: a.tx("cd" * 32))
    assert receipt == Receipt("cd" * 32, "committed", 3)
    node.canned = to_json(sample(r.Page[r.Trade]))
    (trade,), _ = both(node, lambda a: a.trades())
    assert isinstance(trade, r.Trade) and trade.path == ["s12"]
    assert trade["buyer"] == trade.buyer and trade.get("nothing", 0) == 0  # dict-style reads
    with pytest.raises(KeyError):
        trade["nothing"]


def test_an_answer_of_another_shape_is_a_bad_response() -> None:
    node = FakeNode()
    node.canned = {"height": "not a number"}
    with pytest.raises(ApiError) as bad:
        both(node, lambda a: a.health())
    assert (bad.value.code, bad.value.status) == ("BAD_RESPONSE", 200)
    assert "Health" in bad.value.message and "height" in bad.value.message


def test_signing_asks_the_chain_id_once_and_tracks_nonces_in_flight() -> None:
    node = FakeNode()
    body = tx.Transfer(tx.Asset.THB, key("sdk/bob").address, 100)

    def three(api: Any) -> Any:
        if isinstance(api, AsyncClient):

            async def sends() -> list[str]:
                return [await api.send(ALICE, body) for _ in range(3)]

            return sends()
        return [api.send(ALICE, body) for _ in range(3)]

    hashes, async_hashes = both(node, three)
    assert hashes == async_hashes and len(set(hashes)) == 3
    sent = [tx.decode(bytes.fromhex(b["tx"])) for m, p, _, b in node.seen if p == "/txs"]
    assert [s.tx.nonce for s in sent] == [7, 8, 9]
    assert {s.tx.chain_id for s in sent} == {CHAIN}
    assert [p for _, p, _, _ in node.seen].count("/chain") == 1


def test_a_refused_nonce_resets_the_tracking() -> None:
    """Nonce 8 is refused (the ledger fell back to 5, say its transactions were dropped):
    the next send asks the ledger again instead of going on from 9."""
    node = FakeNode()
    body = tx.RedeemThb(1)
    with Client("http://node", transport=httpx.MockTransport(node.answer)) as api:
        api.send(ALICE, body)
        node.refuse["/txs"] = "NONCE_GAP"
        with pytest.raises(ApiError) as refused:
            api.send(ALICE, body)
        assert refused.value.code == "NONCE_GAP"
        node.nonce = 5
        api.send(ALICE, body)
    sent = [tx.decode(bytes.fromhex(b["tx"])) for _, p, _, b in node.seen if p == "/txs"]
    assert [s.tx.nonce for s in sent] == [7, 8, 5]


def test_errors_carry_the_api_code_on_both_clients() -> None:
    node = FakeNode()
    mock = httpx.MockTransport(node.answer)
    with Client("http://node", transport=mock) as api, pytest.raises(ApiError) as refused:
        node.refuse[f"/accounts/{BOB}"] = "NOT_FOUND"
        api.balance(BOB)
    assert (refused.value.status, refused.value.code) == (409, "NOT_FOUND")

    async def run() -> None:
        async with AsyncClient("http://node", transport=mock) as api:
            node.refuse[f"/accounts/{BOB}"] = "NOT_FOUND"
            await api.balance(BOB)

    with pytest.raises(ApiError) as async_refused:
        asyncio.run(run())
    assert (async_refused.value.status, async_refused.value.code) == (409, "NOT_FOUND")
    with pytest.raises(ApiError) as broken:
        both(node, lambda a: a.get("/broken"))
    assert (broken.value.code, broken.value.message) == ("HTTP_502", "bad gateway")
    with pytest.raises(ValueError, match="not both"):
        Client("http://node").carbon(BOB, zone="CEN")
    with pytest.raises(ValueError, match="not both"):
        asyncio.run(AsyncClient("http://node").carbon(BOB, zone="CEN"))


class Extended(Api):
    """An entry added to the table, as a new endpoint would be."""

    @endpoint
    def members(self, at: int | None = None) -> Call[dict[str, Any]]:
        """The validator set."""
        return Call("GET", "/validators", as_json, {"height": at})


class ExtendedClient(Extended, Client):
    pass


class ExtendedAsyncClient(Extended, AsyncClient):
    pass


def test_one_table_entry_is_a_method_of_both_clients() -> None:
    node = FakeNode()
    node.canned = {"path": "/validators"}
    mock = httpx.MockTransport(node.answer)
    with ExtendedClient("http://node", transport=mock) as api:
        assert api.members(at=4) == {"path": "/validators"}
        assert api.members.__doc__ == "The validator set."
        assert str(inspect.signature(api.members)) == "(at: 'int | None' = None)"

    async def run() -> dict[str, Any]:
        async with ExtendedAsyncClient("http://node", transport=mock) as api:
            assert inspect.iscoroutinefunction(api.members)
            return await api.members(at=4)

    assert asyncio.run(run()) == {"path": "/validators"}
    assert [q for _, _, q, _ in node.seen] == [{"height": "4"}, {"height": "4"}]
