-- Schema 4 -> 5: the facts of each download (see ../../facts.rs). A
-- visitor row keeps its client class (rank 0 browser .. 3 bot, -1 unknown)
-- and country (geo::Country::stored: -1 not looked up, 0 unknown, else the
-- code); downloads counted before keep -1 for both: unknown, never zero.
-- facts_daily counts downloads per file, day and fact (kind 'class',
-- 'country', 'network'; value the class name, ISO code or 'v6'), and
-- network_days which IPv4 /10 networks downloaded each day (bit n % 64 of
-- word n / 64 for network n, OR-merged); both outlive the purge like `daily`.
ALTER TABLE visitors ADD COLUMN class INTEGER NOT NULL DEFAULT -1;
ALTER TABLE visitors ADD COLUMN country INTEGER NOT NULL DEFAULT -1;
CREATE TABLE facts_daily (
    file_id INTEGER NOT NULL, day INTEGER NOT NULL,
    kind TEXT NOT NULL, value TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (file_id, day, kind, value)) WITHOUT ROWID;
CREATE TABLE network_days (
    day INTEGER NOT NULL, word INTEGER NOT NULL, bits INTEGER NOT NULL,
    PRIMARY KEY (day, word)) WITHOUT ROWID;
PRAGMA user_version=5;
