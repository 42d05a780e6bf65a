CREATE TABLE IF NOT EXISTS `marketdata`.`trades` (
    `ts` DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    `venue` LowCardinality(String),
    `instrument` LowCardinality(String),
    `trade_id` String CODEC(ZSTD(1)),
    `price` Float64 CODEC(ZSTD(1)),
    `quantity` Float64 CODEC(ZSTD(1)),
    `amount` Float64 CODEC(ZSTD(1)),
    `side` LowCardinality(String),
    `seq` Nullable(Int64) CODEC(Delta, ZSTD(1)),
    `day` Date CODEC(Delta, ZSTD(1)),
    `load_id` UInt64 CODEC(Delta, ZSTD(1))
) ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (venue, instrument, ts, trade_id);

CREATE TABLE IF NOT EXISTS `marketdata`.`book_snapshots` (
    `ts` DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    `venue` LowCardinality(String),
    `instrument` LowCardinality(String),
    `side` LowCardinality(String),
    `level` Int32 CODEC(ZSTD(1)),
    `price` Float64 CODEC(ZSTD(1)),
    `quantity` Float64 CODEC(ZSTD(1)),
    `update_id` Nullable(Int64) CODEC(Delta, ZSTD(1)),
    `day` Date CODEC(Delta, ZSTD(1)),
    `load_id` UInt64 CODEC(Delta, ZSTD(1))
) ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (venue, instrument, ts, side, level);

