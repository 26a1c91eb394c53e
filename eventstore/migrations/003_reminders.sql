-- Reminders to member states: who to reach and how (the directory), when to remind
-- (ladders per organisation and kind), and what was sent or failed (the outbox).
--
-- These tables are operational state, not the record: what a mission decided lives in
-- the event store; the outbox only proves which message went where, and when.

CREATE TABLE member_states (
    organisation      text        NOT NULL CHECK (organisation <> ''),
    code              char(2)     NOT NULL CHECK (code ~ '^[A-Z]{2}$'),
    name              text        NOT NULL CHECK (name <> ''),
    language          text        NOT NULL DEFAULT 'en'
                          CHECK (language ~ '^[a-z]{2,3}(-[A-Za-z0-9]{1,8})*$'),
    email             text,
    webhook_url       text        CHECK (webhook_url ~ '^https?://'),
    webhook_secret    text,
    -- The Secretariat or a permanent representative: told when a deadline passes unanswered.
    escalation_email  text        NOT NULL,
    escalation_name   text,
    created_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (organisation, code),
    CONSTRAINT member_states_has_channel CHECK (email IS NOT NULL OR webhook_url IS NOT NULL),
    -- An unsigned webhook would let anyone who learns the URL impersonate eom.
    CONSTRAINT member_states_webhook_signed
        CHECK (webhook_url IS NULL OR webhook_secret IS NOT NULL)
);

CREATE TABLE reminder_ladders (
    organisation            text        NOT NULL CHECK (organisation <> ''),
    kind                    text        NOT NULL
                                CHECK (kind IN ('nomination', 'acknowledgement', 'evidence')),
    -- Seconds BEFORE the deadline at which a reminder goes, largest first: {604800,172800,0}.
    offsets_seconds         integer[]   NOT NULL CHECK (0 <= ALL (offsets_seconds)),
    -- Seconds AFTER the deadline at which the escalation contact is told.
    escalate_after_seconds  integer     NOT NULL DEFAULT 0 CHECK (escalate_after_seconds >= 0),
    created_at              timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at              timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (organisation, kind)
);

CREATE TABLE outbox (
    -- Chosen by the caller, deterministically: the same message retried has the same id.
    message_id    text        PRIMARY KEY,
    mission_id    text        NOT NULL,
    organisation  text        NOT NULL,
    member_state  text        NOT NULL CHECK (member_state ~ '^[A-Z]{2}$'),
    kind          text        NOT NULL
                      CHECK (kind IN ('nomination', 'acknowledgement', 'evidence')),
    purpose       text        NOT NULL CHECK (purpose IN ('reminder', 'escalation', 'request')),
    -- Unknown while the recipient is not in the directory (a failed attempt says so).
    channel       text        CHECK (channel IN ('email', 'webhook')),
    address       text,
    subject       text,
    body          text,
    status        text        NOT NULL CHECK (status IN ('sent', 'failed')),
    attempts      integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    error         text,
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- The last attempt, successful or not.
    updated_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    sent_at       timestamptz,
    CONSTRAINT outbox_sent_complete CHECK (
        status <> 'sent' OR (sent_at IS NOT NULL AND channel IS NOT NULL AND address IS NOT NULL)
    )
);

CREATE INDEX outbox_mission ON outbox (mission_id, created_at);
CREATE INDEX outbox_recent ON outbox (updated_at);
