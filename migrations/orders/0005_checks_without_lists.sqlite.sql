-- SQLite only (ADR 0059): the orders table again, its CHECK constraints written as chains of
-- comparisons instead of IN lists. SQLite 3.40 tests a column against an IN list of more
-- than two constants through a temporary B-tree built anew for each row it writes, so each
-- insert and each saga record of an order built two: a checkout's place and two records,
-- six. The allowed values are the same; PostgreSQL keeps its IN lists (no migration there).
--
-- SQLite cannot change a table's constraints in place: the rows are copied out, the table
-- made again and the rows copied back. Dropping the parent of order_lines, saga_log and
-- order_idempotency orphans their rows until the rows are back; foreign keys are checked at
-- the commit of this migration's transaction instead (defer_foreign_keys ends with it),
-- when every child has its parent again.
PRAGMA defer_foreign_keys = ON;

CREATE TABLE orders_copy AS SELECT * FROM orders;
DROP TABLE orders;

CREATE TABLE orders (
    seq          INTEGER PRIMARY KEY,  -- insertion order: list pages and resume order
    id           TEXT NOT NULL UNIQUE, -- 'ord-<24 hex>': the saga's idempotency keys derive from it
    account_id   TEXT NOT NULL,
    status       TEXT NOT NULL
                 CHECK (status = 'pending' OR status = 'compensating' OR status = 'confirmed'
                        OR status = 'rejected'),
    step         TEXT NOT NULL
                 CHECK (step = 'reserve' OR step = 'authorize' OR step = 'commit'
                        OR step = 'capture' OR step = 'confirm' OR step = 'void'
                        OR step = 'release' OR step = 'reject' OR step = 'done'),
    reason       TEXT,
    total_amount BIGINT NOT NULL CHECK (total_amount >= 0),
    currency     TEXT NOT NULL,
    idem_key     TEXT UNIQUE,          -- the caller's Idempotency-Key, when given
    request      TEXT,                 -- its request, to tell a replay from a misuse
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    principal    TEXT,                 -- 0003
    lease_owner  TEXT,                 -- 0004
    lease_host   TEXT,
    lease_until  BIGINT,
    lease_epoch  BIGINT NOT NULL DEFAULT 0
);
INSERT INTO orders (seq, id, account_id, status, step, reason, total_amount, currency, idem_key,
                    request, created_at, updated_at, principal, lease_owner, lease_host,
                    lease_until, lease_epoch)
SELECT seq, id, account_id, status, step, reason, total_amount, currency, idem_key, request,
       created_at, updated_at, principal, lease_owner, lease_host, lease_until, lease_epoch
FROM orders_copy;
DROP TABLE orders_copy;

CREATE INDEX orders_status_seq ON orders (status, seq);
CREATE INDEX orders_principal_seq ON orders (principal, seq);
