-- Every claim reads the names of the paused queues once (an InitPlan), then skips them in the
-- worker's list without reordering it. Queues are rarely paused, so this index is nearly always
-- empty and the read costs a few µs however many queues exist; without it each claim read the
-- whole queues table (up to MAX_QUEUES rows).
create index queues_paused_idx on leasehold.queues (name) where paused_at is not null;
