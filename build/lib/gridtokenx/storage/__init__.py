"""RocksDB: blocks, the transaction index, state, the consensus WAL, the pool and the API's
secondary indexes, one synced batch per height."""
