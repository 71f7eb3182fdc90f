-- The producers' INSERT statements (shared/jobs/queue-sql.ts) write their jobs' `job.queued`
-- events, queue registrations and tenant_jobs rows themselves, in CTEs of the same statement, and
-- set leasehold.events_written for the length of that statement. The trigger skips them: its
-- plpgsql call and three statements took ~45 µs of a single-job INSERT's ~150 µs. COPY, plain SQL
-- inserts and every other statement leave the setting unset and get their events from the
-- trigger, as before.
drop trigger jobs_inserted on leasehold.jobs;
create trigger jobs_inserted after insert on leasehold.jobs
  referencing new table as new_jobs
  for each statement
  when (current_setting('leasehold.events_written', true) is distinct from 'on')
  execute function leasehold.jobs_inserted();
