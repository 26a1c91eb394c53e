-- A token the console issues to a person (the web form's outbox credential, ODK Collect's
-- QR code) names that person: disabling them revokes it with their sessions.
ALTER TABLE api_tokens ADD COLUMN issued_to uuid REFERENCES console_users (user_id);
CREATE INDEX api_tokens_issued_to ON api_tokens (issued_to) WHERE issued_to IS NOT NULL;
