"""The mapping CSV upload: ``code42_identifier,ksat_email``, validated whole before anything applies.

The identifier is a Code42 actor id, actor name (email) or alternate name. UTF-8 with or without a
byte-order mark; the header row is required. Every problem is reported with its line number;
one problem rejects the whole file.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

HEADER = ("code42_identifier", "ksat_email")
MAX_BYTES = 5 * 1024 * 1024
MAX_ROWS = 100_000
MAX_FIELD = 320  # the longest e-mail address SMTP allows, and plenty for an actor id


@dataclass
class ParsedUpload:
    rows: dict[str, str] = field(default_factory=dict)  # identifier -> KSAT email, as written
    errors: list[str] = field(default_factory=list)


def parse_upload(data: bytes, ksat_email_counts: dict[str, int]) -> ParsedUpload:
    """Validate the file against the KSAT directory (``lower(email) -> number of users``)."""
    result = ParsedUpload()
    if len(data) > MAX_BYTES:
        result.errors.append(f"file is {len(data)} bytes; the limit is {MAX_BYTES}")
        return result
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        result.errors.append(f"not UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start} ({exc.reason}); "
                             "save the file as UTF-8")
        return result
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        result.errors.append(f"line 1: not valid CSV: {exc}")
        return result
    if header is None or tuple(h.strip().lower() for h in header) != HEADER:
        result.errors.append(f"line 1: the header must be {','.join(HEADER)}, got {','.join(header or [])!r}")
        return result
    try:
        _read_rows(reader, ksat_email_counts, result)
    except csv.Error as exc:
        result.errors.append(f"line {reader.line_num}: not valid CSV: {exc}")
    if not result.rows and not result.errors:
        result.errors.append("no data rows after the header")
    return result


def _read_rows(reader, ksat_email_counts: dict[str, int], result: ParsedUpload) -> None:
    """The data rows after the header into ``result``: each valid row, or its line's problem."""
    seen: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue  # blank line
        if len(result.rows) + len(result.errors) >= MAX_ROWS:
            result.errors.append(f"line {line}: more than {MAX_ROWS} rows")
            return
        if len(row) != 2:
            result.errors.append(f"line {line}: expected 2 columns, got {len(row)}")
            continue
        identifier, email = row[0].strip(), row[1].strip()
        problem = _row_problem(identifier, email, ksat_email_counts)
        key = identifier.lower()
        if problem is None and key in seen:
            problem = f"duplicate code42_identifier {identifier!r} (first on line {seen[key]})"
        if problem:
            result.errors.append(f"line {line}: {problem}")
            continue
        seen[key] = line
        result.rows[identifier] = email


def _row_problem(identifier: str, email: str, counts: dict[str, int]) -> str | None:
    if not identifier or not email:
        return "code42_identifier and ksat_email must both be filled"
    if len(identifier) > MAX_FIELD or len(email) > MAX_FIELD:
        return f"a value is longer than {MAX_FIELD} characters"
    if any(ord(c) < 32 for c in identifier + email):
        return "control characters are not allowed"
    if "@" not in email:
        return f"ksat_email {email!r} is not an e-mail address"
    n = counts.get(email.lower(), 0)
    if n == 0:
        return f"ksat_email {email!r} is not a KSAT user"
    if n > 1:
        return f"ksat_email {email!r} matches {n} KSAT users"
    return None


def resolve_upload_path(path: str | Path, allowed_dir: str | Path) -> Path:
    """The upload file, which must lie inside ``allowed_dir`` (no ``..`` or symlink escapes)."""
    allowed = Path(allowed_dir).resolve()
    candidate = Path(path)
    resolved = (candidate if candidate.is_absolute() else allowed / candidate).resolve()
    if not resolved.is_relative_to(allowed):
        raise ValueError(f"upload path {str(path)!r} is outside the allowed folder {str(allowed)!r}")
    if not resolved.is_file():
        raise ValueError(f"upload file {str(path)!r} does not exist in {str(allowed)!r}")
    return resolved
