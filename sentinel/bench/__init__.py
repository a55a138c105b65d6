"""`sentinel bench`: benchmarks that print tables; speed targets are checked here, not in tests.

sentinel bench decode    QR decoders alone and ours: real photos, synthetic kiosk and paper sets
sentinel bench pipeline  a kiosk clip through the agent offline: ms per frame, peak RSS
sentinel bench verify    µs per credential verified (EU DCC ES256 and PS256, health, venue codes)
sentinel bench card      ms per eMRTD read (BAC, EF.COM, DG1) and per GA 467 ID-card read
sentinel bench sync      check-in commits/s by SQLite synchronous level; a backlog synced to a host
sentinel bench host      host ingest, request rates, RSS; tracing, spike detector, screening
sentinel bench screen    ms from a check-in's commit to its decision on the kiosk screen (Chromium)
sentinel bench idhash    ID numbers guessed from their stored hashes, by what an attacker holds
sentinel bench sweep     one birth date's ID numbers swept through /device/status, limits off/on
sentinel bench dashboard the operator pages against a large audit log and many devices
sentinel bench flows-pages  the flows and alerts pages on a city of millions of check-ins
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from dataclasses import replace
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

from sentinel.bench.host import DEFAULT_DB_URL
from sentinel.progress import progress

HOST_PARTS = ("requests", "epidemiology")
QUICK_SCREENING_ROWS = 1000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    benches = parser.add_subparsers(dest="bench", required=True, metavar="BENCH")
    decode = benches.add_parser("decode", help="QR decoders compared")
    decode.add_argument("--seed", type=int, default=2022, help="seed of the synthetic sets")
    decode.add_argument("--codes", type=int, default=120, help="synthetic frames with codes")
    decode.add_argument("--empty", type=int, default=40, help="synthetic frames without")
    decode.add_argument(
        "--warped", type=int, default=60, help="synthetic frames with warped paper codes"
    )
    decode.add_argument(
        "--warped-empty",
        type=int,
        default=20,
        help="synthetic warped frames without a readable code (half hold damaged codes)",
    )
    decode.add_argument("--repeat", type=int, default=3, help="timings per frame (median kept)")
    decode.add_argument(
        "--decoders",
        nargs="+",
        metavar="NAME",
        help="only these (zxing-cpp, zbar, opencv, ours); default all",
    )
    decode.add_argument(
        "--sets",
        nargs="+",
        choices=["dev", "kiosk", "warped"],
        default=["dev", "kiosk", "warped"],
        metavar="SET",
        help="dev (real photos), kiosk, warped (paper codes); default all",
    )
    decode.add_argument(
        "--burst",
        type=int,
        default=10,
        help="frames each sample is held in view for the live decoder (0: leave it out)",
    )
    decode.add_argument("--json", action="store_true", help="one JSON object instead of tables")
    pipeline = benches.add_parser("pipeline", help="frame to decision through the agent")
    pipeline.add_argument("--people", type=int, default=10, help="people in the clip")
    pipeline.add_argument("--seed", type=int, default=7, help="seed of the synthetic people")
    pipeline.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    benches.add_parser("idhash", help="ID numbers guessed from stored hashes, by what is held")
    _add_dashboard(benches.add_parser("dashboard", help="operator pages at a city's size"))
    _add_flows_pages(benches.add_parser("flows-pages", help="flows pages at a city's size"))
    verify = benches.add_parser("verify", help="credential verification against the signature")
    verify.add_argument("--iterations", type=int, default=1000, help="timings per credential")
    verify.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    sync = benches.add_parser("sync", help="check-in commit rate and backlog sync to a host")
    sync.add_argument("--backlog", type=int, default=100_000, help="check-ins to sync")
    sync.add_argument("--commits", type=int, default=2000, help="check-ins committed per level")
    sync.add_argument(
        "--latency-ms", type=float, default=100.0, help="added by the proxy to each chunk each way"
    )
    sync.add_argument("--window", type=int, default=None, help="batches in flight at once")
    sync.add_argument(
        "--quick", action="store_true", help="a small run: 2,000 check-ins, 200 commits per level"
    )
    sync.add_argument("--json", action="store_true", help="one JSON object instead of tables")
    card = benches.add_parser("card", help="ID card and passport reads")
    card.add_argument("--reads", type=int, default=50, help="timed reads per row")
    card.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    host = benches.add_parser("host", help="host ingest and request rates, SQLite and PostgreSQL")
    host.add_argument(
        "--checkins", type=int, help="check-ins stored straight (default 100,000; quick 2,000)"
    )
    host.add_argument(
        "--http-checkins", type=int, help="check-ins synced over HTTP a run (default 20,000)"
    )
    host.add_argument("--seconds", type=float, help="each wrk run (default 10; quick 2)")
    host.add_argument("--connections", type=int, default=64, help="wrk's open connections")
    host.add_argument(
        "--db-url",
        default="postgresql://127.0.0.1:5432/test",
        help="the PostgreSQL database (a scratch schema in it for each host)",
    )
    host.add_argument(
        "--backends",
        nargs="+",
        choices=["sqlite", "postgresql"],
        default=["sqlite", "postgresql"],
        metavar="BACKEND",
        help="the storage backends to measure: sqlite, postgresql",
    )
    host.add_argument(
        "--quick",
        action="store_true",
        help="a small run: 2,000 check-ins each, 2 s per wrk run; 200,000 check-ins traced,"
        " 1,000 rows screened",
    )
    host.add_argument(
        "--parts",
        nargs="+",
        choices=HOST_PARTS,
        default=list(HOST_PARTS),
        metavar="PART",
        help="requests (ingest, wrk, RSS) and epidemiology (tracing and the spike detector at"
        " 10 million check-ins, a 10,000-row screening); default both",
    )
    host.add_argument(
        "--trace-checkins",
        type=int,
        help="check-ins of the city traced and watched for spikes (default 10,000,000)",
    )
    host.add_argument(
        "--screening-rows", type=int, help="rows of the staff list screened (default 10,000)"
    )
    host.add_argument("--json", action="store_true", help="one JSON object instead of tables")
    _add_sweep(benches.add_parser("sweep", help="ID numbers swept through /device/status"))
    screen = benches.add_parser("screen", help="commit to decision on the kiosk screen")
    screen.add_argument("--decisions", type=int, default=60, help="timed decisions per size")
    screen.add_argument("--json", action="store_true", help="one JSON object instead of a table")


def _add_sweep(sweep: argparse.ArgumentParser) -> None:
    sweep.add_argument("--db", help="postgresql://... (default: a temporary SQLite file)")
    sweep.add_argument(
        "--quick", action="store_true", help="a small run: 100 numbers, 50 timed lookups"
    )
    sweep.add_argument("--json", action="store_true", help="one JSON object instead of a table")


def _add_dashboard(dashboard: argparse.ArgumentParser) -> None:
    dashboard.add_argument(
        "--quick",
        action="store_true",
        help="10,000 audit records and 500 devices (default: 200,000 and 5,000)",
    )
    _add_backends(dashboard)


def _add_flows_pages(flows_pages: argparse.ArgumentParser) -> None:
    flows_pages.add_argument(
        "--quick", action="store_true", help="200,000 check-ins (default: 2,000,000)"
    )
    _add_backends(flows_pages)


def _add_backends(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backends",
        nargs="+",
        choices=["sqlite", "postgresql"],
        default=["sqlite", "postgresql"],
        help="the backends to time (default: both)",
    )
    parser.add_argument(
        "--db-url",
        default=DEFAULT_DB_URL,
        help=f"PostgreSQL for its runs (default {DEFAULT_DB_URL})",
    )


def run(args: argparse.Namespace) -> int:
    header = (
        f"measured {datetime.now(UTC):%Y-%m-%d} on {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}"
    )
    if args.bench == "decode":
        return _decode(args, header)
    if args.bench == "verify":
        return _verify(args, header)
    if args.bench == "sync":
        return _sync(args, header)
    if args.bench == "card":
        return _card(args, header)
    if args.bench == "host":
        return _host(args, header)
    if args.bench == "screen":
        return _screen(args, header)
    if args.bench == "sweep":
        return _sweep(args, header)
    if args.bench == "dashboard":
        from sentinel.bench import dashboard

        sizes = dashboard.QUICK if args.quick else dashboard.FULL
        runs = dashboard.measure(*sizes, args.backends, args.db_url)
        print(f"Dashboard operator pages ({header}; in-process, signed in as the admin)\n")
        print("\n".join(dashboard.table(runs)))
        return 0
    if args.bench == "flows-pages":
        from sentinel.bench import dashboard_flows

        checkins = dashboard_flows.QUICK_CHECKINS if args.quick else dashboard_flows.FULL_CHECKINS
        page_runs = dashboard_flows.measure(checkins, args.backends, args.db_url)
        print(f"Dashboard flows pages ({header}; in-process, signed in as the admin)\n")
        print("\n".join(dashboard_flows.table(page_runs)))
        return 0
    if args.bench == "idhash":
        from sentinel.bench import idhash

        print(f"ID-number hashes against guessing ({header})\n")
        print("\n".join(idhash.table(*idhash.measure())))
        return 0
    from sentinel.bench import pipeline

    result = pipeline.measure(people=args.people, seed=args.seed)
    if args.json:
        print(json.dumps({"measured": header, **result.as_json()}))
    else:
        print(f"Frame to decision, offline ({header})\n")
        print("\n".join(result.table()))
    return 0


def _decode(args: argparse.Namespace, header: str) -> int:
    from sentinel.bench import decode

    chosen = decode.decoders(args.decoders)
    sets = {}
    if "dev" in args.sets:
        if decode.DEV_SET.is_dir():
            sets["dev"] = decode.dev_set()
        else:
            print(f"(the dev set is not at {decode.DEV_SET}; skipped)")
    if "kiosk" in args.sets:
        sets["kiosk"] = decode.kiosk_set(args.seed, args.codes, args.empty)
    if "warped" in args.sets:
        sets["warped"] = decode.warped_set(args.seed, args.warped, args.warped_empty)
    results = {name: decode.measure(samples, chosen, args.repeat) for name, samples in sets.items()}
    methods = (
        {name: decode.read_by_method(samples) for name, samples in sets.items()}
        if decode.OURS in chosen
        else {}
    )
    if args.burst > 0 and (args.decoders is None or decode.OURS in args.decoders):
        for name, samples in sets.items():
            results[name][f"{decode.OURS}, live ({args.burst} frames each)"] = decode.measure_live(
                samples, args.burst, reference=chosen.get(decode.REFERENCE)
            )
    if args.json:
        print(
            json.dumps(
                {
                    "measured": header,
                    "sets": {name: decode.as_json(tallies) for name, tallies in results.items()},
                    "missed_by_ours": {
                        name: decode.missed_by_ours(tallies) for name, tallies in results.items()
                    },
                    "read_by_method": methods,
                },
                ensure_ascii=False,
            )
        )
        return 0
    titles = {
        "dev": f"Dev set: {len(sets.get('dev', []))} photos of ../shared/data/qr/zxing-cpp",
        "kiosk": (
            f"Synthetic kiosk set (seed {args.seed}): {args.codes} frames with codes, "
            f"{args.empty} without, 1280x720"
        ),
        "warped": (
            f"Synthetic paper codes as people carry them (seed {args.seed}): {args.warped} "
            "frames of folded, crumpled, wrinkled, bent, curved or cloth codes, "
            f"{args.warped_empty} without a readable one, 1280x720"
        ),
    }
    print(f"QR decoding ({header}; median of {args.repeat} timings per frame)")
    for name, tallies in results.items():
        print(f"\n{titles[name]}\n")
        print("\n".join(decode.table(tallies)))
        for decoder, tally in tallies.items():
            if tally.crashes:
                print(f"\n{decoder} raised on {tally.crashes} calls (counted as reading nothing)")
        for ours, missed in decode.missed_by_ours(tallies).items():
            print(f"\nread by a library alone but not by {ours}: {len(missed)}")
            for item in missed:
                print(f"  {item[:100]}")
        if name in methods:
            counts = ", ".join(f"{method} {count}" for method, count in methods[name].items())
            print(f"\ncodes {decode.OURS} read, by the method that read them: {counts}")
    return 0


def _verify(args: argparse.Namespace, header: str) -> int:
    from sentinel.bench import verify
    from shared.dcc.schema import SchemaStore

    credentials = verify.credentials(SchemaStore.default())
    verify.measure(credentials, args.iterations)
    if args.json:
        print(json.dumps({"measured": header, "credentials": verify.as_json(credentials)}))
        return 0
    print(
        f"Credential verification, offline ({header}; {args.iterations} timings each, "
        "the whole verification and the signature check alone, alternately)\n"
    )
    print("\n".join(verify.table(credentials)))
    return 0


def _card(args: argparse.Namespace, header: str) -> int:
    from sentinel.bench import card

    timings, skipped = card.measure(args.reads)
    if args.json:
        rows = [timing.as_json() for timing in timings]
        print(json.dumps({"measured": header, "reads": rows, "not_measured": skipped}))
        return 0
    print(f"Card reads ({header}; {args.reads} timed reads each)\n")
    print("\n".join(card.table(timings, skipped)))
    return 0


def _sync(args: argparse.Namespace, header: str) -> int:
    from device.sync import DEFAULT_WINDOW
    from sentinel.bench import sync

    backlog, commits = (2000, 200) if args.quick else (args.backlog, args.commits)
    window = DEFAULT_WINDOW if args.window is None else args.window
    result = sync.measure(
        commits=commits, backlog=backlog, latency_ms=args.latency_ms, window=window
    )
    if args.json:
        print(json.dumps({"measured": header, **result.as_json()}))
        return 0
    print(
        f"Check-in commits and backlog sync ({header}; host `sentinel host serve` on "
        "127.0.0.1, SQLite WAL, synchronous=FULL on both sides)\n"
    )
    print("\n".join(result.tables()))
    return 0


def _host(args: argparse.Namespace, header: str) -> int:
    from sentinel.bench import host

    report: dict[str, Any] = {}
    tables: list[str] = []
    if "requests" in args.parts:
        result = _host_requests(args, host)
        report |= result.as_json()
        tables += result.tables()
    if "epidemiology" in args.parts:
        epidemiology, lines = _host_epidemiology(args)
        report |= epidemiology
        tables += lines
    progress.clear()
    if args.json:
        print(json.dumps({"measured": header, **report}))
        return 0
    backends = " and ".join(host.BACKEND_NAMES[backend] for backend in args.backends)
    print(f"Host ingest, requests and epidemiology ({header}; {backends})\n")
    print("\n".join(tables))
    return 0


def _host_requests(args: argparse.Namespace, host: ModuleType) -> Any:
    """The host's ingest, request rates and RSS (`sentinel.bench.host`)."""
    given = {
        "checkins": args.checkins,
        "http_checkins": args.http_checkins,
        "seconds": args.seconds,
    }
    sizes = replace(
        host.QUICK if args.quick else host.FULL,
        **{name: value for name, value in given.items() if value is not None},
    )
    return host.measure(
        backends=args.backends, db_url=args.db_url, sizes=sizes, connections=args.connections
    )


