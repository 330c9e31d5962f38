-- Schema 5 -> 6: completed downloads (see ../../../coverage.rs). A visitor
-- row keeps, until its day closes, the byte ranges its lines covered
-- (`coverage::ByteRanges::to_bytes`, NULL: none), the bytes of its lines
-- that logged no Content-Range (`got`) and whether it is complete. `daily`
-- keeps the completed downloads per file and day (NULL: unknown), which
-- outlive the purge. `days.completion` says whether a day has been counted
-- with these facts from its first line on: days counted before the upgrade
-- keep 0, and their `completed` stays NULL (unknown, never zero).
ALTER TABLE visitors ADD COLUMN ranges BLOB;
ALTER TABLE visitors ADD COLUMN got INTEGER NOT NULL DEFAULT 0;
ALTER TABLE visitors ADD COLUMN complete INTEGER NOT NULL DEFAULT 0;
ALTER TABLE daily ADD COLUMN completed INTEGER;
ALTER TABLE days ADD COLUMN completion INTEGER NOT NULL DEFAULT 0;
PRAGMA user_version=6;
