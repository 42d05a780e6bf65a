"""Minute-bar CSV files dropped by vendors: the reader and the vendor profiles (columns, encodings, code
formats)."""

from marketdata_assets.core.naming import A_SHARE_VENUES
from marketdata_assets.sources.interface import FILES, MinuteFiles, Source
from marketdata_assets.sources.minute_csv.profiles import load_profiles, profiles_fingerprint
from marketdata_assets.sources.minute_csv.reader import (
    REJECTED_DAYS_SCHEMA,
    CsvFileError,
    file_time_range,
    open_minute_csv,
    write_rejects,
)

# A-share minute-bar CSV files dropped by vendors into the landing directory
MINUTE_CSV = Source(
    "MINUTE_CSV",
    A_SHARE_VENUES,
    {"stock_1min_qfq": FILES},
    files=MinuteFiles(
        load_profiles,
        profiles_fingerprint,
        open_minute_csv,
        file_time_range,
        write_rejects,
        REJECTED_DAYS_SCHEMA,
        CsvFileError,
    ),
)
