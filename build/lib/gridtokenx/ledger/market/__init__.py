"""The energy market: orders per zone and 15-minute delivery interval, price-time matching
within and across zones, and settlement against metered delivery. Pure, like the ledger."""
