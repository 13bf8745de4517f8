"""Shared pieces: realistic records, the result row, machine facts, the emulator, samplers and meters."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from airflow_provider_spotzee.api_facts import MAX_BATCH_SIZE
from airflow_provider_spotzee.batching import canonical_body, idempotency_key
from airflow_provider_spotzee.send import USERS_BATCH, Endpoint, Prepared, prepare
from airflow_provider_spotzee.testing import EmulatorConfig, FaultConfig, SpotzeeEmulator, start_emulator
from airflow_provider_spotzee.testing.crm import SEED_DAY

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"  # not in git: made by the first writer
USERS_BATCH_LABEL = "POST /users/batch"
ITEMS_PER_REQUEST = MAX_BATCH_SIZE
#: How a scenario reports progress: one line, prefixed with the run's elapsed time by the CLI.
Log = Callable[[str], None]


def results_path(name: str) -> Path:
    """``benchmarks/results/NAME``, creating the folder (a fresh clone has none; any scenario may run alone)."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    return RESULTS_DIR / name


class WrongItemCount(RuntimeError):
    """A scenario moved no items, or not the number it set out to move: it has no figure to report."""


def expect_items(what: str, moved: int, expected: int | None = None, *, partial_ok: bool = False) -> int:
    """Fail the scenario unless ``moved == expected`` (or, with ``partial_ok``, ``0 < moved <= expected``:
    a phase stopped by its deadline). Zero is never a figure: a run that read nothing raises."""
    if moved <= 0:
        raise WrongItemCount(f"{what}: moved no items (expected {expected if expected is not None else 'some'}); "
                             "a scenario that reads nothing has no figure")
    if expected is not None and (moved > expected if partial_ok else moved != expected):
        raise WrongItemCount(f"{what}: moved {moved:,} items, expected {'at most ' if partial_ok else ''}{expected:,}")
    return moved

# ------------------------------------------------------------------------------------------- records

_TIMEZONES = ("Australia/Sydney", "Europe/London", "America/New_York", "Asia/Tokyo", "Europe/Berlin")
_LOCALES = ("en-AU", "en-GB", "en-US", "ja-JP", "de-DE")
_FIRST = ("Jane", "Omar", "Mei", "Lars", "Aroha", "Priya", "Tom", "Ana")
_PLANS = ("free", "pro", "team", "enterprise")

#: Every benchmark phase draws users from its own range so that no phase hits a validation cache
#: (``validation.py`` keeps 65,536 emails and phones per process) warmed by an earlier phase.
_next_range = [10_000_000]


def fresh_range(n: int) -> int:
    """The first index of ``n`` user numbers never used before in this process."""
    start = _next_range[0]
    _next_range[0] += n + 1000
    return start


def user(i: int, *, distinct: int | None = None) -> dict[str, Any]:
    """One realistic contact payload. ``distinct=None``: every email and phone unique (the realistic,
    expensive case); ``distinct=k``: emails and phones repeat every ``k`` users (validation cache hits).

    Phones are Australian mobiles ``+6140xxxxxxx`` (valid for phonenumbers for every 7-digit suffix).
    """
    v = i if distinct is None else i % distinct
    k = i % 8
    return {
        "external_id": f"crm-{i:09d}",
        "email": f"{_FIRST[v % 8].lower()}.customer{v}@mail{v % 97}.example.com",
        "phone": f"+6140{v % 10_000_000:07d}",
        "timezone": _TIMEZONES[i % 5],
        "locale": _LOCALES[i % 5],
        "data": {"first_name": _FIRST[k], "last_name": f"Lastname{i}", "plan": _PLANS[i % 4],
                 "lifetime_value": round(i * 1.37 % 10_000, 2), "vip": i % 11 == 0},
    }


def crm_row(i: int) -> dict[str, Any]:
    """The same contact as a CRM table row (the shape ``CRM_GUIDE_MAPPING`` maps)."""
    u = user(i)
    return {"id": i, "email_address": u["email"], "phone_e164": u["phone"], "locale": u["locale"],
            "timezone": u["timezone"], "first_name": u["data"]["first_name"],
            "last_name": u["data"]["last_name"], "updated_at": f"{SEED_DAY} 10:00:00"}


