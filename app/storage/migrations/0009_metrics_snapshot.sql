-- Issue 12: the numbers /metrics derives from PostgreSQL, for the whole service (every
-- tenant, the job queue, the server), read by the app role in one statement. SECURITY
-- DEFINER: the app role sees one tenant at a time under RLS; this returns counts only.
CREATE OR REPLACE FUNCTION qcc_metrics_snapshot()
  RETURNS jsonb
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public
  AS $$
    SELECT jsonb_build_object(
      -- (pg_stat_activity hides other roles' rows from a non-superuser; this does not)
      'connections', (SELECT sum(numbackends) FROM pg_stat_database),
      'max_connections', current_setting('max_connections')::int,
      'queues', (SELECT coalesce(jsonb_object_agg(queue_name, jsonb_build_array(depth, age)), '{}')
                   FROM (SELECT j.queue_name, count(*) AS depth,
                                extract(epoch FROM now() - min(coalesce(j.scheduled_at, e.at)))
                                  AS age
                           FROM procrastinate_jobs j
                           LEFT JOIN procrastinate_events e
                                  ON e.job_id = j.id AND e.type = 'deferred'
                          WHERE j.status = 'todo'
                            AND (j.scheduled_at IS NULL OR j.scheduled_at <= now())
                          GROUP BY j.queue_name) q),
      'workers_alive', (SELECT count(*) FROM procrastinate_workers
                         WHERE last_heartbeat > now() - interval '60 seconds'),
      'notifications_backlog', (SELECT count(*) FROM alert_deliveries
                                 WHERE status IN ('pending', 'sending')),
      'notifications_dead', (SELECT count(*) FROM alert_deliveries WHERE status = 'dead'),
      'export_rows', (SELECT coalesce(sum(rows), 0) FROM exports
                       WHERE status IN ('succeeded', 'expired')),
      'export_bytes', (SELECT coalesce(sum(bytes), 0) FROM exports
                        WHERE status IN ('succeeded', 'expired')))
  $$;
GRANT SELECT ON procrastinate_jobs, procrastinate_events, procrastinate_workers,
                alert_deliveries, exports TO qcc_definer;
REVOKE ALL ON FUNCTION qcc_metrics_snapshot() FROM PUBLIC;
ALTER FUNCTION qcc_metrics_snapshot() OWNER TO qcc_definer;
GRANT EXECUTE ON FUNCTION qcc_metrics_snapshot() TO qcc_app;
