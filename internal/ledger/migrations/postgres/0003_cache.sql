-- The response cache's result per request (hit, miss, bypass; '' when the cache was not consulted) and the
-- tokens a hit saved (the stored answer's total tokens, not charged). cache_hit stays the hit-rate input:
-- 1 for a hit, 0 for a miss, NULL for bypass and requests the cache never saw.
ALTER TABLE requests ADD COLUMN cache_result TEXT NOT NULL DEFAULT '';
ALTER TABLE requests ADD COLUMN cache_saved_tokens BIGINT NOT NULL DEFAULT 0;
