-- Observation forms. Read models of the events they describe (written in the transaction
-- that appends each event), so they never disagree with the log.

-- Form versions in organisations' libraries (their events: stream "_forms", FormPublished).
-- A version is never changed: a change to a form is published as a new version.
CREATE TABLE form_versions (
    organisation    text        NOT NULL CHECK (organisation <> ''),
    form_id         text        NOT NULL CHECK (form_id <> ''),
    version         text        NOT NULL CHECK (version <> ''),
    phase           text        NOT NULL
                        CHECK (phase IN ('opening', 'voting', 'counting', 'tabulation')),
    title           text        NOT NULL,
    definition      jsonb       NOT NULL,
    xform           text        NOT NULL,
    xform_md5       text        NOT NULL,
    event_id        uuid        NOT NULL UNIQUE,
    published_at    timestamptz NOT NULL,
    PRIMARY KEY (organisation, form_id, version)
);

-- The form versions each mission's observers fill (stream "<mission>/forms", FormAssigned).
CREATE TABLE mission_forms (
    mission_id      text        NOT NULL,
    form_id         text        NOT NULL,
    version         text        NOT NULL,
    organisation    text        NOT NULL,
    phase           text        NOT NULL,
    event_id        uuid        NOT NULL UNIQUE,
    assigned_at     timestamptz NOT NULL,
    PRIMARY KEY (mission_id, form_id, version),
    FOREIGN KEY (organisation, form_id, version)
        REFERENCES form_versions (organisation, form_id, version)
);
