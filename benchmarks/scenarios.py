"""The scenarios of the performance issue. Each returns rows (figure, same-run baseline, ratio, target).

Each scenario can run alone (``--only NAME``) from a fresh clone, and each checks that it moved the items it
set out to move (``common.expect_items``): a run that sent or read nothing raises, it is not a figure."""

from __future__ import annotations

import cProfile
import gc
import io
import json
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from airflow_provider_spotzee import validation as v
from airflow_provider_spotzee.api_facts import PLANS
from airflow_provider_spotzee.batching import canonical_body, idempotency_key
from airflow_provider_spotzee.models import UserUpsert
from benchmarks.celery import celery
from benchmarks.common import (
    ITEMS_PER_REQUEST,
    ROOT,
    CpuMeter,
    Log,
    Row,
    ScenarioResult,
    crm_row,
    emulator,
    expect_items,
    fresh_range,
    json_baseline,
    pipeline,
    results_path,
    user,
    users,
)
from benchmarks.diff import diff
from benchmarks.hookrun import run_hook, run_naive, run_raw_capacity
from benchmarks.scaleout import scaleout, scheduler_overhead
from benchmarks.sizes import Sizes

LATENCY_MS = 50.0


def _ceiling(plan: str) -> float:
    return PLANS[plan].write_rps * ITEMS_PER_REQUEST


def _strip(d: dict[str, Any]) -> dict[str, Any]:
    return {k: val for k, val in d.items() if k not in ("series", "samples")}


# ---------------------------------------------------------------------------------- 1. throughput


def throughput(sizes: Sizes, log: Log) -> ScenarioResult:
    out = ScenarioResult()
    d = out.details
    log("emulator alone (raw async client, rate limits off, 50 ms)")
    with emulator("starter", latency_ms=LATENCY_MS, rate_limits=False) as emu:
        d["emulator_alone"] = run_raw_capacity(emu, sizes.capacity_users, deadline_s=sizes.phase_deadline_s)
    capacity = d["emulator_alone"]["items_per_s_sustained"] or d["emulator_alone"]["items_per_s_overall"]

    log(f"Starter, {sizes.starter_users:,} unique users through hook.upsert_users")
    with emulator("starter", latency_ms=LATENCY_MS) as emu:
        d["starter"] = run_hook(emu, sizes.starter_users, deadline_s=sizes.phase_deadline_s, namespace="bench-starter")
    log(f"Starter, {sizes.starter_repeat_users:,} users with repeating emails/phones (cache hits)")
    with emulator("starter", latency_ms=LATENCY_MS) as emu:
        d["starter_repeating"] = run_hook(emu, sizes.starter_repeat_users, deadline_s=sizes.phase_deadline_s,
                                          namespace="bench-starter-rep", distinct=1000)
    log(f"Professional, {sizes.professional_users:,} unique users")
    with emulator("professional", latency_ms=LATENCY_MS) as emu:
        d["professional"] = run_hook(emu, sizes.professional_users, deadline_s=sizes.phase_deadline_s,
                                     namespace="bench-pro")

    starter, rep, pro = d["starter"], d["starter_repeating"], d["professional"]
    ceiling = _ceiling("starter")
    s = starter["items_per_s_sustained"]
    per_item = starter["client_cpu_us_per_item"] + starter["emulator_cpu_us_per_item"]
    out.rows += [
        Row("1", f"Starter ceiling, {starter['submitted']:,} unique users: sustained items/s", s, "items/s",
            ceiling, "Starter ceiling (100 req/s × 100)", target="≥ 0.95 × ceiling",
            met=s >= 0.95 * ceiling,
            note=f"overall {starter['items_per_s_overall']:,.0f}/s incl. ramp-up and tail; CPU per item: client "
                 f"{starter['client_cpu_us_per_item']:.0f} µs + emulator {starter['emulator_cpu_us_per_item']:.0f} µs "
                 f"(one shared core would allow {1e6 / max(per_item, 1e-9):,.0f}/s); together "
                 f"{starter['both_cpu_share_of_core']:.2f} cores busy"),
        Row("1", "Starter: share of requests 429'd", starter["emulator_429"], "requests",
            starter["emulator_requests"], "requests seen by the emulator",
            ratio=starter["emulator_429"] / max(starter["emulator_requests"], 1), target="≤ 1 %",
            met=starter["emulator_429"] <= 0.01 * starter["emulator_requests"]),
        Row("1", "Starter, unique users: hook vs emulator alone", s, "items/s", capacity,
            "emulator alone (raw client, no limits)", target="(diagnostic)",
            note="how close the hook gets to what this machine's emulator can absorb at all"),
        Row("1", "Starter, repeating emails/phones: sustained items/s", rep["items_per_s_sustained"], "items/s",
            ceiling, "Starter ceiling", target="(diagnostic) ≥ 0.95 × ceiling",
            met=rep["items_per_s_sustained"] >= 0.95 * ceiling,
            note=f"validation caches hit on both sides: pacing alone; {rep['emulator_429']} × 429"),
        Row("1", "Professional, unique users: sustained items/s", pro["items_per_s_sustained"], "items/s",
            capacity, "emulator alone (raw client, no limits)", target="(no target; ceiling 50,000/s)",
            note=f"{pro['items_per_s_sustained'] / _ceiling('professional'):.2f} × the Professional ceiling; "
                 f"client {pro['client_cpu_share_of_core']:.2f} + emulator {pro['emulator_cpu_share_of_core']:.2f} cores busy"),
    ]
    return out


