-- One row per finished request. Times are integer microseconds since the Unix epoch (UTC) and money is
-- integer pico-dollars, so SQLite and PostgreSQL compute every figure identically.
CREATE TABLE requests (
    id                 TEXT PRIMARY KEY,   -- x-request-id; makes a retried batch idempotent
    ts_us              INTEGER NOT NULL,   -- request start
    tenant             TEXT NOT NULL DEFAULT '',
    app                TEXT NOT NULL DEFAULT '',
    key_id             TEXT NOT NULL DEFAULT '',
    agent_id           TEXT NOT NULL DEFAULT '',
    tier               TEXT NOT NULL DEFAULT '',
    alias              TEXT NOT NULL DEFAULT '',
    provider           TEXT NOT NULL DEFAULT '',
    provider_model     TEXT NOT NULL DEFAULT '',
    endpoint           TEXT NOT NULL DEFAULT '',
    status             INTEGER NOT NULL DEFAULT 0,
    refusal            TEXT NOT NULL DEFAULT '',
    stream             INTEGER NOT NULL DEFAULT 0,
    prompt_tokens      INTEGER NOT NULL DEFAULT 0,
    completion_tokens  INTEGER NOT NULL DEFAULT 0,
    cached_read_tokens INTEGER NOT NULL DEFAULT 0,
    cache_write_tokens INTEGER NOT NULL DEFAULT 0,
    reasoning_tokens   INTEGER NOT NULL DEFAULT 0,
    usage_known        INTEGER NOT NULL DEFAULT 0,
    estimated          INTEGER NOT NULL DEFAULT 0,
    cost_known         INTEGER NOT NULL DEFAULT 0,
    cost_pico          INTEGER NOT NULL DEFAULT 0,
    latency_us         INTEGER NOT NULL DEFAULT 0,
    ttfb_us            INTEGER NOT NULL DEFAULT 0,
    proc_us            INTEGER NOT NULL DEFAULT 0,
    cache_hit          INTEGER,            -- NULL: no response cache decided
    metadata           TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX requests_ts ON requests (ts_us);
CREATE INDEX requests_tenant_ts ON requests (tenant, ts_us);