CREATE TABLE IF NOT EXISTS `marketdata`.`bars_1m` (
    `ts` DateTime64(6, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    `venue` LowCardinality(String),
    `instrument` LowCardinality(String),
    `open` Float64 CODEC(ZSTD(1)),
    `high` Float64 CODEC(ZSTD(1)),
    `low` Float64 CODEC(ZSTD(1)),
    `close` Float64 CODEC(ZSTD(1)),
    `volume` Float64 CODEC(ZSTD(1)),
    `amount` Float64 CODEC(ZSTD(1)),
    `trades` Nullable(Int64) CODEC(ZSTD(1)),
    `day` Date CODEC(Delta, ZSTD(1)),
    `load_id` UInt64 CODEC(Delta, ZSTD(1))
) ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (venue, instrument, ts);

CREATE TABLE IF NOT EXISTS `marketdata`.`daily_bars` (
    `ts` DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    `venue` LowCardinality(String),
    `instrument` LowCardinality(String),
    `open` Float64 CODEC(ZSTD(1)),
    `high` Float64 CODEC(ZSTD(1)),
    `low` Float64 CODEC(ZSTD(1)),
    `close` Float64 CODEC(ZSTD(1)),
    `pre_close` Nullable(Float64) CODEC(ZSTD(1)),
    `volume` Float64 CODEC(ZSTD(1)),
    `amount` Float64 CODEC(ZSTD(1)),
    `day` Date CODEC(Delta, ZSTD(1)),
    `load_id` UInt64 CODEC(Delta, ZSTD(1))
) ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (venue, instrument, ts);

CREATE TABLE IF NOT EXISTS `marketdata`.`agg_trades` (
    `ts` DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    `venue` LowCardinality(String),
    `instrument` LowCardinality(String),
    `trade_id` String CODEC(ZSTD(1)),
    `price` Float64 CODEC(ZSTD(1)),
    `quantity` Float64 CODEC(ZSTD(1)),
    `amount` Float64 CODEC(ZSTD(1)),
    `side` LowCardinality(String),
    `seq` Nullable(Int64) CODEC(Delta, ZSTD(1)),
    `day` Date CODEC(Delta, ZSTD(1)),
    `load_id` UInt64 CODEC(Delta, ZSTD(1))
) ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (venue, instrument, ts, trade_id);

CREATE TABLE IF NOT EXISTS `marketdata`.`klines_1s` (
    `ts` DateTime64(6, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    `venue` LowCardinality(String),
    `instrument` LowCardinality(String),
    `open` Float64 CODEC(ZSTD(1)),
    `high` Float64 CODEC(ZSTD(1)),
    `low` Float64 CODEC(ZSTD(1)),
    `close` Float64 CODEC(ZSTD(1)),
    `volume` Float64 CODEC(ZSTD(1)),
    `amount` Float64 CODEC(ZSTD(1)),
    `trades` Nullable(Int64) CODEC(ZSTD(1)),
    `day` Date CODEC(Delta, ZSTD(1)),
    `load_id` UInt64 CODEC(Delta, ZSTD(1))
) ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (venue, instrument, ts);

CREATE TABLE IF NOT EXISTS `marketdata`.`klines_3m` (
    `ts` DateTime64(6, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    `venue` LowCardinality(String),
    `instrument` LowCardinality(String),
    `open` Float64 CODEC(ZSTD(1)),
    `high` Float64 CODEC(ZSTD(1)),
    `low` Float64 CODEC(ZSTD(1)),
    `close` Float64 CODEC(ZSTD(1)),
    `volume` Float64 CODEC(ZSTD(1)),
    `amount` Float64 CODEC(ZSTD(1)),
    `trades` Nullable(Int64) CODEC(ZSTD(1)),
    `day` Date CODEC(Delta, ZSTD(1)),
    `load_id` UInt64 CODEC(Delta, ZSTD(1))
) ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (venue, instrument, ts);

CREATE TABLE IF NOT EXISTS `marketdata`.`klines_5m` (
    `ts` DateTime64(6, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    `venue` LowCardinality(String),
    `instrument` LowCardinality(String),
    `open` Float64 CODEC(ZSTD(1)),
    `high` Float64 CODEC(ZSTD(1)),
    `low` Float64 CODEC(ZSTD(1)),
    `close` Float64 CODEC(ZSTD(1)),
    `volume` Float64 CODEC(ZSTD(1)),
    `amount` Float64 CODEC(ZSTD(1)),
    `trades` Nullable(Int64) CODEC(ZSTD(1)),
    `day` Date CODEC(Delta, ZSTD(1)),
    `load_id` UInt64 CODEC(Delta, ZSTD(1))
) ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (venue, instrument, ts);

CREATE TABLE IF NOT EXISTS `marketdata`.`klines_15m` (
    `ts` DateTime64(6, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    `venue` LowCardinality(String),
    `instrument` LowCardinality(String),
    `open` Float64 CODEC(ZSTD(1)),
    `high` Float64 CODEC(ZSTD(1)),
    `low` Float64 CODEC(ZSTD(1)),
    `close` Float64 CODEC(ZSTD(1)),
    `volume` Float64 CODEC(ZSTD(1)),
    `amount` Float64 CODEC(ZSTD(1)),
    `trades` Nullable(Int64) CODEC(ZSTD(1)),
    `day` Date CODEC(Delta, ZSTD(1)),
    `load_id` UInt64 CODEC(Delta, ZSTD(1))
) ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (venue, instrument, ts);

CREATE TABLE IF NOT EXISTS `marketdata`.`klines_30m` (
    `ts` DateTime64(6, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    `venue` LowCardinality(String),
    `instrument` LowCardinality(String),
    `open` Float64 CODEC(ZSTD(1)),
    `high` Float64 CODEC(ZSTD(1)),
    `low` Float64 CODEC(ZSTD(1)),
    `close` Float64 CODEC(ZSTD(1)),
    `volume` Float64 CODEC(ZSTD(1)),
    `amount` Float64 CODEC(ZSTD(1)),
    `trades` Nullable(Int64) CODEC(ZSTD(1)),
    `day` Date CODEC(Delta, ZSTD(1)),
    `load_id` UInt64 CODEC(Delta, ZSTD(1))
) ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (venue, instrument, ts);

CREATE TABLE IF NOT EXISTS `marketdata`.`klines_1h` (
    `ts` DateTime64(6, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    `venue` LowCardinality(String),
    `instrument` LowCardinality(String),
    `open` Float64 CODEC(ZSTD(1)),
    `high` Float64 CODEC(ZSTD(1)),
    `low` Float64 CODEC(ZSTD(1)),
    `close` Float64 CODEC(ZSTD(1)),
    `volume` Float64 CODEC(ZSTD(1)),
    `amount` Float64 CODEC(ZSTD(1)),
    `trades` Nullable(Int64) CODEC(ZSTD(1)),
    `day` Date CODEC(Delta, ZSTD(1)),
    `load_id` UInt64 CODEC(Delta, ZSTD(1))
) ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (venue, instrument, ts);

CREATE TABLE IF NOT EXISTS `marketdata`.`klines_2h` (
    `ts` DateTime64(6, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    `venue` LowCardinality(String),
    `instrument` LowCardinality(String),
    `open` Float64 CODEC(ZSTD(1)),
    `high` Float64 CODEC(ZSTD(1)),
    `low` Float64 CODEC(ZSTD(1)),
    `close` Float64 CODEC(ZSTD(1)),
    `volume` Float64 CODEC(ZSTD(1)),
    `amount` Float64 CODEC(ZSTD(1)),
    `trades` Nullable(Int64) CODEC(ZSTD(1)),
    `day` Date CODEC(Delta, ZSTD(1)),
    `load_id` UInt64 CODEC(Delta, ZSTD(1))
) ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (venue, instrument, ts);

CREATE TABLE IF NOT EXISTS `marketdata`.`klines_4h` (
    `ts` DateTime64(6, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    `venue` LowCardinality(String),
    `instrument` LowCardinality(String),
    `open` Float64 CODEC(ZSTD(1)),
    `high` Float64 CODEC(ZSTD(1)),
    `low` Float64 CODEC(ZSTD(1)),
    `close` Float64 CODEC(ZSTD(1)),
    `volume` Float64 CODEC(ZSTD(1)),
    `amount` Float64 CODEC(ZSTD(1)),
    `trades` Nullable(Int64) CODEC(ZSTD(1)),
    `day` Date CODEC(Delta, ZSTD(1)),
    `load_id` UInt64 CODEC(Delta, ZSTD(1))
) ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (venue, instrument, ts);

CREATE TABLE IF NOT EXISTS `marketdata`.`klines_6h` (
    `ts` DateTime64(6, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    `venue` LowCardinality(String),
    `instrument` LowCardinality(String),
    `open` Float64 CODEC(ZSTD(1)),
    `high` Float64 CODEC(ZSTD(1)),
    `low` Float64 CODEC(ZSTD(1)),
    `close` Float64 CODEC(ZSTD(1)),
    `volume` Float64 CODEC(ZSTD(1)),
    `amount` Float64 CODEC(ZSTD(1)),
    `trades` Nullable(Int64) CODEC(ZSTD(1)),
    `day` Date CODEC(Delta, ZSTD(1)),
    `load_id` UInt64 CODEC(Delta, ZSTD(1))
) ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (venue, instrument, ts);

CREATE TABLE IF NOT EXISTS `marketdata`.`klines_8h` (
    `ts` DateTime64(6, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    `venue` LowCardinality(String),
    `instrument` LowCardinality(String),
    `open` Float64 CODEC(ZSTD(1)),
    `high` Float64 CODEC(ZSTD(1)),
    `low` Float64 CODEC(ZSTD(1)),
    `close` Float64 CODEC(ZSTD(1)),
    `volume` Float64 CODEC(ZSTD(1)),
    `amount` Float64 CODEC(ZSTD(1)),
    `trades` Nullable(Int64) CODEC(ZSTD(1)),
    `day` Date CODEC(Delta, ZSTD(1)),
    `load_id` UInt64 CODEC(Delta, ZSTD(1))
) ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (venue, instrument, ts);

CREATE TABLE IF NOT EXISTS `marketdata`.`klines_12h` (
    `ts` DateTime64(6, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    `venue` LowCardinality(String),
    `instrument` LowCardinality(String),
    `open` Float64 CODEC(ZSTD(1)),
    `high` Float64 CODEC(ZSTD(1)),
    `low` Float64 CODEC(ZSTD(1)),
    `close` Float64 CODEC(ZSTD(1)),
    `volume` Float64 CODEC(ZSTD(1)),
    `amount` Float64 CODEC(ZSTD(1)),
    `trades` Nullable(Int64) CODEC(ZSTD(1)),
    `day` Date CODEC(Delta, ZSTD(1)),
    `load_id` UInt64 CODEC(Delta, ZSTD(1))
) ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (venue, instrument, ts);

CREATE TABLE IF NOT EXISTS `marketdata`.`klines_1d` (
    `ts` DateTime64(6, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    `venue` LowCardinality(String),
    `instrument` LowCardinality(String),
    `open` Float64 CODEC(ZSTD(1)),
    `high` Float64 CODEC(ZSTD(1)),
    `low` Float64 CODEC(ZSTD(1)),
    `close` Float64 CODEC(ZSTD(1)),
    `volume` Float64 CODEC(ZSTD(1)),
    `amount` Float64 CODEC(ZSTD(1)),
    `trades` Nullable(Int64) CODEC(ZSTD(1)),
    `day` Date CODEC(Delta, ZSTD(1)),
    `load_id` UInt64 CODEC(Delta, ZSTD(1))
) ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (venue, instrument, ts);

CREATE TABLE IF NOT EXISTS `marketdata`.`tickers` (
    `ts` DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    `venue` LowCardinality(String),
    `instrument` LowCardinality(String),
    `last` Nullable(Float64) CODEC(ZSTD(1)),
    `bid` Nullable(Float64) CODEC(ZSTD(1)),
    `bid_size` Nullable(Float64) CODEC(ZSTD(1)),
    `ask` Nullable(Float64) CODEC(ZSTD(1)),
    `ask_size` Nullable(Float64) CODEC(ZSTD(1)),
    `volume_24h` Nullable(Float64) CODEC(ZSTD(1)),
    `amount_24h` Nullable(Float64) CODEC(ZSTD(1)),
    `mark_price` Nullable(Float64) CODEC(ZSTD(1)),
    `index_price` Nullable(Float64) CODEC(ZSTD(1)),
    `funding_rate` Nullable(Float64) CODEC(ZSTD(1)),
    `day` Date CODEC(Delta, ZSTD(1)),
    `load_id` UInt64 CODEC(Delta, ZSTD(1))
) ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (venue, instrument, ts);

CREATE TABLE IF NOT EXISTS `marketdata`.`funding_rates` (
    `ts` DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    `venue` LowCardinality(String),
    `instrument` LowCardinality(String),
    `rate` Float64 CODEC(ZSTD(1)),
    `interval_hours` Float64 CODEC(ZSTD(1)),
    `rate_8h` Float64 CODEC(ZSTD(1)),
    `mark_price` Nullable(Float64) CODEC(ZSTD(1)),
    `index_price` Nullable(Float64) CODEC(ZSTD(1)),
    `day` Date CODEC(Delta, ZSTD(1)),
    `load_id` UInt64 CODEC(Delta, ZSTD(1))
) ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (venue, instrument, ts);

CREATE TABLE IF NOT EXISTS `marketdata`.`open_interest` (
    `ts` DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    `venue` LowCardinality(String),
    `instrument` LowCardinality(String),
    `contracts` Float64 CODEC(ZSTD(1)),
    `contract_size` Float64 CODEC(ZSTD(1)),
    `size_unit` LowCardinality(String),
    `base` Float64 CODEC(ZSTD(1)),
    `quote` Nullable(Float64) CODEC(ZSTD(1)),
    `day` Date CODEC(Delta, ZSTD(1)),
    `load_id` UInt64 CODEC(Delta, ZSTD(1))
) ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (venue, instrument, ts);

CREATE TABLE IF NOT EXISTS `marketdata`.`liquidations` (
    `ts` DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    `venue` LowCardinality(String),
    `instrument` LowCardinality(String),
    `liquidation_id` String CODEC(ZSTD(1)),
    `side` LowCardinality(String),
    `price` Float64 CODEC(ZSTD(1)),
    `quantity` Float64 CODEC(ZSTD(1)),
    `amount` Float64 CODEC(ZSTD(1)),
    `order_price` Nullable(Float64) CODEC(ZSTD(1)),
    `day` Date CODEC(Delta, ZSTD(1)),
    `load_id` UInt64 CODEC(Delta, ZSTD(1))
) ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (venue, instrument, ts, liquidation_id);

CREATE TABLE IF NOT EXISTS `marketdata`.`mark_bars_1m` (
    `ts` DateTime64(6, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    `venue` LowCardinality(String),
    `instrument` LowCardinality(String),
    `open` Float64 CODEC(ZSTD(1)),
    `high` Float64 CODEC(ZSTD(1)),
    `low` Float64 CODEC(ZSTD(1)),
    `close` Float64 CODEC(ZSTD(1)),
    `day` Date CODEC(Delta, ZSTD(1)),
    `load_id` UInt64 CODEC(Delta, ZSTD(1))
) ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (venue, instrument, ts);

CREATE TABLE IF NOT EXISTS `marketdata`.`index_bars_1m` (
    `ts` DateTime64(6, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    `venue` LowCardinality(String),
    `instrument` LowCardinality(String),
    `open` Float64 CODEC(ZSTD(1)),
    `high` Float64 CODEC(ZSTD(1)),
    `low` Float64 CODEC(ZSTD(1)),
    `close` Float64 CODEC(ZSTD(1)),
    `day` Date CODEC(Delta, ZSTD(1)),
    `load_id` UInt64 CODEC(Delta, ZSTD(1))
) ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (venue, instrument, ts);

CREATE TABLE IF NOT EXISTS `marketdata`.`option_chain` (
    `ts` DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    `venue` LowCardinality(String),
    `instrument` LowCardinality(String),
    `option` LowCardinality(String),
    `expiry` DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    `strike` Float64 CODEC(ZSTD(1)),
    `option_type` LowCardinality(String),
    `underlying_price` Float64 CODEC(ZSTD(1)),
    `underlying_index` LowCardinality(String),
    `mark_price` Float64 CODEC(ZSTD(1)),
    `mark_iv` Float64 CODEC(ZSTD(1)),
    `bid_iv` Nullable(Float64) CODEC(ZSTD(1)),
    `ask_iv` Nullable(Float64) CODEC(ZSTD(1)),
    `bid_price` Nullable(Float64) CODEC(ZSTD(1)),
    `ask_price` Nullable(Float64) CODEC(ZSTD(1)),
    `open_interest` Float64 CODEC(ZSTD(1)),
    `volume_24h` Nullable(Float64) CODEC(ZSTD(1)),
    `day` Date CODEC(Delta, ZSTD(1)),
    `load_id` UInt64 CODEC(Delta, ZSTD(1))
) ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (venue, instrument, ts, option);

CREATE TABLE IF NOT EXISTS `marketdata`.`factors` (
    `ts` DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    `venue` LowCardinality(String),
    `instrument` LowCardinality(String),
    `factor` LowCardinality(String),
    `value` Nullable(Float64) CODEC(ZSTD(1)),
    `day` Date CODEC(Delta, ZSTD(1)),
    `load_id` UInt64 CODEC(Delta, ZSTD(1))
) ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (venue, instrument, ts, factor);

CREATE TABLE IF NOT EXISTS `marketdata`.`mark_funding` (
    `ts` DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    `venue` LowCardinality(String),
    `instrument` LowCardinality(String),
    `mark_price` Nullable(Float64) CODEC(ZSTD(1)),
    `index_price` Nullable(Float64) CODEC(ZSTD(1)),
    `funding_rate` Nullable(Float64) CODEC(ZSTD(1)),
    `next_funding_time` Nullable(DateTime64(6, 'UTC')) CODEC(ZSTD(1)),
    `funding_rate_8h` Nullable(Float64) CODEC(ZSTD(1)),
    `day` Date CODEC(Delta, ZSTD(1)),
    `load_id` UInt64 CODEC(Delta, ZSTD(1))
) ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (venue, instrument, ts);

CREATE TABLE IF NOT EXISTS `marketdata`.`loads` (
    `dataset` LowCardinality(String),
    `venue` LowCardinality(String),
    `instrument` LowCardinality(String),
    `day` Date,
    `load_id` UInt64,
    `rows` UInt64,
    `run_id` String,
    `loaded_at` DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(load_id)
ORDER BY (dataset, venue, instrument, day);

CREATE TABLE IF NOT EXISTS `marketdata`.`ingest_log` (
    `run_id` String,
    `source` LowCardinality(String),
    `dataset` LowCardinality(String) DEFAULT '',
    `venue` LowCardinality(String),
    `instrument` LowCardinality(String),
    `day` Date,
    `rows` UInt64 DEFAULT 0,
    `requests` UInt32 DEFAULT 0,
    `retries` UInt32 DEFAULT 0,
    `rate_limited` UInt32 DEFAULT 0,
    `latency_p50_ms` Float64 DEFAULT 0,
    `latency_p95_ms` Float64 DEFAULT 0,
    `outcome` Enum8('ok' = 1, 'failed' = 2, 'skipped' = 3),
    `error` String DEFAULT '',
    `load_id` UInt64 DEFAULT 0,
    `started_at` DateTime64(3, 'UTC'),
    `finished_at` DateTime64(3, 'UTC'),
    `dropped` Map(LowCardinality(String), UInt64),
    `conversions` Array(String)
) ENGINE = MergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (source, instrument, day, finished_at);

CREATE TABLE IF NOT EXISTS `marketdata`.`load_ids` (
    `dataset` LowCardinality(String),
    `load_id` UInt64,
    `rows` UInt64,
    `without_id` UInt64,
    `first_id` Nullable(Int64),
    `last_id` Nullable(Int64),
    `distinct_ids` Nullable(UInt64),
    `ranges` UInt64,
    `missing` UInt64,
    `holes` Array(Tuple(Int64, Int64)),
    `measured_at` DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(measured_at)
ORDER BY load_id;

CREATE TABLE IF NOT EXISTS `marketdata`.trades_1d_agg (
    `venue` LowCardinality(String),
    `instrument` LowCardinality(String),
    `day` Date,
    `load_id` UInt64,
    `open` AggregateFunction(argMin, Float64, DateTime64(6, 'UTC')),
    `high` SimpleAggregateFunction(max, Float64),
    `low` SimpleAggregateFunction(min, Float64),
    `close` AggregateFunction(argMax, Float64, DateTime64(6, 'UTC')),
    `volume` SimpleAggregateFunction(sum, Float64),
    `amount` SimpleAggregateFunction(sum, Float64),
    `trades` SimpleAggregateFunction(sum, UInt64),
    `first_ts` SimpleAggregateFunction(min, DateTime64(6, 'UTC')),
    `last_ts` SimpleAggregateFunction(max, DateTime64(6, 'UTC'))
) ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (venue, instrument, day, load_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS `marketdata`.trades_1d_mv TO `marketdata`.trades_1d_agg AS
SELECT venue, instrument, day, load_id,
       argMinState(price, ts) AS open, max(price) AS high, min(price) AS low, argMaxState(price, ts) AS close,
       sum(quantity) AS volume, sum(amount) AS amount, count() AS trades, min(ts) AS first_ts, max(ts) AS last_ts
FROM `marketdata`.trades
GROUP BY venue, instrument, day, load_id;

CREATE OR REPLACE VIEW `marketdata`.`trades_v` AS
SELECT `ts`, `venue`, `instrument`, `trade_id`, `price`, `quantity`, `amount`, `side`, `seq`
FROM `marketdata`.`trades`
WHERE load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'trades');

CREATE OR REPLACE VIEW `marketdata`.`trades_range` AS
SELECT `ts`, `venue`, `instrument`, `trade_id`, `price`, `quantity`, `amount`, `side`, `seq`
FROM `marketdata`.`trades`
WHERE venue = {venue:String} AND instrument = {instrument:String}
  AND ts >= {start:DateTime64(6, 'UTC')} AND ts < {end:DateTime64(6, 'UTC')}
  AND load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'trades' AND venue = {venue:String} AND instrument = {instrument:String} AND day >= toDate({start:DateTime64(6, 'UTC')}) AND day <= toDate({end:DateTime64(6, 'UTC')}));

CREATE OR REPLACE VIEW `marketdata`.`book_snapshots_v` AS
SELECT `ts`, `venue`, `instrument`, `side`, `level`, `price`, `quantity`, `update_id`
FROM `marketdata`.`book_snapshots`
WHERE load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'books');

CREATE OR REPLACE VIEW `marketdata`.`book_snapshots_range` AS
SELECT `ts`, `venue`, `instrument`, `side`, `level`, `price`, `quantity`, `update_id`
FROM `marketdata`.`book_snapshots`
WHERE venue = {venue:String} AND instrument = {instrument:String}
  AND ts >= {start:DateTime64(6, 'UTC')} AND ts < {end:DateTime64(6, 'UTC')}
  AND load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'books' AND venue = {venue:String} AND instrument = {instrument:String} AND day >= toDate({start:DateTime64(6, 'UTC')}) AND day <= toDate({end:DateTime64(6, 'UTC')}));

CREATE OR REPLACE VIEW `marketdata`.`bars_1m_v` AS
SELECT `ts`, `venue`, `instrument`, `open`, `high`, `low`, `close`, `volume`, `amount`, `trades`
FROM `marketdata`.`bars_1m`
WHERE load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'bars');

CREATE OR REPLACE VIEW `marketdata`.`bars_1m_range` AS
SELECT `ts`, `venue`, `instrument`, `open`, `high`, `low`, `close`, `volume`, `amount`, `trades`
FROM `marketdata`.`bars_1m`
WHERE venue = {venue:String} AND instrument = {instrument:String}
  AND ts >= {start:DateTime64(6, 'UTC')} AND ts < {end:DateTime64(6, 'UTC')}
  AND load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'bars' AND venue = {venue:String} AND instrument = {instrument:String} AND day >= toDate({start:DateTime64(6, 'UTC')}) AND day <= toDate({end:DateTime64(6, 'UTC')}));

CREATE OR REPLACE VIEW `marketdata`.`daily_bars_v` AS
SELECT `ts`, `venue`, `instrument`, `open`, `high`, `low`, `close`, `pre_close`, `volume`, `amount`
FROM `marketdata`.`daily_bars`
WHERE load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'daily');

CREATE OR REPLACE VIEW `marketdata`.`daily_bars_range` AS
SELECT `ts`, `venue`, `instrument`, `open`, `high`, `low`, `close`, `pre_close`, `volume`, `amount`
FROM `marketdata`.`daily_bars`
WHERE venue = {venue:String} AND instrument = {instrument:String}
  AND ts >= {start:DateTime64(6, 'UTC')} AND ts < {end:DateTime64(6, 'UTC')}
  AND load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'daily' AND venue = {venue:String} AND instrument = {instrument:String} AND day >= toDate({start:DateTime64(6, 'UTC')}) AND day <= toDate({end:DateTime64(6, 'UTC')}));

CREATE OR REPLACE VIEW `marketdata`.`agg_trades_v` AS
SELECT `ts`, `venue`, `instrument`, `trade_id`, `price`, `quantity`, `amount`, `side`, `seq`
FROM `marketdata`.`agg_trades`
WHERE load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'agg_trades');

CREATE OR REPLACE VIEW `marketdata`.`agg_trades_range` AS
SELECT `ts`, `venue`, `instrument`, `trade_id`, `price`, `quantity`, `amount`, `side`, `seq`
FROM `marketdata`.`agg_trades`
WHERE venue = {venue:String} AND instrument = {instrument:String}
  AND ts >= {start:DateTime64(6, 'UTC')} AND ts < {end:DateTime64(6, 'UTC')}
  AND load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'agg_trades' AND venue = {venue:String} AND instrument = {instrument:String} AND day >= toDate({start:DateTime64(6, 'UTC')}) AND day <= toDate({end:DateTime64(6, 'UTC')}));

CREATE OR REPLACE VIEW `marketdata`.`klines_1s_v` AS
SELECT `ts`, `venue`, `instrument`, `open`, `high`, `low`, `close`, `volume`, `amount`, `trades`
FROM `marketdata`.`klines_1s`
WHERE load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'klines_1s');

CREATE OR REPLACE VIEW `marketdata`.`klines_1s_range` AS
SELECT `ts`, `venue`, `instrument`, `open`, `high`, `low`, `close`, `volume`, `amount`, `trades`
FROM `marketdata`.`klines_1s`
WHERE venue = {venue:String} AND instrument = {instrument:String}
  AND ts >= {start:DateTime64(6, 'UTC')} AND ts < {end:DateTime64(6, 'UTC')}
  AND load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'klines_1s' AND venue = {venue:String} AND instrument = {instrument:String} AND day >= toDate({start:DateTime64(6, 'UTC')}) AND day <= toDate({end:DateTime64(6, 'UTC')}));

CREATE OR REPLACE VIEW `marketdata`.`klines_3m_v` AS
SELECT `ts`, `venue`, `instrument`, `open`, `high`, `low`, `close`, `volume`, `amount`, `trades`
FROM `marketdata`.`klines_3m`
WHERE load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'klines_3m');

CREATE OR REPLACE VIEW `marketdata`.`klines_3m_range` AS
SELECT `ts`, `venue`, `instrument`, `open`, `high`, `low`, `close`, `volume`, `amount`, `trades`
FROM `marketdata`.`klines_3m`
WHERE venue = {venue:String} AND instrument = {instrument:String}
  AND ts >= {start:DateTime64(6, 'UTC')} AND ts < {end:DateTime64(6, 'UTC')}
  AND load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'klines_3m' AND venue = {venue:String} AND instrument = {instrument:String} AND day >= toDate({start:DateTime64(6, 'UTC')}) AND day <= toDate({end:DateTime64(6, 'UTC')}));

CREATE OR REPLACE VIEW `marketdata`.`klines_5m_v` AS
SELECT `ts`, `venue`, `instrument`, `open`, `high`, `low`, `close`, `volume`, `amount`, `trades`
FROM `marketdata`.`klines_5m`
WHERE load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'klines_5m');

CREATE OR REPLACE VIEW `marketdata`.`klines_5m_range` AS
SELECT `ts`, `venue`, `instrument`, `open`, `high`, `low`, `close`, `volume`, `amount`, `trades`
FROM `marketdata`.`klines_5m`
WHERE venue = {venue:String} AND instrument = {instrument:String}
  AND ts >= {start:DateTime64(6, 'UTC')} AND ts < {end:DateTime64(6, 'UTC')}
  AND load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'klines_5m' AND venue = {venue:String} AND instrument = {instrument:String} AND day >= toDate({start:DateTime64(6, 'UTC')}) AND day <= toDate({end:DateTime64(6, 'UTC')}));

CREATE OR REPLACE VIEW `marketdata`.`klines_15m_v` AS
SELECT `ts`, `venue`, `instrument`, `open`, `high`, `low`, `close`, `volume`, `amount`, `trades`
FROM `marketdata`.`klines_15m`
WHERE load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'klines_15m');

CREATE OR REPLACE VIEW `marketdata`.`klines_15m_range` AS
SELECT `ts`, `venue`, `instrument`, `open`, `high`, `low`, `close`, `volume`, `amount`, `trades`
FROM `marketdata`.`klines_15m`
WHERE venue = {venue:String} AND instrument = {instrument:String}
  AND ts >= {start:DateTime64(6, 'UTC')} AND ts < {end:DateTime64(6, 'UTC')}
  AND load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'klines_15m' AND venue = {venue:String} AND instrument = {instrument:String} AND day >= toDate({start:DateTime64(6, 'UTC')}) AND day <= toDate({end:DateTime64(6, 'UTC')}));

