-- Object-level access (ADR 0025): an account belongs to the principal
-- that opened it (cl_ctx.principal), and a caller marked own_only (a customer) reaches
-- only its own accounts and their payments.
--
-- The truth is the account_opened event, which carries "principal" from now on; this
-- column is its projection, so that a read by id checks ownership in the same row.
-- Accounts opened before (and by anonymous callers) have no principal: NULL, owned by
-- nobody. Staff and internal callers (own_only 0) still reach them; no customer does,
-- until an administrator opens the customer an account of its own. Portable SQL.
ALTER TABLE account_balances ADD COLUMN principal TEXT;
