-- The orders module's own tables: orders, their lines, and the checkout saga's log
-- (ADR 0014). The saga's state is the order's status and step: it is written after
-- every step, so that a restarted process resumes each order where it stopped.

CREATE TABLE orders (
    seq          INTEGER PRIMARY KEY,  -- insertion order: list pages and resume order
    id           TEXT NOT NULL UNIQUE, -- 'ord-<24 hex>': the saga's idempotency keys derive from it
    account_id   TEXT NOT NULL,
    status       TEXT NOT NULL
                 CHECK (status IN ('pending', 'compensating', 'confirmed', 'rejected')),
    step         TEXT NOT NULL
                 CHECK (step IN ('reserve', 'authorize', 'commit', 'capture', 'confirm',
                                 'void', 'release', 'reject', 'done')),
    reason       TEXT,
    total_amount BIGINT NOT NULL CHECK (total_amount >= 0),
    currency     TEXT NOT NULL,
    idem_key     TEXT UNIQUE,          -- the caller's Idempotency-Key, when given
    request      TEXT,                 -- its request, to tell a replay from a misuse
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
-- Resume at start-up and list by status, both in insertion order.
CREATE INDEX orders_status_seq ON orders (status, seq);

CREATE TABLE order_lines (
    order_id    TEXT NOT NULL REFERENCES orders (id),
    line_no     BIGINT NOT NULL,
    sku         TEXT NOT NULL,
    quantity    BIGINT NOT NULL CHECK (quantity > 0),
    unit_amount BIGINT NOT NULL CHECK (unit_amount >= 0),
    currency    TEXT NOT NULL,
    PRIMARY KEY (order_id, line_no)
);

-- The saga's history, append-only.
CREATE TABLE saga_log (
    order_id TEXT NOT NULL REFERENCES orders (id),
    seq      BIGINT NOT NULL,
    step     TEXT NOT NULL,
    outcome  TEXT NOT NULL,
    detail   TEXT,
    at       TEXT NOT NULL,
    PRIMARY KEY (order_id, seq)
);
