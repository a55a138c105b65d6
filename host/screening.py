"""Staff-list screening (复工复产比对): the CSV, the flags, sealed echo columns, the job runner.

A firm or a platform uploads its staff list; each ID number is checked (MOD 11-2) and turned at
once into its keyed hash, and the number itself goes no further. Names and staff ids are sealed
(AES-256-GCM) under a key made for the job and handed to the uploader once: the host keeps the
ciphertext, never the key, so only the uploader can have them echoed back. The job lives in
the database; any worker claims it under a lease, flags its rows a chunk per transaction, and
a worker that dies leaves the job to the next one once its lease runs out.
"""

from __future__ import annotations

import asyncio
import codecs
import csv
import io
import json
import logging
import math
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from host.api.deps import HostContext, Principal
from host.core.security import id_number_hmac, random_id
from host.core.times import DAY_MS, HOUR_MS
from host.storage.screening import (
    Flag,
    RowResult,
    ScreeningRecord,
    ScreeningStatus,
    Standing,
    SubmittedRow,
)
from host.storage.sql import SqlStorage
from shared.healthcode import Colour, TestResult
from shared.idnumber import holds_id_number, is_valid_id_number, normalise_id_number
from shared.keys import b64url, b64url_decode

log = logging.getLogger(__name__)

MAX_CSV_BYTES = 5 * 1024 * 1024
MAX_ROWS = 50_000
MAX_ECHO_CHARS = 100  # a name or a staff id
MAX_TEST_AGE_HOURS = 30 * 24
RETENTION_DAYS = 7.0  # and never longer than the host keeps check-ins
CHUNK_ROWS = 500  # rows flagged per transaction; progress moves by this much
LEASE_MS = 30_000  # a worker silent this long is taken for dead, and its job taken over
POLL_SECONDS = 2.0  # how often each worker looks for jobs no one is running
KEY_HEADER = "X-Screening-Key"

ID_COLUMN, NAME_COLUMN, STAFF_COLUMN = "id_number", "name", "staff_id"
ECHO_COLUMNS = (NAME_COLUMN, STAFF_COLUMN)  # in this order in every result
# Header cells as firms write them, once normalised by `_header_word`.
COLUMN_SPELLINGS = {
    ID_COLUMN: (
        "id_number", "id", "id_no", "idno", "idnumber", "id_card", "id_card_number",
        "identity_number", "身份证号", "身份证号码", "身份证", "证件号码", "证件号",
    ),
    NAME_COLUMN: ("name", "full_name", "姓名", "名字"),
    STAFF_COLUMN: (
        "staff_id", "staff_no", "staff_number", "staffid", "employee_id", "employee_no",
        "employee_number", "工号", "员工编号", "员工号", "编号",
    ),
}  # fmt: skip
COLUMN_OF = {spelling: column for column, words in COLUMN_SPELLINGS.items() for spelling in words}
HEADER_HELP = "the first row names the columns: id_number, and optionally name and staff_id"
WORKBOOK_MAGIC = (b"PK\x03\x04", bytes.fromhex("d0cf11e0a1b11ae1"))  # .xlsx (a zip), .xls

ECHO_KEY_BITS = 256
KEY_CHECK_NONCE = bytes(12)  # row numbers start at 1, so the nonce of row 0 is free for this


class StaffListError(ValueError):
    """An upload that is not a staff list this host can read; `status` as the API answers."""

    def __init__(self, detail: str, status: int = 422) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status


class WrongKey(ValueError):
    """A screening key that is not base64url of 32 bytes, or not the key of this screening."""


class UnknownScreening(LookupError):
    """No screening of this id for the reader's organisation (or it was deleted)."""


class LeaseLost(Exception):
    """Another worker took the job over (this one was too slow): it stops, writing nothing."""


@dataclass(frozen=True)
class StaffRow:
    row_no: int  # 1 for the first row under the header; blank lines are not counted
    id_number: str  # as written in the file: checked and hashed, never stored
    echo: tuple[str, ...]  # the values of the list's echo columns


@dataclass(frozen=True)
class StaffList:
    echo_columns: tuple[str, ...]  # those of ECHO_COLUMNS the header names, in that order
    rows: list[StaffRow]


# ---- the CSV ---------------------------------------------------------------------------------


def _text(data: bytes) -> str:
    if not data.strip():
        raise StaffListError(f"the file is empty: {HEADER_HELP}")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise StaffListError("the file is UTF-16 text: save it as CSV UTF-8")
    if data.startswith(WORKBOOK_MAGIC):
        raise StaffListError("the file is a spreadsheet workbook, not CSV: save it as CSV UTF-8")
    if b"\x00" in data:
        raise StaffListError("the file holds NUL bytes: it is not CSV text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise StaffListError(
            f"the file is not UTF-8 text (byte {error.start}): save it as CSV UTF-8"
            " (a list saved as GBK or ANSI must be saved again)"
        ) from None


