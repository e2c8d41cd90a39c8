"""Grid telemetry: EGAT's and MEA/PEA's status records and their validation (what a status means
for trading, curtailment and halts, is the market's: ledger/market/)."""
