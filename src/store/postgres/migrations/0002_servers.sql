-- Schema 2: several servers (--server), as SQLite's schema 4 (see
-- ../../sqlite/migrations/v4_from_v3.sql). A server's id is 1 to 63, given
-- by the store (max + 1 under an advisory lock, never from a sequence,
-- which would lose numbers to conflicts); a visitor row keeps the servers
-- that sent its counted lines as the bits 1 << (id - 1). Visitors counted
-- before keep 0: no server known.
CREATE TABLE servers (id BIGINT PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE server_daily (
    server_id BIGINT NOT NULL, day BIGINT NOT NULL,
    downloads BIGINT NOT NULL, requests BIGINT NOT NULL, bytes BIGINT NOT NULL,
    PRIMARY KEY (server_id, day));
ALTER TABLE visitors ADD COLUMN servers BIGINT NOT NULL DEFAULT 0;