CREATE OR REPLACE VIEW `marketdata`.`klines_30m_v` AS
SELECT `ts`, `venue`, `instrument`, `open`, `high`, `low`, `close`, `volume`, `amount`, `trades`
FROM `marketdata`.`klines_30m`
WHERE load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'klines_30m');

CREATE OR REPLACE VIEW `marketdata`.`klines_30m_range` AS
SELECT `ts`, `venue`, `instrument`, `open`, `high`, `low`, `close`, `volume`, `amount`, `trades`
FROM `marketdata`.`klines_30m`
WHERE venue = {venue:String} AND instrument = {instrument:String}
  AND ts >= {start:DateTime64(6, 'UTC')} AND ts < {end:DateTime64(6, 'UTC')}
  AND load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'klines_30m' AND venue = {venue:String} AND instrument = {instrument:String} AND day >= toDate({start:DateTime64(6, 'UTC')}) AND day <= toDate({end:DateTime64(6, 'UTC')}));

CREATE OR REPLACE VIEW `marketdata`.`klines_1h_v` AS
SELECT `ts`, `venue`, `instrument`, `open`, `high`, `low`, `close`, `volume`, `amount`, `trades`
FROM `marketdata`.`klines_1h`
WHERE load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'klines_1h');

CREATE OR REPLACE VIEW `marketdata`.`klines_1h_range` AS
SELECT `ts`, `venue`, `instrument`, `open`, `high`, `low`, `close`, `volume`, `amount`, `trades`
FROM `marketdata`.`klines_1h`
WHERE venue = {venue:String} AND instrument = {instrument:String}
  AND ts >= {start:DateTime64(6, 'UTC')} AND ts < {end:DateTime64(6, 'UTC')}
  AND load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'klines_1h' AND venue = {venue:String} AND instrument = {instrument:String} AND day >= toDate({start:DateTime64(6, 'UTC')}) AND day <= toDate({end:DateTime64(6, 'UTC')}));

