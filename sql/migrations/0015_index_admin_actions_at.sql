-- Tenants' API cancels and retries write admin_actions rows too, so the audit log is no longer a
-- row per operator action: retention finds the rows past RETENTION_DEAD_LETTERS_DAYS by `at`, and
-- without this index each pass read the whole table.
create index admin_actions_at_idx on leasehold.admin_actions (at);
