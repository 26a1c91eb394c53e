-- Files submitted with an OpenRosa instance (a photo of a results protocol...): each is
-- named by its instance's answer and kept with its SHA-256, once per (mission,
-- instanceID, file name). A resend stores nothing new.
CREATE TABLE submission_attachments (
    mission_id      text        NOT NULL,
    submission_id   text        NOT NULL,
    name            text        NOT NULL,
    content_type    text        NOT NULL,
    sha256          bytea       NOT NULL CHECK (octet_length(sha256) = 32),
    content         bytea       NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (mission_id, submission_id, name)
);
