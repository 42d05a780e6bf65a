"""Streaming reader for A-share 1-minute bar CSVs of every layout people store (see profiles.py).

Batches of a normalized Polars DataFrame (``MINUTE_SCHEMA``) in bounded memory; dirty but valid rows
kept, bad rows rejected with their line, whole-file problems raised as :class:`CsvFileError`. Over
500 lines: one class whose steps (sniff, decode, header, times, checks, rejects) share its state, the
parse expressions beside it. What is kept and rejected: docs/minute-bars.md, "The CSV reader".
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import re
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, NamedTuple

import polars as pl

from marketdata_assets.core import plausibility
from marketdata_assets.core.files import atomic_write_bytes, fit_name
from marketdata_assets.core.landing_files import LinkRefused, open_binary
from marketdata_assets.core.naming import A_SHARE_VENUES
from marketdata_assets.sources.minute_csv.profiles import (
    AMOUNT_UNITS,
    BUILTIN_PROFILES,
    NUMERIC_COLUMNS,
    VOLUME_UNITS,
    CsvProfile,
    HeaderMatch,
    code_from_filename,
    detect_profile,
    detect_separator,
    load_profiles,
    normalize_codes,
    profile_from_dict,
)

MINUTE_SCHEMA = pl.Schema(
    {
        "time": pl.Datetime("us"),
        "code": pl.String,
        "name": pl.String,
        "open": pl.Float64,
        "high": pl.Float64,
        "low": pl.Float64,
        "close": pl.Float64,
        "volume": pl.Float64,
        "amount": pl.Float64,
    }
)
DEFAULT_BLOCK_BYTES = 16 << 20
SAMPLE_BYTES = 512 << 10  # detection only needs a few thousand lines
DEFAULT_MAX_REJECTS = 100_000
HEADER_SEARCH_LINES = 5
NULL_TOKENS = ["", "nan", "null", "none", "-", "--", "n/a", "na", "#n/a"]  # compared case-insensitively
_NULL_VARIANTS = sorted(
    {v for t in NULL_TOKENS for v in (t, t.upper(), t.capitalize())} | {"NaN", "N/a", "n/A"}
)
_BOM = b"\xef\xbb\xbf"

_SEPARATED_TIME = (
    r"^(?P<y>\d{4})[-/.](?P<mo>\d{1,2})[-/.](?P<d>\d{1,2})[ T]+(?P<h>\d{1,2}):?(?P<mi>\d{2})"
    r"(?::?(?P<s>\d{2})(?:\.\d*)?)?\s*(?P<tz>Z|[+-]\d{2}:?\d{2})?$"
)
_COMPACT_TIME = (
    r"^(?P<y>\d{4})(?P<mo>\d{2})(?P<d>\d{2})[ T]?(?P<h>\d{1,2}):?(?P<mi>\d{2})"
    r"(?::?(?P<s>\d{2}))?(?:\.\d*)?\s*(?P<tz>Z|[+-]\d{2}:?\d{2})?$"
)


class CsvFileError(ValueError):
    """A whole file can't be read. The message names the file (and the line where relevant)."""

    def __init__(self, path: str | Path, message: str, line: int | None = None):
        self.path, self.line, self.reason = str(path), line, message
        where = f"{path}, line {line}" if line else f"{path}"
        super().__init__(f"{where}: {message}")


class UnknownHeaderError(CsvFileError):
    def __init__(self, path, line: int, headers: Sequence[str], profiles: Sequence[CsvProfile], closest: str):
        self.headers, self.profiles_tried = list(headers), [p.name for p in profiles]
        super().__init__(
            path,
            f"header not recognized; columns seen: {self.headers}; profiles tried: "
            f"{self.profiles_tried}{closest}. Add a profile (csv_profiles.load_profiles) "
            "for this layout.",
            line,
        )


class TimeColumnError(CsvFileError):
    """The time column of a file is unusable as a whole: it never parses, or it is a 12-hour clock
    without AM/PM. ``column`` (header text, 'date'+'time' for two columns), ``profile``, ``samples``."""

    def __init__(
        self,
        path,
        message: str,
        *,
        column: str,
        profile: str,
        samples: Sequence[str] = (),
        line: int | None = None,
    ):
        self.column, self.profile, self.samples = column, profile, list(samples)
        super().__init__(path, message, line)


_TIME_REASONS = ("bad time", "missing time", plausibility.REASON)
_UNCHECKED_REASONS = ("wrong field count", "line can't be decoded")  # rows whose time is never looked at
_BAD_TIME_TEXT = rf"^(?:bad time|{plausibility.REASON}): '(.*?)'(?:; .*| is .*)?$"


class _Tally:
    """Kept and rejected rows of one pass over a file, for the whole-file checks."""

    def __init__(self):
        self.kept = 0
        self.reasons: Counter = Counter()  # reason up to its first ':' -> rows
        self.time_samples: list[str] = []
        self.first: tuple[int, str] | None = None  # (line, reason) of the first reject

    def add(self, kept: int, rejected: pl.DataFrame) -> None:
        self.kept += kept
        if rejected.height == 0:
            return
        if self.first is None:
            self.first = (rejected["line"][0], rejected["reason"][0])
        reasons = rejected.select(pl.col("reason").str.extract(r"^([^:;]*)")).to_series().value_counts()
        for reason, count in reasons.iter_rows():
            self.reasons[reason] += count
        if len(self.time_samples) < 3:
            texts = rejected.select(pl.col("reason").str.extract(_BAD_TIME_TEXT)).to_series().drop_nulls()
            for text in texts.unique(maintain_order=True).head(3).to_list():
                if text not in self.time_samples and len(self.time_samples) < 3:
                    self.time_samples.append(text)


@dataclass(frozen=True)
class Reject:
    file: str
    line: int  # 1-based physical line, the header is line 1
    raw: str
    reason: str


