-- Plans and batches run their statements with generic plans.
--
-- PL/pgSQL caches each statement's plan per connection, but re-plans it on every call with
-- the call's values while those "custom" plans look cheaper than a generic one — and for
-- the statements of `tasker.apply_plan_at_once` and its helpers (jsonb taken apart, rows
-- looked up by key) they kept looking so. Every one of them is a look-up by key whatever
-- the values, so the generic plan is the same plan without the planning. Set on the batch
-- function, the setting holds for everything a batch calls and ends with it. Per call of
-- `tasker.apply_plan_recording`: 575-605 -> 549-588 us under load, 815-927 -> 768-809 us one
-- plan at a time; 500 linear tasks +5-7% steps per second (three interleaved pairs).

ALTER FUNCTION tasker.apply_many(jsonb) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION tasker.apply_many(jsonb, text[], text[]) SET plan_cache_mode = force_generic_plan;
