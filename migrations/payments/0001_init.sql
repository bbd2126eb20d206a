-- The payments ledger: an append-only event store, snapshots of folded streams,
-- projections rebuilt from the events, and the outcomes of idempotent calls.
--
-- Portable SQL (SQLite and PostgreSQL). Events are the only source of truth: every
-- other table here can be dropped and derived again from them.

-- One row per event. Streams are "account-<id>" and "payment-<id>"; versions count
-- from 1 without gaps. The primary key is the optimistic-concurrency guard: two writers
-- that both expected version N cannot both append N + 1.
CREATE TABLE events (
    stream_id   TEXT NOT NULL,
    version     BIGINT NOT NULL CHECK (version >= 1),
    type        TEXT NOT NULL,
    data        TEXT NOT NULL, -- a JSON object
    occurred_at TEXT NOT NULL,
    PRIMARY KEY (stream_id, version)
);

-- The latest folded state of a stream, every N events: a load folds only what follows.
CREATE TABLE snapshots (
    stream_id TEXT PRIMARY KEY,
    version   BIGINT NOT NULL,
    state     TEXT NOT NULL -- a JSON object
);

-- Projections, written in the same transaction as the events they follow.
CREATE TABLE account_balances (
    account_id TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    currency   TEXT NOT NULL,
    available  BIGINT NOT NULL,
    held       BIGINT NOT NULL,
    version    BIGINT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE payment_history (
    payment_id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    order_id   TEXT,
    amount     BIGINT NOT NULL,
    currency   TEXT NOT NULL,
    status     TEXT NOT NULL,
    captured   BIGINT NOT NULL,
    refunded   BIGINT NOT NULL,
    version    BIGINT NOT NULL,
    updated_at TEXT NOT NULL
);
-- An account's payments.
CREATE INDEX payment_history_account ON payment_history (account_id, payment_id);

-- What a write with an idempotency key answered, so that a retry gets the same answer.
CREATE TABLE idempotency_keys (
    operation  TEXT NOT NULL,
    idem_key   TEXT NOT NULL,
    request    TEXT NOT NULL, -- canonical JSON: the same key with another request conflicts
    response   TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (operation, idem_key)
);
