-- calls: one row per call (kind + call_id), its latest change in call_changes.
--
-- The latest change is the one with the highest record_version (the item's generation,
-- then its revision: a call stored again after it expired orders after its expiry).
-- At the same version a removal (expired or deleted) wins over the live change it
-- removed, since it carries the item's last image; then the latest emitted_at, then the
-- event_id, so that the choice never depends on the order rows arrived in. Redeliveries
-- and backfills add rows with the same values: they change nothing here.
-- A call whose latest change is a removal is left out.
--
-- Plain SQL that Athena (Trino) and DuckDB both run: it is the view `calls` in both
-- (lake.yaml holds it for Athena, generated from this file by devtools/lake_template.py).
SELECT
    call_id,
    kind,
    call_start_utc,
    call_end_utc,
    answer_utc,
    duration_sec,
    outcome,
    hangup_by,
    hangup_cause,
    direction,
    caller_number,
    callee_number,
    did_number,
    did_y_number,
    bind_id,
    customer_bind_id,
    recording_state,
    recording_key,
    recording_keys,
    sources,
    first_seen_at,
    last_seen_at,
    record_version
FROM (
    SELECT
        *,
        row_number() OVER (
            PARTITION BY kind, call_id
            ORDER BY
                record_version DESC,
                CASE WHEN detail_type IN ('Call Record Expired', 'Call Record Deleted') THEN 1 ELSE 0 END DESC,
                emitted_at DESC,
                event_id DESC
        ) AS change_rank
    FROM call_changes
) AS ranked
WHERE change_rank = 1
    AND detail_type NOT IN ('Call Record Expired', 'Call Record Deleted')