CREATE OR REPLACE VIEW `marketdata`.`klines_2h_v` AS
SELECT `ts`, `venue`, `instrument`, `open`, `high`, `low`, `close`, `volume`, `amount`, `trades`
FROM `marketdata`.`klines_2h`
WHERE load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'klines_2h');

CREATE OR REPLACE VIEW `marketdata`.`klines_2h_range` AS
SELECT `ts`, `venue`, `instrument`, `open`, `high`, `low`, `close`, `volume`, `amount`, `trades`
FROM `marketdata`.`klines_2h`
WHERE venue = {venue:String} AND instrument = {instrument:String}
  AND ts >= {start:DateTime64(6, 'UTC')} AND ts < {end:DateTime64(6, 'UTC')}
  AND load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'klines_2h' AND venue = {venue:String} AND instrument = {instrument:String} AND day >= toDate({start:DateTime64(6, 'UTC')}) AND day <= toDate({end:DateTime64(6, 'UTC')}));

CREATE OR REPLACE VIEW `marketdata`.`klines_4h_v` AS
SELECT `ts`, `venue`, `instrument`, `open`, `high`, `low`, `close`, `volume`, `amount`, `trades`
FROM `marketdata`.`klines_4h`
WHERE load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'klines_4h');

CREATE OR REPLACE VIEW `marketdata`.`klines_4h_range` AS
SELECT `ts`, `venue`, `instrument`, `open`, `high`, `low`, `close`, `volume`, `amount`, `trades`
FROM `marketdata`.`klines_4h`
WHERE venue = {venue:String} AND instrument = {instrument:String}
  AND ts >= {start:DateTime64(6, 'UTC')} AND ts < {end:DateTime64(6, 'UTC')}
  AND load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'klines_4h' AND venue = {venue:String} AND instrument = {instrument:String} AND day >= toDate({start:DateTime64(6, 'UTC')}) AND day <= toDate({end:DateTime64(6, 'UTC')}));

