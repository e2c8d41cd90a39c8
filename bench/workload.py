"""A trading workload as signed transactions, for driving a real chain.

`MarketLoad` prepares, on a devnet genesis, licensed 1 MW solar sellers and funded buyers
in Bangkok, and then a stream of orders that cross: each seller offers 1 kWh at a time and
each buyer bids for 1 kWh above the asks, spread over eight delivery intervals starting an
hour from now. The setup comes in phases, because a sender must exist before the mempool
admits its transactions; every transaction is applied once in a local sandbox as it is
signed, so the whole stream is known to apply in the order given.
"""

from __future__ import annotations

from collections.abc import Iterator

from gridtokenx.ledger import genesis
from gridtokenx.ledger.sandbox import Sandbox
from gridtokenx.wire import crypto, tx

INTERVAL = 900
P, L = tx.ParticipantKind, tx.LicenceKind


def _key(label: str) -> crypto.PrivateKey:
    return crypto.PrivateKey.from_dev_label(f"bench-load/{label}")


class MarketLoad:
    def __init__(self, spec: genesis.Genesis, now: int, accounts_per_side: int = 300) -> None:
        self.sb = Sandbox(spec=spec)
        self.sb.time = now
        self.sellers = [_key(f"seller/{i}") for i in range(accounts_per_side)]
        self.buyers = [_key(f"buyer/{i}") for i in range(accounts_per_side)]
        self.custodian = _key("custodian")
        self.first_interval = (now // INTERVAL + 4) * INTERVAL  # an hour ahead, at least
        self._nonces: dict[bytes, int] = {}

    def _signed(self, key: crypto.PrivateKey, body: tx.Body) -> bytes:
        nonce = self._nonces.get(key.address, self.sb.next_nonce(key))
        signed = tx.make(key, self.sb.chain_id, nonce, body)
        self._nonces[key.address] = nonce + 1
        return signed.encode()

    def _phase(self, items: list[tuple[crypto.PrivateKey, tx.Body]]) -> list[bytes]:
        """Sign and apply in the sandbox (raising if anything would not apply)."""
        out = []
        for key, body in items:
            out.append(self._signed(key, body))
            self.sb.submit(key, body)
        return out

    def setup(self) -> list[list[bytes]]:
        """Phases to commit one after the other: MEA registers the participants and
        meters; the ERC licenses the custodian and the sellers; the custodian issues THB to
        the buyers. (A transaction waiting for another sender's would be retried, and
        dropped after failing in three blocks: phases keep the setup clear of that.)"""
        mea, erc = self.sb.authority("MEA"), self.sb.authority("ERC")
        year = self.sb.time + 365 * 86_400
        registrations: list[tuple[crypto.PrivateKey, tx.Body]] = [
            (mea, tx.RegisterParticipant(self.custodian.address, "BKK", P.CUSTODIAN, "bank")),
        ]
        licences: list[tuple[crypto.PrivateKey, tx.Body]] = [
            (erc, tx.GrantLicence(self.custodian.address, L.CUSTODIAN, year)),
        ]
        for i, seller in enumerate(self.sellers):
            meter = _key(f"meter/{i}")
            registrations += [
                (mea, tx.RegisterParticipant(seller.address, "BKK", P.GENERATOR, f"s{i}")),
                (mea, tx.RegisterMeter(meter.public_key, seller.address, "BKK",
                                       tx.MeterKind.SOLAR, 1_000_000)),
            ]  # fmt: skip
            licences.append((erc, tx.GrantLicence(seller.address, L.SELLER, year)))
        for i, buyer in enumerate(self.buyers):
            registrations.append(
                (mea, tx.RegisterParticipant(buyer.address, "BKK", P.BUSINESS, f"b{i}"))
            )
        money: list[tuple[crypto.PrivateKey, tx.Body]] = [
            (self.custodian, tx.IssueThb(buyer.address, 10**10)) for buyer in self.buyers
        ]
        return [self._phase(registrations), self._phase(licences), self._phase(money)]

    def orders(self, count: int) -> Iterator[bytes]:
        """`count` orders, sells and buys alternating, each buy crossing a resting sell."""
        for i in range(count):
            k = i // 2
            interval = self.first_interval + INTERVAL * (k % 8)
            if i % 2 == 0:
                who, side, price = self.sellers[k % len(self.sellers)], tx.Side.SELL, 300
            else:
                who, side, price = self.buyers[k % len(self.buyers)], tx.Side.BUY, 320
            body = tx.PlaceOrder(side, "BKK", interval, 1_000, price)
            yield self._phase([(who, body)])[0]


def grid_status(key: crypto.PrivateKey, chain_id: str, nonce: int, measured_at: int,
                n: int) -> bytes:  # fmt: skip
    """EGAT's transmission status as the grid benchmarks send it, realistic: the frequency
    near 50 Hz (inside the band, so no zone halts), the BKK-CEN link re-rated each time
    (a cut runs the curtailment check; 600-800 MW leaves every trade in place) and
    Bangkok's demand rising. `n` varies it; `measured_at` must grow from one to the next."""
    body = tx.TransmissionStatus(
        measured_at,
        50_000 + (n % 7 - 3) * 10,
        (tx.LinkStatus("BKK", "CEN", 800_000 - (n % 5) * 50_000, 400_000),),
        (tx.ZoneBalance("BKK", 2_000_000, 9_000_000 + n * 1_000),),
    )
    return tx.make(key, chain_id, nonce, body).encode()
