"""Encrypted transport throughput on 127.0.0.1, next to plain asyncio TCP in the same run.

One connection, `--frames` frames of `--size` bytes one way, writes coalesced by the
transport; the receiver counts them. Prints frames/s for the encrypted transport and for
length-prefixed frames over plain asyncio TCP, and writes bench/results/transport.json.

    python bench/transport_bench.py [--frames 100000] [--size 200]
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import struct
import sys
import time
from pathlib import Path

import benchkit
from gridtokenx.p2p import transport
from gridtokenx.wire.crypto import PrivateKey

RESULTS = Path(__file__).parent / "results" / "transport.json"
LENGTH = struct.Struct(">I")


async def encrypted(frames: int, size: int) -> float:
    done = asyncio.Event()

    async def handle(conn: transport.Connection) -> None:
        for _ in range(frames):
            await conn.receive()
        done.set()
        await conn.close()

    server = await transport.serve("127.0.0.1", 0, PrivateKey.from_dev_label("bench/b"), handle)
    port = server.sockets[0].getsockname()[1]
    conn = await transport.connect("127.0.0.1", port, PrivateKey.from_dev_label("bench/a"))
    payload = b"x" * size
    started = time.perf_counter()
    for _ in range(frames):
        await conn.send(payload)
    await conn.flush()
    await asyncio.wait_for(done.wait(), 120)
    elapsed = time.perf_counter() - started
    await conn.close()
    server.close()
    await server.wait_closed()
    return frames / elapsed


async def plain(frames: int, size: int) -> float:
    done = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(frames):
            (length,) = LENGTH.unpack(await reader.readexactly(4))
            await reader.readexactly(length)
        done.set()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    frame = LENGTH.pack(size) + b"x" * size
    started = time.perf_counter()
    for n in range(frames):
        writer.write(frame)
        if n % 1000 == 0:
            await writer.drain()
    await writer.drain()
    await asyncio.wait_for(done.wait(), 120)
    elapsed = time.perf_counter() - started
    writer.close()
    server.close()
    await server.wait_closed()
    return frames / elapsed


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=200)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    secure = asyncio.run(encrypted(args.frames, args.size))
    raw = asyncio.run(plain(args.frames, args.size))
    result: dict[str, object] = {
        "benchmark": "transport",
        "python": platform.python_version(),
        "frames": args.frames,
        "frame_bytes": args.size,
        "encrypted_frames_per_s": round(secure),
        "plain_tcp_frames_per_s": round(raw),
        "encrypted_vs_plain": round(secure / raw, 3),
    }
    benchkit.print_figures(result)
    benchkit.write(result, args.output)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
