"""A memory cgroup around one measured process: its memory as the kernel enforces it.

A node's RSS counts the table-file pages RocksDB maps (`storage.options`), which the
kernel reclaims like any page cache; whether the node holds within a memory budget is
only shown by running it under a limit and letting the kernel reclaim. `MemoryCgroup`
creates a cgroup with the limit (`memory.max`, or `memory.limit_in_bytes` where the
memory controller is mounted as cgroup v1), starts the child inside it (it moves itself
in before exec, so every page it touches is charged there), reads the peak and the
anonymous/file split, and removes the cgroup afterwards.

Page cache is charged to the cgroup that first brought a page in. A store copied in by
the parent would have its pages charged to the parent, free for the child: `drop_cache`
writes a directory's files out and drops their cached pages, and the child, once in the
cgroup, reads them back (`warm_cache`), so that it is charged for every page it finds
cached: all of them without a limit (as the benchmark runs without a cgroup), what fits
under one.

Placement: with cgroup v2 (the memory controller in /sys/fs/cgroup/cgroup.controllers),
a cgroup under the root, /sys/fs/cgroup/<name>; with the memory controller on cgroup v1,
a child of this process's own memory cgroup, so that whatever limits and accounting
already apply to this process still apply to the child.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path("/sys/fs/cgroup")
ENVIRONMENT = "GRIDTOKENX_BENCH_CGROUP"
"""Where the child finds its cgroup's directory, to read its own memory.stat at the end."""

# The same figures under their cgroup v2 and v1 names: (v2 file, v1 file).
_FILES = {
    "limit": ("memory.max", "memory.limit_in_bytes"),
    "peak": ("memory.peak", "memory.max_usage_in_bytes"),
    "current": ("memory.current", "memory.usage_in_bytes"),
}
# memory.stat keys: ours -> (v2, v1); v1's "total_" keys include any child cgroups.
_STAT = {
    "anon": ("anon", "total_rss"),
    "file": ("file", "total_cache"),
    "file_mapped": ("file_mapped", "total_mapped_file"),
}


def parse_size(text: str) -> int | None:
    """`2G`, `1536M`, `2147483648` as bytes; `max` as None (a cgroup without a limit,
    to measure the same way as under one)."""
    text = text.strip().lower()
    if text == "max":
        return None
    units = {"k": 2**10, "m": 2**20, "g": 2**30}
    scale = units.get(text[-1:], 1)
    number = text[:-1] if text[-1:] in units else text
    try:
        size = int(float(number) * scale)
    except ValueError:
        raise ValueError(f"a memory limit like 2G, 1536M or max, not {text!r}") from None
    if size <= 0:
        raise ValueError(f"a memory limit must be positive, not {text!r}")
    return size


def _own_path(controller: str) -> str | None:
    """This process's cgroup path for `controller` ("" for the v2 hierarchy)."""
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, names, path = line.rstrip("\n").split(":", 2)
            if controller in names.split(","):
                return path
    return None


