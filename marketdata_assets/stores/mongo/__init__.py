"""MongoDB: alpha JSON <-> documents, validation, routing, the deep merge of the import, and the alpha
store (alphas.py: indexes, the import ledger, transactions)."""
