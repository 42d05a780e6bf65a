import dagster as dg

# Calendar months of Beijing time; the month in progress is a partition too (end_offset=1), since
# minute bars arrive daily and the K-line of the current month is refreshed as they do.
minute_bar_months = dg.MonthlyPartitionsDefinition(start_date="2000-01-01", timezone="Asia/Shanghai", end_offset=1)
