-- The shipping module's own table: shipments, made from events (ADR 0012).
--
-- A shipment starts pending; its carrier booking is a long-running operation
-- (cl_operations, a platform table) whose completion books it.

CREATE TABLE shipments (
    id           INTEGER PRIMARY KEY,
    order_ref    TEXT NOT NULL, -- 'order:<id>', or 'product:<id>' for sample shipments
    status       TEXT NOT NULL CHECK (status IN ('pending', 'booked')),
    carrier      TEXT,
    tracking     TEXT,
    operation_id TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);

-- GET /api/v1/shipments?order=...: the shipments of one order, in id order.
CREATE INDEX shipments_order_ref ON shipments (order_ref, id);
