"""``python -m benchmarks [--quick] [--only NAME[,NAME]] [--publish]``.

Runs the scenarios, prints a table (figure, same-run baseline, ratio, target), writes
``benchmarks/results/latest.json`` (and ``latest.md``), and the plots of throughput over time for
scenario 1 (``benchmarks/results/throughput.png``) and scenario 5 (``scaleout.png``). ``--publish`` also
copies them to ``docs/performance-throughput.png`` and ``docs/performance-scaleout.png``. Nothing asserts on time: a missed target is reported, never raised.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import time
import traceback
from typing import Any

from benchmarks.celery import celery_plot
from benchmarks.common import (
    RESULTS_DIR,
    ROOT,
    Log,
    Row,
    code_state,
    dump_json,
    machine_info,
    quiet_logs,
    stop_shared_emulator,
)
from benchmarks.plot import scaleout_plot, throughput_plot
from benchmarks.scenarios import SCENARIOS
from benchmarks.sizes import FULL, QUICK


def _fmt(x: float | None) -> str:
    if x is None:
        return "—"
    if float(x).is_integer():
        return f"{int(x):,}"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def _ratio(row: Row) -> str:
    if row.ratio is None:
        return "—"
    if row.unit == "requests":
        return f"{row.ratio:.1%}"
    return f"{row.ratio:.3f} ×" if row.ratio < 10 else f"{row.ratio:.1f} ×"


def _met(row: Row) -> str:
    return {True: "yes", False: "NO", None: "—"}[row.met]


def table(rows: list[Row]) -> str:
    header = ("#", "measure", "figure", "baseline (same run)", "ratio", "target", "met")
    lines = [(r.scenario, r.name, f"{_fmt(r.figure)} {r.unit}" if r.figure is not None else "not yet measured",
              f"{_fmt(r.baseline)} ({r.baseline_name})" if r.baseline is not None else "—",
              _ratio(r), r.target, _met(r)) for r in rows]
    widths = [min(max(len(str(x[i])) for x in [header, *lines]), 70) for i in range(len(header))]
    out = [" | ".join(str(h).ljust(w) for h, w in zip(header, widths)),
           "-+-".join("-" * w for w in widths)]
    out += [" | ".join(str(c).ljust(w) for c, w in zip(line, widths)) for line in lines]
    return "\n".join(out)


def markdown(rows: list[Row]) -> str:
    out = ["| # | measure | figure | baseline (same run) | ratio | target | met | notes |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        fig = f"{_fmt(r.figure)} {r.unit}" if r.figure is not None else "not yet measured"
        base = f"{_fmt(r.baseline)} ({r.baseline_name})" if r.baseline is not None else "—"
        out.append(f"| {r.scenario} | {r.name} | {fig} | {base} | {_ratio(r)} | {r.target} | {_met(r)} | {r.note} |")
    return "\n".join(out)


def _prefixed(log: Log, name: str) -> Log:
    def scenario_log(message: str) -> None:
        log(f"{name}: {message}")

    return scenario_log


def _run(names: list[str], sizes: Any, log: Any, rows: list[Row], details: dict[str, Any],
         errors: dict[str, str], timings: dict[str, float]) -> None:
    for name in names:
        log(f"== {name}")
        t0 = time.perf_counter()
        try:
            result = SCENARIOS[name](sizes, _prefixed(log, name))
        except Exception as exc:  # noqa: BLE001 - report and go on: one broken scenario must not hide the others
            errors[name] = "".join(traceback.format_exception(exc))
            log(f"{name} FAILED: {type(exc).__name__}: {exc}")
            continue
        timings[name] = round(time.perf_counter() - t0, 1)
        rows += result.rows
        details[name] = result.details
        print(table(result.rows), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="a much smaller smoke run (~1.5 minutes, most of it Airflow start-up in the DAG scenarios)")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help=f"run only these scenarios (repeatable or comma-separated): {', '.join(SCENARIOS)}")
    parser.add_argument("--publish", action="store_true",
                        help="also copy the plots to docs/ (performance-throughput.png, performance-scaleout.png)")
    parser.add_argument("--no-calibrate", action="store_true",
                        help="skip the ~3 s parallel-speedup calibration of the machine")
    args = parser.parse_args(argv)
    names = [n.strip() for item in args.only for n in item.split(",") if n.strip()] or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; known: {', '.join(SCENARIOS)}")
    sizes = QUICK if args.quick else FULL
    quiet_logs()
    started = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {msg}", flush=True)

    code = code_state()
    log(f"code: commit {code['commit']}, package sha256 {code['package_sha256']}, "
        f"uncommitted package files {code['uncommitted_package_files'] or 'none'}")
    log("machine facts" + ("" if args.no_calibrate else " and parallel-speedup calibration"))
    machine = machine_info(calibrate=not args.no_calibrate, tries=1 if args.quick else 3)
    log(f"{machine['nproc']} CPUs, {machine['cpu_model']}, Python {machine['python']}, "
        f"parallel speedup {machine.get('parallel_speedup', 'n/a')}")
    rows: list[Row] = []
    details: dict[str, Any] = {}
    errors: dict[str, str] = {}
    timings: dict[str, float] = {}
    try:
        _run(names, sizes, log, rows, details, errors, timings)
    finally:
        stop_shared_emulator()
    if "memory" not in names or "memory" in errors:
        rows.append(Row("4", "peak RSS growth of hook.upsert_users, 100k vs 1M users", None, "MB",
                        note="not run (--only memory)"))
    rows.sort(key=lambda r: r.scenario)

    total = round(time.perf_counter() - started, 1)
    machine["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    code_after = code_state()
    code["changed_during_run"] = code_after["package_sha256"] != code["package_sha256"]
    if code["changed_during_run"]:
        print("WARNING: the package source changed during the run; client and emulator figures may come from "
              "different code. Run again.", file=sys.stderr)
    print()
    print(table(rows))
    print(f"\n{'quick' if args.quick else 'full'} run, {total} s; scenario times {timings}")
    if errors:
        print(f"FAILED scenarios: {', '.join(errors)}", file=sys.stderr)
    payload = {
        "mode": "quick" if args.quick else "full",
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "duration_s": total,
        "scenario_seconds": timings,
        "machine": machine,
        "code": code,
        "sizes": sizes.__dict__,
        "rows": [r.as_dict() for r in rows],
        "details": details,
        "errors": errors,
    }
    dump_json(RESULTS_DIR / "latest.json", payload)
    (RESULTS_DIR / "latest.md").write_text(markdown(rows) + "\n")
    print(f"wrote {RESULTS_DIR / 'latest.json'} and latest.md")
    plots = {"throughput": (throughput_plot, "throughput.png", "performance-throughput.png"),
             "scaleout": (scaleout_plot, "scaleout.png", "performance-scaleout.png"),
             "celery": (celery_plot, "celery.png", "performance-celery.png")}
    for scenario, (plot, name, published) in plots.items():
        if scenario not in details:
            continue
        png = plot(details[scenario], machine, RESULTS_DIR / name)
        print(f"wrote {png}")
        if args.publish:
            shutil.copyfile(png, ROOT / "docs" / published)
            print(f"copied to {ROOT / 'docs' / published}")
    return 1 if errors else 0
