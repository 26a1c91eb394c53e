-- The HTTP API: bearer tokens (stored only as hashes), idempotency keys, and a
-- notification per appended stream so that live event streams need no polling.

CREATE TABLE api_tokens (
    token_id      uuid        PRIMARY KEY,
    token_hash    text        NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    name          text        NOT NULL,
    role          text        NOT NULL CHECK (role IN
                      ('coordinator', 'head_of_mission', 'observer', 'member_state', 'auditor')),
    organisation  text,
    mission_id    text,
    member_state  text        CHECK (member_state ~ '^[A-Z]{2}$'),
    team_id       text,
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at    timestamptz,
    revoked_at    timestamptz
);

CREATE TABLE api_idempotency (
    token_id      uuid        NOT NULL REFERENCES api_tokens (token_id),
    key           text        NOT NULL,
    request_hash  text        NOT NULL,
    status_code   integer     NOT NULL,
    response      jsonb       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (token_id, key)
);

CREATE FUNCTION eom_notify_append() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Identical payloads within one transaction are delivered once.
    PERFORM pg_notify('eom_events', NEW.stream_id);
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_notify_append
    AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION eom_notify_append();