def _header_word(cell: str) -> str:
    """A header cell in one form: NFKC, lower case, runs of spaces, hyphens and dots as `_`."""
    return re.sub(r"[\s\-.]+", "_", unicodedata.normalize("NFKC", cell).casefold()).strip("_")


def _columns(header: list[str]) -> list[str | None]:
    """The column each header cell names (None: an empty cell, its values ignored)."""
    if any(holds_id_number(cell) for cell in header):
        raise StaffListError(f"the first row holds an ID number, not column names: {HEADER_HELP}")
    if len(header) == 1 and any(mark in header[0] for mark in ";\t|"):
        raise StaffListError("columns are separated by commas: save the list as CSV UTF-8")
    columns: list[str | None] = []
    for position, cell in enumerate(header, 1):
        word = _header_word(cell)
        column = COLUMN_OF.get(word)
        if word and column is None:
            raise StaffListError(f"column {position} of the header is not known: {HEADER_HELP}")
        if column is not None and column in columns:
            raise StaffListError(f"two columns of the header are both {column}")
        columns.append(column)
    if ID_COLUMN not in columns:
        raise StaffListError(f"the header names no id_number column: {HEADER_HELP}")
    return columns


def parse_staff_list(data: bytes) -> StaffList:
    """The rows of a staff-list CSV, or `StaffListError` saying what is wrong, and where.

    UTF-8 with or without a BOM; a header row naming `id_number` and, optionally, `name` and
    `staff_id` in common spellings; blank lines skipped. Errors never quote a cell.
    """
    if len(data) > MAX_CSV_BYTES:
        raise StaffListError(f"a staff list is at most {MAX_CSV_BYTES:,} bytes: split it", 413)
    reader = csv.reader(io.StringIO(_text(data), newline=""))
    rows: list[StaffRow] = []
    try:
        header = next((record for record in reader if any(c.strip() for c in record)), None)
        if header is None:
            raise StaffListError(f"the file holds no rows: {HEADER_HELP}")
        columns = _columns(header)
        echo_columns = tuple(column for column in ECHO_COLUMNS if column in columns)
        for record in reader:
            if not any(cell.strip() for cell in record):
                continue
            if len(rows) == MAX_ROWS:
                raise StaffListError(f"a screening is at most {MAX_ROWS:,} rows: split it", 413)
            rows.append(_row(len(rows) + 1, record, columns, echo_columns))
    except csv.Error as error:
        raise StaffListError(f"line {reader.line_num} is not CSV: {error}") from None
    if not rows:
        raise StaffListError("the file holds no rows under its header")
    return StaffList(echo_columns, rows)


def _row(
    row_no: int, record: list[str], columns: list[str | None], echo_columns: tuple[str, ...]
) -> StaffRow:
    if any(cell.strip() for cell in record[len(columns) :]):
        raise StaffListError(
            f"row {row_no} has {len(record)} fields, the header {len(columns)}:"
            " a name holding a comma must be in double quotes"
        )
    values = {
        column: cell.strip() for column, cell in zip(columns, record, strict=False) if column
    }
    for column in echo_columns:
        if len(values.get(column, "")) > MAX_ECHO_CHARS:
            raise StaffListError(
                f"row {row_no}: {column} is longer than {MAX_ECHO_CHARS} characters"
            )
    return StaffRow(
        row_no,
        values.get(ID_COLUMN, ""),
        tuple(values.get(column, "") for column in echo_columns),
    )


# ---- the echo columns, sealed ----------------------------------------------------------------


class EchoSeal:
    """A job's echo columns under its key: AES-256-GCM, a row's number as its nonce.

    The key is made for one job, and each row number is sealed once, so no nonce is used
    twice under a key; the job's id is bound in as associated data.
    """

    def __init__(self, key: bytes, screening_id: str) -> None:
        self._aead = AESGCM(key)
        self._aad = screening_id.encode()

    @classmethod
    def of(cls, key_text: str, screening: ScreeningRecord) -> EchoSeal:
        """The seal of a key as its holder gives it; `WrongKey` unless it is this job's."""
        try:
            key = b64url_decode(key_text.strip())
        except ValueError:
            key = b""
        if len(key) != ECHO_KEY_BITS // 8:
            raise WrongKey(f"the screening key is base64url of {ECHO_KEY_BITS // 8} bytes")
        seal = cls(key, screening.id)
        try:
            seal._aead.decrypt(KEY_CHECK_NONCE, screening.key_check or b"", seal._aad)
        except InvalidTag:
            raise WrongKey("this is not the key of this screening") from None
        return seal

    def key_check(self) -> bytes:
        return self._aead.encrypt(KEY_CHECK_NONCE, b"", self._aad)

    def seal(self, row_no: int, values: tuple[str, ...]) -> bytes:
        plain = json.dumps(values, ensure_ascii=False, separators=(",", ":")).encode()
        return self._aead.encrypt(row_no.to_bytes(12, "big"), plain, self._aad)

    def open(self, row_no: int, sealed: bytes) -> tuple[str, ...]:
        return tuple(json.loads(self._aead.decrypt(row_no.to_bytes(12, "big"), sealed, self._aad)))