def users(start: int, n: int, *, deadline: float | None = None, distinct: int | None = None,
          counter: list[int] | None = None) -> Iterator[dict[str, Any]]:
    """``n`` users, lazily; stops early (the hook then finishes what it has) once ``deadline`` passes."""
    for i in range(start, start + n):
        if deadline is not None and (i - start) % 100 == 0 and time.monotonic() > deadline:
            return
        if counter is not None:
            counter[0] += 1
        yield user(i, distinct=distinct)


# ------------------------------------------------------------------------------------------- results


@dataclass
class Row:
    """One line of the results table: a figure, its same-run baseline, the ratio and the target."""

    scenario: str
    name: str
    figure: float | None
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    ratio: float | None = None
    target: str = ""
    met: bool | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if self.ratio is None and self.figure is not None and self.baseline:
            self.ratio = self.figure / self.baseline

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class ScenarioResult:
    rows: list[Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------- machine


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


_BURN = "import time\nt=time.perf_counter()\nn=0\nwhile n<{n}: n+=1\nprint(time.perf_counter()-t)"


def _burn(n: int, copies: int) -> tuple[float, list[float]]:
    started = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", _BURN.format(n=n)], stdout=subprocess.PIPE, text=True)
             for _ in range(copies)]
    times = [float(p.communicate(timeout=120)[0]) for p in procs]
    return time.perf_counter() - started, times


def parallel_speedup(n: int = 6_000_000, tries: int = 3) -> dict[str, float]:
    """How much CPU two processes really get at once: 2 × (one busy loop alone) / (two at once).

    2.0 means two full cores; ~1.0 means the client and the emulator effectively share one core. Best of
    ``tries`` for each, alternated (interference only ever slows a run down).
    """
    alone, pair = [], []
    for _ in range(tries):
        alone.append(_burn(n, 1)[1][0])
        pair.append(max(_burn(n, 2)[1]))
    return {"one_process_s": round(min(alone), 3), "two_processes_s": round(min(pair), 3),
            "parallel_speedup": round(2 * min(alone) / min(pair), 2)}


def code_state() -> dict[str, Any]:
    """Which provider code is measured: commit, uncommitted package files, and a hash of the package source
    (the emulator processes import it afresh, so a change mid-run would make client and server differ)."""
    import hashlib

    digest = hashlib.sha256()
    package = ROOT / "airflow_provider_spotzee"
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], check=False, cwd=ROOT, capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"commit": git("rev-parse", "--short", "HEAD").strip(),
            "uncommitted_package_files": [line[3:] for line in git("status", "--porcelain", "--", "airflow_provider_spotzee").splitlines()],
            "package_sha256": digest.hexdigest()[:16]}


def machine_info(calibrate: bool = True, tries: int = 3) -> dict[str, Any]:
    import airflow
    import httpx as _httpx
    import pydantic

    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "airflow": airflow.__version__,
        "httpx": _httpx.__version__,
        "pydantic": pydantic.VERSION,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    if calibrate:
        info.update(parallel_speedup(tries=tries))
    return info


# ------------------------------------------------------------------------------------------- emulator


def emulator_config(plan: str = "starter", *, latency_ms: float = 50.0, rate_limits: bool = True) -> EmulatorConfig:
    return EmulatorConfig(plan=plan, rate_limits=rate_limits, async_delay_seconds=0,
                          faults=FaultConfig(latency_ms=latency_ms))


_shared: list[SpotzeeEmulator] = []


def shared_emulator() -> SpotzeeEmulator:
    """One emulator process for the whole run (starting one takes seconds); every phase resets it."""
    if not _shared:
        _shared.append(start_emulator(EmulatorConfig(), mode="process", host="127.0.0.1"))
    return _shared[0]


def stop_shared_emulator() -> None:
    while _shared:
        _shared.pop().stop()


