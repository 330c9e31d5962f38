-- Schema 1 -> 2: bytes kept beside a line's copies, and the identity set of
-- each day (-1: schema 1's fingerprint, which its days keep until they close).
ALTER TABLE seen_lines ADD COLUMN live_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE seen_lines ADD COLUMN imported_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE seen_lines ADD COLUMN source_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE days ADD COLUMN identity INTEGER NOT NULL DEFAULT -1;
PRAGMA user_version=2;