# ---- submitting ------------------------------------------------------------------------------


def submit_screening(
    context: HostContext,
    principal: Principal,
    staff: StaffList,
    *,
    purpose: str,
    max_test_age_hours: int,
) -> tuple[ScreeningRecord, str | None]:
    """Store a queued job for the screener's organisation; (job, its echo key, shown once).

    Invalid ID numbers are flagged here; the others are kept only as their keyed hashes. The
    job and its audit record (records: the rows submitted) are one transaction.
    """
    assert principal.org is not None, "a screener always has an organisation"
    now_ms = context.settings.now_ms()
    screening_id = random_id("scr_", 16)
    key = AESGCM.generate_key(ECHO_KEY_BITS) if staff.echo_columns else None
    seal = None if key is None else EchoSeal(key, screening_id)
    rows = []
    for row in staff.rows:
        number = normalise_id_number(row.id_number)
        valid = is_valid_id_number(number)
        rows.append(
            SubmittedRow(
                row.row_no,
                id_number_hmac(context.keys.id_hmac_key, number) if valid else None,
                None if seal is None else seal.seal(row.row_no, row.echo),
                None if valid else Flag.INVALID_ID_NUMBER,
            )
        )
    invalid = sum(row.id_hmac is None for row in rows)
    screening = ScreeningRecord(
        id=screening_id,
        org=principal.org,
        user_id=principal.user_id,
        purpose=purpose,
        max_test_age_hours=max_test_age_hours,
        echo_columns=staff.echo_columns,
        key_check=None if seal is None else seal.key_check(),
        status=ScreeningStatus.QUEUED,
        total=len(rows),
        processed=invalid,
        summary=None,
        created_at_ms=now_ms,
        expires_at_ms=now_ms + int(RETENTION_DAYS * DAY_MS),
    )
    audit = principal.audit("screening-create", purpose, org=principal.org, screening=screening_id)
    context.storage.create_screening(screening, rows, audit)
    return screening, None if key is None else b64url(key)


# ---- reading the results ---------------------------------------------------------------------


def echo_seal(
    context: HostContext, principal: Principal, screening_id: str, key: str | None
) -> EchoSeal | None:
    """The seal of the job's echo columns if a key was given (and the list had any).

    Checked before the audited read, so that a wrong key (`WrongKey`) reads nothing.
    """
    if key is None:
        return None
    assert principal.org is not None
    now_ms = context.settings.now_ms()
    screening = context.storage.get_screening(screening_id, principal.org, now_ms)
    if screening is None:
        raise UnknownScreening(screening_id)
    if not screening.echo_columns:
        return None
    return EchoSeal.of(key, screening)


def read_results(  # noqa: PLR0917 - the job, the page, and who asks why
    context: HostContext,
    principal: Principal,
    screening_id: str,
    flags: Sequence[Flag],
    after: int,
    limit: int,
    purpose: str,
    action: str,
) -> tuple[ScreeningRecord, list[RowResult]]:
    """The job and a page of its results, read with an audit record of `action`."""
    assert principal.org is not None
    audit = principal.audit(action, purpose, org=principal.org, screening=screening_id)
    found = context.storage.screening_results(
        screening_id, principal.org, flags, after, limit, audit, context.settings.now_ms()
    )
    if found is None:
        raise UnknownScreening(screening_id)
    return found


def echo_of(seal: EchoSeal | None, screening: ScreeningRecord, row: RowResult) -> dict[str, str]:
    """A row's names and staff ids by column, opened with the seal; none without one."""
    if seal is None or row.echo is None:
        return {}
    return dict(zip(screening.echo_columns, seal.open(row.row_no, row.echo), strict=True))


