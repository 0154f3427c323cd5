-- Packuments read from uplinks, as the uplink sent them (JSON), with the validators
-- for conditional refreshes. Shared by every instance on one database, so one
-- instance's fetch serves the others; a cache, never authoritative.
CREATE TABLE uplink_packuments (
    name TEXT PRIMARY KEY,
    uplink TEXT NOT NULL,
    body BYTEA NOT NULL,
    etag TEXT,
    last_modified TEXT,
    fetched_at BIGINT NOT NULL
);

-- Tarballs fetched from uplinks and verified against the uplink's integrity; the
-- bytes live in the blob store under `blob_key` (gc keeps them).
CREATE TABLE uplink_tarballs (
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    uplink TEXT NOT NULL,
    integrity TEXT NOT NULL,
    blob_key TEXT NOT NULL,
    size BIGINT NOT NULL,
    fetched_at BIGINT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE INDEX uplink_tarballs_by_blob ON uplink_tarballs (blob_key);
