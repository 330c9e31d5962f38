-- Schema 2 -> 3, the DDL part: per-day keys, and the write-only counters
-- table goes. The re-keying of open days' rows and the repair of wrapped
-- figures follow in code (upgrade_to_3), in the same transaction.
CREATE TABLE day_keys (day INTEGER PRIMARY KEY, key BLOB NOT NULL);
DROP TABLE counters;
