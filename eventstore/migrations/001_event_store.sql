-- The event store: one append-only table of events, one row per stream holding its head.

CREATE TABLE streams (
    stream_id   text        PRIMARY KEY,
    version     bigint      NOT NULL CHECK (version >= 0),
    head_hash   text        NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE events (
    -- Assigned by the database; unique and increasing in the order of INSERT (not of COMMIT).
    global_position bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The appending transaction; readers of the global log order by (transaction_id,
    -- global_position) and stop below the oldest running transaction (see reader.py).
    transaction_id  xid8        NOT NULL DEFAULT pg_current_xact_id(),
    stream_id       text        NOT NULL REFERENCES streams (stream_id),
    stream_version  bigint      NOT NULL CHECK (stream_version > 0),
    event_id        uuid        NOT NULL UNIQUE,
    event_type      text        NOT NULL,
    schema_version  integer     NOT NULL CHECK (schema_version > 0),
    data            jsonb       NOT NULL,
    metadata        jsonb       NOT NULL,
    occurred_at     timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    previous_hash   text        NOT NULL CHECK (previous_hash ~ '^[0-9a-f]{64}$'),
    hash            text        NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$'),
    UNIQUE (stream_id, stream_version)
);

CREATE INDEX events_commit_order ON events (transaction_id, global_position);
CREATE INDEX events_type ON events (event_type);

-- Append-only, enforced by the database itself: no UPDATE, DELETE or TRUNCATE of events.
CREATE FUNCTION eom_refuse_event_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event store is append-only: % on %.% is refused', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation',
              HINT = 'record a new event that corrects the earlier one';
END;
$$;

CREATE TRIGGER events_no_update_or_delete
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION eom_refuse_event_change();

CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION eom_refuse_event_change();

-- A stream's head only moves forward, and a stream is never removed.
CREATE FUNCTION eom_refuse_stream_rewind() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE' OR NEW.version < OLD.version OR NEW.stream_id <> OLD.stream_id THEN
        RAISE EXCEPTION 'streams only move forward: % on stream % is refused', TG_OP, OLD.stream_id
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER streams_forward_only
    BEFORE UPDATE OR DELETE ON streams
    FOR EACH ROW EXECUTE FUNCTION eom_refuse_stream_rewind();

CREATE TRIGGER streams_no_truncate
    BEFORE TRUNCATE ON streams
    FOR EACH STATEMENT EXECUTE FUNCTION eom_refuse_event_change();
