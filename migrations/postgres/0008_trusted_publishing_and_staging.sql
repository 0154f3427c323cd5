-- Trusted publishing: CI systems exchange an OpenID Connect id token for a
-- short-lived token that may publish (or stage) one package.

-- "Publish only through trusted publishing": token publishes of the package are refused.
ALTER TABLE packages ADD COLUMN trusted_publishing_only BIGINT NOT NULL DEFAULT 0;

-- A trust configuration: which CI identity (issuer + claims) may publish a package.
CREATE TABLE trust_configs (
    id TEXT PRIMARY KEY,
    package_id BIGINT NOT NULL REFERENCES packages(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    issuer TEXT NOT NULL,
    claims TEXT NOT NULL,
    permissions TEXT NOT NULL,
    created_by BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL
);
CREATE INDEX trust_configs_by_package ON trust_configs (package_id, created_at);

-- Tokens minted by an exchange: the configuration they came from (revoking it
-- revokes them) and what they may do (JSON: package, permissions, identity).
ALTER TABLE tokens ADD COLUMN trust_config_id TEXT;
ALTER TABLE tokens ADD COLUMN oidc TEXT;
CREATE INDEX tokens_by_trust_config ON tokens (trust_config_id);

-- Id tokens already exchanged (by issuer and `jti`), kept until they expire, so a
-- token is exchanged once across every instance.
CREATE TABLE oidc_token_ids (
    issuer TEXT NOT NULL,
    jti TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (issuer, jti)
);
CREATE INDEX oidc_token_ids_by_expiry ON oidc_token_ids (expires_at);

-- Staged versions: stored, invisible to installs, until a maintainer approves.
CREATE TABLE staged_versions (
    id TEXT PRIMARY KEY,
    package_id BIGINT NOT NULL REFERENCES packages(id) ON DELETE CASCADE,
    version TEXT NOT NULL,
    tag TEXT NOT NULL,
    manifest TEXT NOT NULL,
    readme TEXT,
    blob_key TEXT NOT NULL,
    size BIGINT NOT NULL,
    integrity TEXT NOT NULL,
    shasum TEXT NOT NULL,
    staged_by BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    actor TEXT NOT NULL,
    actor_type TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (package_id, version)
);
CREATE INDEX staged_versions_by_blob ON staged_versions (blob_key);
CREATE INDEX staged_versions_by_created ON staged_versions (created_at);
