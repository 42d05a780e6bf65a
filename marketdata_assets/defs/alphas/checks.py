"""Asset checks of the alpha collections (declared in quality/alpha_checks.py, made asset checks by
defs/_common/checks.py): counts agree with the ledger, types match, required fields are there, dates
parse. Each runs over the whole collection (a few seconds for 50,000 documents)."""

from marketdata_assets.defs._common.checks import asset_checks
from marketdata_assets.defs.alphas.assets import IMPORTED_TYPES
from marketdata_assets.quality.alpha_checks import collection_checks

alpha_checks = [
    check
    for name, alpha_type in IMPORTED_TYPES.items()
    for check in asset_checks(collection_checks(name, alpha_type))
]
