-- One executor per saga, even with several hosts on one database (ADR 0034):
-- an order in flight is leased by the executor running its saga. lease_owner is that
-- executor's id (random per process), lease_until when the lease lapses in milliseconds
-- since the epoch on the DATABASE's clock (never a host's), and lease_epoch the fencing
-- version, incremented on every acquisition: every write of the saga is conditional on
-- the owner and epoch it holds, so a stale executor's writes are refused.
-- lease_host is the owner's host (CLEAVE_HOST_ID): one process at a time runs under a host
-- id, so a restarted process takes back its predecessor's leases at once instead of
-- waiting for them to lapse.
-- Orders placed before have no lease (NULL, epoch 0): free, so the next start runs them.
-- Portable SQL (SQLite and PostgreSQL).
ALTER TABLE orders ADD COLUMN lease_owner TEXT;
ALTER TABLE orders ADD COLUMN lease_host TEXT;
ALTER TABLE orders ADD COLUMN lease_until BIGINT;
ALTER TABLE orders ADD COLUMN lease_epoch BIGINT NOT NULL DEFAULT 0;

-- Which executor, holding which epoch, wrote each log entry ('place' and entries from
-- before: NULL and 0). Tests read it to check that no step was run by two at once.
ALTER TABLE saga_log ADD COLUMN executor TEXT;
ALTER TABLE saga_log ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;
