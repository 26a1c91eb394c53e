-- An Idempotency-Key is reserved before its request runs: the row exists, without a
-- response, while the first request with that key is being answered. A second request
-- with the key waits for that answer (same body) or is refused (another body); exactly
-- one body ever runs.
ALTER TABLE api_idempotency
    ALTER COLUMN status_code DROP NOT NULL,
    ALTER COLUMN response DROP NOT NULL,
    ADD COLUMN completed_at timestamptz;
UPDATE api_idempotency SET completed_at = created_at;
ALTER TABLE api_idempotency ADD CONSTRAINT api_idempotency_answered
    CHECK ((status_code IS NULL) = (response IS NULL)
           AND (status_code IS NULL) = (completed_at IS NULL));
