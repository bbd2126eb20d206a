-- Idempotency keys belong to their caller and resource (ADR "idempotency-key-scope"):
-- the same key from another principal, or for another account, is another key. A key
-- is recorded here, in the order's own transaction; the primary key is what makes two
-- racing requests with one key place one order (the loser re-reads the winner's row).
-- orders.idem_key and orders.request are no longer written: their UNIQUE made a key
-- global to the whole module.

CREATE TABLE order_idempotency (
    principal TEXT NOT NULL, -- the caller (cl_ctx.principal), '' for an anonymous one
    operation TEXT NOT NULL, -- 'place_order'
    resource  TEXT NOT NULL, -- the account the order is for
    idem_key  TEXT NOT NULL,
    request   TEXT NOT NULL, -- canonical JSON: the same key with another request conflicts
    order_id  TEXT NOT NULL REFERENCES orders (id),
    PRIMARY KEY (principal, operation, resource, idem_key)
);

-- Keys recorded before: their caller was not kept, so they stay an anonymous caller's.
INSERT INTO order_idempotency (principal, operation, resource, idem_key, request, order_id)
SELECT '', 'place_order', account_id, idem_key, request, id
FROM orders WHERE idem_key IS NOT NULL AND request IS NOT NULL;
