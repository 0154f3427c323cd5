-- Scheduled pruning (domain/maintenance.rs) deletes by age.
CREATE INDEX security_events_by_time ON security_events (created_at);
CREATE INDEX otp_failures_by_time ON otp_failures (created_at);
