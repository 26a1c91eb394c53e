-- Read models kept from the global log by the projector (eventstore/projections.py).
-- Each is rebuilt from scratch by `eom projections rebuild`; the checkpoint is written
-- in the same transaction as the rows, so a crash never skips nor repeats an event.

CREATE TABLE projection_checkpoints (
    projection      text        PRIMARY KEY,
    transaction_id  xid8        NOT NULL,
    global_position bigint      NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE mission_list (
    mission_id    text        PRIMARY KEY,
    organisation  text        NOT NULL,
    host_country  text        NOT NULL,
    election_name text        NOT NULL,
    election_day  date        NOT NULL,
    stage         text        NOT NULL,
    version       bigint      NOT NULL,
    state         jsonb       NOT NULL,
    updated_at    timestamptz NOT NULL
);

CREATE INDEX mission_list_host ON mission_list (host_country, stage);

CREATE TABLE mission_timeline (
    mission_id     text        NOT NULL,
    stream_version bigint      NOT NULL,
    global_position bigint     NOT NULL,
    event_type     text        NOT NULL,
    actor          text,
    occurred_at    timestamptz NOT NULL,
    recorded_at    timestamptz NOT NULL,
    PRIMARY KEY (mission_id, stream_version)
);
