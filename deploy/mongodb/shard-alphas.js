// Shards the alpha collections on a sharded cluster (mongos), for when one replica set no longer holds
// them (docs/deploy.md, "MongoDB"). Run once through mongos, as a user with clusterManager:
//   mongosh "mongodb://<mongos>:27017/admin" -u <user> -p --file deploy/mongodb/shard-alphas.js
// Databases and collection are the settings' defaults (ALPHA_DB_REGULAR, ALPHA_DB_SUPER,
// ALPHA_COLLECTION); tests/deploy/test_mongodb_layout.py checks them and the key against the importer.
//
// Shard key { id: 1 }, unique: the importer's unique index `id` (stores/mongo/alphas.py,
// ALPHA_INDEXES) must be prefixed by the shard key, or MongoDB refuses the index on a sharded
// collection. Alpha ids are random 7-8 character codes, so a ranged key spreads writes evenly (no
// monotonic hot chunk) and keeps a lookup by id on one shard; a hashed key cannot back a unique index.
// The import ledger (import_ledger) stays unsharded on the database's primary shard: it is small.
// The importer names this key in every upsert and delete filter (stores/mongo/alphas.py, SHARD_KEY,
// by_ids: mongos refuses an upsert without it).
const SHARD_KEY = { id: 1 };
const NAMESPACES = ["regular_alphas.alphas", "super_alphas.alphas"];

for (const ns of NAMESPACES) {
  const [database, collection] = ns.split(".");
  sh.enableSharding(database);
  // The unique index must exist (or the collection be empty) before shardCollection.
  db.getSiblingDB(database).getCollection(collection).createIndex(SHARD_KEY, { name: "id", unique: true });
  sh.shardCollection(ns, SHARD_KEY, true);
  print(`${ns}: sharded on ${JSON.stringify(SHARD_KEY)} (unique)`);
}
