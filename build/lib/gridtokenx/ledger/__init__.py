"""The ledger: state, and the pure state transition `transition.apply` that changes it.

One module per bounded context (accounts, registry, tokens, metering, certificates,
validator_set, governance, grid/, market/), each owning its records, key layout, rules and
read-side queries; `transition` composes them. Pure: no I/O, no clock but the block's, no
randomness, integers only. Imports only `wire`.
"""