def _host_epidemiology(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    """Tracing and the spike detector over a synthetic city, and a staff-list screening."""
    from sentinel.bench import flows, screening, tracing

    checkins = args.trace_checkins or (
        tracing.QUICK_CHECKINS if args.quick else tracing.FULL_CHECKINS
    )
    common = {"backends": args.backends, "db_url": args.db_url}
    queries = tracing.QUICK_QUERIES if args.quick else tracing.FULL_QUERIES
    traced = tracing.measure(**common, checkins=checkins, queries=queries)
    detector, flow_queries = flows.measure(**common, checkins=checkins)
    rows = args.screening_rows or (QUICK_SCREENING_ROWS if args.quick else screening.ROWS)
    screened = screening.run(**common, rows=rows)
    report = {
        "tracing": [row.as_json() for row in traced],
        "spike_detector": [row.as_json() for row in detector],
        "flows": [row.as_json() for row in flow_queries],
        "screening": [row.as_json() for row in screened],
    }
    lines = [
        "",
        *tracing.table(traced),
        "",
        *flows.tables(detector, flow_queries),
        "",
        *screening.table(screened),
    ]
    return report, lines


def _sweep(args: argparse.Namespace, header: str) -> int:
    from sentinel.bench import sweep

    numbers, lookups = (
        (sweep.QUICK_NUMBERS, sweep.QUICK_COST_LOOKUPS)
        if args.quick
        else (sweep.NUMBERS, sweep.COST_LOOKUPS)
    )
    results = sweep.measure(args.db, numbers, lookups)
    if args.json:
        rows = {limits: result.as_json() for limits, result in results.items()}
        print(json.dumps({"measured": header, "numbers": numbers, "limits": rows}))
        return 0
    print(
        f"A status sweep ({header}; {numbers:,} ID numbers of one birth date through"
        " /device/status, one registered; the host in process on a clock the bench moves)\n"
    )
    print("\n".join(sweep.table(results)))
    return 0


def _screen(args: argparse.Namespace, header: str) -> int:
    from sentinel.bench import screen
    from sentinel.browser import BrowserUnavailable

    try:
        results = screen.measure(args.decisions)
    except BrowserUnavailable as error:
        print(f"sentinel bench screen: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"measured": header, "sizes": [row.as_json() for row in results]}))
        return 0
    print(
        f"Kiosk screen: commit to decision on screen ({header}; headless Chromium, "
        f"{args.decisions} decisions per size, one at a time, after {screen.WARM_UP} not counted)\n"
    )
    print("\n".join(screen.table(results)))
    return 0
