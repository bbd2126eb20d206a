-- Idempotency keys belong to their caller and resource (ADR "idempotency-key-scope"): a
-- key used for a deposit to one account says nothing about a deposit to another, nor
-- about another caller's requests. The scope is (principal, operation, resource, key).

CREATE TABLE idempotency_records (
    principal  TEXT NOT NULL, -- the caller (cl_ctx.principal), '' for an anonymous one
    operation  TEXT NOT NULL,
    resource   TEXT NOT NULL, -- the account or payment the request is about, '' for none
    idem_key   TEXT NOT NULL,
    request    TEXT NOT NULL, -- canonical JSON: the same key with another request conflicts
    response   TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (principal, operation, resource, idem_key)
);

-- Outcomes stored before: neither caller nor resource was kept, so they stay an
-- anonymous caller's, about no particular resource.
INSERT INTO idempotency_records
    (principal, operation, resource, idem_key, request, response, created_at)
SELECT '', operation, '', idem_key, request, response, created_at FROM idempotency_keys;

DROP TABLE idempotency_keys;
