"""The replay's A-share market listing: what Tushare's `stock_basic` answers, deterministic per seed.

`count` listed codes (list_status L) in the proportions of the real boards (2025: ~5,400 codes):
Shanghai main board 600xxx-605xxx (31%), STAR 688xxx (11%), Shenzhen main board 000xxx-003xxx
(27%), ChiNext 300xxx/301xxx (26%), Beijing 83xxxx/87xxxx/920xxx (5%). Always among them: the 16
codes of the shipped sources config (with their real names and listing dates). Besides them, one
delisted code (600087.SH, 退市长油, D since 2014-06-05) and one whose listing is suspended (P), which
a `list_status=L` request never returns. Other codes get synthetic names, areas and industries and a
listing date from 1991 to 2019, so every listed code trades on every session day of the default
history (2024 on).

The minutes generator agrees with the listing (`trades_on`): no bars before a code's listing date,
none from its delisting date on, none while suspended. A code outside the listing (tests use
arbitrary ones) trades as it always did.
"""

from __future__ import annotations

import threading
from datetime import date, timedelta
from functools import lru_cache

from marketdata_assets.replay.stock_market import seeded_random

# Tushare's output columns in its documented order, and the ones it sends when `fields` is empty.
FIELDS = (
    "ts_code",
    "symbol",
    "name",
    "area",
    "industry",
    "fullname",
    "enname",
    "cnspell",
    "market",
    "exchange",
    "curr_type",
    "list_status",
    "list_date",
    "delist_date",
    "is_hs",
    "act_name",
    "act_ent_type",
)
DEFAULT_FIELDS = (
    "ts_code",
    "symbol",
    "name",
    "area",
    "industry",
    "cnspell",
    "market",
    "list_date",
    "act_name",
    "act_ent_type",
)

# (code, name, area, industry, cnspell, market, list_date, status, delist_date)
ANCHORS = (
    ("600000.SH", "浦发银行", "上海", "银行", "PFYH", "主板", "19991110", "L", None),
    ("600036.SH", "招商银行", "深圳", "银行", "ZSYH", "主板", "20020409", "L", None),
    ("600519.SH", "贵州茅台", "贵州", "白酒", "GZMT", "主板", "20010827", "L", None),
    ("601318.SH", "中国平安", "深圳", "保险", "ZGPA", "主板", "20070301", "L", None),
    ("601398.SH", "工商银行", "北京", "银行", "GSYH", "主板", "20061027", "L", None),
    ("600276.SH", "恒瑞医药", "江苏", "化学制药", "HRYY", "主板", "20001018", "L", None),
    ("600887.SH", "伊利股份", "内蒙", "乳制品", "YLGF", "主板", "19960312", "L", None),
    ("688981.SH", "中芯国际", "上海", "半导体", "ZXGJ", "科创板", "20200716", "L", None),
    ("000001.SZ", "平安银行", "深圳", "银行", "PAYH", "主板", "19910403", "L", None),
    ("000002.SZ", "万科A", "深圳", "全国地产", "WKA", "主板", "19910129", "L", None),
    ("000333.SZ", "美的集团", "广东", "家用电器", "MDJT", "主板", "20130918", "L", None),
    ("000858.SZ", "五粮液", "四川", "白酒", "WLY", "主板", "19980427", "L", None),
    ("002415.SZ", "海康威视", "浙江", "电器仪表", "HKWS", "主板", "20100528", "L", None),
    ("002594.SZ", "比亚迪", "广东", "汽车整车", "BYD", "主板", "20110630", "L", None),
    ("300750.SZ", "宁德时代", "福建", "电气设备", "NDSD", "创业板", "20180611", "L", None),
    ("830799.BJ", "艾融软件", "上海", "软件服务", "ARRJ", "北交所", "20211115", "L", None),
    ("600087.SH", "退市长油", "江苏", "水运", "TSCY", "主板", "19970611", "D", "20140605"),
    ("000996.SZ", "*ST暂停", "北京", "综合类", "STZT", "主板", "19960902", "P", None),
)
DELISTED, SUSPENDED = "600087.SH", "000996.SZ"

