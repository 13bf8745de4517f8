"""How much each scenario does: the full run (< 10 min on the 2-core box) and ``--quick`` (~1.5 min)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    # 1. throughput vs the rate ceiling (hook.upsert_users, sync endpoint, 50 ms latency)
    capacity_users: int          # raw client against the emulator alone (rate limits off)
    starter_users: int           # the 200,000
    starter_repeat_users: int    # same, emails/phones repeating (validation caches hit on both sides)
    professional_users: int
    phase_deadline_s: float      # a hook/probe phase stops feeding records after this
    # 2. versus a naive loop
    naive_hook_users: int
    naive_users: int             # the naive loop is timed on this subset
    # 3. client CPU per item (in process)
    cpu_records: int             # per round, fresh (unique) records
    cpu_rounds: int
    cpu_profile_records: int
    netprofile_users: int        # client-side profile of a real send
    # 4. memory (peak RSS growth of hook.upsert_users over a generator, in a child process)
    memory_small: int
    memory_large: int
    memory_deadline_s: float
    # 4. through the example DAG (airflow dags test): peak RSS growth while upsert_users runs, two sizes
    dag_memory_small: int
    dag_memory_large: int
    dag_memory_control: int      # the same with no bad rows (0: skipped): what the failure list costs
    # 6. hook vs operator code path (in process, no Airflow)
    layering_users: int
    layering_rounds: int
    # 6. the example DAG (airflow dags test) vs the hook alone on the same rows, alternated rounds
    dag_overhead_rows: int
    dag_overhead_rounds: int
    dag_timeout_s: float         # a DAG run (or the hook run) is killed after this; the scenario then fails
    # 5. 8 mapped partitions on a real scheduler (LocalExecutor, PostgreSQL metadata DB), Starter, 50 ms
    scaleout_rows: int
    scaleout_timeout_s: float
    # reads (not in the issue): hook.iter_users vs a plain paging loop
    read_contacts: int
    # 15. diff syncs: a model of this many rows, 1 % changed (Professional, emulator in its own process)
    diff_rows: int = 1_000_000
    diff_timeout_s: float = 900.0


FULL = Sizes(
    capacity_users=40_000, starter_users=200_000, starter_repeat_users=100_000,
    professional_users=100_000,
    phase_deadline_s=75.0,
    naive_hook_users=50_000, naive_users=10_000,
    cpu_records=50_000, cpu_rounds=3, cpu_profile_records=30_000, netprofile_users=30_000,
    memory_small=100_000, memory_large=1_000_000, memory_deadline_s=220.0,
    dag_memory_small=100_000, dag_memory_large=1_000_000, dag_memory_control=1_000_000,
    layering_users=60_000, layering_rounds=2,
    dag_overhead_rows=100_000, dag_overhead_rounds=2, dag_timeout_s=900.0,
    scaleout_rows=800_000, scaleout_timeout_s=900.0,
    read_contacts=10_000,
)

QUICK = Sizes(
    capacity_users=3_000, starter_users=8_000, starter_repeat_users=5_000,
    professional_users=5_000,
    phase_deadline_s=10.0,
    naive_hook_users=3_000, naive_users=500,
    cpu_records=8_000, cpu_rounds=1, cpu_profile_records=4_000, netprofile_users=3_000,
    memory_small=3_000, memory_large=10_000, memory_deadline_s=10.0,
    dag_memory_small=2_000, dag_memory_large=20_000, dag_memory_control=0,
    layering_users=3_000, layering_rounds=1,
    dag_overhead_rows=2_000, dag_overhead_rounds=1, dag_timeout_s=300.0,
    scaleout_rows=20_000, scaleout_timeout_s=300.0,
    read_contacts=500,
    diff_rows=20_000, diff_timeout_s=300.0,
)
