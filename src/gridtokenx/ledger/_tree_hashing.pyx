# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The bucket tree's loops in C (`ledger/bucket_tree.py` keeps the reference in Python).

Each function here is one loop of `BucketTree` that runs once per key, bucket or children
blob of a block: in Python each step is a few C calls with the interpreter between them
(a `hashlib` object, a slice, a dict lookup), which at 10,000 hashes a block was most of the
state root. Here they hash with OpenSSL's SHA-256 from started contexts copied as structs,
and touch the Python objects the tree stores (dicts of leaf hashes, bytearray blobs) through
the C API. Same inputs, same bytes as the Python path: the golden vectors, the formula
check and a property test over random blocks hold both to it.
"""

from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_DelItem, PyDict_GetItem, PyDict_Next, PyDict_SetItem
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.object cimport PyObject
from cpython.set cimport PySet_Add
from libc.stdint cimport uint32_t
from libc.stdlib cimport qsort
from libc.string cimport memcmp, memcpy


cdef extern from "openssl/sha.h" nogil:
    ctypedef struct SHA256_CTX:
        pass
    int SHA256_Init(SHA256_CTX *c)
    int SHA256_Update(SHA256_CTX *c, const void *data, size_t len)
    int SHA256_Final(unsigned char *md, SHA256_CTX *c)


cdef enum:
    BLOB = 512  # a children blob: 16 hashes of 32 bytes

cdef SHA256_CTX _index_ctx, _leaf_ctx, _bucket_ctx, _node_ctx
cdef bint _started = False


cdef inline int _ready() except -1:
    if not _started:
        raise RuntimeError("_tree_hashing.start() was not called: the tags are not absorbed")
    return 0


cdef void _start(SHA256_CTX *ctx, bytes prefix):
    SHA256_Init(ctx)
    SHA256_Update(ctx, PyBytes_AS_STRING(prefix), PyBytes_GET_SIZE(prefix))


def start(bytes index, bytes leaf, bytes bucket, bytes node) -> None:
    """Absorb the four domain prefixes (`crypto.tag_prefix`) the loops hash after; called
    once by `bucket_tree` as it imports this module, so the tags are written in one place."""
    _start(&_index_ctx, index)
    _start(&_leaf_ctx, leaf)
    _start(&_bucket_ctx, bucket)
    _start(&_node_ctx, node)
    global _started
    _started = True


cdef inline bytes _digest(SHA256_CTX *ctx):
    cdef unsigned char out[32]
    SHA256_Final(out, ctx)
    return PyBytes_FromStringAndSize(<char *>out, 32)


cdef inline long long _position(object key) except -1:
    if type(key) is not bytes:
        raise TypeError(f"a key is bytes, not {type(key).__name__}")
    cdef SHA256_CTX ctx = _index_ctx
    cdef unsigned char out[32]
    SHA256_Update(&ctx, PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key))
    SHA256_Final(out, &ctx)
    return <long long>((<uint32_t>out[0] << 24) | (<uint32_t>out[1] << 16) | (<uint32_t>out[2] << 8) | out[3])


cdef inline bytes _leaf(object key, object value):
    if type(key) is not bytes or type(value) is not bytes:
        raise TypeError("a key and its value are bytes")
    cdef SHA256_CTX ctx = _leaf_ctx
    cdef Py_ssize_t n = PyBytes_GET_SIZE(key)
    cdef unsigned char size[4]
    size[0] = (n >> 24) & 0xFF
    size[1] = (n >> 16) & 0xFF
    size[2] = (n >> 8) & 0xFF
    size[3] = n & 0xFF
    SHA256_Update(&ctx, size, 4)
    SHA256_Update(&ctx, PyBytes_AS_STRING(key), n)
    SHA256_Update(&ctx, PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value))
    return _digest(&ctx)


def key_positions(keys) -> list:
    """`bucket_tree.key_positions`: the 32-bit position of each key."""
    _ready()
    cdef list out = []
    for key in keys:
        out.append(_position(key))
    return out


def leaf_hashes(pairs) -> list:
    """`bucket_tree.leaf_hashes`: the leaf hash of each (key, value) pair."""
    _ready()
    cdef list out = []
    for key, value in pairs:
        out.append(_leaf(key, value))
    return out


def set_many(
    list keys, list values, list positions, int shift, dict buckets, fetch, dict old,
    set dirty,
) -> int:
    """The loop of `BucketTree.set_many`: each key's leaf into its bucket (`fetch(index)`:
    the bucket memory lacks, read from the source, or None), the first leaf of each key into
    `old` (a trial's journal, or None), each touched bucket into `dirty`. Returns the change
    in the record count."""
    _ready()
    cdef Py_ssize_t i, n = len(keys)
    cdef long count = 0
    cdef object key, value, position, index, bucket, had
    cdef PyObject *found
    if len(values) != n or len(positions) != n:
        raise ValueError("keys, values and positions differ in length")
    for i in range(n):
        key = keys[i]
        value = values[i]
        position = positions[i]
        index = position >> shift
        found = PyDict_GetItem(buckets, index)
        if found is NULL:
            bucket = fetch(index)
            if bucket is None:
                if value is None:
                    continue  # nothing to delete, and no empty bucket to leave behind
                bucket = {}
                buckets[index] = bucket
        else:
            bucket = <object>found
        found = PyDict_GetItem(bucket, key)
        had = None if found is NULL else <object>found
        if old is not None and key not in old:
            old[key] = (position, had)
        if value is None:
            if had is not None:
                PyDict_DelItem(bucket, key)
                count -= 1
        else:
            PyDict_SetItem(bucket, key, _leaf(key, value))
            count += had is None
        PySet_Add(dirty, index)
    return count


ctypedef struct _Leaf:
    const char *key
    Py_ssize_t size
    PyObject *leaf


cdef int _by_key(const void *a, const void *b) noexcept nogil:
    """Python's order of bytes: the common prefix compared, then the shorter first."""
    cdef const _Leaf *x = <const _Leaf *>a
    cdef const _Leaf *y = <const _Leaf *>b
    cdef int found = memcmp(x.key, y.key, x.size if x.size < y.size else y.size)
    if found != 0:
        return found
    return (x.size > y.size) - (x.size < y.size)


cdef Py_ssize_t _sorted_leaves(dict bucket, _Leaf *leaves) except -1:
    """A bucket's keys and leaf hashes into `leaves` (room for every key), in key order:
    their count."""
    cdef Py_ssize_t at = 0, n = 0
    cdef PyObject *key
    cdef PyObject *leaf
    while PyDict_Next(bucket, &at, &key, &leaf):
        if type(<object>key) is not bytes or type(<object>leaf) is not bytes:
            raise TypeError("a bucket maps bytes keys to bytes leaf hashes")
        leaves[n].key = PyBytes_AS_STRING(<object>key)
        leaves[n].size = PyBytes_GET_SIZE(<object>key)
        leaves[n].leaf = leaf
        n += 1
    qsort(leaves, n, sizeof(_Leaf), _by_key)
    return n


cdef bytes _bucket_hash(dict bucket, _Leaf *leaves):
    """The hash of a bucket over its leaves in key order, sorted in C (`leaves`: room for
    every key of the bucket)."""
    cdef Py_ssize_t n, i
    cdef SHA256_CTX ctx = _bucket_ctx
    n = _sorted_leaves(bucket, leaves)
    for i in range(n):
        SHA256_Update(&ctx, PyBytes_AS_STRING(<object>leaves[i].leaf),
                      PyBytes_GET_SIZE(<object>leaves[i].leaf))
    return _digest(&ctx)


cdef class _Room:
    """Room for the leaves of the largest bucket seen, grown as needed."""

    cdef _Leaf *leaves
    cdef Py_ssize_t size

    def __cinit__(self) -> None:
        self.size = 64
        self.leaves = <_Leaf *>PyMem_Malloc(self.size * sizeof(_Leaf))
        if self.leaves is NULL:
            raise MemoryError()

    def __dealloc__(self) -> None:
        PyMem_Free(self.leaves)

    cdef _Leaf *fit(self, Py_ssize_t n) except NULL:
        if n > self.size:
            PyMem_Free(self.leaves)
            self.leaves = <_Leaf *>PyMem_Malloc(n * sizeof(_Leaf))
            if self.leaves is NULL:
                self.size = 0
                raise MemoryError()
            self.size = n
        return self.leaves


def hash_buckets(dict buckets, dirty, bint keep_empty, bytes empty) -> dict:
    """The loop of `BucketTree._hash_buckets`: the hash of each bucket in `dirty` over its
    leaves in key order (`empty` for one without keys, dropped unless `keep_empty`)."""
    _ready()
    cdef dict changed = {}
    cdef object bucket
    cdef PyObject *found
    cdef _Room room = _Room()
    for index in dirty:
        found = PyDict_GetItem(buckets, index)
        if found is not NULL and <object>found:
            bucket = <object>found
            changed[index] = _bucket_hash(bucket, room.fit(len(bucket)))
        else:
            changed[index] = empty
            if not keep_empty and found is not NULL:
                PyDict_DelItem(buckets, index)
    return changed


cdef inline void _put(char *blob, long index, object hashed) except *:
    if type(hashed) is not bytes or PyBytes_GET_SIZE(hashed) != 32:
        raise ValueError("a node hash is 32 bytes")
    memcpy(blob + ((index & 15) << 5), PyBytes_AS_STRING(hashed), 32)


cdef extern from *:
    void __builtin_prefetch(const void *address, int write, int locality) nogil


cdef int _by_long(const void *a, const void *b) noexcept nogil:
    cdef long x = (<const long *>a)[0], y = (<const long *>b)[0]
    return (x > y) - (x < y)


cdef enum:
    AHEAD = 4  # blobs prefetched ahead of the one being written or hashed


def hash_level(bytearray data, dict changed) -> dict:
    """`BucketTree._hash_level` on a pinned level (one buffer, the blob of parent p at
    bytes [512 p, 512 p + 512)): each changed hash written in place, then each touched blob
    hashed. Returns parent -> hash, the changed hashes of the level above. The memory of a
    deep level (512 MB at 20 million records) is asked for a few blobs ahead of its use:
    each blob is a cache miss, and the CPU would otherwise wait for them one by one."""
    _ready()
    cdef char *base = PyByteArray_AS_STRING(data)
    cdef Py_ssize_t size = PyByteArray_GET_SIZE(data), n = len(changed), i = 0, j, parents
    cdef long index
    cdef dict above = {}
    cdef SHA256_CTX ctx
    cdef long *spots = <long *>PyMem_Malloc((n + 1) * sizeof(long))
    cdef PyObject **hashes = <PyObject **>PyMem_Malloc((n + 1) * sizeof(PyObject *))
    if spots is NULL or hashes is NULL:
        PyMem_Free(spots)
        PyMem_Free(hashes)
        raise MemoryError()
    try:
        for key, hashed in changed.items():  # checked whole first: bad input changes nothing
            index = key
            if index < 0 or ((index >> 4) + 1) * BLOB > size:
                raise IndexError(f"no node {index} in a level of {size // BLOB} blobs")
            if type(hashed) is not bytes or PyBytes_GET_SIZE(hashed) != 32:
                raise ValueError("a node hash is 32 bytes")
            spots[i] = index
            hashes[i] = <PyObject *>hashed
            i += 1
        for i in range(n):
            if i + AHEAD < n:
                __builtin_prefetch(base + (spots[i + AHEAD] << 5), 1, 0)
            memcpy(base + (spots[i] << 5), PyBytes_AS_STRING(<object>hashes[i]), 32)
            spots[i] >>= 4
        qsort(spots, n, sizeof(long), _by_long)  # the parents, each once
        parents = 0
        for i in range(n):
            if parents == 0 or spots[parents - 1] != spots[i]:
                spots[parents] = spots[i]
                parents += 1
        for i in range(parents):
            if i + AHEAD < parents:
                for j in range(0, BLOB, 64):
                    __builtin_prefetch(base + spots[i + AHEAD] * BLOB + j, 0, 0)
            ctx = _node_ctx
            SHA256_Update(&ctx, base + spots[i] * BLOB, BLOB)
            above[spots[i]] = _digest(&ctx)
    finally:
        PyMem_Free(spots)
        PyMem_Free(hashes)
    return above


def hash_dict_level(
    dict kids, dict changed, fetch, bytes empty_blob, bytes empty_above, bint keep_empty
) -> dict:
    """The dict-level loop of `BucketTree._hash_levels`: each changed hash written into
    its parent's blob (from `kids`, else `fetch(parent)`, a bytearray kept in `kids`), then
    each touched blob hashed; an all-empty blob hashes to `empty_above` and is dropped from
    `kids` unless `keep_empty`. Returns parent -> hash, as `hash_level`."""
    _ready()
    cdef dict blobs = {}
    cdef dict above = {}
    cdef long index
    cdef object parent, blob
    cdef PyObject *found
    cdef SHA256_CTX ctx
    for key, hashed in changed.items():
        index = key
        parent = index >> 4
        found = PyDict_GetItem(blobs, parent)
        if found is NULL:
            found = PyDict_GetItem(kids, parent)
            blob = fetch(parent) if found is NULL else <object>found
            if type(blob) is not bytearray or PyByteArray_GET_SIZE(blob) != BLOB:
                raise TypeError("a children blob is a bytearray of 512 bytes")
            blobs[parent] = blob
        else:
            blob = <object>found
        _put(PyByteArray_AS_STRING(blob), index, hashed)
    for parent, blob in blobs.items():
        if memcmp(PyByteArray_AS_STRING(blob), PyBytes_AS_STRING(empty_blob), BLOB) == 0:
            above[parent] = empty_above
            if not keep_empty:
                del kids[parent]
        else:
            ctx = _node_ctx
            SHA256_Update(&ctx, PyByteArray_AS_STRING(blob), BLOB)
            above[parent] = _digest(&ctx)
    return above


cdef inline Py_ssize_t _length(const unsigned char *p, Py_ssize_t at, Py_ssize_t end,
                               Py_ssize_t *size):
    """The length of the msgpack bin at `at` (size: its header's), -1 if it is not one."""
    cdef unsigned char tag
    if at >= end:
        return -1
    tag = p[at]
    if tag == 0xC4 and at + 2 <= end:
        size[0] = 2
        return p[at + 1]
    if tag == 0xC5 and at + 3 <= end:
        size[0] = 3
        return (<Py_ssize_t>p[at + 1] << 8) | p[at + 2]
    if tag == 0xC6 and at + 5 <= end:
        size[0] = 5
        return ((<Py_ssize_t>p[at + 1] << 24) | (<Py_ssize_t>p[at + 2] << 16)
                | (<Py_ssize_t>p[at + 3] << 8) | p[at + 4])
    return -1


cdef object _decode(bytes blob):
    """A bucket as stored (`encode_bucket`: an array of [key, leaf] arrays of two bins) as
    key -> leaf, or None for anything else (the caller's msgspec decoder then says why)."""
    cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(blob)
    cdef Py_ssize_t end = PyBytes_GET_SIZE(blob), at = 1, count, i, n, head = 0
    cdef dict pairs = {}
    cdef bytes key
    if end == 0:
        return None
    if p[0] & 0xF0 == 0x90:
        count = p[0] & 0x0F
    elif p[0] == 0xDC and end >= 3:
        count, at = (<Py_ssize_t>p[1] << 8) | p[2], 3
    elif p[0] == 0xDD and end >= 5:
        count = ((<Py_ssize_t>p[1] << 24) | (<Py_ssize_t>p[2] << 16)
                 | (<Py_ssize_t>p[3] << 8) | p[4])
        at = 5
    else:
        return None
    for i in range(count):
        if at >= end or p[at] != 0x92:
            return None
        n = _length(p, at + 1, end, &head)
        if n < 0 or at + 1 + head + n > end:
            return None
        key = PyBytes_FromStringAndSize(<const char *>p + at + 1 + head, n)
        at += 1 + head + n
        n = _length(p, at, end, &head)
        if n < 0 or at + head + n > end:
            return None
        PyDict_SetItem(pairs, key, PyBytes_FromStringAndSize(<const char *>p + at + head, n))
        at += head + n
    return pairs if at == end else None


def decode_buckets(dict buckets, list indexes, list blobs, fallback) -> None:
    """The loop of `BucketTree.prefetch`: each read bucket decoded into `buckets` (None:
    empty); a blob this decoder does not recognise goes to `fallback` (the msgspec one)."""
    cdef Py_ssize_t i
    cdef object blob, pairs
    if len(indexes) != len(blobs):
        raise ValueError("indexes and blobs differ in length")
    for i in range(len(indexes)):
        blob = blobs[i]
        if blob is None:
            pairs = {}
        else:
            pairs = _decode(blob) if type(blob) is bytes else None
            if pairs is None:
                pairs = dict(fallback(blob))
        buckets[indexes[i]] = pairs


cdef inline Py_ssize_t _bin_head(Py_ssize_t n) noexcept:
    """The length of a msgpack bin's header for `n` bytes (bin8, bin16 or bin32)."""
    return 2 if n < 0x100 else (3 if n < 0x10000 else 5)


cdef inline Py_ssize_t _write_bin(unsigned char *out, const char *data, Py_ssize_t n) noexcept:
    cdef Py_ssize_t head = _bin_head(n)
    if head == 2:
        out[0], out[1] = 0xC4, <unsigned char>n
    elif head == 3:
        out[0], out[1], out[2] = 0xC5, (n >> 8) & 0xFF, n & 0xFF
    else:
        out[0], out[1], out[2] = 0xC6, (n >> 24) & 0xFF, (n >> 16) & 0xFF
        out[3], out[4] = (n >> 8) & 0xFF, n & 0xFF
    memcpy(out + head, data, n)
    return head + n


cdef bytes _encode(dict bucket, _Leaf *leaves):
    """`encode_bucket` in C: a msgpack array of [key, leaf hash] arrays in key order, with
    msgspec's choices (the shortest array and bin headers), sorted as `_bucket_hash` sorts
    (`leaves`: room for every key of the bucket)."""
    cdef Py_ssize_t at, n, i, leaf_size, total
    cdef unsigned char *out
    cdef bytes blob
    n = _sorted_leaves(bucket, leaves)
    total = 1 if n < 16 else (3 if n < 0x10000 else 5)
    for i in range(n):
        leaf_size = PyBytes_GET_SIZE(<object>leaves[i].leaf)
        total += 1 + _bin_head(leaves[i].size) + leaves[i].size + _bin_head(leaf_size) + leaf_size
    blob = PyBytes_FromStringAndSize(NULL, total)
    out = <unsigned char *>PyBytes_AS_STRING(blob)
    if n < 16:
        out[0], at = 0x90 | n, 1
    elif n < 0x10000:
        out[0], out[1], out[2], at = 0xDC, (n >> 8) & 0xFF, n & 0xFF, 3
    else:
        out[0], out[1], out[2], out[3], out[4] = 0xDD, (n >> 24) & 0xFF, (n >> 16) & 0xFF, (n >> 8) & 0xFF, n & 0xFF
        at = 5
    for i in range(n):
        out[at] = 0x92
        at += 1
        at += _write_bin(out + at, leaves[i].key, leaves[i].size)
        at += _write_bin(out + at, PyBytes_AS_STRING(<object>leaves[i].leaf),
                         PyBytes_GET_SIZE(<object>leaves[i].leaf))
    return blob


def encode_bucket(dict leaves) -> bytes:
    """`bucket_tree.encode_bucket`: a bucket (key -> leaf hash) as stored."""
    cdef _Room room = _Room()  # held while `_encode` writes into its leaves
    return _encode(leaves, room.fit(len(leaves)))


def encode_buckets(dict buckets, indexes, fetch) -> dict:
    """The loop of `BucketTree.take_writes` over its unsaved buckets: index -> the bucket
    as stored (`encode_bucket`), None for an empty one; a bucket memory lacks is
    `fetch(index)` (read from the source: a dict, or None)."""
    cdef dict out = {}
    cdef object bucket
    cdef PyObject *found
    cdef _Room room = _Room()
    for index in indexes:
        found = PyDict_GetItem(buckets, index)
        bucket = fetch(index) if found is NULL else <object>found
        if not bucket:
            out[index] = None
        elif type(bucket) is not dict:
            raise TypeError("a bucket is a dict of leaf hashes")
        else:
            out[index] = _encode(bucket, room.fit(len(<dict>bucket)))
    return out