# (market, exchange suffix, code ranges, share of the listed codes)
BOARDS = (
    ("主板", "SH", ((600000, 604000), (605000, 605600)), 0.31),
    ("科创板", "SH", ((688001, 689000),), 0.11),
    ("主板", "SZ", ((1, 4000),), 0.27),
    ("创业板", "SZ", ((300001, 302000),), 0.26),
    ("北交所", "BJ", ((830000, 840000), (870000, 874000), (920000, 921000)), 0.05),
)
EXCHANGE_OF = {"SH": "SSE", "SZ": "SZSE", "BJ": "BSE"}
SYLLABLES = (
    ("华", "H", "Hua"),
    ("信", "X", "Xin"),
    ("中", "Z", "Zhong"),
    ("海", "H", "Hai"),
    ("科", "K", "Ke"),
    ("通", "T", "Tong"),
    ("达", "D", "Da"),
    ("远", "Y", "Yuan"),
    ("恒", "H", "Heng"),
    ("泰", "T", "Tai"),
    ("金", "J", "Jin"),
    ("新", "X", "Xin"),
    ("光", "G", "Guang"),
    ("天", "T", "Tian"),
    ("宏", "H", "Hong"),
    ("安", "A", "An"),
    ("长", "C", "Chang"),
    ("东", "D", "Dong"),
    ("明", "M", "Ming"),
    ("盛", "S", "Sheng"),
    ("瑞", "R", "Rui"),
    ("丰", "F", "Feng"),
    ("国", "G", "Guo"),
    ("联", "L", "Lian"),
)
SUFFIXES = (
    ("科技", "KJ", "Technology"),
    ("股份", "GF", "Holdings"),
    ("电子", "DZ", "Electronics"),
    ("医药", "YY", "Pharmaceutical"),
    ("能源", "NY", "Energy"),
    ("材料", "CL", "Materials"),
    ("智能", "ZN", "Intelligent"),
    ("制造", "ZZ", "Manufacturing"),
    ("传媒", "CM", "Media"),
)
AREAS = ("北京", "上海", "广东", "深圳", "浙江", "江苏", "山东", "四川", "福建", "湖北", "安徽", "河南")
INDUSTRIES = (
    "元器件",
    "软件服务",
    "化工原料",
    "专用机械",
    "电气设备",
    "医疗保健",
    "汽车配件",
    "通信设备",
    "建筑工程",
    "食品",
    "半导体",
    "区域地产",
)
OWNERS = (
    ("民营企业", "个人"),
    ("地方国企", "地方国资委"),
    ("中央国企", "国务院国资委"),
    ("外资企业", "境外法人"),
)
FIRST_LISTING, LAST_LISTING = date(1991, 1, 2), date(2019, 12, 31)


def _row(
    code: str,
    name: str,
    area: str,
    industry: str,
    cnspell: str,
    market: str,
    list_date: str,
    status: str,
    delist_date: str | None,
    enname: str,
    owner: tuple[str | None, str | None],
    is_hs: str,
) -> tuple:
    exchange = EXCHANGE_OF[code[-2:]]
    return (
        code,
        code[:6],
        name,
        area,
        industry,
        f"{name}股份有限公司",
        enname,
        cnspell,
        market,
        exchange,
        "CNY",
        status,
        list_date,
        delist_date,
        is_hs,
        owner[1],
        owner[0],
    )


def _synthetic(seed: int, code: str, market: str) -> tuple:
    rng = seeded_random(seed, "stock_basic", code)
    first, second = rng.choice(SYLLABLES), rng.choice(SYLLABLES)
    suffix = rng.choice(SUFFIXES)
    listed = FIRST_LISTING + timedelta(days=rng.randrange((LAST_LISTING - FIRST_LISTING).days))
    while listed.weekday() >= 5:
        listed -= timedelta(days=1)
    return _row(
        code,
        first[0] + second[0] + suffix[0],
        rng.choice(AREAS),
        rng.choice(INDUSTRIES),
        first[1] + second[1] + suffix[1],
        market,
        f"{listed:%Y%m%d}",
        "L",
        None,
        f"{first[2]} {second[2]} {suffix[2]} Co., Ltd.",
        rng.choice(OWNERS),
        rng.choice("NNNHS"),
    )


def _board_codes(seed: int, index: int, taken: set[str]) -> list[str]:
    """The board's codes in a seeded order (a smaller universe is a prefix of a larger one)."""
    _, suffix, ranges, _ = BOARDS[index]
    codes = [f"{n:06d}.{suffix}" for low, high in ranges for n in range(low, high)]
    seeded_random(seed, "board", index).shuffle(codes)
    return [c for c in codes if c not in taken]


# A replay answers on several threads at once, and its first requests all ask for the listing: each
# made its own (~5,000 seeded rows, ~1 s of CPU) before lru_cache kept one. One thread makes it, the
# others wait for it.
_MAKING = threading.RLock()


def listing(seed: int, count: int) -> tuple[tuple, ...]:
    """Every row `stock_basic` knows (L, D and P), in FIELDS order, by ts_code: `count` listed codes."""
    with _MAKING:
        return _listing(seed, count)


@lru_cache(maxsize=8)
def _listing(seed: int, count: int) -> tuple[tuple, ...]:
    rows = {
        a[0]: _row(
            *a, enname=f"{a[4]} Co., Ltd.", owner=(None, None), is_hs="H" if a[0][-2:] == "SH" else "S"
        )
        for a in ANCHORS
    }
    need = max(0, count - sum(a[7] == "L" for a in ANCHORS))
    shares = [round(need * board[3]) for board in BOARDS]
    shares[0] += need - sum(shares)
    for index, wanted in enumerate(shares):
        for code in _board_codes(seed, index, set(rows))[:wanted]:
            rows[code] = _synthetic(seed, code, BOARDS[index][0])
    return tuple(rows[code] for code in sorted(rows))


def _status_by_code(seed: int, count: int) -> dict[str, tuple[str, str, str | None]]:
    with _MAKING:
        return _statuses(seed, count)


@lru_cache(maxsize=8)
def _statuses(seed: int, count: int) -> dict[str, tuple[str, str, str | None]]:
    at = FIELDS.index
    return {
        row[0]: (row[at("list_status")], row[at("list_date")], row[at("delist_date")])
        for row in listing(seed, count)
    }


def trades_on(seed: int, count: int, code: str, day: date) -> bool:
    """Whether `code` has bars on `day` as far as the listing says (a code outside it: yes)."""
    known = _status_by_code(seed, count).get(code)
    if known is None:
        return True
    status, listed, delisted = known
    stamp = f"{day:%Y%m%d}"
    return status != "P" and stamp >= listed and (delisted is None or stamp < delisted)
