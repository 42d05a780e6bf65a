"""Deterministic, realistic BRAIN-style alpha objects (REGULAR and SUPER) for tests, replay and benchmarks.

``make_alpha(seed, type="REGULAR", date_created=None, ...)`` returns a plain JSON-ready dict with every
field and quirk of the vendor's alpha object; same arguments, same dict, on every machine. No imports
from the project: the replay server and the benchmark import this module as it is. The fields, blocks
and check variants: docs/tests.md, "The alpha factory".
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

NY = ZoneInfo("America/New_York")
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ID_SPACE = 62**7
_ID_MULT = 2_199_023_255_579  # odd and not a multiple of 31: a bijection on [0, 62**7)
_ID_OFFSET = 1_234_567_891
_TYPE_CODES = {"REGULAR": 0, "SUPER": 1}
_EPOCH = datetime(2024, 1, 1, 9, 30, tzinfo=NY)

_REGIONS = {
    "USA": ["TOP3000", "TOP1000", "TOP500", "TOP200", "TOPSP500"],
    "EUR": ["TOP2500", "TOP1200", "TOP800"],
    "ASI": ["MINVOL1M", "ILLIQUID_MINVOL1M"],
    "CHN": ["TOP2000U"],
    "JPN": ["TOP1600"],
    "GLB": ["TOP3000", "MINVOL1M"],
}
_NEUTRALIZATIONS = [
    "NONE",
    "MARKET",
    "SECTOR",
    "INDUSTRY",
    "SUBINDUSTRY",
    "STATISTICAL",
    "CROWDING",
    "FAST",
    "SLOW",
    "SLOW_AND_FAST",
]
_FIELDS = [
    "close",
    "open",
    "high",
    "low",
    "vwap",
    "volume",
    "returns",
    "adv20",
    "cap",
    "sharesout",
    "fnd6_newqv1300_capxv",
    "mdl175_ebitda",
    "anl4_afv4_eps_mean",
    "pv13_hierarchy_min51_sector",
    "news_max_up_ret",
    "implied_volatility_call_120",
    "scl12_buzz",
    "rp_css_earnings",
]
_UNARY = ["rank", "zscore", "sign", "abs", "log", "scale", "winsorize"]
_TS = [
    "ts_rank",
    "ts_zscore",
    "ts_delta",
    "ts_mean",
    "ts_std_dev",
    "ts_decay_linear",
    "ts_sum",
    "ts_arg_max",
    "ts_backfill",
]
_GROUP = ["group_rank", "group_neutralize", "group_zscore"]
_GROUPS = ["industry", "subindustry", "sector", "market", "country"]
_PYRAMIDS = [
    "USA/D1/PV",
    "USA/D1/ANALYST",
    "USA/D1/FUNDAMENTAL",
    "USA/D0/MODEL",
    "EUR/D1/PV",
    "ASI/D1/NEWS",
    "CHN/D1/OPTION",
    "GLB/D1/SENTIMENT",
    "JPN/D1/RISK",
]
_THEMES = [
    ("Kp0RXpzL", "Value Factor Theme"),
    ("LR0B9zkm", "Momentum Recovery Theme"),
    ("bKn3YE3J", "ATOM Theme"),
    ("q0xJWwZr", "Power Pool Theme"),
    ("5rV9k8Yz", "Scale Theme"),
]
_CLASSIFICATIONS = [
    ("DATA_USAGE:SINGLE_DATA_SET", "Single Data Set Alpha"),
    ("DATA_USAGE:MULTI_DATA_SET", "Multi Data Set Alpha"),
    ("POWER_POOL:POWER_POOL_ELIGIBLE", "Power Pool Alpha"),
    ("PYRAMID:USA/D1/PV", "USA/D1/PV"),
    ("PYRAMID:USA/D1/ANALYST", "USA/D1/ANALYST"),
]
_CATEGORIES = [None, "PRICE_REVERSION", "PRICE_MOMENTUM", "FUNDAMENTAL", "ANALYST", "SENTIMENT", "VOLUME"]
_GRADES = ["SPECTACULAR", "EXCELLENT", "GOOD", "AVERAGE", "INFERIOR"]
_COLORS = [None, None, None, "RED", "GREEN", "BLUE", "YELLOW", "PURPLE"]
_TAGS = ["momentum", "reversion", "earnings", "low_turnover", "submit_later", "pp", "robust", "test"]
_UNITS_WARNING = 'Incompatible unit for input of "add" at index 1, expected "Unit[CSPrice:1]", found "Unit[]"'


def alpha_id_for(seed: int, type: str = "REGULAR") -> str:
    """A 7-character id, unique for each (seed, type) with seed < 62**7 // 3."""
    n = (seed * 3 + _TYPE_CODES.get(type, 2)) % _ID_SPACE
    n = (n * _ID_MULT + _ID_OFFSET) % _ID_SPACE
    chars = []
    for _ in range(7):
        n, r = divmod(n, 62)
        chars.append(_ALPHABET[r])
    return "".join(reversed(chars))


