"""Throughput over time against the Starter ceiling: scenario 1 (one hook) and scenario 5 (8 partitions)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

SERIES = (
    ("starter", "hook, Starter, unique users", "tab:blue", "-"),
    ("starter_repeating", "hook, Starter, repeating emails/phones", "tab:green", "-"),
    ("professional", "hook, Professional, unique users", "tab:purple", "-"),
    ("emulator_alone", "emulator alone (raw client, no limits)", "tab:gray", ":"),
)


def save_plot(fig: Any, ax: Any, path: Path) -> Path:
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=8, frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def throughput_plot(details: dict[str, Any], machine: dict[str, Any], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(10, 6.5), dpi=110)
    for key, label, color, style in SERIES:
        points = (details.get(key) or {}).get("series") or []
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, style, color=color, label=label, linewidth=1.6)
    starter = details.get("starter") or {}
    per_item = (starter.get("client_cpu_us_per_item") or 0) + (starter.get("emulator_cpu_us_per_item") or 0)
    if per_item:
        ax.axhline(1e6 / per_item, color="tab:blue", linewidth=1.0, linestyle="--",
                   label=f"one shared core: 1 / (client + emulator CPU per unique item) = {1e6 / per_item:,.0f}/s")
    ax.axhline(10_000, color="tab:red", linewidth=1.2, label="Starter ceiling: 100 req/s × 100 = 10,000 items/s")
    ax.axhline(9_500, color="tab:red", linewidth=1.0, linestyle="--", label="target: 0.95 × ceiling")
    ax.set_xlabel("seconds since the send started")
    ax.set_ylabel("items/s accepted by the emulator (2 s window)")
    top = max([12_000] + [y for key, *_ in SERIES for _, y in (details.get(key) or {}).get("series") or []])
    ax.set_ylim(0, top * 1.1)
    ax.grid(alpha=0.3)
    speedup = machine.get("parallel_speedup")
    extra = f", measured parallel speedup {speedup}" if speedup is not None else ""
    ax.set_title("POST /users/batch via hook.upsert_users, 50 ms emulator latency\n"
                 f"{machine.get('nproc')} CPUs ({machine.get('cpu_model')}{extra}), Python {machine.get('python')}",
                 fontsize=10)
    return save_plot(fig, ax, path)


def scaleout_plot(details: dict[str, Any], machine: dict[str, Any], path: Path) -> Path:
    """Scenario 5: the key's accepted items/s while 8 mapped partitions run on a real scheduler."""
    fig, ax = plt.subplots(figsize=(10, 5.5), dpi=110)
    points = details.get("series") or []
    if points:
        xs, ys = zip(*points)
        ax.plot(xs, ys, "-", color="tab:blue", linewidth=1.6,
                label="8 mapped partitions together (LocalExecutor, one key)")
    ceiling_lines(ax, 10_000, details.get("items_per_s_sustained"))
    ax.set_xlabel("seconds since the DAG was unpaused")
    ax.set_ylabel("items/s accepted by the emulator (2 s window)")
    ax.set_ylim(0, max([12_000] + [y for _, y in points]) * 1.1)
    ax.grid(alpha=0.3)
    ax.set_title("Scenario 5: spotzee_crm_sync_partitioned, partitions(8), scheduler + LocalExecutor, "
                 f"PostgreSQL metadata DB\n{machine.get('nproc')} CPUs ({machine.get('cpu_model')}), "
                 f"{details.get('items', 0):,} items, {details.get('throttled', 0)} × 429 of "
                 f"{details.get('requests', 0):,} requests", fontsize=10)
    return save_plot(fig, ax, path)


def ceiling_lines(ax: Any, ceiling: float, sustained: float | None) -> None:
    """The Starter ceiling, the 0.90 × target and the sustained rate, as horizontal lines (scenarios 5, 5c)."""
    ax.axhline(ceiling, color="tab:red", linewidth=1.2, label=f"Starter ceiling: {ceiling:,.0f} items/s")
    ax.axhline(0.9 * ceiling, color="tab:red", linewidth=1.0, linestyle="--", label="target: 0.90 × ceiling")
    if sustained:
        ax.axhline(sustained, color="tab:blue", linewidth=1.0, linestyle=":",
                   label=f"sustained (10 % to 90 % of the items): {sustained:,.0f}/s")
