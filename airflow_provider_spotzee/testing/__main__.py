"""``spotzee-emulator`` / ``python -m airflow_provider_spotzee.testing``: run the emulator until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import signal
import sys
from pathlib import Path

from uvicorn.config import LOGGING_CONFIG

from airflow_provider_spotzee.testing import items
from airflow_provider_spotzee.testing.app import ADMIN_PREFIX, API_PREFIX, create_app
from airflow_provider_spotzee.testing.config import (
    CURRENT_VERSION,
    DEFAULT_API_KEY,
    PLANS,
    ApiKey,
    EmulatorConfig,
    FaultConfig,
    default_api_keys,
)
from airflow_provider_spotzee.testing.server import (
    HTTP_IMPL,
    LOOP_IMPL,
    QuietServer,
    bind_socket,
    check_host,
    root_url,
    run_async,
    uvicorn_config,
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="spotzee-emulator",
        description="Run the local Spotzee API emulator (for tests and benchmarks).",
    )
    p.add_argument("--host", default="127.0.0.1", help="listen address (loopback only unless forced)")
    p.add_argument("--port", type=int, default=8089, help="listen port; 0 picks a free one (default 8089)")
    p.add_argument("--allow-non-loopback", action="store_true", help="allow a non-loopback --host")
    p.add_argument(
        "--plan", choices=sorted(PLANS), default="starter", help="rate-limit plan (default starter)"
    )
    p.add_argument("--no-rate-limits", action="store_true", help="never answer 429 (headers still sent)")
    p.add_argument(
        "--async-delay",
        type=float,
        default=0.5,
        metavar="SECONDS",
        help="delay before PATCH /users items become visible (default 0.5)",
    )
    p.add_argument(
        "--numeric-user-ids-first",
        action="store_true",
        help="read an all-digit {userId} in a path as a numeric contact id first (default: external_id first)",
    )
    p.add_argument("--seed", type=int, default=0, help="fault-injection seed (default 0)")
    p.add_argument("--api-key", default=DEFAULT_API_KEY, help="the read+write key (default sk_test_emulator)")
    faults = p.add_argument_group("fault injection")
    faults.add_argument("--error-rate", type=float, default=0.0, help="5xx before apply (0..1)")
    faults.add_argument(
        "--drop-after-apply-rate",
        type=float,
        default=0.0,
        help="apply the write, then cut the connection (0..1)",
    )
    faults.add_argument("--latency-ms", type=float, default=0.0, help="added latency per response")
    faults.add_argument("--latency-jitter-ms", type=float, default=0.0, help="plus uniform(0, jitter)")
    faults.add_argument("--storm-seconds", type=float, default=0.0, help="429 on every write for N seconds")
    faults.add_argument(
        "--in-progress-rate", type=float, default=0.0, help="forced 409 idempotency_in_progress (0..1)"
    )
    faults.add_argument(
        "--item-error-rate",
        type=float,
        default=0.0,
        help="per-item transient internal_error in sync batches (0..1)",
    )
    p.add_argument("--config-file", type=Path, help="a JSON EmulatorConfig (overrides the flags above)")
    p.add_argument("--ready-file", type=Path, help="write {port, base_url, pid} here once listening")
    p.add_argument("--parent-pid", type=int, help="exit when this process goes away")
    p.add_argument("--quiet", action="store_true", help="print nothing on start")
    return p


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    if args.config_file is not None:
        return EmulatorConfig.from_dict(json.loads(args.config_file.read_text()))
    keys = default_api_keys()
    if args.api_key != DEFAULT_API_KEY:
        keys[0] = ApiKey(args.api_key)
    return EmulatorConfig(
        plan=args.plan,
        rate_limits=not args.no_rate_limits,
        async_delay_seconds=args.async_delay,
        seed=args.seed,
        api_keys=tuple(keys),
        numeric_user_ids_first=args.numeric_user_ids_first,
        faults=FaultConfig(
            error_rate=args.error_rate,
            drop_after_apply_rate=args.drop_after_apply_rate,
            latency_ms=args.latency_ms,
            latency_jitter_ms=args.latency_jitter_ms,
            storm_seconds=args.storm_seconds,
            in_progress_rate=args.in_progress_rate,
            item_error_rate=args.item_error_rate,
        ),
    )


def warm_up() -> None:
    """Load what the first request would otherwise load (the validators import email-validator,
    phonenumbers and langcodes on first use: ~0.2 s of CPU), then move everything alive now out of the
    cyclic garbage collector's sight (``gc.freeze``): the import-time heap never becomes garbage, and a
    full collection then only walks the emulator's own state."""
    items.upsert_item(
        {"external_id": "warm-up", "email": "warm.up@example.com", "phone": "+61400000000",
         "timezone": "Europe/London", "locale": "en-GB", "data": {"k": 1.5}}
    )
    items.event_item({"name": "warm_up", "external_id": "warm-up", "created_at": "2026-01-01T00:00:00Z"})
    gc.collect()
    gc.freeze()
    # A collection every 20,000 (not 700) more live objects: a request holds a few hundred while it is
    # handled, so the default ran one every few requests (~1 µs of CPU per item); cycles are rare here.
    gc.set_threshold(20_000, 10, 10)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
        check_host(args.host, args.allow_non_loopback)
        sock = bind_socket(args.host, args.port)
    except (ValueError, OSError) as exc:
        parser.exit(2, f"spotzee-emulator: error: {exc}\n")
    port = sock.getsockname()[1]
    root = root_url(args.host, port)
    server = QuietServer(uvicorn_config(create_app(config), args.host, log_config=LOGGING_CONFIG))
    warm_up()

    def stop() -> None:
        server.should_exit = True

    async def watch_parent(pid: int) -> None:
        while not server.should_exit:
            if os.getppid() != pid:
                stop()
                return
            await asyncio.sleep(0.5)

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            if task.done():
                await task
                return
            await asyncio.sleep(0.01)
        if not args.quiet:
            print(f"Spotzee emulator (plan {config.plan}, API version {CURRENT_VERSION}) listening on")
            print(f"  base URL : {root}{API_PREFIX}")
            print(f"  API key  : {config.api_key}")
            readonly = [k.key for k in config.api_keys if not k.can("write")]
            if readonly:
                print(f"  read-only: {readonly[0]}")
            print(f"  admin API: {root}{ADMIN_PREFIX}/ (stats, ledger/summary, faults, config, clock, reset)")
            print(f"  server   : uvicorn, loop={LOOP_IMPL}, http={HTTP_IMPL}; Ctrl+C to stop")
            sys.stdout.flush()
        if args.ready_file is not None:
            tmp = args.ready_file.with_suffix(".tmp")
            tmp.write_text(json.dumps({"port": port, "base_url": f"{root}{API_PREFIX}", "pid": os.getpid()}))
            tmp.replace(args.ready_file)
        watcher = asyncio.create_task(watch_parent(args.parent_pid)) if args.parent_pid else None
        try:
            await task
        finally:
            if watcher is not None:
                watcher.cancel()

    try:
        run_async(serve)
    finally:
        sock.close()
    if not args.quiet:
        print("Spotzee emulator stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