CREATE OR REPLACE VIEW `marketdata`.`klines_6h_v` AS
SELECT `ts`, `venue`, `instrument`, `open`, `high`, `low`, `close`, `volume`, `amount`, `trades`
FROM `marketdata`.`klines_6h`
WHERE load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'klines_6h');

CREATE OR REPLACE VIEW `marketdata`.`klines_6h_range` AS
SELECT `ts`, `venue`, `instrument`, `open`, `high`, `low`, `close`, `volume`, `amount`, `trades`
FROM `marketdata`.`klines_6h`
WHERE venue = {venue:String} AND instrument = {instrument:String}
  AND ts >= {start:DateTime64(6, 'UTC')} AND ts < {end:DateTime64(6, 'UTC')}
  AND load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'klines_6h' AND venue = {venue:String} AND instrument = {instrument:String} AND day >= toDate({start:DateTime64(6, 'UTC')}) AND day <= toDate({end:DateTime64(6, 'UTC')}));

CREATE OR REPLACE VIEW `marketdata`.`klines_8h_v` AS
SELECT `ts`, `venue`, `instrument`, `open`, `high`, `low`, `close`, `volume`, `amount`, `trades`
FROM `marketdata`.`klines_8h`
WHERE load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'klines_8h');

CREATE OR REPLACE VIEW `marketdata`.`klines_8h_range` AS
SELECT `ts`, `venue`, `instrument`, `open`, `high`, `low`, `close`, `volume`, `amount`, `trades`
FROM `marketdata`.`klines_8h`
WHERE venue = {venue:String} AND instrument = {instrument:String}
  AND ts >= {start:DateTime64(6, 'UTC')} AND ts < {end:DateTime64(6, 'UTC')}
  AND load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'klines_8h' AND venue = {venue:String} AND instrument = {instrument:String} AND day >= toDate({start:DateTime64(6, 'UTC')}) AND day <= toDate({end:DateTime64(6, 'UTC')}));

