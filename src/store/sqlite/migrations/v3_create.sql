-- The whole schema of version 3, for a new database (see ../mod.rs).
CREATE TABLE meta (name TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE);
-- One row per distinct counted line and day; see the module header.
CREATE TABLE seen_lines (
    day INTEGER NOT NULL, hash INTEGER NOT NULL,
    live INTEGER NOT NULL, imported INTEGER NOT NULL,
    source INTEGER NOT NULL, source_n INTEGER NOT NULL,
    live_bytes INTEGER NOT NULL DEFAULT 0, imported_bytes INTEGER NOT NULL DEFAULT 0,
    source_bytes INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, hash)) WITHOUT ROWID;
-- One row per (client, file, day): a download. requests/bytes tell complete from aborted.
CREATE TABLE visitors (
    day INTEGER NOT NULL, key INTEGER NOT NULL, file_id INTEGER NOT NULL,
    requests INTEGER NOT NULL, bytes INTEGER NOT NULL,
    run INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, key)) WITHOUT ROWID;
CREATE TABLE daily (
    file_id INTEGER NOT NULL, day INTEGER NOT NULL,
    downloads INTEGER NOT NULL, requests INTEGER NOT NULL, bytes INTEGER NOT NULL,
    PRIMARY KEY (file_id, day)) WITHOUT ROWID;
-- Monthly downloads migrated from the old script's counts.json.
CREATE TABLE legacy (
    file_id INTEGER NOT NULL, month TEXT NOT NULL, downloads INTEGER NOT NULL,
    PRIMARY KEY (file_id, month)) WITHOUT ROWID;
-- identity: which optional fields identify the day's lines (logformat::identity bits; -1: schema 1).
CREATE TABLE days (day INTEGER PRIMARY KEY, touched INTEGER NOT NULL, closed INTEGER NOT NULL DEFAULT 0,
    identity INTEGER NOT NULL DEFAULT -1);
CREATE TABLE sources (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL, started INTEGER NOT NULL);
CREATE TABLE day_keys (day INTEGER PRIMARY KEY, key BLOB NOT NULL);
