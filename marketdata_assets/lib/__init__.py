"""Plain library code: no Dagster imports here, so every piece is testable on its own."""