CREATE OR REPLACE VIEW `marketdata`.`klines_12h_v` AS
SELECT `ts`, `venue`, `instrument`, `open`, `high`, `low`, `close`, `volume`, `amount`, `trades`
FROM `marketdata`.`klines_12h`
WHERE load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'klines_12h');

CREATE OR REPLACE VIEW `marketdata`.`klines_12h_range` AS
SELECT `ts`, `venue`, `instrument`, `open`, `high`, `low`, `close`, `volume`, `amount`, `trades`
FROM `marketdata`.`klines_12h`
WHERE venue = {venue:String} AND instrument = {instrument:String}
  AND ts >= {start:DateTime64(6, 'UTC')} AND ts < {end:DateTime64(6, 'UTC')}
  AND load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'klines_12h' AND venue = {venue:String} AND instrument = {instrument:String} AND day >= toDate({start:DateTime64(6, 'UTC')}) AND day <= toDate({end:DateTime64(6, 'UTC')}));

CREATE OR REPLACE VIEW `marketdata`.`klines_1d_v` AS
SELECT `ts`, `venue`, `instrument`, `open`, `high`, `low`, `close`, `volume`, `amount`, `trades`
FROM `marketdata`.`klines_1d`
WHERE load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'klines_1d');

CREATE OR REPLACE VIEW `marketdata`.`klines_1d_range` AS
SELECT `ts`, `venue`, `instrument`, `open`, `high`, `low`, `close`, `volume`, `amount`, `trades`
FROM `marketdata`.`klines_1d`
WHERE venue = {venue:String} AND instrument = {instrument:String}
  AND ts >= {start:DateTime64(6, 'UTC')} AND ts < {end:DateTime64(6, 'UTC')}
  AND load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'klines_1d' AND venue = {venue:String} AND instrument = {instrument:String} AND day >= toDate({start:DateTime64(6, 'UTC')}) AND day <= toDate({end:DateTime64(6, 'UTC')}));

