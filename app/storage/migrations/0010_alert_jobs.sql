-- Alert delivery runs on the job queue (procrastinate): each delivery row has one job,
-- deferred in the transaction that writes the row, so the dispatcher no longer claims
-- deliveries itself. What the scan that turns windows into notifications asks is only
-- "which tenants have windows to announce" (the deliveries are the queue's now).
-- The delivery rows keep their statuses and attempts: GET /notifications reads them.
CREATE OR REPLACE FUNCTION qcc_alert_tenants_with_work(p_grace interval)
  RETURNS SETOF text
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public
  AS $$
    SELECT DISTINCT tenant_id FROM alert_windows
     WHERE matched > announced AND (announced = 0 OR window_end + p_grace <= now())
  $$;

-- The claim lease is gone with the hand-written claim loop.
ALTER TABLE alert_deliveries DROP COLUMN claim;
COMMENT ON COLUMN alert_deliveries.next_attempt_at IS
  'when pending: the retry job runs not before this (what GET /notifications shows)';