class TimeRange(NamedTuple):
    min_time: datetime | None
    max_time: datetime | None
    months: list  # sorted month partition keys touched, "YYYY-MM"


REJECTED_DAYS_SCHEMA = pl.Schema({"code": pl.String, "day": pl.Date, "reason": pl.String, "rows": pl.Int64})


def reject_kind(reason: pl.Expr) -> pl.Expr:
    """A reject reason's kind: 'future-dated' or 'before the earliest plausible day' for an implausible
    time, else the (first) reason up to its ':' ('bad number in close')."""
    implausible = reason.str.starts_with(f"{plausibility.REASON}:")
    return (
        pl.when(implausible & reason.str.contains(" is after now", literal=True))
        .then(pl.lit("future-dated"))
        .when(implausible)
        .then(pl.lit("before the earliest plausible day"))
        .otherwise(reason.str.extract(r"^([^:;]*)"))
    )


def empty_minute_frame() -> pl.DataFrame:
    return pl.DataFrame(schema=MINUTE_SCHEMA)


def _open_binary(path: Path) -> IO[bytes]:
    """The file's bytes (a .gz decompressed), never through a symbolic link (LinkRefused: a landing
    area is read without following links, core/landing_files.py)."""
    raw = open_binary(path)
    return _OwnedGzip(raw) if path.name.lower().endswith(".gz") else raw


class _OwnedGzip(gzip.GzipFile):
    """A gzip stream that closes the file it reads (GzipFile(fileobj=...) leaves it open)."""

    def __init__(self, raw: IO[bytes]):
        self._raw = raw
        super().__init__(fileobj=raw, mode="rb")

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._raw.close()


def _is_utf8(encoding: str) -> bool:
    return codecs.lookup(encoding).name in ("utf-8", "utf-8-sig")


def _decodes(data: bytes, encoding: str) -> bool:
    try:
        data.decode(encoding)
        return True
    except UnicodeDecodeError:
        return False


# --------------------------------------------------------------------------------------------
# Expressions
# --------------------------------------------------------------------------------------------


def _null_like(value: pl.Expr, case_variants_only: bool = True) -> pl.Expr:
    """Null or a null token ("", nan, NULL, None, -, N/A...). The common spellings are a hash lookup;
    case_variants_only=False lowercases first to catch any casing ("nUlL")."""
    if case_variants_only:
        return value.is_null() | value.is_in(_NULL_VARIANTS)
    return value.is_null() | value.str.to_lowercase().is_in(NULL_TOKENS)


