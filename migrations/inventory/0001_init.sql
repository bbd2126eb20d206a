-- The inventory's own tables: stock per SKU, reservations and their lines.
--
-- Portable SQL (SQLite and PostgreSQL): BIGINT for every quantity and time, TEXT keys,
-- CHECK constraints that make a negative quantity impossible whatever the code does.

-- available = on_hand - reserved is computed, never stored, so it cannot drift.
CREATE TABLE stock (
    sku        TEXT PRIMARY KEY,
    on_hand    BIGINT NOT NULL CHECK (on_hand >= 0),
    reserved   BIGINT NOT NULL DEFAULT 0 CHECK (reserved >= 0 AND reserved <= on_hand),
    sold       BIGINT NOT NULL DEFAULT 0 CHECK (sold >= 0),
    updated_at TEXT NOT NULL
);

-- One reservation per order: the order id is the idempotency key of reserve, release
-- and commit. expires_at_ms is wall-clock milliseconds since the epoch, so that expiry
-- survives a restart.
CREATE TABLE reservations (
    order_id      TEXT PRIMARY KEY,
    status        TEXT NOT NULL
                  CHECK (status IN ('reserved', 'committed', 'released', 'expired')),
    created_at    TEXT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    expires_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
-- The expiry sweep: reservations still holding stock, oldest deadline first.
CREATE INDEX reservations_status_expiry ON reservations (status, expires_at_ms);

CREATE TABLE reservation_lines (
    order_id TEXT NOT NULL REFERENCES reservations (order_id),
    line_no  BIGINT NOT NULL,
    sku      TEXT NOT NULL REFERENCES stock (sku),
    quantity BIGINT NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (order_id, line_no)
);
