"""MongoDB: alpha JSON <-> documents, validation, routing, and the deep merge of the import."""
