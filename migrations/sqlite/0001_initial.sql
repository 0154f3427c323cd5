CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    email TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    fullname TEXT,
    homepage TEXT,
    twitter TEXT,
    github TEXT,
    freenode TEXT,
    tfa_mode TEXT,
    tfa_pending BIGINT NOT NULL DEFAULT 0,
    tfa_secret TEXT,
    tfa_last_step BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    key_prefix TEXT NOT NULL UNIQUE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    hash BLOB NOT NULL UNIQUE,
    display_prefix TEXT NOT NULL,
    last_four TEXT NOT NULL,
    name TEXT,
    description TEXT,
    kind TEXT NOT NULL,
    limits TEXT,
    cidr TEXT,
    origin TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    expires_at BIGINT,
    last_used_at BIGINT,
    last_used_ip TEXT,
    revoked_at BIGINT
);
CREATE INDEX tokens_by_user ON tokens (user_id, created_at);

CREATE TABLE packages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    scope TEXT,
    access TEXT NOT NULL,
    publish_requires_tfa BIGINT NOT NULL DEFAULT 0,
    automation_overrides_tfa BIGINT NOT NULL DEFAULT 0,
    rev BIGINT NOT NULL,
    description TEXT,
    created_at BIGINT NOT NULL,
    modified_at BIGINT NOT NULL
);
CREATE INDEX packages_by_modified ON packages (modified_at);

CREATE TABLE versions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    package_id BIGINT NOT NULL REFERENCES packages(id) ON DELETE CASCADE,
    version TEXT NOT NULL,
    manifest TEXT NOT NULL,
    readme TEXT,
    blob_key TEXT NOT NULL,
    size BIGINT NOT NULL,
    integrity TEXT NOT NULL,
    shasum TEXT NOT NULL,
    deprecated TEXT,
    published_by BIGINT,
    published_at BIGINT NOT NULL,
    UNIQUE (package_id, version)
);
CREATE INDEX versions_by_blob ON versions (blob_key);

CREATE TABLE dist_tags (
    package_id BIGINT NOT NULL REFERENCES packages(id) ON DELETE CASCADE,
    tag TEXT NOT NULL,
    version TEXT NOT NULL,
    PRIMARY KEY (package_id, tag)
);

CREATE TABLE maintainers (
    package_id BIGINT NOT NULL REFERENCES packages(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (package_id, user_id)
);
CREATE INDEX maintainers_by_user ON maintainers (user_id);

CREATE TABLE scopes (
    name TEXT PRIMARY KEY,
    owner_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE
);

CREATE TABLE recovery_codes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash BLOB NOT NULL,
    used_at BIGINT
);
CREATE INDEX recovery_codes_by_user ON recovery_codes (user_id);

CREATE TABLE security_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL,
    ip TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX security_events_by_user ON security_events (user_id, created_at);

CREATE TABLE otp_failures (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT,
    ip TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX otp_failures_by_user ON otp_failures (user_id, created_at);
CREATE INDEX otp_failures_by_ip ON otp_failures (ip, created_at);

CREATE TABLE sessions (
    id_hash BLOB PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf TEXT NOT NULL,
    pending_otp BIGINT NOT NULL DEFAULT 0,
    flash TEXT,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (user_id);

CREATE TABLE web_logins (
    id_hash BLOB PRIMARY KEY,
    done_hash BLOB NOT NULL UNIQUE,
    user_id BIGINT REFERENCES users(id) ON DELETE CASCADE,
    client_name TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
