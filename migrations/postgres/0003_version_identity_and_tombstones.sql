-- A version's identity is its version without build metadata (1.0.5+evil is 1.0.5).
ALTER TABLE versions ADD COLUMN version_key TEXT NOT NULL DEFAULT '';
UPDATE versions SET version_key = split_part(version, '+', 1);
-- Versions stored before this rule that share a key: a version without build
-- metadata keeps the key (else the oldest one); the others keep their full version
-- as key, which contains '+' and so can never be the key of a new publish.
UPDATE versions SET version_key = version WHERE strpos(version, '+') > 0 AND EXISTS (
    SELECT 1 FROM versions o WHERE o.package_id = versions.package_id
    AND o.version_key = versions.version_key
    AND (strpos(o.version, '+') = 0 OR o.id < versions.id));
CREATE UNIQUE INDEX versions_by_key ON versions (package_id, version_key);

-- Every version ever published under a name; survives unpublish and deletion, so a
-- name@version is never published twice.
CREATE TABLE version_history (
    name TEXT NOT NULL,
    version_key TEXT NOT NULL,
    version TEXT NOT NULL,
    published_at BIGINT NOT NULL,
    PRIMARY KEY (name, version_key)
);
INSERT INTO version_history (name, version_key, version, published_at)
    SELECT p.name, v.version_key, v.version, v.published_at
    FROM versions v JOIN packages p ON p.id = v.package_id;

-- Deleted packages: the name stays reserved for its former maintainers (JSON list
-- of user ids) for a while after deleted_at.
CREATE TABLE package_tombstones (
    name TEXT PRIMARY KEY,
    deleted_at BIGINT NOT NULL,
    former_maintainers TEXT NOT NULL
);