def iso_ny(moment: datetime) -> str:
    """ISO 8601 in New York time with its offset, seconds precision: '2025-07-18T23:32:42-04:00'."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=NY)
    return moment.astimezone(NY).isoformat(timespec="seconds")


def default_date_created(seed: int) -> datetime:
    """A deterministic creation time within 2024-01-01 .. 2025-12-31 (New York)."""
    return (_EPOCH + timedelta(seconds=(seed * 7_919_777) % (730 * 86_400))).astimezone(NY)


def _expr(rng: random.Random, depth: int = 0) -> tuple[str, int]:
    """A FASTEXPR expression and its operator count."""
    if depth >= 3 or (depth and rng.random() < 0.3):
        return rng.choice(_FIELDS), 0
    draw = rng.random()
    if draw < 0.35:
        inner, n = _expr(rng, depth + 1)
        return f"{rng.choice(_TS)}({inner}, {rng.choice([5, 10, 20, 22, 60, 120, 252])})", n + 1
    if draw < 0.6:
        inner, n = _expr(rng, depth + 1)
        return f"{rng.choice(_UNARY)}({inner})", n + 1
    if draw < 0.75:
        inner, n = _expr(rng, depth + 1)
        return f"{rng.choice(_GROUP)}({inner}, {rng.choice(_GROUPS)})", n + 1
    left, n1 = _expr(rng, depth + 1)
    right, n2 = _expr(rng, depth + 1)
    return f"{rng.choice(['add', 'subtract', 'multiply', 'divide'])}({left}, {right})", n1 + n2 + 1


def _code(rng: random.Random) -> tuple[str, int]:
    lines, total = [], 0
    for i in range(rng.randint(1, 3)):
        expr, n = _expr(rng)
        lines.append(f"a{i} = {expr};")
        total += n
    final, n = _expr(rng, 1)
    lines.append(f"trade_when(ts_rank(volume, 20) > 0.5, {final.replace(rng.choice(_FIELDS), 'a0', 1)}, -1)")
    return "\n".join(lines), total + n + 2


def _stats(rng: random.Random, sharpe: float, start_date: str | None, scale: float = 1.0) -> dict:
    turnover = round(rng.uniform(0.01, 0.75), 4)
    returns = round(sharpe * rng.uniform(0.03, 0.08) * scale, 4)
    stats: dict[str, Any] = {
        "pnl": int(returns * 10_000_000 * rng.uniform(4.5, 5.5)),
        "bookSize": 20_000_000,
        "longCount": rng.randint(300, 1800),
        "shortCount": rng.randint(300, 1800),
        "turnover": turnover,
        "returns": returns,
        "drawdown": round(rng.uniform(0.01, 0.35), 4),
        "margin": round(returns / max(turnover, 0.01) / 250 * 2, 6),
        "sharpe": round(sharpe * scale, 2),
        "fitness": round(sharpe * scale * rng.uniform(0.3, 1.1), 2),
    }
    if start_date is not None:
        stats["startDate"] = start_date
    return stats


def _result(value: float, limit: float, higher_is_better: bool = True) -> str:
    return "PASS" if (value >= limit) == higher_is_better else "FAIL"


def _checks(
    rng: random.Random,
    stats: dict,
    region: str,
    is_super: bool,
    start: datetime,
    end: datetime,
    full: bool = True,
) -> list[dict]:
    sharpe, fitness, turnover = stats["sharpe"], stats["fitness"], stats["turnover"]
    sharpe_limit = 2.0 if is_super else (1.58 if stats.get("startDate", "").startswith("2021") else 1.25)
    checks: list[dict] = [
        {
            "name": "LOW_SHARPE",
            "result": _result(sharpe, sharpe_limit),
            "limit": sharpe_limit,
            "value": sharpe,
        },
        {"name": "LOW_FITNESS", "result": _result(fitness, 1.0), "limit": 1.0, "value": fitness},
        {"name": "LOW_TURNOVER", "result": _result(turnover, 0.01), "limit": 0.01, "value": turnover},
        {"name": "HIGH_TURNOVER", "result": _result(turnover, 0.7, False), "limit": 0.7, "value": turnover},
        {"name": "CONCENTRATED_WEIGHT", "result": rng.choice(["PASS", "PASS", "PASS", "FAIL"])},
    ]
    if not full:
        return checks
    sub = round(sharpe * rng.uniform(0.4, 1.1), 2)
    checks.append(
        {
            "name": "LOW_SUB_UNIVERSE_SHARPE",
            "result": _result(sub, round(sharpe * 0.44, 2)),
            "limit": round(sharpe * 0.44, 2),
            "value": sub,
        }
    )
    robust = round(rng.uniform(0.3, 1.2), 2)
    checks.append(
        {
            "name": "LOW_ROBUST_UNIVERSE_SHARPE",
            "result": _result(robust, 0.5),
            "limit": 0.5,
            "value": round(sharpe * robust, 2),
            "ratio": robust,
        }
    )
    two_year = round(sharpe * rng.uniform(0.6, 1.4), 2)
    checks.append(
        {"name": "LOW_2Y_SHARPE", "result": _result(two_year, 1.58), "limit": 1.58, "value": two_year}
    )
    if rng.random() < 0.5:
        checks.append({"name": "SELF_CORRELATION", "result": "PENDING"})
    else:
        corr = round(rng.uniform(0.1, 0.95), 4)
        checks.append(
            {"name": "SELF_CORRELATION", "result": _result(corr, 0.7, False), "limit": 0.7, "value": corr}
        )
    checks.append({"name": "DATA_DIVERSITY", "result": "PENDING"})
    checks.append({"name": "PROD_CORRELATION", "result": "PENDING"})
    checks.append({"name": "SUPER_SUBMISSION" if is_super else "REGULAR_SUBMISSION", "result": "PENDING"})
    if rng.random() < 0.6:
        checks.append({"name": "UNITS", "result": "WARNING", "message": _UNITS_WARNING})
    # IS_LADDER_SHARPE: one item per ladder year; the ladder may run backwards (endDate < startDate)
    backwards = rng.random() < 0.5
    for year in range(2, 2 + rng.randint(2, 4)):
        later = end.date().isoformat()
        earlier = end.replace(year=end.year - year).date().isoformat()
        value = round(sharpe * rng.uniform(0.7, 1.3), 2)
        limit = round(1.58 + 0.05 * (year - 2), 2)
        checks.append(
            {
                "name": "IS_LADDER_SHARPE",
                "result": _result(value, limit),
                "year": year,
                "startDate": later if backwards else earlier,
                "endDate": earlier if backwards else later,
                "limit": limit,
                "value": value,
            }
        )
    pyramids = [
        {"name": p, "multiplier": round(rng.choice([1.0, 1.1, 1.2, 1.3, 1.5, 1.8]), 1)}
        for p in rng.sample(
            [p for p in _PYRAMIDS if p.startswith(region)] or _PYRAMIDS[:2],
            k=min(2, len([p for p in _PYRAMIDS if p.startswith(region)]) or 1),
        )
    ]
    checks.append(
        {
            "name": "MATCHES_PYRAMID",
            "result": "PASS" if pyramids else "FAIL",
            "multiplier": max(p["multiplier"] for p in pyramids),
            "effective": len(pyramids),
            "pyramids": pyramids,
        }
    )
    for theme_id, theme_name in rng.sample(_THEMES, k=2 if rng.random() < 0.75 else 1):
        mult = rng.choice([1.0, 1.5, 2.0, 3.0])
        passed = rng.random() < 0.4
        checks.append(
            {
                "name": "MATCHES_THEMES",
                "result": "PASS" if passed else "FAIL",
                "multiplier": mult,
                "themes": [{"id": theme_id, "multiplier": mult, "name": theme_name}],
            }
        )
    return checks


def _is_block(
    rng: random.Random, sharpe: float, settings: dict, is_super: bool, start: datetime, end: datetime
) -> dict:
    block = _stats(rng, sharpe, settings["startDate"])
    block["investabilityConstrained"] = _stats(rng, sharpe, None, scale=rng.uniform(0.6, 0.95))
    block["riskNeutralized"] = _stats(rng, sharpe, None, scale=rng.uniform(0.5, 1.0))
    if settings["region"] == "GLB":
        for area in ("amer", "apac", "emea"):
            area_block = _stats(rng, sharpe, None, scale=rng.uniform(0.4, 1.2))
            area_block["investabilityConstrained"] = _stats(rng, sharpe, None, scale=rng.uniform(0.3, 0.9))
            block[area] = area_block
    block["checks"] = _checks(rng, block, settings["region"], is_super, start, end)
    return block


def make_alpha(
    seed: int,
    type: str = "REGULAR",
    date_created: datetime | None = None,
    *,
    alpha_id: str | None = None,
    author: str = "XX12345",
    status: str | None = None,
    region: str | None = None,
    date_modified: datetime | None = None,
    overrides: dict | None = None,
) -> dict:
    """A realistic alpha object. Deterministic in all its arguments.

    type: "REGULAR" | "SUPER" (any other string gives a REGULAR-shaped alpha with that type, for
    "unsupported type" paths). date_created: aware or naive (naive = New York wall time); default
    derived from the seed. status: UNSUBMITTED (stage IS, dateSubmitted null), ACTIVE (stage OS,
    submitted, with an ``os`` block) or DECOMMISSIONED; default drawn from the seed.
    `overrides` replaces top-level fields at the end.
    """
    # One generator drawn in a fixed order: the steps below must keep it.
    rng = random.Random(f"alpha:{seed}:{type}")
    is_super = type == "SUPER"
    created = default_date_created(seed) if date_created is None else date_created
    if created.tzinfo is None:
        created = created.replace(tzinfo=NY)
    status, submitted, modified = _lifecycle(rng, created, status, date_modified)
    region = region or rng.choice(list(_REGIONS))
    sim_end = datetime(2023 if not is_super else 2022, 1, 20, tzinfo=UTC)
    sim_start = sim_end.replace(year=sim_end.year - 5)
    settings = _settings(rng, region, is_super, sim_start, sim_end)
    sharpe = round(rng.uniform(-0.5, 3.2), 2)
    alpha: dict[str, Any] = {
        "id": alpha_id or alpha_id_for(seed, type),
        "type": type,
        "author": author,
        "settings": settings,
        **_code_fields(rng, is_super),
    }
    alpha.update(_listing_fields(rng, seed, status, created, submitted, modified))
    alpha["is"] = _is_block(rng, sharpe, settings, is_super, sim_start, sim_end)
    alpha.update(
        dict.fromkeys(
            ("os", "train", "test", "prod", "competitions", "themes", "pyramids", "pyramidThemes", "team")
        )
    )
    _add_later_blocks(rng, alpha, sharpe, is_super, created, submitted, sim_start, sim_end)
    if overrides:
        alpha.update(overrides)
    return alpha


def _lifecycle(
    rng: random.Random, created: datetime, status: str | None, date_modified: datetime | None
) -> tuple[str, datetime | None, datetime]:
    """(status, dateSubmitted, dateModified): submitted within 20 days unless UNSUBMITTED."""
    if status is None:
        status = rng.choices(["UNSUBMITTED", "ACTIVE", "DECOMMISSIONED"], weights=[70, 25, 5])[0]
    submitted = None
    if status != "UNSUBMITTED":
        submitted = created + timedelta(days=rng.randint(0, 20), seconds=rng.randint(60, 86_000))
    modified = date_modified or max(created + timedelta(seconds=rng.randint(1, 3600)), submitted or created)
    return status, submitted, modified


def _settings(
    rng: random.Random, region: str, is_super: bool, sim_start: datetime, sim_end: datetime
) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "instrumentType": "EQUITY",
        "region": region,
        "universe": rng.choice(_REGIONS[region]),
        "delay": rng.choice([0, 1, 1, 1]),
        "decay": rng.choice([0, 0, 2, 4, 5, 8, 10, 15, 20]),
        "neutralization": (
            "COUNTRY" if region == "GLB" and rng.random() < 0.5 else rng.choice(_NEUTRALIZATIONS)
        ),
        "truncation": rng.choice([0.01, 0.02, 0.05, 0.08, 0.1]),
        "pasteurization": rng.choice(["ON", "ON", "OFF"]),
        "unitHandling": "VERIFY",
        "nanHandling": rng.choice(["ON", "OFF", "OFF"]),
        "maxTrade": rng.choice(["ON", "OFF", "OFF"]),
        "maxPosition": rng.choice(["ON", "OFF", "OFF"]),
        "language": "FASTEXPR",
        "visualization": False,
        "startDate": sim_start.date().isoformat(),
        "endDate": sim_end.date().isoformat(),
        "testPeriod": "P1Y",
    }
    if is_super:
        settings["selectionHandling"] = rng.choice(["POSITIVE", "NON_ZERO", "NON_NAN"])
        settings["selectionLimit"] = rng.choice([10, 20, 50, 100])
        settings["componentActivation"] = rng.choice(["IS", "OS"])
    return settings


def _code_fields(rng: random.Random, is_super: bool) -> dict[str, Any]:
    """A regular alpha's `regular` code, or a super alpha's `combo` and `selection`."""
    if is_super:
        combo, _ = _code(rng)
        return {
            "combo": {
                "code": f"stats = generate_stats(alpha);\n{combo}\ncombo_a(alpha, nlength=250, mode='algo1')",
                "description": rng.choice([None, "Equal-weight combo of selected components"]),
                "operatorCount": None,
            },
            "selection": {
                "code": f"turnover < {rng.choice([0.3, 0.5, 0.7])} && "
                f"self_corr < {rng.choice([0.5, 0.6, 0.7])} && "
                f"prod_corr < 0.7 && sharpe > {rng.choice([1.0, 1.25, 1.5])}",
                "description": None,
                "operatorCount": None,
            },
        }
    code, ops = _code(rng)
    return {
        "regular": {
            "code": code,
            "description": rng.choice(
                [
                    None,
                    None,
                    "Idea: " + rng.choice(_FIELDS) + " reversal after earnings, neutralized by industry.",
                ]
            ),
            "operatorCount": ops,
        }
    }


def _listing_fields(
    rng: random.Random,
    seed: int,
    status: str,
    created: datetime,
    submitted: datetime | None,
    modified: datetime,
) -> dict[str, Any]:
    """Dates, name, flags and classifications, stage and status, in the listing's order."""
    return {
        "dateCreated": iso_ny(created),
        "dateSubmitted": None if submitted is None else iso_ny(submitted),
        "dateModified": iso_ny(modified),
        "name": rng.choice([None, f"{rng.choice(_FIELDS)}_{seed % 1000}"]),
        "favorite": rng.random() < 0.1,
        "hidden": rng.random() < 0.05,
        "color": rng.choice(_COLORS),
        "category": rng.choice(_CATEGORIES),
        "tags": rng.sample(_TAGS, k=rng.choice([0, 0, 1, 2])),
        "classifications": [
            {"id": cid, "name": cname} for cid, cname in rng.sample(_CLASSIFICATIONS, k=rng.randint(1, 3))
        ],
        "grade": rng.choice(_GRADES) if status != "UNSUBMITTED" or rng.random() < 0.5 else None,
        "stage": "IS" if status == "UNSUBMITTED" else "OS",
        "status": status,
    }


