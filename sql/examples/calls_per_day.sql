-- Calls per day (UTC): the day each call started, else the day it was first heard of
-- (its partition dt, unless its start is a wrong clock's), with how many were answered.
SELECT
    CAST(coalesce(call_start_utc, first_seen_at) AS DATE) AS call_date,
    count(*) AS calls,
    sum(CASE WHEN outcome = 'answered' THEN 1 ELSE 0 END) AS answered
FROM calls
GROUP BY CAST(coalesce(call_start_utc, first_seen_at) AS DATE)
ORDER BY call_date
