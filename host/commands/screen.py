"""`sentinel host screen FILE.csv`: screen a staff list through the host's API, as a screener.

Uploads the list, follows the job (a progress bar on a terminal), prints how many rows got
each flag and, with --out, writes the results as CSV with the names and staff ids put back by
the job's key. The ID numbers never come back: rows are matched by their number in the file.
"""

from __future__ import annotations

import argparse
import csv
import io
import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, TextIO

import httpx

from host.commands import add_api_arguments, api_client, api_error, print_table
from host.screening import KEY_HEADER, MAX_TEST_AGE_HOURS
from host.storage.screening import Flag, ScreeningStatus

POLL_SECONDS = 0.25
BAR_WIDTH = 30
FINISHED = (ScreeningStatus.DONE.value, ScreeningStatus.FAILED.value)


def age_in_hours(text: str) -> int:
    """`48h`, `48` (hours) or `2d` as whole hours; argparse's error otherwise."""
    match = re.fullmatch(r"\s*(\d+)\s*([hd]?)\s*", text.lower())
    hours = 0 if match is None else int(match.group(1)) * (24 if match.group(2) == "d" else 1)
    if not 1 <= hours <= MAX_TEST_AGE_HOURS:
        raise argparse.ArgumentTypeError(
            f"a test age is hours or days, e.g. 48h or 2d, up to {MAX_TEST_AGE_HOURS} hours"
        )
    return hours


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file",
        type=Path,
        help="the staff list: CSV UTF-8 with a header row id_number[,name][,staff_id]",
    )
    parser.add_argument(
        "--max-test-age",
        required=True,
        type=age_in_hours,
        metavar="AGE",
        help="a negative test must be sampled within this, e.g. 48h or 2d",
    )
    parser.add_argument(
        "--purpose",
        required=True,
        help="why the list is screened (an order or notice number); kept in the audit log",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="write the results here as CSV: row, name, staff_id, flag, hours_since_test",
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="how long to wait for the job to finish (default 600)",
    )
    add_api_arguments(parser)


class ProgressBar:
    """One line redrawn in place: `[#####-----]  50%  5,000 / 10,000 rows`."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def show(self, processed: int, total: int) -> None:
        share = processed / total if total else 1.0
        filled = round(share * BAR_WIDTH)
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        self.out.write(f"\r[{bar}] {share:4.0%}  {processed:,} / {total:,} rows")
        self.out.flush()

    def end(self) -> None:
        self.out.write("\n")
        self.out.flush()


def _wait(
    client: httpx.Client, screening_id: str, seconds: float, bar: ProgressBar | None
) -> dict[str, Any]:
    """The job once done or failed, or as it was when `seconds` ran out; progress on `bar`."""
    deadline = time.monotonic() + seconds
    while True:
        response = client.get(f"/screenings/{screening_id}")
        if not response.is_success:
            raise RuntimeError(api_error(response))
        job = response.json()
        if bar is not None:
            bar.show(job["processed"], job["total"])
        if job["status"] in FINISHED or time.monotonic() > deadline:
            if bar is not None:
                bar.end()
            return job
        time.sleep(POLL_SECONDS)


def _summary(
    client: httpx.Client, args: argparse.Namespace, job: dict[str, Any], key: str | None
) -> dict[str, int]:
    """Rows per flag; with --out, from the result CSV, written there (one audited read)."""
    screening_id = job["id"]
    params = {"purpose": args.purpose}
    if args.out is None:
        response = client.get(f"/screenings/{screening_id}", params=params | {"limit": 0})
        if not response.is_success:
            raise RuntimeError(api_error(response))
        return response.json()["summary"]
    headers = {} if key is None else {KEY_HEADER: key}
    response = client.get(f"/screenings/{screening_id}/result.csv", params=params, headers=headers)
    if not response.is_success:
        raise RuntimeError(api_error(response))
    args.out.write_bytes(response.content)
    rows = csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"), newline=""))
    return Counter(row["flag"] for row in rows)


def run(args: argparse.Namespace) -> int:
    try:
        data = args.file.read_bytes()
        client = api_client(args)
    except (OSError, ValueError) as error:
        print(f"sentinel host screen: {error}", file=sys.stderr)
        return 2
    with client:
        try:
            return _screen(client, args, data)
        except (RuntimeError, httpx.HTTPError) as error:
            print(f"sentinel host screen: {error}", file=sys.stderr)
            return 2


def _screen(client: httpx.Client, args: argparse.Namespace, data: bytes) -> int:
    response = client.post(
        "/screenings",
        params={"max_test_age_hours": args.max_test_age, "purpose": args.purpose},
        content=data,
        headers={"Content-Type": "text/csv"},
    )
    if not response.is_success:
        print(f"sentinel host screen: {args.file}: {api_error(response)}", file=sys.stderr)
        return 2
    created = response.json()
    key = created["key"]
    bar = ProgressBar(sys.stdout) if sys.stdout.isatty() else None
    job = _wait(client, created["id"], args.wait, bar)
    if job["status"] != ScreeningStatus.DONE.value:
        print(f"sentinel host screen: screening {job['id']} is {job['status']}", file=sys.stderr)
        if job["status"] != ScreeningStatus.FAILED.value and key is not None:
            print(f"its key, to read it later (shown only now): {key}", file=sys.stderr)
        return 1
    counts = _summary(client, args, job, key)
    total = job["total"]
    print(f"screening {job['id']}: {total:,} rows, tests within {args.max_test_age} h")
    rows = [(flag.value, counts.get(flag.value, 0)) for flag in Flag]
    print_table(
        ["flag", "rows", "share"],
        [(flag, f"{count:,}", f"{count / total:.1%}") for flag, count in rows],
    )
    if args.out is not None:
        print(f"results written to {args.out}")
    return 0