CREATE OR REPLACE VIEW `marketdata`.`tickers_v` AS
SELECT `ts`, `venue`, `instrument`, `last`, `bid`, `bid_size`, `ask`, `ask_size`, `volume_24h`, `amount_24h`, `mark_price`, `index_price`, `funding_rate`
FROM `marketdata`.`tickers`
WHERE load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'tickers');

CREATE OR REPLACE VIEW `marketdata`.`tickers_range` AS
SELECT `ts`, `venue`, `instrument`, `last`, `bid`, `bid_size`, `ask`, `ask_size`, `volume_24h`, `amount_24h`, `mark_price`, `index_price`, `funding_rate`
FROM `marketdata`.`tickers`
WHERE venue = {venue:String} AND instrument = {instrument:String}
  AND ts >= {start:DateTime64(6, 'UTC')} AND ts < {end:DateTime64(6, 'UTC')}
  AND load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'tickers' AND venue = {venue:String} AND instrument = {instrument:String} AND day >= toDate({start:DateTime64(6, 'UTC')}) AND day <= toDate({end:DateTime64(6, 'UTC')}));

CREATE OR REPLACE VIEW `marketdata`.`funding_rates_v` AS
SELECT `ts`, `venue`, `instrument`, `rate`, `interval_hours`, `rate_8h`, `mark_price`, `index_price`
FROM `marketdata`.`funding_rates`
WHERE load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'funding');

CREATE OR REPLACE VIEW `marketdata`.`funding_rates_range` AS
SELECT `ts`, `venue`, `instrument`, `rate`, `interval_hours`, `rate_8h`, `mark_price`, `index_price`
FROM `marketdata`.`funding_rates`
WHERE venue = {venue:String} AND instrument = {instrument:String}
  AND ts >= {start:DateTime64(6, 'UTC')} AND ts < {end:DateTime64(6, 'UTC')}
  AND load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'funding' AND venue = {venue:String} AND instrument = {instrument:String} AND day >= toDate({start:DateTime64(6, 'UTC')}) AND day <= toDate({end:DateTime64(6, 'UTC')}));

CREATE OR REPLACE VIEW `marketdata`.`open_interest_v` AS
SELECT `ts`, `venue`, `instrument`, `contracts`, `contract_size`, `size_unit`, `base`, `quote`
FROM `marketdata`.`open_interest`
WHERE load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'open_interest');

CREATE OR REPLACE VIEW `marketdata`.`open_interest_range` AS
SELECT `ts`, `venue`, `instrument`, `contracts`, `contract_size`, `size_unit`, `base`, `quote`
FROM `marketdata`.`open_interest`
WHERE venue = {venue:String} AND instrument = {instrument:String}
  AND ts >= {start:DateTime64(6, 'UTC')} AND ts < {end:DateTime64(6, 'UTC')}
  AND load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'open_interest' AND venue = {venue:String} AND instrument = {instrument:String} AND day >= toDate({start:DateTime64(6, 'UTC')}) AND day <= toDate({end:DateTime64(6, 'UTC')}));

CREATE OR REPLACE VIEW `marketdata`.`liquidations_v` AS
SELECT `ts`, `venue`, `instrument`, `liquidation_id`, `side`, `price`, `quantity`, `amount`, `order_price`
FROM `marketdata`.`liquidations`
WHERE load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'liquidations');

CREATE OR REPLACE VIEW `marketdata`.`liquidations_range` AS
SELECT `ts`, `venue`, `instrument`, `liquidation_id`, `side`, `price`, `quantity`, `amount`, `order_price`
FROM `marketdata`.`liquidations`
WHERE venue = {venue:String} AND instrument = {instrument:String}
  AND ts >= {start:DateTime64(6, 'UTC')} AND ts < {end:DateTime64(6, 'UTC')}
  AND load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'liquidations' AND venue = {venue:String} AND instrument = {instrument:String} AND day >= toDate({start:DateTime64(6, 'UTC')}) AND day <= toDate({end:DateTime64(6, 'UTC')}));

CREATE OR REPLACE VIEW `marketdata`.`mark_bars_1m_v` AS
SELECT `ts`, `venue`, `instrument`, `open`, `high`, `low`, `close`
FROM `marketdata`.`mark_bars_1m`
WHERE load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'mark_bars');

CREATE OR REPLACE VIEW `marketdata`.`mark_bars_1m_range` AS
SELECT `ts`, `venue`, `instrument`, `open`, `high`, `low`, `close`
FROM `marketdata`.`mark_bars_1m`
WHERE venue = {venue:String} AND instrument = {instrument:String}
  AND ts >= {start:DateTime64(6, 'UTC')} AND ts < {end:DateTime64(6, 'UTC')}
  AND load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'mark_bars' AND venue = {venue:String} AND instrument = {instrument:String} AND day >= toDate({start:DateTime64(6, 'UTC')}) AND day <= toDate({end:DateTime64(6, 'UTC')}));

CREATE OR REPLACE VIEW `marketdata`.`index_bars_1m_v` AS
SELECT `ts`, `venue`, `instrument`, `open`, `high`, `low`, `close`
FROM `marketdata`.`index_bars_1m`
WHERE load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'index_bars');

CREATE OR REPLACE VIEW `marketdata`.`index_bars_1m_range` AS
SELECT `ts`, `venue`, `instrument`, `open`, `high`, `low`, `close`
FROM `marketdata`.`index_bars_1m`
WHERE venue = {venue:String} AND instrument = {instrument:String}
  AND ts >= {start:DateTime64(6, 'UTC')} AND ts < {end:DateTime64(6, 'UTC')}
  AND load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'index_bars' AND venue = {venue:String} AND instrument = {instrument:String} AND day >= toDate({start:DateTime64(6, 'UTC')}) AND day <= toDate({end:DateTime64(6, 'UTC')}));

CREATE OR REPLACE VIEW `marketdata`.`option_chain_v` AS
SELECT `ts`, `venue`, `instrument`, `option`, `expiry`, `strike`, `option_type`, `underlying_price`, `underlying_index`, `mark_price`, `mark_iv`, `bid_iv`, `ask_iv`, `bid_price`, `ask_price`, `open_interest`, `volume_24h`
FROM `marketdata`.`option_chain`
WHERE load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'option_chain');

