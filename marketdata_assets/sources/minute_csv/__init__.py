"""Minute-bar CSV files dropped by vendors: the reader and the vendor profiles (columns, encodings, code formats)."""
