"""Slices -> fetch -> write: the engine that runs sources' feeds into the stores, and each domain's loading
workflows (alphas, minute-bar files, Binance dumps and archives, derived factors)."""
