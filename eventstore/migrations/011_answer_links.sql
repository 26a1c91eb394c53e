-- Answer links: the link in each request and reminder by which a member state's (or an
-- organisation's) focal point answers it in the console, without an API token.
--
-- A link is a bearer secret: only its SHA-256 is kept here, so that reading this table
-- gives no usable link. A link is bound to one request (mission, recipient, kind, cycle);
-- every message of that request carries a link of its own, and all of them stop working
-- once the mission's record shows the request answered (the console checks the record)
-- or when they expire.

CREATE TABLE answer_links (
    secret_sha256  bytea       PRIMARY KEY CHECK (octet_length(secret_sha256) = 32),
    mission_id     text        NOT NULL CHECK (mission_id <> ''),
    -- An ISO 3166-1 alpha-2 code (a state) or an international organisation's name.
    recipient      text        NOT NULL CHECK (recipient <> ''),
    kind           text        NOT NULL
                       CHECK (kind IN ('nomination', 'acknowledgement', 'evidence')),
    -- The follow-up cycle of an evidence request (from 1); 0 for the other kinds.
    cycle          integer     NOT NULL DEFAULT 0 CHECK (cycle >= 0),
    -- The message (outbox key) that carried it; NULL for a link issued otherwise.
    message_id     text,
    issued_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at     timestamptz NOT NULL,
    CONSTRAINT answer_links_cycle CHECK ((kind = 'evidence') = (cycle >= 1))
);

CREATE INDEX answer_links_request ON answer_links (mission_id, kind, cycle, recipient);
CREATE INDEX answer_links_message ON answer_links (message_id) WHERE message_id IS NOT NULL;