def _add_later_blocks(
    rng: random.Random,
    alpha: dict,
    sharpe: float,
    is_super: bool,
    created: datetime,
    submitted: datetime | None,
    sim_start: datetime,
    sim_end: datetime,
) -> None:
    """The out-of-sample block of a submitted alpha, and the optional train/test, competitions,
    pyramids, themes and osmosis points."""
    region = alpha["settings"]["region"]
    if alpha["status"] != "UNSUBMITTED":
        os_block = _stats(rng, sharpe, (submitted or created).date().isoformat(), scale=rng.uniform(0.2, 1.0))
        os_block["checks"] = _checks(rng, os_block, region, is_super, sim_start, sim_end, full=False)
        alpha["os"] = os_block
    if rng.random() < 0.4:  # train / test split of the IS period
        train = _stats(rng, sharpe, alpha["settings"]["startDate"], scale=rng.uniform(0.9, 1.1))
        train["investabilityConstrained"] = _stats(rng, sharpe, None, scale=0.8)
        train["checks"] = _checks(rng, train, region, is_super, sim_start, sim_end, full=False)
        test = _stats(
            rng,
            sharpe,
            sim_end.replace(year=sim_end.year - 1).date().isoformat(),
            scale=rng.uniform(0.3, 1.2),
        )
        test["checks"] = _checks(rng, test, region, is_super, sim_start, sim_end, full=False)
        alpha["train"], alpha["test"] = train, test
    if rng.random() < 0.3:
        alpha["competitions"] = [{"id": "challenge", "name": "Challenge"}]
    matched = next(c for c in alpha["is"]["checks"] if c["name"] == "MATCHES_PYRAMID")["pyramids"]
    if rng.random() < 0.5:
        alpha["pyramids"] = [dict(p) for p in matched]
        alpha["pyramidThemes"] = {"effective": len(matched), "pyramids": [dict(p) for p in matched]}
    if rng.random() < 0.3:
        theme_id, theme_name = rng.choice(_THEMES)
        alpha["themes"] = [{"id": theme_id, "multiplier": rng.choice([1.5, 2.0]), "name": theme_name}]
    if rng.random() < 0.35:
        alpha["osmosisPoints"] = rng.choice([None, rng.randint(0, 5000)])


def make_alphas(count: int, type: str = "REGULAR", *, first_seed: int = 0, **kwargs: Any) -> Iterator[dict]:
    """`count` alphas with seeds first_seed, first_seed+1, ... (unique ids)."""
    for seed in range(first_seed, first_seed + count):
        yield make_alpha(seed, type, **kwargs)
