-- Token lifecycle: rotation links, why a token was revoked, and the registry's
-- signing keys.

-- A rotated token points at its successor (`replaced_by`) and the successor at it
-- (`rotated_from`); the old token keeps working until its `expires_at`, which the
-- rotation sets to the end of the overlap window.
ALTER TABLE tokens ADD COLUMN rotated_from BIGINT;
ALTER TABLE tokens ADD COLUMN replaced_by BIGINT;
-- Why a token was revoked when its owner did not do it (`found exposed at <url>`).
ALTER TABLE tokens ADD COLUMN revoked_reason TEXT;

-- ECDSA P-256 keys that sign `NAME@VERSION:INTEGRITY` (dist.signatures). The private
-- key is sealed (AES-256-GCM) under a key derived from the server key, which is not
-- in the database. Exactly one key is active (`active` = 1, the others NULL, so the
-- UNIQUE constraint allows one); retired keys stay listed until `expires_at`.
CREATE TABLE signing_keys (
    id BIGSERIAL PRIMARY KEY,
    keyid TEXT NOT NULL UNIQUE,
    public_key TEXT NOT NULL,
    sealed_secret TEXT NOT NULL,
    active BIGINT UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT
);
