-- Billed minutes per binding (bind_id): each call's duration rounded up to the whole
-- minute, as carriers bill (61 s is 2 minutes, 0 s is 0), summed per binding. Calls with
-- no duration bill nothing here.
SELECT
    bind_id,
    count(*) AS calls,
    coalesce(sum(CAST(ceil(duration_sec / 60.0) AS BIGINT)), 0) AS billed_minutes
FROM calls
WHERE bind_id IS NOT NULL
GROUP BY bind_id
ORDER BY billed_minutes DESC, bind_id
