-- Schema 3: the facts of each download, as SQLite's schema 5 (see
-- ../../sqlite/migrations/v5_from_v4.sql and ../../facts.rs). Downloads
-- counted before keep class and country -1: unknown, never zero.
ALTER TABLE visitors ADD COLUMN class BIGINT NOT NULL DEFAULT -1;
ALTER TABLE visitors ADD COLUMN country BIGINT NOT NULL DEFAULT -1;
CREATE TABLE facts_daily (
    file_id BIGINT NOT NULL, day BIGINT NOT NULL,
    kind TEXT NOT NULL, value TEXT NOT NULL, n BIGINT NOT NULL,
    PRIMARY KEY (file_id, day, kind, value));
CREATE TABLE network_days (
    day BIGINT NOT NULL, word BIGINT NOT NULL, bits BIGINT NOT NULL,
    PRIMARY KEY (day, word));
