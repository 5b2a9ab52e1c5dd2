-- Spend per UTC day, virtual key, user and model, added to by every replica at once
-- (INSERT ... ON CONFLICT DO UPDATE SET x = spend.x + excluded.x). `key_name` and `user_name`
-- are '' when the request had none. Cost is in integer nano-dollars so that concurrent
-- additions are exact and their order does not matter, as floating-point sums' does. The day
-- is `YYYY-MM-DD` text, as on SQLite, so one statement serves both.
CREATE TABLE spend (
    day                         TEXT NOT NULL,
    key_name                    TEXT NOT NULL,
    user_name                   TEXT NOT NULL,
    model                       TEXT NOT NULL,
    cost_nanousd                BIGINT NOT NULL DEFAULT 0,
    requests                    BIGINT NOT NULL DEFAULT 0,
    unpriced_requests           BIGINT NOT NULL DEFAULT 0,
    input_tokens                BIGINT NOT NULL DEFAULT 0,
    output_tokens               BIGINT NOT NULL DEFAULT 0,
    cache_read_input_tokens     BIGINT NOT NULL DEFAULT 0,
    cache_creation_input_tokens BIGINT NOT NULL DEFAULT 0,
    reasoning_output_tokens     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (day, key_name, user_name, model)
);
-- What the budget check sums: one key since the start of its period.
CREATE INDEX spend_key_day ON spend (key_name, day);

-- A key's spending cap (NULL: none), and the UTC calendar period it applies to.
ALTER TABLE virtual_keys
    ADD COLUMN budget_usd DOUBLE PRECISION CHECK (budget_usd >= 0),
    ADD COLUMN budget_period TEXT CHECK (budget_period IN ('day', 'week', 'month', 'total'));
