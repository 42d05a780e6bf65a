"""Alpha ingest: fetched alphas -> landing files <-> monthly packages -> deep-merge import into MongoDB."""
