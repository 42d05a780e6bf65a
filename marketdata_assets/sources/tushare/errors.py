"""What a Tushare Pro answer means. It always comes with HTTP 200: `code` 0 is good, any other code is an
error whose MESSAGE decides (`ERRORS`): 40203 is a per-minute limit ("每分钟…", wait for the next window), an
hourly or daily quota ("每小时…" / "每天…", stop that API) or a permission refusal; the limit messages also
say "权限", so the period words are matched first and permission is the code's fallback. `answer_error`: the
exception it stands for."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from marketdata_assets.core.http import (
    ErrorCategory,
    ErrorTable,
    SourceBanned,
    SourceDataError,
    SourceError,
    SourcePermissionError,
    SourceRequestError,
)
from marketdata_assets.datasets.frames import as_utc

PROVIDER = "Tushare Pro"
TOKEN_ENV = "TUSHARE_TOKEN"
CHINA_TZ = "Asia/Shanghai"

# The period words of 40203 limit messages ("抱歉，您每分钟最多访问该接口200次，权限的具体详情访问：…").
MINUTE_WORDS = ("每分钟", "per minute")
HOUR_WORDS = ("每小时", "per hour")
DAY_WORDS = ("每天", "每日", "per day")

ERRORS = ErrorTable(
    broad=(
        *((word, "rate_limited", "40203") for word in MINUTE_WORDS),
        *((word, "quota", "40203") for word in HOUR_WORDS + DAY_WORDS),
    ),
    # 40203 without a period word: "抱歉，您没有访问该接口的权限…", "…没有权限访问该接口…".
    # Any other non-zero code (-2001 bad parameter, …) falls through to "rejected".
    exact={"40203": "permission", "2002": "permission", "40101": "unauthorized"},
)


def error_fields(payload: Any) -> tuple[Any, str] | None:
    """(code, msg) of an error answer; None for a good one (`code` 0, "0") or one without a code
    (the table reader says what is wrong with it)."""
    if not isinstance(payload, Mapping) or payload.get("code") is None:
        return None
    code = payload["code"]
    try:
        if int(code) == 0:
            return None
    except (TypeError, ValueError):
        pass
    return code, str(payload.get("msg") or "")


class TushareLimitReached(SourceBanned):
    """A per-hour or per-day quota of an API is used up (or per-minute limits never clear): stop
    calling that API in this run."""

    def __init__(self, api_name: str, period: str, message: str, *, until: datetime | None = None):
        self.api_name, self.period, self.message = api_name, period, message
        super().__init__(PROVIDER, f"40203: {message}", until=until, request=api_name)
        self.args = (
            f"{PROVIDER}: the {period} quota of {api_name!r} is used up (40203: {message}); not "
            f"retried: rerun after the {period} window resets"
            + (f" (about {until.isoformat()})" if until else "")
            + " or raise the account's quota",
        )


class TusharePermissionError(SourcePermissionError):
    """The token's account has no permission for an API (40203 permission message, or code 2002)."""

    def __init__(self, api_name: str, code: Any, message: str):
        self.api_name, self.code, self.message = api_name, code, message
        super().__init__(PROVIDER, 200, f"code {code}: {message}", request=api_name)
        self.args = (
            (
                f"{PROVIDER}: no permission for {api_name!r} (code {code}: {message}); not retried: "
                "the account needs the API's points or a separate grant"
            ),
        )


class TushareTokenError(SourcePermissionError):
    """The token was refused (40101) or is missing."""

    def __init__(self, detail: str):
        super().__init__(PROVIDER, 200, detail)
        self.args = (
            (
                f"{PROVIDER}: {detail}; set {TOKEN_ENV} to the token from https://tushare.pro/user/token "
                "(its value is never printed)"
            ),
        )


class TushareResponseError(SourceDataError):
    """An answer for one instrument/window that is not what Tushare documents."""

    def __init__(self, instrument: str | None, day: Any, detail: str, *, request: str | None = None):
        super().__init__(instrument, day, detail, source=PROVIDER, request=request)


def next_china_boundary(unit: Literal["hour", "day"]) -> datetime:
    """The next full hour / China midnight, as an aware UTC datetime (when a quota resets)."""
    now = datetime.now(ZoneInfo(CHINA_TZ))
    if unit == "hour":
        nxt = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    else:
        nxt = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=now.tzinfo)
    return as_utc(nxt)


def answer_error(
    category: ErrorCategory,
    api_name: str,
    code: Any,
    message: str,
    *,
    instrument: str | None = None,
    request: str | None = None,
) -> SourceError:
    """The exception a Tushare error answer classified as `category` (`ERRORS`) stands for."""
    if category == "quota":
        hourly = any(word in message.lower() for word in HOUR_WORDS)
        return TushareLimitReached(
            api_name,
            "hourly" if hourly else "daily",
            message,
            until=next_china_boundary("hour" if hourly else "day"),
        )
    if category == "rate_limited":  # only for a parser caller: the client waits these out
        return TushareLimitReached(api_name, "per-minute", message)
    if category == "permission":
        return TusharePermissionError(api_name, code, message)
    if category == "unauthorized":
        return TushareTokenError(f"the token was refused (code {code}: {message})")
    if category == "banned":
        return SourceBanned(PROVIDER, f"code {code}: {message}", request=request or api_name)
    return SourceRequestError(
        PROVIDER, instrument, 200, code, message or "(no message)", request=request or api_name
    )
