-- One row per finished request. Times are integer microseconds since the Unix epoch (UTC) and money is
-- integer pico-dollars, so SQLite and PostgreSQL compute every figure identically.
CREATE TABLE requests (
    id                 TEXT PRIMARY KEY,   -- x-request-id; makes a retried batch idempotent
    ts_us              BIGINT NOT NULL,   -- request start
    tenant             TEXT NOT NULL DEFAULT '',
    app                TEXT NOT NULL DEFAULT '',
    key_id             TEXT NOT NULL DEFAULT '',
    agent_id           TEXT NOT NULL DEFAULT '',
    tier               TEXT NOT NULL DEFAULT '',
    alias              TEXT NOT NULL DEFAULT '',
    provider           TEXT NOT NULL DEFAULT '',
    provider_model     TEXT NOT NULL DEFAULT '',
    endpoint           TEXT NOT NULL DEFAULT '',
    status             BIGINT NOT NULL DEFAULT 0,
    refusal            TEXT NOT NULL DEFAULT '',
    stream             BIGINT NOT NULL DEFAULT 0,
    prompt_tokens      BIGINT NOT NULL DEFAULT 0,
    completion_tokens  BIGINT NOT NULL DEFAULT 0,
    cached_read_tokens BIGINT NOT NULL DEFAULT 0,
    cache_write_tokens BIGINT NOT NULL DEFAULT 0,
    reasoning_tokens   BIGINT NOT NULL DEFAULT 0,
    usage_known        BIGINT NOT NULL DEFAULT 0,
    estimated          BIGINT NOT NULL DEFAULT 0,
    cost_known         BIGINT NOT NULL DEFAULT 0,
    cost_pico          BIGINT NOT NULL DEFAULT 0,
    latency_us         BIGINT NOT NULL DEFAULT 0,
    ttfb_us            BIGINT NOT NULL DEFAULT 0,
    proc_us            BIGINT NOT NULL DEFAULT 0,
    cache_hit          SMALLINT,            -- NULL: no response cache decided
    metadata           JSONB NOT NULL DEFAULT '{}'
);
CREATE INDEX requests_ts ON requests (ts_us);
CREATE INDEX requests_tenant_ts ON requests (tenant, ts_us);
