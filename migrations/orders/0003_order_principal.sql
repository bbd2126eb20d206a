-- Object-level access (ADR 0025): an order belongs to the principal
-- that placed it (cl_ctx.principal). A caller marked own_only (a customer) reads and
-- lists only its own orders.
--
-- Orders placed before (and by anonymous callers) have no principal: NULL, owned by
-- nobody. Staff and internal callers (own_only 0) still see them; no customer does.
-- Portable SQL (SQLite and PostgreSQL).
ALTER TABLE orders ADD COLUMN principal TEXT;
-- A customer's list: its orders in insertion order.
CREATE INDEX orders_principal_seq ON orders (principal, seq);
