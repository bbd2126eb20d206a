-- SQLite only (ADR 0059): the reservations table again, its status CHECK written as a chain
-- of comparisons instead of an IN list. SQLite 3.40 tests a column against an IN list of
-- more than two constants through a temporary B-tree built anew for each row it writes: one
-- at each reservation and each commit or release. The allowed values are the same;
-- PostgreSQL keeps its IN list (no migration there).
--
-- SQLite cannot change a table's constraints in place: the rows are copied out, the table
-- made again and the rows copied back. Dropping the parent of reservation_lines orphans its
-- rows until they are back; foreign keys are checked at the commit of this migration's
-- transaction instead (defer_foreign_keys ends with it).
PRAGMA defer_foreign_keys = ON;

CREATE TABLE reservations_copy AS SELECT * FROM reservations;
DROP TABLE reservations;

CREATE TABLE reservations (
    order_id      TEXT PRIMARY KEY,
    status        TEXT NOT NULL
                  CHECK (status = 'reserved' OR status = 'committed' OR status = 'released'
                         OR status = 'expired'),
    created_at    TEXT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    expires_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
INSERT INTO reservations (order_id, status, created_at, expires_at_ms, expires_at, updated_at)
SELECT order_id, status, created_at, expires_at_ms, expires_at, updated_at
FROM reservations_copy;
DROP TABLE reservations_copy;

-- The expiry sweep: reservations still holding stock, oldest deadline first.
CREATE INDEX reservations_status_expiry ON reservations (status, expires_at_ms);
