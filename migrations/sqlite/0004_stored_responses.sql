-- Responses API turns the gateway bridged onto chat completions, kept so that a follow-up
-- with `previous_response_id` works on any replica. `items` is the conversation's items
-- through the turn (JSON); `response` the response object as returned. Only the virtual key
-- that made a turn (`key_name`, '' without keys) may read it. Rows past `expires_at` (Unix
-- seconds) are deleted by the gateway's upkeep.
CREATE TABLE stored_responses (
    id          TEXT PRIMARY KEY,
    key_name    TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    items       TEXT NOT NULL,
    response    TEXT NOT NULL
);
CREATE INDEX stored_responses_expiry ON stored_responses (expires_at);
