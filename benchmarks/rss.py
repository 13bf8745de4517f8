"""Peak RSS of this process over a block, split into segments (scenario 4).

Two sources, and the larger wins:

- the kernel's exact high-water mark ``VmHWM``, reset to the current RSS at the start of every segment by
  writing ``5`` to ``/proc/self/clear_refs`` (Linux >= 4.0; without it only the samples count);
- a background thread sampling RSS every ``interval`` seconds, which also keeps a coarse time series.

Imports nothing heavy, so a child can take its baselines before or after loading Airflow as it chooses.
"""

from __future__ import annotations

import gc
import threading
import time
from typing import Any

import psutil

MB = 2**20


def reset_peak() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM) of this process to its current RSS."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def vm_hwm() -> int:
    """The kernel's peak RSS of this process (bytes) since start or the last :func:`reset_peak`."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def rss() -> int:
    return psutil.Process().memory_info().rss


def mb(n: float) -> float:
    return round(n / MB, 1)


class PeakRss:
    """``start()`` (baseline after a full collection), then ``segment(name)`` any number of times, then
    ``stop()``. Each segment's peak is the larger of VmHWM (reset when the segment began) and the samples
    taken during it."""

    def __init__(self, interval: float = 0.05, series_every: float = 0.5) -> None:
        self.interval, self.series_every = interval, series_every
        self.base = 0
        self.hwm_ok = False
        self.segments: list[dict[str, Any]] = []
        self.series: list[tuple[float, float]] = []  # (s since start, RSS MB)
        self._name = ""
        self._seg_start_rss = 0
        self._seg_sampled = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)
        self._t0 = 0.0

    def _sample(self) -> None:
        me = psutil.Process()
        last = -1e9
        while not self._stop.wait(self.interval):
            now = me.memory_info().rss
            t = time.perf_counter() - self._t0
            with self._lock:
                self._seg_sampled = max(self._seg_sampled, now)
            if t - last >= self.series_every:
                self.series.append((round(t, 2), mb(now)))
                last = t

    def start(self, name: str = "main", *, collect: bool = True) -> int:
        if collect:
            gc.collect()
        self.base = rss()
        self._t0 = time.perf_counter()
        self._begin(name, self.base)
        self._thread.start()
        return self.base

    def _begin(self, name: str, now: int) -> None:
        self.hwm_ok = reset_peak()
        with self._lock:
            self._name, self._seg_start_rss, self._seg_sampled = name, now, now

    def _end(self) -> dict[str, Any]:
        now = rss()
        with self._lock:
            sampled = max(self._seg_sampled, now)
        peak = max(sampled, vm_hwm()) if self.hwm_ok else sampled
        seg = {"segment": self._name, "t_end_s": round(time.perf_counter() - self._t0, 2),
               "rss_start_mb": mb(self._seg_start_rss), "peak_mb": mb(peak), "rss_end_mb": mb(now),
               "peak_bytes": peak, "start_bytes": self._seg_start_rss}
        self.segments.append(seg)
        return seg

    def segment(self, name: str, *, collect: bool = False) -> int:
        """Close the current segment and open ``name``; returns the RSS at the boundary."""
        self._end()
        if collect:
            gc.collect()
        now = rss()
        self._begin(name, now)
        return now

    def stop(self) -> dict[str, Any]:
        self._end()
        self._stop.set()
        self._thread.join(timeout=5)
        peak = max(s["peak_bytes"] for s in self.segments)
        return {
            "baseline_rss_mb": mb(self.base),
            "peak_rss_mb": mb(peak),
            "peak_growth_mb": mb(peak - self.base),
            "peak_source": "VmHWM (reset per segment) + 50 ms samples" if self.hwm_ok else "50 ms samples only",
            "segments": [{k: v for k, v in s.items() if not k.endswith("_bytes")} for s in self.segments],
            "series_rss_mb": self.series,
        }

    def peak_of(self, *names: str) -> int:
        return max(s["peak_bytes"] for s in self.segments if s["segment"] in names)

    def start_of(self, name: str) -> int:
        return next(s["start_bytes"] for s in self.segments if s["segment"] == name)