def results_csv(screening: ScreeningRecord, rows: list[RowResult], seal: EchoSeal | None) -> str:
    """The results as CSV: row, the echo columns (with the seal), flag, hours_since_test."""
    echo_columns = list(screening.echo_columns) if seal else []
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n")
    writer.writerow(["row", *echo_columns, "flag", "hours_since_test"])
    for row in rows:
        echo = echo_of(seal, screening, row)
        hours = "" if row.hours_since_test is None else row.hours_since_test
        writer.writerow(
            [row.row_no, *(echo[column] for column in echo_columns), row.flag.value, hours]
        )
    return text.getvalue()


# ---- flagging --------------------------------------------------------------------------------


def flag_of(standing: Standing | None, max_age_ms: int, at_ms: int) -> tuple[Flag, int | None]:
    """A person's flag as of `at_ms` (None: not registered), and the hours since their test.

    The hours are whole hours rounded up, given with no-recent-test only, when there was a test.
    """
    if standing is None:
        return Flag.NOT_REGISTERED, None
    if standing.colour is not Colour.GREEN or standing.test_result is TestResult.POSITIVE:
        return Flag.NOT_GREEN, None
    if standing.test_sampled_at_ms is None:
        return Flag.NO_RECENT_TEST, None
    age_ms = at_ms - standing.test_sampled_at_ms
    if age_ms > max_age_ms:
        return Flag.NO_RECENT_TEST, math.ceil(age_ms / HOUR_MS)
    return Flag.OK, None


@dataclass(frozen=True)
class Lease:
    """A job a runner claimed, and the claim's own token (the job's `lease_owner`)."""

    screening: ScreeningRecord
    owner: str


class ScreeningRunner:
    """Claims jobs from the database and flags their rows, a chunk per transaction.

    Every row is judged as of the job's creation, so a job resumed by another worker gives
    the answers the first would have.
    """

    def __init__(
        self,
        storage: SqlStorage,
        now_ms: Callable[[], int],
        *,
        chunk_rows: int = CHUNK_ROWS,
        lease_ms: int = LEASE_MS,
    ) -> None:
        self.storage = storage
        self.now_ms = now_ms
        self.chunk_rows = chunk_rows
        self.lease_ms = lease_ms

    def claim(self) -> Lease | None:
        """A queued job, or one whose worker's lease ran out; None when there is none."""
        owner = random_id("lease_", 16)
        now_ms = self.now_ms()
        screening = self.storage.claim_screening(owner, now_ms, now_ms + self.lease_ms)
        return None if screening is None else Lease(screening, owner)

    def step(self, lease: Lease, after_row: int) -> int | None:
        """Flag the next chunk of rows after `after_row` and renew the lease.

        The last row flagged; None when no row is left; `LeaseLost` if another worker has the
        job now.
        """
        screening = lease.screening
        pending = self.storage.pending_screening_rows(screening.id, after_row, self.chunk_rows)
        if not pending:
            return None
        standings = self.storage.standings([id_hmac for _row, id_hmac in pending])
        max_age_ms = screening.max_test_age_hours * HOUR_MS
        results = [
            (row_no, *flag_of(standings.get(id_hmac), max_age_ms, screening.created_at_ms))
            for row_no, id_hmac in pending
        ]
        renewed_until = self.now_ms() + self.lease_ms
        if not self.storage.save_screening_results(
            screening.id, lease.owner, results, renewed_until
        ):
            raise LeaseLost(screening.id)
        return pending[-1][0]

    def run(self, lease: Lease) -> bool:
        """Flag every row left, then mark the job done; False if it was lost or failed."""
        screening_id = lease.screening.id
        try:
            after_row = 0
            while (last := self.step(lease, after_row)) is not None:
                after_row = last
            return self.storage.finish_screening(screening_id, lease.owner, ScreeningStatus.DONE)
        except LeaseLost:
            log.warning("screening %s: taken over by another worker", screening_id)
            return False
        except Exception:
            log.exception("screening %s failed", screening_id)
            self.storage.finish_screening(screening_id, lease.owner, ScreeningStatus.FAILED)
            return False

    def run_pending(self) -> int:
        """Run claimable jobs until there is none; how many this runner finished."""
        finished = 0
        while (lease := self.claim()) is not None:
            finished += self.run(lease)
        return finished


def screen_now(context: HostContext) -> None:
    """Run the jobs waiting for a worker, in this thread; a failure is logged, not raised."""
    try:
        ScreeningRunner(context.storage, context.settings.now_ms).run_pending()
    except Exception:  # the database away: the jobs wait for the next try, in the database
        log.exception("screening jobs not run")


async def screen_periodically(context: HostContext, every_seconds: float = POLL_SECONDS) -> None:
    """`screen_now` in a worker thread every `every_seconds`, until cancelled.

    New jobs are started by the request that made them; this picks up what a dead worker left.
    """
    while True:
        await asyncio.to_thread(screen_now, context)
        await asyncio.sleep(every_seconds)
