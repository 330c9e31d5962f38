-- Schema 4: completed downloads, as SQLite's schema 6 (see
-- ../../sqlite/migrations/v6_from_v5.sql and ../../../coverage.rs). Days
-- counted before keep completion = false and their daily.completed NULL:
-- unknown, never zero.
ALTER TABLE visitors ADD COLUMN ranges BYTEA;
ALTER TABLE visitors ADD COLUMN got BIGINT NOT NULL DEFAULT 0;
ALTER TABLE visitors ADD COLUMN complete BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE daily ADD COLUMN completed BIGINT;
ALTER TABLE days ADD COLUMN completion BOOLEAN NOT NULL DEFAULT false;