def run_alone(scenario: Callable[[Any, Log], ScenarioResult], width: int = 75) -> None:
    """``python -m benchmarks.<module> [--quick]``: one scenario alone, its rows and details on stdout."""
    import argparse

    from benchmarks.sizes import FULL, QUICK

    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    try:
        res = scenario(QUICK if args.quick else FULL, lambda message: print(message, file=sys.stderr))
    finally:
        stop_shared_emulator()
    for r in res.rows:
        print(f"{r.name:{width}s} {r.figure!s:>10} {r.unit:8s} baseline {r.baseline!s:>10}  met={r.met}  {r.note}")
    print(json.dumps(res.details, indent=1))


@contextlib.contextmanager
def emulator(plan: str = "starter", *, latency_ms: float = 50.0, rate_limits: bool = True) -> Iterator[SpotzeeEmulator]:
    """The emulator in its own process (never sharing the client's GIL), on 127.0.0.1, reset to this
    configuration (no contacts, ledger, stats, rate windows or idempotency records), with the
    ``spotzee_default`` Airflow connection pointing at it for the duration."""
    emu = shared_emulator()
    emu.reset(emulator_config(plan, latency_ms=latency_ms, rate_limits=rate_limits))
    with connection_env(emu):
        yield emu


@contextlib.contextmanager
def connection_env(emu: SpotzeeEmulator, conn_id: str = "spotzee_default", **extra: Any) -> Iterator[None]:
    """``AIRFLOW_CONN_<ID>`` as the integration tests set it; restored afterwards."""
    name = f"AIRFLOW_CONN_{conn_id.upper()}"
    old = os.environ.get(name)
    os.environ[name] = emu.connection_json(**extra)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


class StatsSampler:
    """Samples the emulator's accepted ``POST /users/batch`` items and statuses every ``interval`` seconds
    from a background thread (its own HTTP client; bounded by ``max_samples``)."""

    def __init__(self, emu: SpotzeeEmulator, *, interval: float = 0.5, max_samples: int = 2400,
                 label: str = USERS_BATCH_LABEL) -> None:
        self.url = emu.admin_url + "/stats"
        self.interval, self.max_samples, self.label = interval, max_samples, label
        self.samples: list[tuple[float, int, int, int]] = []  # (t, items, requests, 429s)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stats-sampler", daemon=True)
        self.t0 = 0.0

    def _take(self, client: httpx.Client) -> None:
        sent = time.perf_counter()
        stats = client.get(self.url).json()
        moment = (sent + time.perf_counter()) / 2 - self.t0  # the emulator answered somewhere in between
        by_endpoint = stats["requests"].get(self.label, {})
        self.samples.append((moment, int(stats["items_received"].get(self.label, 0)),
                             int(sum(by_endpoint.values())), int(by_endpoint.get("429", 0))))

    def _run(self) -> None:
        with httpx.Client(timeout=10.0, trust_env=False) as client:
            self._take(client)
            while not self._stop.wait(self.interval) and len(self.samples) < self.max_samples:
                self._take(client)
            self._take(client)

    def __enter__(self) -> StatsSampler:  # noqa: PYI034
        self.t0 = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    # ------------------------------------------------------------------------------------- analysis

    def time_at(self, items: float) -> float:
        """When the emulator had accepted ``items`` items (linear interpolation between samples)."""
        prev_t, prev_n = 0.0, 0
        for t, n, _, _ in self.samples:
            if n >= items:
                if n == prev_n:
                    return t
                return prev_t + (t - prev_t) * (items - prev_n) / (n - prev_n)
            prev_t, prev_n = t, n
        return self.samples[-1][0] if self.samples else 0.0

    def sustained(self, low: float = 0.1, high: float = 0.9) -> float:
        """Items/s between the moments 10 % and 90 % of the items had been accepted (no ramp-up, no tail)."""
        total = self.samples[-1][1] if self.samples else 0
        if total <= 0:
            return 0.0
        t_low, t_high = self.time_at(total * low), self.time_at(total * high)
        return (high - low) * total / (t_high - t_low) if t_high > t_low else 0.0

    def series(self, window: float = 2.0) -> list[tuple[float, float]]:
        """(t, items/s over the last ``window`` seconds), one point per sample."""
        out = []
        j = 0
        for t, n, _, _ in self.samples:
            while j < len(self.samples) and self.samples[j][0] < t - window:
                j += 1
            tj, nj = self.samples[j][0], self.samples[j][1]
            if t > tj:
                out.append((round(t, 3), round((n - nj) / (t - tj), 1)))
        return out

    def totals(self) -> dict[str, int]:
        _, items, requests, throttled = self.samples[-1] if self.samples else (0, 0, 0, 0)
        return {"items": items, "requests": requests, "throttled": throttled}


