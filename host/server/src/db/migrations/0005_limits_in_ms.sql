-- A job's limits were stored in serde's form of a Duration
-- ("timeout": {"secs": 30, "nanos": 0}); they are now milliseconds and
-- bytes throughout ("timeout_ms": 30000).
UPDATE jobs
SET limits = json_remove(
        json_set(limits, '$.timeout_ms',
            CAST(json_extract(limits, '$.timeout.secs') * 1000
                 + json_extract(limits, '$.timeout.nanos') / 1000000 AS INTEGER)),
        '$.timeout')
WHERE json_type(limits, '$.timeout') = 'object';
