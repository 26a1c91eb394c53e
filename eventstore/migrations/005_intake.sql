-- Election-day intake (intake/): submissions are events in one stream per polling station
-- ("<mission>/stations/<station>"); these tables are kept in the same transaction as the
-- events they describe, so they never disagree with the log.

-- The stations a mission may report from (their events: stream "<mission>/stations").
CREATE TABLE polling_stations (
    mission_id  text NOT NULL,
    station_id  text NOT NULL,
    locality    text NOT NULL,
    name        text,
    PRIMARY KEY (mission_id, station_id)
);

-- One row per recorded submission: a resubmission is found here and answered with the
-- first result; conflicts and check-ins are looked up here.
CREATE TABLE intake_receipts (
    mission_id      text        NOT NULL,
    submission_id   text        NOT NULL,
    kind            text        NOT NULL,
    station_id      text        NOT NULL,
    team_id         text        NOT NULL,
    phases          text[]      NOT NULL,
    corrects        text,
    content_sha256  text        NOT NULL,
    event_id        uuid        NOT NULL UNIQUE,
    stream_id       text        NOT NULL,
    stream_version  bigint      NOT NULL,
    global_position bigint      NOT NULL,
    received_at     timestamptz NOT NULL,
    PRIMARY KEY (mission_id, submission_id)
);

CREATE INDEX intake_receipts_station ON intake_receipts (mission_id, station_id);
CREATE INDEX intake_receipts_team ON intake_receipts (mission_id, team_id);

-- The gate every intake transaction holds (FOR SHARE) while it writes: closing election
-- day takes it FOR UPDATE, so it waits for the writes in flight, counts them, and no
-- later one gets through.
CREATE TABLE intake_gates (
    mission_id text        PRIMARY KEY,
    closed_at  timestamptz
);
