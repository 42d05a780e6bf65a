"""Whom we ask: one package (or module) per source, each with its client, wire parsing, error and limit
tables. Imports only core and datasets; sources never import each other or a store."""
