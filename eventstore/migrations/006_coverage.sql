-- Election-day coverage, kept by the "coverage" projection (intake/coverage.py) from the
-- global log: one row per report (with the correction that replaced it, if any), its
-- findings, the stations reported by more than one team, and missed check-ins. Every
-- row carries the global position of the event behind it, so each figure is traceable.

CREATE TABLE coverage_reports (
    mission_id      text    NOT NULL,
    submission_id   text    NOT NULL,
    kind            text    NOT NULL,
    station_id      text    NOT NULL,
    locality        text    NOT NULL,
    team_id         text    NOT NULL,
    phases          text[]  NOT NULL,
    corrects        text,
    superseded_by   text,
    global_position bigint  NOT NULL,
    PRIMARY KEY (mission_id, submission_id)
);

CREATE TABLE coverage_findings (
    mission_id      text    NOT NULL,
    submission_id   text    NOT NULL,
    n               int     NOT NULL,
    category        text    NOT NULL,
    assessment      text    NOT NULL,
    global_position bigint  NOT NULL,
    PRIMARY KEY (mission_id, submission_id, n)
);

CREATE TABLE coverage_conflicts (
    mission_id      text    NOT NULL,
    station_id      text    NOT NULL,
    team_ids        text[]  NOT NULL,
    submission_ids  text[]  NOT NULL,
    global_position bigint  NOT NULL,
    PRIMARY KEY (mission_id, station_id)
);

CREATE TABLE coverage_alerts (
    mission_id      text        NOT NULL,
    team_id         text        NOT NULL,
    phase           text        NOT NULL,
    due_at          timestamptz NOT NULL,
    global_position bigint      NOT NULL,
    PRIMARY KEY (mission_id, team_id, phase)
);