CREATE OR REPLACE VIEW `marketdata`.`option_chain_range` AS
SELECT `ts`, `venue`, `instrument`, `option`, `expiry`, `strike`, `option_type`, `underlying_price`, `underlying_index`, `mark_price`, `mark_iv`, `bid_iv`, `ask_iv`, `bid_price`, `ask_price`, `open_interest`, `volume_24h`
FROM `marketdata`.`option_chain`
WHERE venue = {venue:String} AND instrument = {instrument:String}
  AND ts >= {start:DateTime64(6, 'UTC')} AND ts < {end:DateTime64(6, 'UTC')}
  AND load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'option_chain' AND venue = {venue:String} AND instrument = {instrument:String} AND day >= toDate({start:DateTime64(6, 'UTC')}) AND day <= toDate({end:DateTime64(6, 'UTC')}));

CREATE OR REPLACE VIEW `marketdata`.`factors_v` AS
SELECT `ts`, `venue`, `instrument`, `factor`, `value`
FROM `marketdata`.`factors`
WHERE load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'factors');

CREATE OR REPLACE VIEW `marketdata`.`factors_range` AS
SELECT `ts`, `venue`, `instrument`, `factor`, `value`
FROM `marketdata`.`factors`
WHERE venue = {venue:String} AND instrument = {instrument:String}
  AND ts >= {start:DateTime64(6, 'UTC')} AND ts < {end:DateTime64(6, 'UTC')}
  AND load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'factors' AND venue = {venue:String} AND instrument = {instrument:String} AND day >= toDate({start:DateTime64(6, 'UTC')}) AND day <= toDate({end:DateTime64(6, 'UTC')}));

CREATE OR REPLACE VIEW `marketdata`.`mark_funding_v` AS
SELECT `ts`, `venue`, `instrument`, `mark_price`, `index_price`, `funding_rate`, `next_funding_time`, `funding_rate_8h`
FROM `marketdata`.`mark_funding`
WHERE load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'mark_funding');

CREATE OR REPLACE VIEW `marketdata`.`mark_funding_range` AS
SELECT `ts`, `venue`, `instrument`, `mark_price`, `index_price`, `funding_rate`, `next_funding_time`, `funding_rate_8h`
FROM `marketdata`.`mark_funding`
WHERE venue = {venue:String} AND instrument = {instrument:String}
  AND ts >= {start:DateTime64(6, 'UTC')} AND ts < {end:DateTime64(6, 'UTC')}
  AND load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'mark_funding' AND venue = {venue:String} AND instrument = {instrument:String} AND day >= toDate({start:DateTime64(6, 'UTC')}) AND day <= toDate({end:DateTime64(6, 'UTC')}));

CREATE OR REPLACE VIEW `marketdata`.bars_1d_v AS
SELECT day, venue, instrument, argMinMerge(open) AS open, max(high) AS high, min(low) AS low,
       argMaxMerge(close) AS close, sum(volume) AS volume, sum(amount) AS amount,
       toInt64(sum(trades)) AS trades, min(first_ts) AS first_ts, max(last_ts) AS last_ts
FROM `marketdata`.trades_1d_agg
WHERE load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'trades')
GROUP BY day, venue, instrument;

CREATE OR REPLACE VIEW `marketdata`.bars_1d_range AS
SELECT day, venue, instrument, argMinMerge(open) AS open, max(high) AS high, min(low) AS low,
       argMaxMerge(close) AS close, sum(volume) AS volume, sum(amount) AS amount,
       toInt64(sum(trades)) AS trades, min(first_ts) AS first_ts, max(last_ts) AS last_ts
FROM `marketdata`.trades_1d_agg
WHERE venue = {venue:String} AND instrument = {instrument:String} AND day >= {first_day:Date} AND day <= {last_day:Date}
  AND load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'trades' AND venue = {venue:String} AND instrument = {instrument:String} AND day >= {first_day:Date} AND day <= {last_day:Date})
GROUP BY day, venue, instrument;

CREATE OR REPLACE VIEW `marketdata`.active_loads AS
SELECT dataset, venue, instrument, day, load_id, rows, run_id, loaded_at FROM `marketdata`.loads FINAL;

CREATE TABLE IF NOT EXISTS `marketdata`.load_history AS `marketdata`.loads ENGINE = MergeTree ORDER BY (dataset, venue, instrument, day, load_id) COMMENT 'backfill pending';

ALTER TABLE `marketdata`.load_history ADD COLUMN IF NOT EXISTS `recorded` LowCardinality(String) DEFAULT 'flip';

CREATE MATERIALIZED VIEW IF NOT EXISTS `marketdata`.load_history_mv TO `marketdata`.load_history AS
SELECT dataset, venue, instrument, day, load_id, rows, run_id, loaded_at FROM `marketdata`.loads;

CREATE TABLE IF NOT EXISTS `marketdata`.trades_live (
    `ts` DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    `venue` LowCardinality(String),
    `instrument` LowCardinality(String),
    `trade_id` String CODEC(ZSTD(1)),
    `price` Float64 CODEC(ZSTD(1)),
    `quantity` Float64 CODEC(ZSTD(1)),
    `amount` Float64 CODEC(ZSTD(1)),
    `side` LowCardinality(String),
    `seq` Nullable(Int64) CODEC(Delta, ZSTD(1)),
    `event_ts` DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    `recv_ts` DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    `inserted_at` DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (venue, instrument, trade_id);

CREATE OR REPLACE VIEW `marketdata`.trades_latest AS
SELECT `ts`, `venue`, `instrument`, `trade_id`, `price`, `quantity`, `amount`, `side`, `seq`, 'batch' AS path FROM `marketdata`.`trades_v`
UNION ALL
SELECT l.`ts` AS `ts`, l.`venue` AS `venue`, l.`instrument` AS `instrument`, l.`trade_id` AS `trade_id`, l.`price` AS `price`, l.`quantity` AS `quantity`, l.`amount` AS `amount`, l.`side` AS `side`, l.`seq` AS `seq`, 'live' AS path FROM `marketdata`.trades_live AS l FINAL
LEFT JOIN (SELECT venue, instrument, max(ts) AS loaded_until FROM `marketdata`.trades WHERE load_id IN (SELECT load_id FROM `marketdata`.loads FINAL WHERE dataset = 'trades' AND rows > 0 AND (venue, instrument, day) IN (SELECT venue, instrument, max(day) FROM `marketdata`.loads FINAL WHERE dataset = 'trades' AND rows > 0 GROUP BY venue, instrument)) GROUP BY venue, instrument) AS c ON l.venue = c.venue AND l.instrument = c.instrument
WHERE c.loaded_until IS NULL OR l.ts > c.loaded_until
SETTINGS join_use_nulls = 1;