_FAST_FORMATS = [  # (shape of the first value, strptime format, exact length)
    (re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$"), "%Y-%m-%d %H:%M:%S", 19),
    (re.compile(r"^\d{4}/\d{2}/\d{2} \d{2}:\d{2}$"), "%Y/%m/%d %H:%M", 16),
    (re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}$"), "%Y-%m-%d %H:%M", 16),
    (re.compile(r"^\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}$"), "%Y/%m/%d %H:%M:%S", 19),
    (re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$"), "%Y-%m-%dT%H:%M:%S", 19),
]


def _auto_times_regex(values: pl.Series) -> pl.Series:
    """The general "auto" parser, in stages so that no regex runs twice."""
    frame = pl.DataFrame({"v": values}).select(
        g1=pl.col("v").str.extract_groups(_SEPARATED_TIME), g2=pl.col("v").str.extract_groups(_COMPACT_TIME)
    )
    frame = frame.select(
        **{
            name: pl.coalesce(pl.col("g1").struct.field(name), pl.col("g2").struct.field(name))
            for name in ("y", "mo", "d", "h", "mi", "s", "tz")
        }
    )
    frame = frame.select(
        parsed=pl.concat_str(
            [
                pl.col("y"),
                pl.lit("-"),
                pl.col("mo").str.zfill(2),
                pl.lit("-"),
                pl.col("d").str.zfill(2),
                pl.lit(" "),
                pl.col("h").str.zfill(2),
                pl.lit(":"),
                pl.col("mi"),
                pl.lit(":"),
                pl.col("s").fill_null("00"),
            ]
        ).str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M:%S", strict=False),
        tz=pl.col("tz").str.replace(":", "", literal=True),
    )
    if frame["tz"].null_count() == frame.height:
        return frame["parsed"]
    tz = pl.col("tz")
    offset = (
        pl.when(tz == "Z")
        .then(0)
        .otherwise(
            (
                tz.str.slice(1, 2).cast(pl.Int64, strict=False) * 60
                + tz.str.slice(3, 2).cast(pl.Int64, strict=False)
            )
            * pl.when(tz.str.starts_with("-")).then(-1).otherwise(1)
        )
    )
    return frame.select(
        pl.when(tz.is_null())
        .then(pl.col("parsed"))
        .otherwise(pl.col("parsed") + pl.duration(minutes=480 - offset, time_unit="us"))
    ).to_series()


def parse_auto_times(values: pl.Series) -> pl.Series:
    """Parse the time layouts people write (see csv_profiles) to naive Beijing wall-clock times;
    null where a value doesn't parse. The common fixed-width layouts take a strptime fast path."""
    values = values.cast(pl.String)
    first = values.drop_nulls().head(1).to_list()
    out: pl.Series | None = None
    if first:
        for shape, fmt, width in _FAST_FORMATS:
            if shape.match(first[0]):
                frame = pl.DataFrame({"v": values})
                out = frame.select(
                    pl.when(pl.col("v").str.len_bytes() == width).then(
                        pl.col("v").str.strptime(pl.Datetime("us"), fmt, strict=False)
                    )
                ).to_series()
                break
    if out is None:
        return _auto_times_regex(values).rename(values.name)
    missed = (out.is_null() & values.is_not_null()).arg_true()
    if len(missed):
        out = out.scatter(missed, _auto_times_regex(values.gather(missed)))
    return out.rename(values.name)


def parse_times(values: pl.Series, formats: Sequence[str] = ("auto",)) -> pl.Series:
    """Times by the profile's formats in order ("auto" or strptime formats), null where none parses."""
    values = values.cast(pl.String)
    parsed = [
        parse_auto_times(values)
        if fmt == "auto"
        else values.str.strptime(pl.Datetime("us"), fmt, strict=False)
        for fmt in formats
    ]
    if len(parsed) == 1:
        return parsed[0].rename(values.name)
    return (
        pl.DataFrame([p.rename(f"p{i}") for i, p in enumerate(parsed)])
        .select(pl.coalesce(pl.all()))
        .to_series()
        .rename(values.name)
    )


def _padding_pattern(sep: str) -> str:
    """A space, tab or quote next to a separator or a line end: fields that need trimming."""
    s = r"\t" if sep == "\t" else re.escape(sep)
    return rf'(?:^|{s})[ \t"]|[ \t"](?:{s}|$)'


def _clock(value: pl.Expr) -> pl.Expr:
    """'931' / '0931' / '93100' time-of-day columns: pad to an even number of digits."""
    odd_digits = value.str.contains(r"^\d+$") & (value.str.len_chars() % 2 == 1)
    return pl.when(odd_digits).then(pl.lit("0") + value).otherwise(value)


# --------------------------------------------------------------------------------------------
# Reader
# --------------------------------------------------------------------------------------------


class MinuteCsvReader:
    """One minute-bar CSV: detection happens at construction (raises CsvFileError), rows come from
    :meth:`batches`. After iterating: ``rejects`` (at most ``max_rejects`` kept), ``reject_count``,
    ``rows``. Detection results: ``profile``, ``encoding``, ``separator``, ``headers``,
    ``header_line``, ``file_code`` (code from the file name when there is no code column),
    ``volume_unit`` and ``volume_unit_reason``."""

    def __init__(
        self,
        path: str | Path,
        profiles: Sequence[CsvProfile] | None = None,
        *,
        profile: None | str | dict | CsvProfile = None,
        block_bytes: int = DEFAULT_BLOCK_BYTES,
        max_rejects: int = DEFAULT_MAX_REJECTS,
    ):
        self.path = Path(path)
        self.block_bytes = max(1024, int(block_bytes))
        self.max_rejects = max_rejects
        self.rejects: list[Reject] = []
        self.reject_count = 0
        self.reject_reasons: Counter = Counter()  # rejected rows by reason (up to its first ':')
        self._rejected_days: list[pl.DataFrame] = []
        self.rows = 0
        # one window for the whole file (and both passes over it): the loosest of the A-share venues
        self.plausible = plausibility.window(A_SHARE_VENUES)
        self._profiles = self._resolve_profiles(profiles, profile)
        self._detect()

    # ---- detection --------------------------------------------------------------------------

    @staticmethod
    def _resolve_profiles(profiles, profile) -> list[CsvProfile]:
        if profile is None:
            return list(BUILTIN_PROFILES) if profiles is None else list(profiles)
        if isinstance(profile, CsvProfile):
            return [profile]
        if isinstance(profile, dict):
            return [profile_from_dict(profile)]
        candidates = load_profiles() if profiles is None else list(profiles)
        for candidate in candidates:
            if candidate.name == profile:
                return [candidate]
        raise ValueError(f"unknown CSV profile {profile!r} (known: {[p.name for p in candidates]})")

    def _read_sample(self) -> tuple[bytes, bool]:
        try:
            with _open_binary(self.path) as fh:
                sample = fh.read(SAMPLE_BYTES)
                at_eof = not fh.read(1)
        except FileNotFoundError:
            raise CsvFileError(self.path, "file not found") from None
        except LinkRefused:
            raise  # not the file's content: no profile would ever read it (never released from quarantine)
        except (OSError, EOFError, zlib.error) as error:
            raise CsvFileError(self.path, f"cannot read the file: {error}") from None
        return sample, at_eof

    def _detect(self) -> None:
        sample, at_eof = self._read_sample()
        if not sample.strip():
            raise CsvFileError(self.path, "empty file")
        if sample.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise CsvFileError(
                self.path,
                "UTF-16 encoded file (supported encodings: "
                f"{self._encoding_candidates()}); re-save it as UTF-8 or GBK",
                1,
            )
        first_line = sample.lstrip(b"\r\n")[:4096].split(b"\n")[0]
        if b"\x00" in first_line:
            raise CsvFileError(
                self.path,
                "NUL bytes in the header (a UTF-16 or binary file?); supported encodings: "
                f"{self._encoding_candidates()}",
                1,
            )
        self.line_sep = b"\n" if b"\n" in sample else (b"\r" if b"\r" in sample else b"\n")
        lines = sample.split(self.line_sep)
        if not at_eof or sample.endswith(self.line_sep):
            lines.pop()  # an incomplete line (sample cut) or the empty string after the last separator
            incomplete_last = False
        else:
            incomplete_last = len(lines) > 1  # the file's last line has no line end: maybe truncated
        if lines and lines[0].startswith(_BOM):
            lines[0] = lines[0][3:]
            self._bom = True
        else:
            self._bom = False
        detect_lines = lines[:-1] if incomplete_last else lines
        self.encoding = self._detect_encoding(detect_lines or lines)
        self._ascii_so_far = True
        non_blank = [i for i, line in enumerate(lines[:50]) if line.strip()][:HEADER_SEARCH_LINES]
        if not non_blank:
            raise CsvFileError(self.path, "empty file")
        preferred = (
            next((p.separator for p in self._profiles if p.separator), None)
            if len(self._profiles) == 1
            else None
        )
        first_headers: list[str] | None = None
        found: HeaderMatch | None = None
        # The header is the first non-blank line, or one of the next few after a title line
        # (TDX exports start with "600000 浦发银行 1分钟线 前复权").
        for header_index in non_blank:
            try:
                header_text = lines[header_index].decode(self.encoding).replace("\ufeff", "").rstrip("\r")
            except UnicodeDecodeError:
                raise CsvFileError(
                    self.path, f"the header can't be decoded as {self.encoding}", header_index + 1
                ) from None
            separator = detect_separator(header_text, preferred)
            headers = next(csv.reader([header_text], delimiter=separator))
            if first_headers is None:
                first_headers = headers
            found = detect_profile(headers, self._profiles)
            if found is not None:
                break
        if found is None:
            raise UnknownHeaderError(
                self.path, non_blank[0] + 1, first_headers, self._profiles, self._closest(first_headers)
            )
        self.header_line = header_index + 1
        self.separator, self.headers = separator, headers
        self._match: HeaderMatch = found
        self.profile: CsvProfile = found.profile
        if self.profile.separator and self.profile.separator != self.separator:
            self.separator = self.profile.separator
            self.headers = next(csv.reader([header_text], delimiter=self.separator))
            self._match = self.profile.match(self.headers) or found
        self.ncols = len(self.headers)
        self.file_code: str | None = None
        if "code" not in self._match.positions:
            self.file_code = code_from_filename(self.path)
            if self.file_code is None:
                accepted = (
                    "/".join(self.profile.sources_for("code")) or "none in profile " + self.profile.name
                )
                raise CsvFileError(
                    self.path,
                    f"no code column ({accepted}) and no stock code in the file name "
                    "(expected e.g. sh600000.csv or 600000.SH_2024.csv)",
                )
        self.amount_factor = AMOUNT_UNITS[self.profile.amount_unit]
        self._check_sample_times(lines[header_index + 1 :], header_index + 2, whole_file=at_eof)
        if self.profile.volume_unit == "auto":
            data_lines = lines[header_index + 1 :]
            self._volume_factor = 1.0
            sample_frame = self._parse_sample(data_lines, header_index + 2)
            unit, reason = infer_volume_unit(sample_frame)
            if unit is None:
                unit, reason = self.profile.volume_unit_fallback, f"profile fallback ({reason})"
            self.volume_unit, self.volume_unit_reason = unit, reason
        else:
            self.volume_unit, self.volume_unit_reason = self.profile.volume_unit, "profile"
        self._volume_factor = VOLUME_UNITS[self.volume_unit]

    def _encoding_candidates(self) -> list[str]:
        seen: list[str] = []
        for profile in self._profiles:
            for encoding in profile.encodings:
                if encoding not in seen:
                    seen.append(encoding)
        return seen

    def _detect_encoding(self, lines: list[bytes]) -> str:
        candidates = self._encoding_candidates()
        blob = b"\n".join(lines)
        if blob.isascii():
            return candidates[0]
        for encoding in candidates:
            if _decodes(blob, encoding):
                return encoding
        failures = {enc: [i for i, line in enumerate(lines) if not _decodes(line, enc)] for enc in candidates}
        non_ascii = sum(1 for line in lines if not line.isascii())
        for encoding in candidates:  # valid multi-byte UTF-8 is strong evidence: a few bad lines get rejected
            if _is_utf8(encoding) and non_ascii and len(failures[encoding]) <= 0.05 * non_ascii:
                return encoding
        best = min(candidates, key=lambda enc: len(failures[enc]))
        if len(failures[best]) <= max(1, 0.001 * len(lines)):
            return best
        first = failures[candidates[0]][0] + 1
        raise CsvFileError(
            self.path,
            f"cannot decode the file with any of the encodings {candidates} "
            f"(first bad line for {candidates[0]})",
            first,
        )

    def _closest(self, headers: Sequence[str]) -> str:
        best, best_missing = None, None
        for profile in self._profiles:
            missing = profile.missing(headers)
            if profile.match(headers) is None and not missing:
                missing = ["time (or date + clock)"]
            if best_missing is None or len(missing) < len(best_missing):
                best, best_missing = profile, missing
        if best is None:
            return ""
        return f"; closest profile {best.name!r} is missing {', '.join(best_missing)}"

    def _check_sample_times(self, data_lines: list[bytes], first_line: int, whole_file: bool) -> None:
        """Raise TimeColumnError when no row of the sample parses its time (or on a 12-hour clock)."""
        tally = _Tally()
        kept, rejected = self._parse_frame(
            self._decode_block(data_lines, first_line, probe=True), only_time=True
        )
        tally.add(kept.height, rejected)
        error = self._unreadable_error(tally, whole_file, time_only=True)
        if error is not None:
            raise error

    def _time_column(self) -> str:
        positions = self._match.positions
        names = [
            self.headers[positions[t]].replace("\ufeff", "").strip().strip('"').strip()
            for t in (("time",) if "time" in positions else ("date", "clock"))
        ]
        return "+".join(repr(name) for name in names)

    def _unreadable_error(
        self, tally: _Tally, whole_file: bool = True, time_only: bool = False
    ) -> CsvFileError | None:
        """The whole-file error when a pass kept no row but rejected some: TimeColumnError when the
        time is why (every row whose time was looked at failed it), else a CsvFileError counting the
        reasons. time_only: only the time case (a sample can't tell for the rest)."""
        if tally.kept or not tally.reasons:
            return None
        total = sum(tally.reasons.values())
        timed = sum(n for reason, n in tally.reasons.items() if reason.startswith(_TIME_REASONS))
        others = [
            reason for reason in tally.reasons if not reason.startswith(_TIME_REASONS + _UNCHECKED_REASONS)
        ]
        rows = f"0 of {timed} rows" if whole_file else f"0 of the first {timed} rows"
        implausible = tally.reasons.get(plausibility.REASON, 0)
        if timed and not others and implausible and not whole_file:
            return None  # a sample can't tell: rows further on may be plausible
        if timed and not others:
            column, profile = self._time_column(), self.profile.name
            if implausible:
                return self._implausible_error(tally, column, profile, rows, every=implausible == timed)
            if tally.time_samples:
                shown = ", ".join(repr(text) for text in tally.time_samples)
                what = f"never parses: {shown}{' ...' if timed > len(tally.time_samples) else ''} ({rows})"
            else:
                what = f"is empty in every row ({rows})"
            if "auto" in self.profile.time_formats:
                hint = (
                    "'auto' reads YYYY-MM-DD HH:MM[:SS], YYYY/MM/DD HH:MM and YYYYMMDD HHMM[SS], with an "
                    "optional UTC offset; add a profile with time_formats for this layout (e.g. "
                    "'%m/%d/%Y %H:%M', '%d-%m-%Y %H:%M', '%Y-%m-%d %I:%M:%S %p')"
                )
            else:
                hint = f"the profile's time_formats are {list(self.profile.time_formats)}"
            return TimeColumnError(
                self.path,
                f"time column {column} of profile {profile!r} {what}; {hint}",
                column=column,
                profile=profile,
                samples=tally.time_samples,
            )
        if time_only:
            return None
        commonest = ", ".join(f"{n} {reason}" for reason, n in tally.reasons.most_common(4))
        line, reason = tally.first
        return CsvFileError(
            self.path,
            f"no row can be read: all {total} data rows were rejected ({commonest}); "
            f"first on line {line}: {reason}",
        )

    def _implausible_error(
        self, tally: _Tally, column: str, profile: str, rows: str, every: bool
    ) -> TimeColumnError:
        """No row kept, and implausible times among the reasons: the column's error with samples."""
        shown = ", ".join(repr(text) for text in tally.time_samples)
        low, high = self.plausible.local()
        what = "is implausible in every row" if every else "never parses or is implausible"
        return TimeColumnError(
            self.path,
            f"time column {column} of profile {profile!r} {what}: {shown} ({rows} inside the plausible "
            f"window {low:%Y-%m-%d} .. {high:%Y-%m-%d %H:%M} Beijing time); first on line "
            f"{tally.first[0]}: {tally.first[1]}",
            column=column,
            profile=profile,
            samples=tally.time_samples,
        )

    def _check_clock(self, kept: pl.DataFrame) -> None:
        """Raise TimeColumnError on a 12-hour clock without AM/PM: a day with bars at 01:00-03:00 and
        none from 12:00 on (the A-share afternoon, 13:00-15:00, without its 12 hours)."""
        if kept.height == 0:
            return
        minute = pl.col("time").dt.hour().cast(pl.Int32) * 60 + pl.col("time").dt.minute().cast(pl.Int32)
        if not kept.select(minute.is_between(60, 180).any()).item():
            return
        days = (
            kept.select(
                "line",
                "time",
                _early=minute.is_between(60, 180),
                _late=minute >= 720,
                _morning=minute.is_between(570, 690),
            )
            .group_by(pl.col("time").dt.date().alias("day"))
            .agg(
                early=pl.col("_early").sum(),
                late=pl.col("_late").sum(),
                morning=pl.col("_morning").sum(),
                line=pl.col("line").filter(pl.col("_early")).min(),
            )
        )
        flagged = days.filter((pl.col("early") > 0) & (pl.col("late") == 0)).sort("line")
        if flagged.height == 0:
            return
        line = flagged["line"][0]
        text = kept.filter(pl.col("line") == line)["_time_text"][0]
        bars, n_days = int(flagged["early"].sum()), flagged.height
        guess = (
            "a 12-hour clock without AM/PM"
            if flagged["morning"].sum()
            else "a 12-hour clock without AM/PM, or UTC times without an offset"
        )
        column, profile = self._time_column(), self.profile.name
        raise TimeColumnError(
            self.path,
            f"time column {column} of profile {profile!r}: {bars} bars at 01:00-03:00 and none from "
            f"12:00 on {n_days} day{'s' if n_days != 1 else ''}, first {text!r}: looks like {guess} "
            "(A-share sessions are 09:30-11:30 and 13:00-15:00 Beijing time); re-export with 24-hour "
            "times, or read AM/PM with a profile time format such as '%Y-%m-%d %I:%M:%S %p'",
            column=column,
            profile=profile,
            samples=[text],
            line=line,
        )

    def _parse_sample(self, data_lines: list[bytes], first_line: int) -> pl.DataFrame:
        frame = self._decode_block(data_lines, first_line, probe=True)
        good, _ = self._parse_frame(frame)
        return good

    # ---- decoding ---------------------------------------------------------------------------

    def _decode_block(self, lines: list[bytes], first_line: int, probe: bool = False) -> pl.DataFrame:
        """line numbers, decoded raw text (without the line end) and an undecodable flag."""
        raw: pl.Series | None = None
        bad: list[int] | None = None
        if _is_utf8(self.encoding):
            try:
                raw = pl.Series("raw", lines, dtype=pl.Binary).cast(pl.String)
            except pl.exceptions.ComputeError:
                raw = None
        else:
            blob = self.line_sep.join(lines)
            try:
                text = blob.decode(self.encoding)
                raw = pl.Series("raw", text.encode("utf-8").split(self.line_sep), dtype=pl.Binary).cast(
                    pl.String
                )
                if len(raw) != len(lines):  # can't happen for ASCII-compatible encodings; be safe
                    raw = None
            except UnicodeDecodeError:
                raw = None
        if raw is None and not probe and self._ascii_so_far:
            # Everything so far was ASCII, so the sample could not tell the encoding: pick it now.
            blob = self.line_sep.join(lines)
            for encoding in self._encoding_candidates():
                if encoding != self.encoding and _decodes(blob, encoding):
                    self.encoding = encoding
                    return self._decode_block(lines, first_line)
        if raw is None:
            texts, bad = [], []
            for i, line in enumerate(lines):
                try:
                    texts.append(line.decode(self.encoding))
                except UnicodeDecodeError:
                    texts.append(line.decode(self.encoding, errors="backslashreplace"))
                    bad.append(i)
            raw = pl.Series("raw", texts, dtype=pl.String)
        if not probe and self._ascii_so_far:
            self._ascii_so_far = self.line_sep.join(lines).isascii()
        n = len(lines)
        flags = pl.Series("bad_decode", [False] * n, dtype=pl.Boolean)
        if bad:
            flags = flags.scatter(bad, True)
        return pl.DataFrame(
            [
                pl.Series("line", range(first_line, first_line + n), dtype=pl.Int64),
                raw.str.strip_suffix("\r"),
                flags,
            ]
        )

    # ---- parsing ----------------------------------------------------------------------------

    def _fix_quoted(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Adds src (the text to split) and _nf (its field count). Rows whose quoted fields hold the
        separator are re-split with the csv module (separators inside fields are dropped: "1,234.5")."""
        sep, ncols = self.separator, self.ncols
        frame = frame.with_columns(
            src=pl.col("raw"), _nf=pl.col("raw").str.count_matches(sep, literal=True) + 1
        )
        suspicious = frame.select(
            (pl.col("_nf") != ncols) & pl.col("raw").str.contains('"', literal=True)
        ).to_series()
        if suspicious.any():
            index = suspicious.arg_true()
            fixed, counts = [], []
            for text in frame["raw"].gather(index).to_list():
                fields = next(csv.reader([text], delimiter=sep), [])
                fixed.append(sep.join(f.replace(sep, "") for f in fields) if len(fields) == ncols else text)
                counts.append(fixed[-1].count(sep) + 1)
            frame = frame.with_columns(
                frame["src"].scatter(index, fixed),
                frame["_nf"].scatter(index, pl.Series(counts, dtype=frame["_nf"].dtype)),
            )
        return frame

    def _parse_frame(self, frame: pl.DataFrame, only_time: bool = False) -> tuple[pl.DataFrame, pl.DataFrame]:
        """(kept rows in MINUTE_SCHEMA, rejected rows: line, raw, reason).

        Built in stages of materialized columns: an expression used twice would be evaluated twice."""
        frame = frame.filter(pl.col("bad_decode") | (pl.col("raw").str.strip_chars().str.len_bytes() > 0))
        frame = self._fix_quoted(frame)
        sep, ncols, positions, profile = self.separator, self.ncols, self._match.positions, self.profile
        wanted = [t for t in positions if t in ("time", "date", "clock")] if only_time else list(positions)
        # One more split than columns: the remainder must be empty (trailing separators are tolerated).
        # Time only (routing files to months): split just past the time columns.
        splits = max(positions[t] for t in wanted) + 2 if only_time else ncols + 1
        frame = frame.with_columns(_fields=pl.col("src").str.splitn(sep, splits))
        remainder = (
            pl.col("_fields").struct.field(f"field_{ncols}").str.strip_chars(sep + " \t")
            if not only_time
            else pl.lit("")
        )
        # Trim spaces and quotes around fields, unless no field in the block has any.
        padded = frame.select(pl.col("src").str.contains(_padding_pattern(sep)).any()).item()

        def field(target: str) -> pl.Expr:
            value = pl.col("_fields").struct.field(f"field_{positions[target]}")
            return value.str.strip_chars(' \t"') if padded else value

        frame = frame.with_columns(
            _count_ok=(pl.col("_nf") == ncols) | ((pl.col("_nf") > ncols) & (remainder == "")),
            **{f"_{t}": field(t) for t in wanted},
        ).drop("_fields", "src")
        frame = frame.with_columns(**{f"_{t}_null": _null_like(pl.col(f"_{t}")) for t in wanted})
        if "time" in positions:
            frame = frame.with_columns(_time_text=pl.col("_time"), _time_missing=pl.col("_time_null"))
        else:
            frame = frame.with_columns(
                _time_text=pl.concat_str([pl.col("_date"), pl.lit(" "), _clock(pl.col("_clock"))]),
                _time_missing=pl.col("_date_null") | pl.col("_clock_null"),
            )
        frame = frame.with_columns(parse_times(frame["_time_text"], profile.time_formats).alias("time"))
        time_reason = (
            pl.when(pl.col("_time_missing"))
            .then(pl.lit("missing time"))
            .when(pl.col("time").is_null())
            .then(pl.format("bad time: '{}'", pl.col("_time_text")))
        )
        if frame.select(self.plausible.outside(pl.col("time"), naive=True).any()).item():  # words only then
            time_reason = time_reason.otherwise(
                self.plausible.violation(pl.col("time"), pl.col("_time_text"), naive=True)
            )
        reasons = [time_reason]
        if not only_time:
            frame = self._value_columns(frame, reasons)
        reason = (
            pl.when(pl.col("bad_decode"))
            .then(pl.lit(f"line can't be decoded as {self.encoding}"))
            .when(~pl.col("_count_ok"))
            .then(pl.format(f"wrong field count: expected {ncols}, got {{}}", pl.col("_nf")))
            .otherwise(pl.concat_str(reasons, separator="; ", ignore_nulls=True))
        )
        parsed = frame.with_columns(_reason=reason)
        rejected = parsed.filter(pl.col("_reason") != "")
        if only_time:
            rejected = rejected.select("line", "raw", reason="_reason")
        else:  # with its code and time where they parsed (never from a line whose fields can't be trusted)
            unparsed = pl.col("bad_decode") | ~pl.col("_count_ok")
            rejected = rejected.select(
                "line",
                "raw",
                reason="_reason",
                code=pl.when(unparsed).then(None).otherwise(pl.col("code")),
                time=pl.when(unparsed).then(None).otherwise(pl.col("time")),
            )
        kept = parsed.filter(pl.col("_reason") == "")
        self._check_clock(kept)
        if only_time:
            return kept.select("time"), rejected
        kept = kept.select(
            "time",
            "code",
            "name",
            "open",
            "high",
            "low",
            "close",
            volume=pl.col("volume") * self._volume_factor if self._volume_factor != 1 else pl.col("volume"),
            amount=pl.col("amount") * self.amount_factor if self.amount_factor != 1 else pl.col("amount"),
        ).cast(dict(MINUTE_SCHEMA))  # type: ignore[arg-type]
        return kept, rejected

    def _value_columns(self, frame: pl.DataFrame, reasons: list[pl.Expr]) -> pl.DataFrame:
        """`frame` with code, name and the numeric columns parsed from their `_<column>` fields (constants
        where the profile has none); each column's rejection reason appended to `reasons`."""
        positions, columns = self._match.positions, {}
        if "code" in positions:
            frame = frame.with_columns(
                normalize_codes(frame["_code"], self.profile.code_format).alias("code")
            )
            reasons.append(
                pl.when(pl.col("_code_null"))
                .then(pl.lit("missing code"))
                .when(pl.col("code").is_null())
                .then(pl.format("bad code: '{}'", pl.col("_code")))
            )
        else:
            columns["code"] = pl.lit(self.file_code, dtype=pl.String)
        if "name" in positions:
            columns["name"] = pl.when(pl.col("_name_null")).then(None).otherwise(pl.col("_name"))
        else:
            columns["name"] = pl.lit(None, dtype=pl.String)
        for target in NUMERIC_COLUMNS:
            if target not in positions:
                columns[target] = pl.lit(None, dtype=pl.Float64)
                continue
            columns[target] = (
                pl.when(pl.col(f"_{target}_null"))
                .then(None)
                .otherwise(pl.col(f"_{target}"))
                .cast(pl.Float64, strict=False)
            )
            value = pl.col(target)
            bad_number = ~pl.col(f"_{target}_null") & (value.is_null() | value.is_infinite() | value.is_nan())
            reasons.append(
                pl.when(bad_number).then(pl.format(f"bad number in {target}: '{{}}'", pl.col(f"_{target}")))
            )
        return frame.with_columns(**columns)

    # ---- iteration --------------------------------------------------------------------------

    def _line_blocks(self) -> Iterator[tuple[int, list[bytes]]]:
        """(number of the first line, lines without their separator) per block of the file."""
        sep = self.line_sep
        line_no = 1
        carry = b""
        first = True
        with _open_binary(self.path) as fh:
            while True:
                try:
                    chunk = fh.read(self.block_bytes)
                except (OSError, EOFError, zlib.error) as error:
                    raise CsvFileError(
                        self.path, f"cannot read the file to its end (after line {line_no}): {error}"
                    ) from None
                if chunk:
                    data = carry + chunk
                    cut = data.rfind(sep)
                    if cut < 0:
                        carry = data
                        continue
                    data, carry = data[:cut], data[cut + len(sep) :]
                    lines = data.split(sep)
                else:
                    if not carry:
                        return
                    lines, carry = carry.split(sep), b""
                if first:
                    if lines[0].startswith(_BOM):
                        lines[0] = lines[0][3:]
                    first = False
                yield line_no, lines
                line_no += len(lines)
                if not chunk:
                    return

    def _frames(self) -> Iterator[pl.DataFrame]:
        for line_no, lines in self._line_blocks():
            skip = max(0, self.header_line - line_no + 1)
            if skip >= len(lines):
                continue
            yield self._decode_block(lines[skip:], line_no + skip)

    def _add_rejects(self, rejected: pl.DataFrame) -> None:
        if rejected.height == 0:
            return
        self.reject_count += rejected.height
        days = (
            rejected.filter(pl.col("code").is_not_null() & pl.col("time").is_not_null())
            .group_by("code", day=pl.col("time").dt.date(), reason=reject_kind(pl.col("reason")))
            .agg(rows=pl.len().cast(pl.Int64))
        )
        if days.height:
            self._rejected_days.append(days)
        room = self.max_rejects - len(self.rejects)
        if room > 0:
            file = str(self.path)
            rows = rejected.head(room).select("line", "raw", "reason").iter_rows()
            self.rejects.extend(Reject(file, line, raw, reason) for line, raw, reason in rows)

    def batches(self) -> Iterator[pl.DataFrame]:
        """Normalized batches (one per block, empty ones skipped); rejects accumulate on the reader.
        Raises CsvFileError at the end when data rows were read but none was kept."""
        tally = _Tally()
        for frame in self._frames():
            kept, rejected = self._parse_frame(frame)
            self._add_rejects(rejected)
            tally.add(kept.height, rejected)
            if kept.height:
                self.rows += kept.height
                yield kept
        self.reject_reasons = tally.reasons
        error = self._unreadable_error(tally)
        if error is not None:
            raise error

    __iter__ = batches

    @property
    def rejected_days(self) -> pl.DataFrame:
        """Rejected rows whose code and time parsed, counted per code, day and kind (`reject_kind`):
        columns code, day, reason, rows; every rejected row counts, beyond ``max_rejects`` too."""
        if not self._rejected_days:
            return pl.DataFrame(schema=REJECTED_DAYS_SCHEMA)
        return (
            pl.concat(self._rejected_days)
            .group_by("code", "day", "reason")
            .agg(pl.col("rows").sum())
            .sort("code", "day", "reason")
        )

    def read(self) -> pl.DataFrame:
        """The whole file as one frame (small files, tests)."""
        frames = list(self.batches())
        return pl.concat(frames) if frames else empty_minute_frame()

    def time_range(self) -> TimeRange:
        """Min and max bar time and the months touched, parsing only the time column. Raises
        CsvFileError when data rows were read but no time parsed (or on a 12-hour clock)."""
        low = high = None
        months: set[str] = set()
        tally = _Tally()
        for frame in self._frames():
            kept, rejected = self._parse_frame(frame, only_time=True)
            tally.add(kept.height, rejected)
            if kept.height == 0:
                continue
            stats = kept.select(
                lo=pl.col("time").min(),
                hi=pl.col("time").max(),
                months=pl.col("time").dt.strftime("%Y-%m").unique().implode(),
            ).row(0)
            low = stats[0] if low is None or stats[0] < low else low
            high = stats[1] if high is None or stats[1] > high else high
            months.update(stats[2])
        error = self._unreadable_error(tally)
        if error is not None:
            raise error
        return TimeRange(low, high, sorted(months))

    def summary(self) -> dict:
        """Detection results and counts, for asset metadata."""
        return {
            "file": str(self.path),
            "profile": self.profile.name,
            "encoding": self.encoding,
            "separator": self.separator,
            "header_line": self.header_line,
            "file_code": self.file_code,
            "volume_unit": self.volume_unit,
            "volume_unit_reason": self.volume_unit_reason,
            "amount_unit": self.profile.amount_unit,
            "rows": self.rows,
            "rejects": self.reject_count,
            "rejects_by_reason": dict(self.reject_reasons),
        }


def infer_volume_unit(frame: pl.DataFrame, min_rows: int = 5) -> tuple[str | None, str]:
    """("shares" | "lots" | None, why) from parsed rows whose volume is as written in the file.

    Outside the STAR market (688/689) and Beijing (.BJ), trades are in board lots of 100 shares, so
    minute volumes counted in shares are multiples of 100 and volumes counted in lots almost never
    are. Otherwise amount / (volume * close) is ~1 in shares and ~100 in lots (forward-adjusted
    prices widen this, hence the wide bands)."""
    traded = frame.filter(pl.col("volume") > 0)
    board = traded.filter(
        ~pl.col("code").str.starts_with("688")
        & ~pl.col("code").str.starts_with("689")
        & ~pl.col("code").str.ends_with(".BJ")
    )
    if board.height >= min_rows:
        hundreds = board.select(
            ((pl.col("volume") / 100 - (pl.col("volume") / 100).round()).abs() < 1e-6).mean()
        ).item()
        if hundreds >= 0.9:
            return "shares", f"{hundreds:.0%} of {board.height} sampled volumes are multiples of 100"
        if hundreds <= 0.5:
            return "lots", f"only {hundreds:.0%} of {board.height} sampled volumes are multiples of 100"
    priced = traded.filter((pl.col("amount") > 0) & (pl.col("close") > 0))
    if priced.height >= min_rows:
        ratio = priced.select((pl.col("amount") / (pl.col("volume") * pl.col("close"))).median()).item()
        if 0.2 <= ratio <= 15:
            return "shares", f"amount / (volume * close) = {ratio:.3g} over {priced.height} sampled rows"
        if 20 <= ratio <= 1500:
            return "lots", f"amount / (volume * close) = {ratio:.3g} over {priced.height} sampled rows"
        return None, f"amount / (volume * close) = {ratio:.3g} is neither ~1 nor ~100"
    return None, f"too few traded rows in the sample ({traded.height})"


# --------------------------------------------------------------------------------------------
# Functions
# --------------------------------------------------------------------------------------------


def open_minute_csv(
    path: str | Path,
    profiles: Sequence[CsvProfile] | None = None,
    *,
    profile: None | str | dict | CsvProfile = None,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    max_rejects: int = DEFAULT_MAX_REJECTS,
) -> MinuteCsvReader:
    """Detect encoding, separator, profile, code source and volume unit; raises CsvFileError."""
    return MinuteCsvReader(path, profiles, profile=profile, block_bytes=block_bytes, max_rejects=max_rejects)


def iter_minute_batches(
    path: str | Path, profiles: Sequence[CsvProfile] | None = None, *, rejects: list | None = None, **options
) -> Iterator[pl.DataFrame]:
    """Normalized batches of one file; rejects are appended to `rejects` as each batch is parsed."""
    reader = open_minute_csv(path, profiles, **options)
    for batch in reader.batches():
        if rejects is not None:
            rejects.extend(reader.rejects)
            reader.rejects.clear()
        yield batch
    if rejects is not None:
        rejects.extend(reader.rejects)
        reader.rejects.clear()


def read_minute_csv(
    path: str | Path, profiles: Sequence[CsvProfile] | None = None, **options
) -> tuple[pl.DataFrame, list[Reject]]:
    """The whole file and its rejects (for small files; use open_minute_csv(...).batches() for big ones)."""
    reader = open_minute_csv(path, profiles, **options)
    return reader.read(), reader.rejects


def file_time_range(
    path: str | Path,
    profile: None | str | dict | CsvProfile = None,
    profiles: Sequence[CsvProfile] | None = None,
    **options,
) -> TimeRange:
    """(min_time, max_time, months touched as "YYYY-MM") parsing only the time column, for routing
    files to month partitions. Rows whose time doesn't parse are ignored; no rows gives (None, None, [])."""
    return open_minute_csv(path, profiles, profile=profile, **options).time_range()


def write_rejects(rejects: Sequence[Reject], path: str | Path) -> Path:
    """Write rejects as CSV (columns line, reason, raw, file; UTF-8) to `path`, or into `path` as
    ``<source file name>.rejects.csv`` when `path` is an existing directory. Written atomically; a
    name too long for the file system is shortened with a hash (files.fit_name)."""
    target = Path(path)
    if target.is_dir():
        target = target / (Path(rejects[0].file).name if rejects else "file")
        target = target.with_name(target.name + ".rejects.csv")
    if target.name.endswith(".rejects.csv"):
        target = target.with_name(fit_name(target.name[: -len(".rejects.csv")], ".rejects.csv"))
    else:
        target = target.with_name(fit_name(target.name))
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["line", "reason", "raw", "file"])
    for reject in rejects:
        writer.writerow([reject.line, reject.reason, reject.raw, reject.file])
    atomic_write_bytes(target, buffer.getvalue().encode("utf-8"))
    return target
