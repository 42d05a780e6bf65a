"""Alpha partitions: months of dateCreated in the API's time zone (New York), and the accounts.

The month in progress is a partition (end_offset=1): the daily fetch keeps it current. Accounts are
a static dimension read from ALPHA_API_ACCOUNTS when the code location loads (a handful of names;
adding one is a configuration change and a reload).
"""

import dagster as dg

from marketdata_assets.core import settings
from marketdata_assets.sources.registry import account_api

FIRST_MONTH = "2016-01-01"  # before the first BRAIN alphas: older months are simply empty

alpha_months = dg.MonthlyPartitionsDefinition(
    start_date=FIRST_MONTH, timezone="America/New_York", end_offset=1
)
alpha_accounts = dg.StaticPartitionsDefinition(
    account_api().account_names(settings.get("ALPHA_API_ACCOUNTS"))
)
alpha_months_by_account = dg.MultiPartitionsDefinition({"month": alpha_months, "account": alpha_accounts})

# alpha_files (month x account) -> a monthly asset: every account's files of that month.
ALL_ACCOUNTS_OF_MONTH = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="month")


def month_of_key(partition_key: str) -> str:
    """'2025-07-01' (a monthly key) -> '2025-07' (the landing layout's month)."""
    return partition_key[:7]
