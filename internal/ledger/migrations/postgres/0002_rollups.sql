-- Hour and day rollups of the requests table: one row per (bucket, tenant, app, key, alias, provider, model,
-- endpoint, status class, refusal), kept up to date in the same transaction as each batch insert, so
-- summaries over long ranges read a few rows per hour or day instead of every request. Percentiles cannot be
-- rolled up and still come from requests. status_class: 0 no response, 4 for 4xx, 5 for 5xx, 2 otherwise.
CREATE TABLE rollup_hour (
    bucket_us          BIGINT NOT NULL,
    tenant             TEXT NOT NULL,
    app                TEXT NOT NULL,
    key_id             TEXT NOT NULL,
    alias              TEXT NOT NULL,
    provider           TEXT NOT NULL,
    provider_model     TEXT NOT NULL,
    endpoint           TEXT NOT NULL,
    status_class       BIGINT NOT NULL,
    refusal            TEXT NOT NULL,
    requests           BIGINT NOT NULL,
    estimated          BIGINT NOT NULL,
    cost_pico          BIGINT NOT NULL,
    latency_us         BIGINT NOT NULL,
    ttfb_us            BIGINT NOT NULL,
    ttfb_count         BIGINT NOT NULL,   -- requests that received a response byte
    cache_seen         BIGINT NOT NULL,
    cache_hits         BIGINT NOT NULL,
    prompt_tokens      BIGINT NOT NULL,
    completion_tokens  BIGINT NOT NULL,
    cached_read_tokens BIGINT NOT NULL,
    cache_write_tokens BIGINT NOT NULL,
    reasoning_tokens   BIGINT NOT NULL,
    PRIMARY KEY (bucket_us, tenant, app, key_id, alias, provider, provider_model, endpoint, status_class, refusal)
);
CREATE INDEX rollup_hour_tenant ON rollup_hour (tenant, bucket_us);
CREATE TABLE rollup_day (
    bucket_us          BIGINT NOT NULL,
    tenant             TEXT NOT NULL,
    app                TEXT NOT NULL,
    key_id             TEXT NOT NULL,
    alias              TEXT NOT NULL,
    provider           TEXT NOT NULL,
    provider_model     TEXT NOT NULL,
    endpoint           TEXT NOT NULL,
    status_class       BIGINT NOT NULL,
    refusal            TEXT NOT NULL,
    requests           BIGINT NOT NULL,
    estimated          BIGINT NOT NULL,
    cost_pico          BIGINT NOT NULL,
    latency_us         BIGINT NOT NULL,
    ttfb_us            BIGINT NOT NULL,
    ttfb_count         BIGINT NOT NULL,   -- requests that received a response byte
    cache_seen         BIGINT NOT NULL,
    cache_hits         BIGINT NOT NULL,
    prompt_tokens      BIGINT NOT NULL,
    completion_tokens  BIGINT NOT NULL,
    cached_read_tokens BIGINT NOT NULL,
    cache_write_tokens BIGINT NOT NULL,
    reasoning_tokens   BIGINT NOT NULL,
    PRIMARY KEY (bucket_us, tenant, app, key_id, alias, provider, provider_model, endpoint, status_class, refusal)
);
CREATE INDEX rollup_day_tenant ON rollup_day (tenant, bucket_us);
INSERT INTO rollup_hour
SELECT (ts_us / 3600000000) * 3600000000, tenant, app, key_id, alias, provider, provider_model, endpoint,
       CASE WHEN status = 0 THEN 0 WHEN status >= 500 THEN 5 WHEN status >= 400 THEN 4 ELSE 2 END, refusal,
       COUNT(*), SUM(estimated), SUM(cost_pico), SUM(latency_us), SUM(ttfb_us), SUM(CASE WHEN ttfb_us > 0 THEN 1 ELSE 0 END),
       SUM(CASE WHEN cache_hit IS NULL THEN 0 ELSE 1 END), SUM(CASE WHEN cache_hit = 1 THEN 1 ELSE 0 END),
       SUM(prompt_tokens), SUM(completion_tokens), SUM(cached_read_tokens), SUM(cache_write_tokens), SUM(reasoning_tokens)
FROM requests
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10;
INSERT INTO rollup_day
SELECT (ts_us / 86400000000) * 86400000000, tenant, app, key_id, alias, provider, provider_model, endpoint,
       CASE WHEN status = 0 THEN 0 WHEN status >= 500 THEN 5 WHEN status >= 400 THEN 4 ELSE 2 END, refusal,
       COUNT(*), SUM(estimated), SUM(cost_pico), SUM(latency_us), SUM(ttfb_us), SUM(CASE WHEN ttfb_us > 0 THEN 1 ELSE 0 END),
       SUM(CASE WHEN cache_hit IS NULL THEN 0 ELSE 1 END), SUM(CASE WHEN cache_hit = 1 THEN 1 ELSE 0 END),
       SUM(prompt_tokens), SUM(completion_tokens), SUM(cached_read_tokens), SUM(cache_write_tokens), SUM(reasoning_tokens)
FROM requests
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10;
