"""RocksDB's options for a node's store, tuned for what costs a block at a large state.

A block reads its records and, for the state root, the tree's buckets and children blobs
(`ledger.bucket_tree`) by key, at random: every key is placed by a hash, so every SST file
of every level covers the whole key range. RocksDB's defaults (an 8 MB block cache per
column family, no filters) made each such read probe every level and mostly miss the
cache; at 6 million records those reads were most of the root's CPU. So:

- one LRU block cache shared by all column families, sized by the node's
  `storage.cache_mb` (DEFAULT_CACHE_MB), so the hot part of the tree and the records stays
  decoded in memory whichever family it belongs to;
- Bloom filters (10 bits a key, about 1 % false positives) on the families read by key,
  `state` and `tree`, so a read skips the levels that do not hold its key, and a hash
  index inside each data block, so a hit inside a block costs no binary search;
- no compression for `tree`: its values are SHA-256 hashes, which do not compress, so
  compressing them only spends CPU at every flush and compaction and at every read;
- the table files are read through memory maps (`allow_mmap_reads`): a block is read
  where the operating system's page cache holds it, without a `pread` system call
  copying it out first (and, for the uncompressed `tree`, without a copy into the block
  cache at all). A block's ~2,000 bucket reads were almost all block-cache misses at 6
  and 20 million records (the tree outgrows the cache); measured on a 6-million-record
  store, a cold bucket read fell from 6.2-6.7 to 3.3-3.6 µs of CPU. The mapped pages a
  node has touched count in its RSS as file pages (`RssFile`, reclaimed by the kernel
  like any page cache, which held them before too); its own memory is `RssAnon`. A
  node whose memory is watched by its RSS can turn this off (`[storage] mmap_reads`).

A store being state-synced (`bulk`) only takes writes until the join is done, so its
`state`, `tree` and `index` families keep their memtables as plain vectors, sorted once at
each flush: a skip list sorts every insert as it comes, which for a million meters'
randomly placed keys cost more CPU than writing them.

Filters and indexes live with the table readers (outside the cache): about 1.3 bytes a
key, some 50 MB at 20 million records, and always at hand.
"""

from __future__ import annotations

from typing import Final

from rocksdict import (
    BlockBasedOptions,
    Cache,
    DataBlockIndexType,
    DBCompressionType,
    MemtableFactory,
    Options,
)

DEFAULT_CACHE_MB: Final = 512
"""The block cache a node's store gets unless configured (`storage.cache_mb`). It holds the
blocks of the compressed families (the records, blocks, indexes): RocksDB reads the
uncompressed `tree` family's blocks straight from the memory-mapped table files, never
through this cache, so the tree's buckets live in the operating system's page cache
(about 400 MB at 6 million records, 1.2 GB at 20 million), counted in the node's RSS as
mapped-file pages once it touched them."""
BLOOM_BITS_PER_KEY: Final = 10
POINT_READ: Final = frozenset({"state", "tree"})
INCOMPRESSIBLE: Final = frozenset({"tree"})
BULK: Final = frozenset({"state", "tree", "index"})  # what a state sync writes
READ_THREADS: Final = 16
"""Threads a store spreads a block's reads over (`Store.tree_bucket_many`,
`Store.tree_warm`, `Store.records_warm`). They mostly wait: on a page fault of a table
file that is not in memory, which under a memory limit is most of a block's 2,000 random
bucket reads at 20 million records; one multi-get took 67-98 ms for them there, 4
threads 35-60 ms, 16 and 32 threads 27-29 ms (ADR 0007)."""
COLD_READ_SHARE: Final = 1 / 16
"""A root's bucket reads (timed in one multi-get) that had the disk read for more than
this share of its buckets (major page faults of the memory-mapped table files, or block
reads with `mmap_reads` off, on the reading thread) are not in memory, and the next
blocks' reads start ahead (`Store`, with `read_ahead` left to measure): under a 2 GB
limit at 20 million records about 2,200 faults for 2,000 buckets. Counted, not timed: a
wall-clock threshold (5 µs a bucket) turned reading ahead on in a devnet whose state is
all in memory, as soon as four validators on two cores were preempted mid-read, and the
reader threads' hand-offs took its saturation from 2,280 to 1,390 orders/s (331 against
189 µs of CPU per order, December 2026)."""
PROBE_EVERY: Final = 64
"""While reading ahead, every this many roots one block is not read ahead and its root's
reads are timed again, so a store that came to fit in memory stops paying for it."""
READ_SLICE: Final = 32
"""The fewest keys a reader thread is given by a spread read: a hand-off costs some tens
of µs, 32 cold reads a few ms under a memory limit."""


def database(cache_mb: int, bulk: bool = False, mmap_reads: bool = True) -> tuple[Options, Cache]:
    """The database's own options, and the cache every family's table shares
    (`mmap_reads`: the table files read through memory maps, `storage.mmap_reads`)."""
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    options.create_missing_column_families(True)
    options.set_allow_mmap_reads(mmap_reads)
    if bulk:  # a vector memtable takes one writer at a time
        options.set_allow_concurrent_memtable_write(False)
    return options, Cache(cache_mb * 2**20)


def family(name: str, cache: Cache, bulk: bool = False) -> Options:
    """Options for the column family `name`, reading its blocks through `cache` (`bulk`:
    for a store being state-synced)."""
    table = BlockBasedOptions()
    table.set_block_cache(cache)
    table.set_format_version(5)
    if name in POINT_READ:
        table.set_bloom_filter(BLOOM_BITS_PER_KEY, False)
        table.set_data_block_index_type(DataBlockIndexType.binary_and_hash())
    options = Options(raw_mode=True)
    options.set_block_based_table_factory(table)
    if name in INCOMPRESSIBLE:
        options.set_compression_type(DBCompressionType.none())
    if bulk and name in BULK:
        options.set_memtable_factory(MemtableFactory.vector())
    return options
