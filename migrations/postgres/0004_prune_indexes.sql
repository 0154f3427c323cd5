-- Scheduled pruning (domain/maintenance.rs) deletes by age.
CREATE INDEX security_events_by_time ON security_events (created_at);
CREATE INDEX auth_failures_by_time ON auth_failures (created_at);
