-- Schema 3 -> 4: several servers (--server). Each server gets a small id
-- (1 to 63: a visitor row keeps the servers that sent its counted lines as
-- the bits 1 << (id - 1)), and per-server figures per day, which outlive
-- the purge like `daily`. Visitors counted before keep 0: no server known.
CREATE TABLE servers (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE server_daily (
    server_id INTEGER NOT NULL, day INTEGER NOT NULL,
    downloads INTEGER NOT NULL, requests INTEGER NOT NULL, bytes INTEGER NOT NULL,
    PRIMARY KEY (server_id, day)) WITHOUT ROWID;
ALTER TABLE visitors ADD COLUMN servers INTEGER NOT NULL DEFAULT 0;
PRAGMA user_version=4;
