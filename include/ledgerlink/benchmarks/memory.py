"""Peak resident memory of every process a benchmark starts, as the kernel counts it (``VmHWM``,
the high-water mark in ``/proc/<pid>/status``), sampled while the processes live."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_PROC = Path("/proc")


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = list((_PROC / str(pid) / "task").glob("*/children"))
    except OSError:
        return found  # the process ended since it was listed (a task process between tasks)
    for task in tasks:
        try:
            found += [int(child) for child in task.read_text().split()]
        except OSError:
            continue
    return found


def _process_tree(root: int) -> list[int]:
    pids, queue = [], [root]
    while queue:
        pid = queue.pop()
        pids.append(pid)
        queue += _children(pid)
    return pids


def _peak_rss_bytes(pid: int) -> tuple[str, int] | None:
    try:
        status = (_PROC / str(pid) / "status").read_text()
        command = (_PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return command.strip()[:120], int(line.split()[1]) * 1024
    return None


class PeakMemory:
    """The largest VmHWM seen per process (by pid, with its command line)."""

    def __init__(self, extra_roots: list[int] | None = None) -> None:
        self.by_process: dict[int, tuple[str, int]] = {}
        self._roots = [os.getpid(), *(extra_roots or [])]

    def sample(self) -> None:
        for pid in {pid for root in self._roots for pid in _process_tree(root)}:
            if (found := _peak_rss_bytes(pid)) is not None:
                command, peak = found
                self.by_process[pid] = (command, max(peak, self.by_process.get(pid, ("", 0))[1]))

    @property
    def peak_rss_bytes(self) -> int:
        return max((peak for _, peak in self.by_process.values()), default=0)

    def largest(self, count: int = 5) -> list[dict[str, object]]:
        ranked = sorted(self.by_process.values(), key=lambda item: item[1], reverse=True)[:count]
        return [{"process": command, "peak_rss_bytes": peak} for command, peak in ranked]


@contextmanager
def watch_peak_memory(
    interval_seconds: float = 0.25, extra_roots: list[int] | None = None
) -> Iterator[PeakMemory]:
    """Sample this process's tree, and the trees under ``extra_roots`` (e.g. the database server),
    until exit."""
    peaks = PeakMemory(extra_roots)
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval_seconds):
            peaks.sample()

    sampler = threading.Thread(target=loop, name="peak-memory", daemon=True)
    sampler.start()
    try:
        yield peaks
    finally:
        stop.set()
        sampler.join()
        peaks.sample()


def parent_pid(pid: int) -> int:
    """The parent of ``pid`` (``/proc/<pid>/stat``, fourth field after the command)."""
    stat = (_PROC / str(pid) / "stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])