class CpuMeter:
    """CPU seconds used by this process (all threads) and by the emulator process over a block."""

    def __init__(self, emulator_pid: int | None) -> None:
        self._emu = psutil.Process(emulator_pid) if emulator_pid else None
        self.client_s = self.emulator_s = self.wall_s = 0.0

    def _emu_cpu(self) -> float:
        if self._emu is None:
            return 0.0
        t = self._emu.cpu_times()
        return t.user + t.system

    def __enter__(self) -> CpuMeter:  # noqa: PYI034
        self._c0, self._e0, self._w0 = time.process_time(), self._emu_cpu(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.client_s = time.process_time() - self._c0
        self.emulator_s = self._emu_cpu() - self._e0
        self.wall_s = time.perf_counter() - self._w0

    def summary(self, items: int) -> dict[str, float]:
        items = max(items, 1)
        wall = max(self.wall_s, 1e-9)
        return {
            "wall_s": round(self.wall_s, 3),
            "client_cpu_us_per_item": round(self.client_s / items * 1e6, 1),
            "emulator_cpu_us_per_item": round(self.emulator_s / items * 1e6, 1),
            "client_cpu_share_of_core": round(self.client_s / wall, 2),
            "emulator_cpu_share_of_core": round(self.emulator_s / wall, 2),
            "both_cpu_share_of_core": round((self.client_s + self.emulator_s) / wall, 2),
        }


class GcPauses:
    """Counts the cyclic garbage collector's pauses (per generation) over a block, via ``gc.callbacks``.

    Every pause stops the client's event loop: no response is read and the pacer does not send."""

    def __init__(self) -> None:
        self.count = [0, 0, 0]
        self.total_s = [0.0, 0.0, 0.0]
        self.max_s = [0.0, 0.0, 0.0]
        self._t0 = 0.0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
            return
        gen, took = info["generation"], time.perf_counter() - self._t0
        self.count[gen] += 1
        self.total_s[gen] += took
        self.max_s[gen] = max(self.max_s[gen], took)

    def __enter__(self) -> GcPauses:  # noqa: PYI034
        import gc

        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        import gc

        gc.callbacks.remove(self._callback)

    def summary(self) -> dict[str, Any]:
        return {"gc_collections": self.count, "gc_pause_total_ms": [round(t * 1000, 1) for t in self.total_s],
                "gc_pause_max_ms": [round(t * 1000, 1) for t in self.max_s]}


def quiet_logs() -> None:
    """The hook logs progress at INFO every 15 s; keep the benchmark table readable."""
    for name in ("airflow_provider_spotzee", "airflow.task", "httpx", "httpcore", "airflow"):
        logging.getLogger(name).setLevel(logging.WARNING)


def dump_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


# ------------------------------------------------------------------------------ the client's own work


def pipeline(records: list[dict[str, Any]], start: int, endpoint: Endpoint = USERS_BATCH) -> int:
    """What the send path does per record before the network: validate + serialise, body, key.
    Returns how many records went into a request body."""
    pending: list[bytes] = []
    keys = 0
    for index, record in enumerate(records, start):
        item = prepare(endpoint, index, record)
        if isinstance(item, Prepared):
            pending.append(item.body)
        if len(pending) == ITEMS_PER_REQUEST:
            idempotency_key(f"bench@{index}", endpoint.method, endpoint.path, canonical_body(pending))
            keys += 1
            pending = []
    if pending:
        idempotency_key("bench@end", endpoint.method, endpoint.path, canonical_body(pending))
    return keys * ITEMS_PER_REQUEST + len(pending)


def json_baseline(records: list[dict[str, Any]]) -> None:
    """A plain client: ``json.dumps`` of each 100-record batch, encoded."""
    for s in range(0, len(records), ITEMS_PER_REQUEST):
        json.dumps(records[s:s + ITEMS_PER_REQUEST]).encode()
