-- One throttle for every password and one-time-password check, counted per account
-- and per client address, per factor.
CREATE TABLE auth_failures (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    factor TEXT NOT NULL,
    user_id BIGINT,
    ip TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX auth_failures_by_user ON auth_failures (factor, user_id, created_at);
CREATE INDEX auth_failures_by_ip ON auth_failures (factor, ip, created_at);
DROP TABLE otp_failures;

-- A token shown once is rendered in the response that created it; nothing keeps it.
ALTER TABLE sessions DROP COLUMN flash;