@dataclass
class MemoryCgroup:
    """One cgroup for one child; `create`, then `run` the child, then `remove`."""

    path: Path
    version: int
    limit: int | None

    @staticmethod
    def create(name: str, limit: int | None) -> MemoryCgroup | str:
        """The cgroup, made and limited; or why not (a sentence, for the report)."""
        if os.geteuid() != 0:
            return "not root: cannot create a cgroup"
        controllers = ROOT / "cgroup.controllers"
        if controllers.exists() and "memory" in controllers.read_text().split():
            subtree = ROOT / "cgroup.subtree_control"
            if "memory" not in subtree.read_text().split():
                try:
                    subtree.write_text("+memory")
                except OSError as error:
                    return f"cgroup v2 memory controller not enabled for children: {error}"
            found = MemoryCgroup(ROOT / name, 2, limit)
        else:
            own = _own_path("memory")
            if own is None or not (ROOT / "memory").is_dir():
                return "no cgroup v2 memory controller, and no cgroup v1 memory hierarchy"
            found = MemoryCgroup(ROOT / "memory" / own.lstrip("/") / name, 1, limit)
        try:
            found.path.mkdir()
            if limit is not None:
                found._write("limit", str(limit))
        except OSError as error:
            found.remove()
            return f"cannot create {found.path}: {error}"
        return found

    def _file(self, figure: str) -> Path:
        return self.path / _FILES[figure][self.version == 1]

    def _write(self, figure: str, value: str) -> None:
        self._file(figure).write_text(value)

    def enter(self) -> Callable[[], None]:
        """For `subprocess.run(preexec_fn=...)`: the child moves itself in before exec."""
        procs = str(self.path / "cgroup.procs")

        def move() -> None:
            with open(procs, "w") as f:
                f.write(str(os.getpid()))

        return move

    def run(self, command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command, env={**env, ENVIRONMENT: str(self.path)}, preexec_fn=self.enter(),
            capture_output=True, text=True,
        )  # fmt: skip

    def figures(self) -> dict[str, Any]:
        """Limit and peak as the kernel counts them, in MB, and how often the kernel had to
        reclaim at the limit (v1 `failcnt`; v2 `memory.events` max) or killed (oom_kill)."""
        peak = int(self._file("peak").read_text())
        found: dict[str, Any] = {
            "cgroup_version": self.version,
            "cgroup_path": str(self.path),
            "memory_limit_mb": None if self.limit is None else round(self.limit / 2**20),
            "memory_peak_mb": round(peak / 2**20, 1),
        }
        if self.version == 2:
            events = _pairs(self.path / "memory.events")
            found["memory_limit_hits"] = events.get("max", 0)
            found["oom_kills"] = events.get("oom_kill", 0)
        else:
            found["memory_limit_hits"] = int((self.path / "memory.failcnt").read_text())
            found["oom_kills"] = _pairs(self.path / "memory.oom_control").get("oom_kill", 0)
        return found

    def remove(self) -> None:
        """Remove the cgroup (its leftover page-cache charges go to its parent)."""
        with contextlib.suppress(FileNotFoundError):
            self.path.rmdir()


def _pairs(path: Path) -> dict[str, int]:
    found = {}
    for line in path.read_text().splitlines():
        name, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            found[name] = int(value)
    return found


def own_stat() -> dict[str, float]:
    """For the child: its cgroup's memory now (anon, file, file_mapped, current), in MB;
    empty when it runs in no benchmark cgroup."""
    path = os.environ.get(ENVIRONMENT)
    if not path:
        return {}
    cgroup = Path(path)
    version = 2 if (cgroup / "memory.max").exists() else 1
    stat = _pairs(cgroup / "memory.stat")
    found = {
        f"cgroup_{ours}_mb": round(stat.get(names[version == 1], 0) / 2**20, 1)
        for ours, names in _STAT.items()
    }
    current = cgroup / _FILES["current"][version == 1]
    found["cgroup_current_mb"] = round(int(current.read_text()) / 2**20, 1)
    return found


def warm_cache(directory: Path) -> float:
    """For the child: read every file under `directory` once, so the page cache holds the
    store as a restarting node finds it (its own earlier reads and writes), charged to
    this cgroup: under a limit the kernel keeps what fits. The seconds it took."""
    started, buffer = time.perf_counter(), bytearray(1 << 20)
    for folder, _, names in os.walk(directory):
        for name in sorted(names):
            with open(os.path.join(folder, name), "rb", buffering=0) as f:
                while f.readinto(buffer):
                    pass
    return time.perf_counter() - started


def drop_cache(directory: Path) -> None:
    """Write every file under `directory` out and drop its pages from the page cache."""
    for folder, _, names in os.walk(directory):
        for name in names:
            fd = os.open(os.path.join(folder, name), os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