# ----------------------------------------------------------------------------------- 2. naive loop


def naive(sizes: Sizes, log: Log) -> ScenarioResult:
    out = ScenarioResult()
    log(f"hook on {sizes.naive_hook_users:,} users (Starter, 50 ms)")
    with emulator("starter", latency_ms=LATENCY_MS) as emu:
        hook = run_hook(emu, sizes.naive_hook_users, deadline_s=sizes.phase_deadline_s, namespace="bench-vs-naive")
    log(f"naive httpx.Client loop on {sizes.naive_users:,} users (Starter, 50 ms)")
    with emulator("starter", latency_ms=LATENCY_MS) as emu:
        loop = run_naive(emu, sizes.naive_users, deadline_s=sizes.phase_deadline_s)
    out.details = {"hook": _strip(hook), "naive": loop}
    figure = hook["items_per_s_overall"]
    out.rows.append(Row("2", "hook vs naive sequential loop (items/s, overall)", figure, "items/s",
                        loop["items_per_s_overall"], "naive httpx.Client loop", target="≥ 4.5 ×",
                        met=figure >= 4.5 * loop["items_per_s_overall"],
                        note=f"hook on {hook['submitted']:,} users, loop on {loop['submitted']:,}"))
    return out


# ------------------------------------------------------------------------------------- 3. CPU/item


def _time(fn: Callable[..., Any], *args: Any) -> tuple[float, float]:
    w, c = time.perf_counter(), time.process_time()
    done = fn(*args)
    wall, cpu = time.perf_counter() - w, time.process_time() - c
    if fn is pipeline:  # every record (all valid) made it into a body
        expect_items("prepare + body + key", done, len(args[0]))
    return wall, cpu


def _fresh_records(n: int, distinct: int | None = None) -> tuple[int, list[dict[str, Any]]]:
    start = fresh_range(n)
    return start, [user(i, distinct=distinct) for i in range(start, start + n)]


def _components(n: int) -> dict[str, float]:
    """µs per item of the pieces, each on fresh (uncached) values."""
    _, recs = _fresh_records(n)
    out: dict[str, float] = {}

    def per(label: str, fn: Callable[[], object]) -> None:
        t = time.process_time()
        fn()
        out[label] = round((time.process_time() - t) / n * 1e6, 2)

    per("email_validator (validation.email)", lambda: [v.email(r["email"]) for r in recs])
    per("phonenumbers (validation.phone)", lambda: [v.phone(r["phone"]) for r in recs])
    _, recs2 = _fresh_records(n)
    models: list[UserUpsert] = []
    per("UserUpsert.model_validate (all fields)", lambda: models.extend(UserUpsert.model_validate(r) for r in recs2))
    per("serialise (to_json exclude_none)", lambda: [UserUpsert.__pydantic_serializer__.to_json(m, exclude_none=True) for m in models])
    bodies = [UserUpsert.__pydantic_serializer__.to_json(m, exclude_none=True) for m in models]

    def keys() -> None:
        for s in range(0, n, ITEMS_PER_REQUEST):
            idempotency_key("bench", "POST", "/users/batch", canonical_body(bodies[s:s + ITEMS_PER_REQUEST]))

    per("canonical_body + idempotency_key", keys)
    per("json.dumps per record", lambda: [json.dumps(r) for r in recs])
    return out


