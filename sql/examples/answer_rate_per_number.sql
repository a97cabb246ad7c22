-- Answer rate per called number (callee_number): the share of the calls to a number that
-- were answered. Answering is what the called side does, so the rate is a property of
-- the number called (an agent's line, a customer's phone), not of the caller. Calls
-- whose outcome is unknown count as not answered; numbers shown as `none` are left out.
SELECT
    callee_number,
    count(*) AS calls,
    sum(CASE WHEN outcome = 'answered' THEN 1 ELSE 0 END) AS answered,
    round(CAST(sum(CASE WHEN outcome = 'answered' THEN 1 ELSE 0 END) AS DOUBLE) / count(*), 4) AS answer_rate
FROM calls
WHERE callee_number IS NOT NULL
GROUP BY callee_number
ORDER BY calls DESC, callee_number
