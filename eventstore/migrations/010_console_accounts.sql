-- The web console's people: the user directory's read model (its changes are events in
-- the stream '_console-users', and each change of this table is made in the transaction
-- that appends its event), one-time sign-in links and sessions. Secrets are stored only
-- as their SHA-256 (hex); a session's CSRF token is derived from its secret, not stored.

CREATE TABLE console_users (
    user_id       uuid        PRIMARY KEY,
    email         text        NOT NULL,
    name          text        NOT NULL,
    language      text        NOT NULL CHECK (language IN ('en', 'ru', 'tr')),
    role          text        NOT NULL CHECK (role IN
                      ('coordinator', 'head_of_mission', 'observer', 'member_state', 'auditor')),
    organisation  text,
    mission_id    text,
    member_state  text        CHECK (member_state ~ '^[A-Z]{2}$'),
    team_id       text,
    added_at      timestamptz NOT NULL,
    disabled_at   timestamptz,
    -- The directory stream's version whose event last changed this row.
    version       bigint      NOT NULL CHECK (version > 0)
);

-- One person, one address: e-mail addresses are unique whatever their case.
CREATE UNIQUE INDEX console_users_email ON console_users (lower(email));

CREATE TABLE console_sign_in_links (
    link_hash     text        PRIMARY KEY CHECK (link_hash ~ '^[0-9a-f]{64}$'),
    user_id       uuid        NOT NULL REFERENCES console_users (user_id),
    issued_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at    timestamptz NOT NULL,
    used_at       timestamptz
);

CREATE INDEX console_sign_in_links_user ON console_sign_in_links (user_id);

CREATE TABLE console_sessions (
    session_id    uuid        PRIMARY KEY,
    session_hash  text        NOT NULL UNIQUE CHECK (session_hash ~ '^[0-9a-f]{64}$'),
    user_id       uuid        NOT NULL REFERENCES console_users (user_id),
    started_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at    timestamptz NOT NULL,
    ended_at      timestamptz
);

CREATE INDEX console_sessions_open ON console_sessions (user_id) WHERE ended_at IS NULL;