def _profile(n: int) -> tuple[list[dict[str, Any]], str]:
    start, recs = _fresh_records(n)
    profiler = cProfile.Profile()
    profiler.enable()
    done = pipeline(recs, start)
    profiler.disable()
    expect_items("profiled prepare + body + key", done, n)
    stats = pstats.Stats(profiler)
    total = stats.total_tt  # type: ignore[attr-defined]
    rows = []
    for (filename, line, func), (cc, nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append({"function": func, "where": f"{_short(filename)}:{line}", "ncalls": nc,
                     "tottime_s": round(tt, 4), "cumtime_s": round(ct, 4),
                     "tottime_share": round(tt / total, 3) if total else 0.0,
                     "tottime_us_per_item": round(tt / n * 1e6, 2), "cumtime_us_per_item": round(ct / n * 1e6, 2)})
    rows.sort(key=lambda r: r["tottime_s"], reverse=True)
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(30)
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(30)
    return rows, text.getvalue()


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/work/main/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename.rsplit("/lib/python", 1)[-1] if "/lib/python" in filename else filename


def cpu(sizes: Sizes, log: Log) -> ScenarioResult:
    out = ScenarioResult()
    # As hook.send does before a send: keep the import-time heap (Airflow: ~200k objects, ~125 ms per
    # full collection here) out of the collector, so a full pass landing in one round is not measured
    # as the provider's cost.
    gc.collect()
    gc.freeze()
    warm_start, warm = _fresh_records(200)
    pipeline(warm, warm_start)  # the validators' lazy imports (~0.2 s, once per process) are not per-item costs
    rounds = []
    for r in range(sizes.cpu_rounds):
        log(f"round {r + 1}/{sizes.cpu_rounds}: prepare+body+key vs json.dumps on {sizes.cpu_records:,} fresh records")
        start, recs = _fresh_records(sizes.cpu_records)
        pw, pc = _time(pipeline, recs, start)
        jw, jc = _time(json_baseline, recs)
        rounds.append({"pipeline_us_wall": pw / len(recs) * 1e6, "pipeline_us_cpu": pc / len(recs) * 1e6,
                       "json_us_wall": jw / len(recs) * 1e6, "json_us_cpu": jc / len(recs) * 1e6})
    pipe = statistics.median(r["pipeline_us_cpu"] for r in rounds)
    base = statistics.median(r["json_us_cpu"] for r in rounds)
    log("repeating values (cache hits), components, cProfile")
    start, recs = _fresh_records(sizes.cpu_records, distinct=1000)
    pipeline(recs[:2000], start)  # warm the caches
    _, hot = _time(pipeline, recs, start)
    _, hot_json = _time(json_baseline, recs)
    components = _components(max(1000, sizes.cpu_records // 10))
    profile, text = _profile(sizes.cpu_profile_records)
    results_path("cpu_profile.txt").write_text(text)
    out.details = {"rounds": [{k: round(x, 2) for k, x in r.items()} for r in rounds],
                   "records_per_round": sizes.cpu_records,
                   "repeating_values_us_per_item": round(hot / len(recs) * 1e6, 2),
                   "repeating_values_json_us_per_item": round(hot_json / len(recs) * 1e6, 2),
                   "components_us_per_item": components,
                   "profile_records": sizes.cpu_profile_records,
                   "profile_top": profile[:25]}
    note = f"median of {sizes.cpu_rounds} × {sizes.cpu_records:,} unique records, process CPU time"
    out.rows += [
        Row("3", "client CPU per item: prepare + canonical_body + idempotency_key", pipe, "µs/item", base,
            "json.dumps of the same records", target="≤ 20 µs/item", met=pipe <= 20, note=note),
        Row("3", "client CPU per item vs json.dumps", pipe, "µs/item", base, "json.dumps of the same records",
            target="≤ 4 × json.dumps", met=pipe <= 4 * base),
        Row("3", "client CPU per item, repeating emails/phones (cache hits)", round(hot / len(recs) * 1e6, 2),
            "µs/item", round(hot_json / len(recs) * 1e6, 2), "json.dumps of the same records",
            target="(diagnostic)", note="what the validation caches buy when values repeat"),
    ]
    return out


# ----------------------------------------------------------------------------------------- 4. memory


def _memory_child(n: int, deadline_s: float) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.memory_child", "--users", str(n), "--start", str(fresh_range(n)),
           "--deadline", str(deadline_s)]
    proc = subprocess.run(cmd, check=False, cwd=ROOT, capture_output=True, text=True, timeout=deadline_s + 300)
    if proc.returncode != 0:
        raise RuntimeError(f"memory child failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def memory(sizes: Sizes, log: Log) -> ScenarioResult:
    out = ScenarioResult()
    res = {}
    for label, n in (("small", sizes.memory_small), ("large", sizes.memory_large)):
        log(f"peak RSS growth of hook.upsert_users over a generator of {n:,} users (child process)")
        # Memory, not speed, is measured here: no rate limit and no latency so the large run fits the budget.
        with emulator("enterprise", latency_ms=0, rate_limits=False) as emu:
            r = res[label] = _memory_child(n, sizes.memory_deadline_s)
            expect_items(f"memory child, {n:,} users: submitted", r["submitted"], n, partial_ok=True)
            expect_items(f"memory child, {n:,} users: accepted", r["succeeded"], r["submitted"])
            expect_items(f"memory child, {n:,} users: contacts in the emulator", emu.ledger_summary()["contacts"],
                         r["succeeded"] + r["warmup_succeeded"])
    small, large = res["small"], res["large"]
    out.details = res
    out.rows.append(Row(
        "4", f"peak RSS growth, hook over a generator: {large['submitted']:,} vs {small['submitted']:,} users",
        large["peak_growth_mb"], "MB", small["peak_growth_mb"], f"same for {small['submitted']:,} users",
        target="(issue's target is for the operator; streaming ⇒ ≈ 1 ×)",
        note=f"{large['submitted'] / max(small['submitted'], 1):.0f} × the users, all valid; the hook alone "
             "(scenario 4 proper, through the example DAG: scenario 'dagmemory')"))
    return out


# -------------------------------------------------------------------------------------- 6. layering


def layering(sizes: Sizes, log: Log) -> ScenarioResult:
    """The hook alone vs ``UpsertUsersOperator.execute`` (mapping, dedupe, checkpoints) on the same kind of
    users, alternated ``layering_rounds`` times; best of the rounds for each (noise only slows runs down)."""
    from airflow_provider_spotzee.hooks.spotzee import SpotzeeHook
    from airflow_provider_spotzee.mapping import CRM_GUIDE_MAPPING, build_mapper
    from airflow_provider_spotzee.operators.users import UpsertUsersOperator
    from benchmarks.common import quiet_logs

    quiet_logs()  # the operator's task logger is configured on import
    out = ScenarioResult()
    n = sizes.layering_users
    mapper = build_mapper(CRM_GUIDE_MAPPING)
    runs: dict[str, list[dict[str, Any]]] = {"hook": [], "operator": []}
    for r in range(sizes.layering_rounds):
        # Both inputs are lists built before the clock starts (the operator needs a list: records= given
        # a generator is consumed by its dedupe pass and nothing is sent).
        first = fresh_range(n)
        hook_input = [mapper(crm_row(i)) for i in range(first, first + n)]
        log(f"round {r + 1}/{sizes.layering_rounds}: hook alone on {n:,} mapped users (Starter, 50 ms)")
        with emulator("starter", latency_ms=LATENCY_MS) as emu:
            hook = SpotzeeHook()
            _ = hook.config
            with CpuMeter(emu.pid) as cpu_h:
                result = hook.upsert_users(hook_input, idempotency_namespace=f"bench-layer-hook-{r}")
            expect_items("layering, hook: users accepted", result.succeeded, n)
            expect_items("layering, hook: contacts in the emulator", emu.ledger_summary()["contacts"], n)
        runs["hook"].append({"submitted": result.submitted, "succeeded": result.succeeded,
                             "items_per_s": round(result.submitted / cpu_h.wall_s, 1),
                             **cpu_h.summary(result.submitted)})
        del hook_input
        first = fresh_range(n)
        rows = [crm_row(i) for i in range(first, first + n)]
        log(f"round {r + 1}/{sizes.layering_rounds}: UpsertUsersOperator.execute on {n:,} CRM rows "
            "with CRM_GUIDE_MAPPING (Starter, 50 ms)")
        with emulator("starter", latency_ms=LATENCY_MS) as emu, tempfile.TemporaryDirectory() as tmp:
            op = UpsertUsersOperator(task_id="bench_upsert", records=rows, mapping=CRM_GUIDE_MAPPING,
                                     failures_path=str(Path(tmp) / "failures.jsonl"),
                                     idempotency_namespace=f"bench-layer-op-{r}")
            with CpuMeter(emu.pid) as cpu_o:
                summary = op.execute({})
            expect_items("layering, operator: rows extracted", summary["extracted"], n)
            expect_items("layering, operator: rows sent", summary["sent_ok"], n)
            expect_items("layering, operator: contacts in the emulator", emu.ledger_summary()["contacts"], n)
        runs["operator"].append({"submitted": summary["extracted"], "succeeded": summary["sent_ok"],
                                 "items_per_s": round(summary["extracted"] / cpu_o.wall_s, 1),
                                 **cpu_o.summary(summary["extracted"])})
        del rows
    best = {k: {"items_per_s": max(x["items_per_s"] for x in v),
                "client_cpu_us_per_item": min(x["client_cpu_us_per_item"] for x in v)} for k, v in runs.items()}
    out.details = {"runs": runs, "best": best,
                   "note": "operator.execute({}) without a scheduler: no task_state_store, no XCom, no DAG"}
    out.rows += [
        Row("6", "operator code path vs hook alone: items/s", best["operator"]["items_per_s"], "items/s",
            best["hook"]["items_per_s"], "hook alone, same kind of users", target="(no target given; ≈ 1 ×)",
            note=f"{n:,} users each, best of {sizes.layering_rounds} alternated rounds"),
        Row("6", "operator code path vs hook alone: client CPU per item", best["operator"]["client_cpu_us_per_item"],
            "µs/item", best["hook"]["client_cpu_us_per_item"], "hook alone", target="(no target given)",
            note="mapping, dedupe pass, checkpoint bookkeeping on top of the hook"),
    ]
    return out


# ---------------------------------------------------------------------- 4. memory through the example DAG


def _dag_emulator():
    from benchmarks.dagbench import DAG_LATENCY_MS, DAG_PLAN

    return emulator(DAG_PLAN, latency_ms=DAG_LATENCY_MS)


def dagmemory(sizes: Sizes, log: Log) -> ScenarioResult:
    """Scenario 4 proper: the example DAG ``spotzee_crm_sync`` through ``dag.test`` (what ``airflow dags
    test`` runs) on a seeded SQLite CRM of each size (``seed_crm``'s default 2 % of bad rows, as the demo),
    a fresh process and AIRFLOW_HOME each; peak RSS growth of that process from just before the task
    ``upsert_users`` starts until it has finished. A control run of the large size without bad rows shows
    what the failure list costs."""
    from benchmarks.dagbench import DAG_LATENCY_MS, DAG_PLAN, DagBench

    out = ScenarioResult()
    res: dict[str, Any] = {}
    plan = [("small", sizes.dag_memory_small, 0.02), ("large", sizes.dag_memory_large, 0.02)]
    if sizes.dag_memory_control:
        plan.append(("control_no_bad_rows", sizes.dag_memory_control, 0.0))
    with DagBench() as bench:
        for label, n, bad in plan:
            log(f"seeding a {n:,}-row CRM ({bad:.0%} bad rows), then spotzee_crm_sync through dag.test "
                f"({DAG_PLAN}, {DAG_LATENCY_MS:.0f} ms; child process, fresh AIRFLOW_HOME)")
            crm, kinds = bench.seed(n, bad)
            with _dag_emulator() as emu:
                r = res[label] = bench.dag_in_process(emu, crm, sizes.dag_timeout_s)
                r["emulator_ledger"] = emu.ledger_summary()
            r["crm_rows"] = kinds
            r["bad_ratio"] = bad
            crm.unlink()
            log(f"{n:,} rows: baseline {r['task_baseline_rss_mb']} MB, task peak growth {r['task_peak_growth_mb']} MB "
                f"(execute {r.get('execute_peak_growth_mb')} MB), {r.get('items_per_s')} items/s, "
                f"execute {r.get('execute_wall_s')} s of task {r.get('task_wall_s')} s")
    small, large = res["small"], res["large"]
    out.details = {"plan": DAG_PLAN, "latency_ms": DAG_LATENCY_MS, **res}
    ns, nl = small["summary"]["extracted"], large["summary"]["extracted"]
    g_small, g_large = small["task_peak_growth_mb"], large["task_peak_growth_mb"]
    e_small, e_large = small.get("execute_peak_growth_mb"), large.get("execute_peak_growth_mb")
    startup = round(large["execute_baseline_rss_mb"] - large["task_baseline_rss_mb"], 1)
    ratio = g_large / g_small if g_small > 0 else None
    note = (f"{_bad(large)} / {_bad(small)} rows reported invalid; RSS before the task {large['task_baseline_rss_mb']:.0f} / "
            f"{small['task_baseline_rss_mb']:.0f} MB; of the growth, {startup} MB come before execute (dags test "
            f"builds its in-process Execution API on the first task); {large.get('items_per_s', 0):,.0f} / "
            f"{small.get('items_per_s', 0):,.0f} items/s, execute {large.get('execute_wall_s')} / "
            f"{small.get('execute_wall_s')} s")
    out.rows += [
        Row("4", f"example DAG, {nl:,} rows: peak RSS growth while upsert_users runs", g_large, "MB", g_small,
            f"same, {ns:,} rows", ratio=ratio, target="≤ 150 MB; ≤ 1.2 × the small run",
            met=g_large <= 150 and ratio is not None and ratio <= 1.2, note=note),
        Row("4", f"the same, operator.execute only ({nl:,} vs {ns:,} rows)", e_large, "MB", e_small,
            f"same, {ns:,} rows", target="(diagnostic; ≤ 150 MB; ≤ 1.2 ×)",
            met=None if e_large is None or not e_small else e_large <= 150 and e_large <= 1.2 * e_small,
            note="baseline when execute is entered: leaves out the task runner's start-up"),
        Row("4", f"the same, absolute peak RSS of the task process ({nl:,} vs {ns:,} rows)",
            large["memory"]["peak_rss_mb"], "MB", small["memory"]["peak_rss_mb"], f"same, {ns:,} rows",
            target="(≤ 1.2 × if 'peak' means the absolute peak)",
            met=large["memory"]["peak_rss_mb"] <= 1.2 * small["memory"]["peak_rss_mb"]),
    ]
    control = res.get("control_no_bad_rows")
    if control is not None and e_large is not None and control.get("execute_peak_growth_mb") is not None:
        e_control = control["execute_peak_growth_mb"]
        failures = large["summary"]["invalid"] + large["summary"]["rejected"] + large["summary"]["dead_lettered"]
        per = (e_large - e_control) * 2**20 / failures / 1024 if failures else None
        out.details["failure_list_cost"] = {"failures": failures, "execute_growth_mb_with": e_large,
                                            "execute_growth_mb_without": e_control,
                                            "kb_per_failure": round(per, 2) if per is not None else None}
        out.rows.append(Row(
            "4", f"control: {control['summary']['extracted']:,} rows, no bad rows: execute peak growth", e_control, "MB",
            e_large, f"same with {failures:,} bad rows", target="(diagnostic)",
            note=(f"the failure list costs ~{per:.1f} KB of RSS per failed record" if per is not None else "")
            + f"; task window {control['task_peak_growth_mb']} MB; {control.get('items_per_s', 0):,.0f} items/s"))
    return out


def _bad(run: dict[str, Any]) -> str:
    s = run["summary"]
    return f"{s['invalid'] + s['rejected'] + s['dead_lettered']:,}"


# ------------------------------------------------------------------ 6. the example DAG vs the hook alone


def dagoverhead(sizes: Sizes, log: Log) -> ScenarioResult:
    """Scenario 6 proper: ``airflow dags test spotzee_crm_sync`` on a seeded CRM vs ``SpotzeeHook.upsert_users``
    on the same rows (same SQLite file, the DAG's mapping), same emulator configuration, each in a fresh
    process, alternated ``dag_overhead_rounds`` times; best of the rounds for each."""
    from benchmarks.dagbench import DAG_LATENCY_MS, DAG_PLAN, DagBench

    out = ScenarioResult()
    n = sizes.dag_overhead_rows
    runs: dict[str, list[dict[str, Any]]] = {"hook": [], "dag": []}
    with DagBench() as bench:
        log(f"seeding a {n:,}-row CRM")
        crm, kinds = bench.seed(n)
        for r in range(sizes.dag_overhead_rounds):
            order = ("hook", "dag") if r % 2 == 0 else ("dag", "hook")
            for what in order:
                with _dag_emulator() as emu:
                    if what == "hook":
                        log(f"round {r + 1}/{sizes.dag_overhead_rounds}: SpotzeeHook.upsert_users on the same rows "
                            f"({DAG_PLAN}, {DAG_LATENCY_MS:.0f} ms)")
                        runs["hook"].append(bench.hook_alone(emu, crm, f"bench-dag-hook-{r}", sizes.dag_timeout_s))
                    else:
                        log(f"round {r + 1}/{sizes.dag_overhead_rounds}: airflow dags test spotzee_crm_sync "
                            f"(fresh AIRFLOW_HOME)")
                        runs["dag"].append(bench.dags_test_cli(emu, crm, sizes.dag_timeout_s))
            h, d = runs["hook"][-1], runs["dag"][-1]
            log(f"round {r + 1}: hook {h['wall_s']} s; DAG: task {d['task_duration_s']} s, execute {d['execute_s']} s, "
                f"dags test {d['wall_s']} s")
    hook_s = min(x["wall_s"] for x in runs["hook"])
    task_s = min(x["task_duration_s"] for x in runs["dag"])
    exec_s = min(x["execute_s"] for x in runs["dag"])
    wall_s = min(x["wall_s"] for x in runs["dag"])
    hook_cpu = min(x["client_cpu_us_per_item"] for x in runs["hook"])
    hook_proc_cpu = min(x["process"]["cpu_s"] / n * 1e6 for x in runs["hook"])
    dag_cpu = min(x["process"]["cpu_s"] / n * 1e6 for x in runs["dag"])
    startup = min((x["task_startup_s"] for x in runs["dag"] if x.get("task_startup_s") is not None), default=None)
    per_round = [{"task_vs_hook": round(d["task_duration_s"] / h["wall_s"], 3),
                  "execute_vs_hook": round(d["execute_s"] / h["wall_s"], 3),
                  "dags_test_vs_hook": round(d["wall_s"] / h["wall_s"], 3)} for h, d in zip(runs["hook"], runs["dag"])]
    rounds = f"{n:,} rows, best of {sizes.dag_overhead_rounds} alternated rounds"
    by_round = "; per round " + ", ".join(f"{r['task_vs_hook']:.2f}" for r in per_round)
    out.details = {"plan": DAG_PLAN, "latency_ms": DAG_LATENCY_MS, "rows": n, "crm_rows": kinds, "runs": runs,
                   "per_round_ratios": per_round,
                   "best": {"hook_wall_s": hook_s, "task_duration_s": task_s, "execute_s": exec_s,
                            "dags_test_wall_s": wall_s, "task_before_execute_s": startup,
                            "hook_client_cpu_us_per_item": hook_cpu,
                            "hook_process_cpu_us_per_item": round(hook_proc_cpu, 1),
                            "dags_test_process_cpu_us_per_item": round(dag_cpu, 1)}}
    out.rows += [
        Row("6", "example DAG vs hook alone: upsert_users task duration (metadata DB)", task_s, "s", hook_s,
            "SpotzeeHook.upsert_users, same rows (read + map + send)", target="≤ 1.3 ×", met=task_s <= 1.3 * hook_s,
            note=f"{rounds}{by_round}; {startup} s of the task pass before execute is entered (dags test builds "
                 "its in-process Execution API on the first task)"),
        Row("6", "example DAG vs hook alone: operator execute (summary elapsed_seconds)", exec_s, "s", hook_s,
            "hook alone", target="≤ 1.3 ×", met=exec_s <= 1.3 * hook_s,
            note="extract + map + dedupe + send + checkpoints + failure file, inside the DAG run"),
        Row("6", "example DAG vs hook alone: whole `airflow dags test` wall time", wall_s, "s", hook_s, "hook alone",
            target="≤ 1.3 × (if read as the whole run)", met=wall_s <= 1.3 * hook_s,
            note="+ CLI start-up, DAG parse and DB sync, in-process API start-up, report_failures, reconcile; "
                 f"whole-process CPU {dag_cpu:.0f} µs/row vs the hook child's {hook_proc_cpu:.0f}"),
    ]
    return out


# ------------------------------------------------------------------ 3b. client CPU of the networked hook


def _area(where: str) -> str:
    """Group a profile entry by package, to see which layer the client's CPU goes to."""
    if where.startswith("~"):
        return "builtins / C extensions"
    if where.startswith("airflow_provider_spotzee/"):
        return "airflow_provider_spotzee/" + where.split("/")[1].split(":")[0]
    top = where.split("/")[0].split(":")[0]
    return top if top and "." not in top else where.split(":")[0].rsplit("/", 1)[-1]


def netprofile(sizes: Sizes, log: Log) -> ScenarioResult:
    """Where the client's CPU goes in a real send (validation + HTTP + per-item results), not just prepare."""
    out = ScenarioResult()
    n = sizes.netprofile_users
    start, recs = _fresh_records(min(n, 20_000))
    _, prep = _time(pipeline, recs, start)
    prep_us = prep / len(recs) * 1e6
    log(f"hook.upsert_users on {n:,} unique users, unprofiled then profiled (Professional, 50 ms)")
    with emulator("professional", latency_ms=LATENCY_MS) as emu:
        plain = run_hook(emu, n, deadline_s=sizes.phase_deadline_s, namespace="bench-net-plain")
        from airflow_provider_spotzee.hooks.spotzee import SpotzeeHook

        hook = SpotzeeHook()
        _ = hook.config
        first = fresh_range(n)
        profiler = cProfile.Profile()
        profiler.enable()
        result = hook.upsert_users(users(first, n), idempotency_namespace="bench-net-prof")
        profiler.disable()
        expect_items("netprofile, profiled send: users accepted", result.succeeded, n)
        expect_items("netprofile: contacts in the emulator (both sends)", emu.ledger_summary()["contacts"],
                     plain["succeeded"] + n)
    stats = pstats.Stats(profiler)
    # Wall-clock profile (a CPU-time timer costs a syscall per call in this VM and distorts everything);
    # the event loop's idle wait shows up as epoll.poll and is left out: it is not work.
    idle = sum(tt for (_f, _l, func), (_c, _n, tt, _ct, _cl) in stats.stats.items() if "epoll" in func)  # type: ignore[attr-defined]
    total = stats.total_tt - idle  # type: ignore[attr-defined]
    rows: list[dict[str, Any]] = []
    areas: dict[str, float] = {}
    for (filename, line, func), (_cc, nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if "epoll" in func:
            continue
        where = f"{_short(filename)}:{line}"
        areas[_area(where)] = areas.get(_area(where), 0.0) + tt
        rows.append({"function": func, "where": where, "ncalls": nc, "tottime_share": round(tt / total, 3),
                     "tottime_us_per_item": round(tt / result.submitted * 1e6, 2),
                     "cumtime_us_per_item": round(ct / result.submitted * 1e6, 2)})
    rows.sort(key=lambda r: r["tottime_share"], reverse=True)
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(40)
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(60)
    results_path("net_profile.txt").write_text(text.getvalue())
    out.details = {"unprofiled": _strip(plain), "prepare_pipeline_us_per_item": round(prep_us, 2),
                   "profiled_items": result.submitted, "profile_busy_s": round(total, 3),
                   "profile_idle_in_epoll_s": round(idle, 3),
                   "areas_share": {k: round(val / total, 3) for k, val in sorted(areas.items(), key=lambda kv: -kv[1])[:15]},
                   "profile_top": rows[:25]}
    out.rows.append(Row("3", "client CPU per item in a real send (hook, network, per-item results)",
                        plain["client_cpu_us_per_item"], "µs/item", round(prep_us, 2),
                        "prepare + body + key alone (in process)", target="(diagnostic)",
                        note="the difference is HTTP, response parsing and bookkeeping"))
    return out


# ---------------------------------------------------------------------------------------- reads


def _plain_pages(base_url: str, api_key: str, deadline: float) -> int:
    import httpx

    seen, cursor = 0, None
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=60.0,
                      trust_env=False) as client:
        while time.monotonic() < deadline:
            page = client.get("/users", params={"limit": 100, **({"cursor": cursor} if cursor else {})}).json()
            seen += len(page["results"])
            cursor = page.get("nextCursor")
            if not cursor:
                break
    return seen


def reads(sizes: Sizes, log: Log) -> ScenarioResult:
    """Not in the issue: ``hook.iter_users`` (cursor pages of 100) vs a plain sequential httpx loop."""
    from airflow_provider_spotzee.hooks.spotzee import SpotzeeHook

    out = ScenarioResult()
    n = sizes.read_contacts
    with emulator("starter", latency_ms=LATENCY_MS, rate_limits=False) as emu:
        log(f"seeding {n:,} contacts, then reading them back both ways (50 ms)")
        hook = SpotzeeHook()
        seeded = hook.upsert_users(users(fresh_range(n), n), idempotency_namespace="bench-reads-seed")
        expect_items("reads: contacts seeded", seeded.succeeded, n)
        started = time.perf_counter()
        deadline = time.monotonic() + sizes.phase_deadline_s
        got = 0
        for _ in hook.iter_users(max_items=n):
            got += 1
            if got % 100 == 0 and time.monotonic() > deadline:
                break
        hook_rate = got / (time.perf_counter() - started)
        started = time.perf_counter()
        plain = _plain_pages(emu.base_url, emu.api_key, time.monotonic() + sizes.phase_deadline_s)
        plain_rate = plain / (time.perf_counter() - started)
    expect_items("reads: contacts read by hook.iter_users", got, n, partial_ok=True)
    expect_items("reads: contacts read by the plain loop", plain, n, partial_ok=True)
    out.details = {"contacts": n, "hook_read": got, "plain_read": plain,
                   "hook_contacts_per_s": round(hook_rate, 1), "plain_contacts_per_s": round(plain_rate, 1)}
    out.rows.append(Row("R", "hook.iter_users vs plain httpx paging loop (contacts/s)", round(hook_rate, 1),
                        "contacts/s", round(plain_rate, 1), "plain sequential httpx.Client loop",
                        target="(not in the issue; ≥ 1 ×)", met=hook_rate >= plain_rate,
                        note="sequential pages of 100 both ways; the hook also builds a Contact model per contact"))
    return out


SCENARIOS = {
    "cpu": cpu,
    "netprofile": netprofile,
    "throughput": throughput,
    "naive": naive,
    "layering": layering,
    "memory": memory,
    "dagmemory": dagmemory,
    "dagoverhead": dagoverhead,
    "scaleout": scaleout,
    "dagworker": scheduler_overhead,
    "reads": reads,
    "celery": celery,
    "diff": diff,
}

from benchmarks.clientcpu import clientcpu  # issue 19's scenario, in its own module

SCENARIOS["clientcpu"] = clientcpu

from benchmarks.emulatorcpu import emulatorcpu  # issue 19: the emulator's own CPU per item

SCENARIOS["emulatorcpu"] = emulatorcpu
