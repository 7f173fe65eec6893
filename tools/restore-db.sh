#!/usr/bin/env bash
# Restore a QC Collector backup made by tools/backup-db.sh.
#
#   tools/restore-db.sh BACKUP.dump.gz           verify, then restore
#   tools/restore-db.sh --check BACKUP.dump.gz   verify only: the file checks, then a
#                                                restore into a scratch database made on
#                                                the target server (dropped afterwards)
#                                                whose row counts and content hashes must
#                                                equal BACKUP.dump.gz.content (written by
#                                                backup-db.sh from the dumped snapshot)
#
# Checks before touching the target: the sha256 sidecar matches, gzip -t passes,
# pg_restore can list the archive, every role the archive names (owners, grantees —
# e.g. qcc_app, qcc_definer) exists in the target cluster, and the target database is
# empty. Then one pg_restore --single-transaction: all of it or nothing. Owners, grants
# and row-level security policies are restored as they were, so the app role works on
# the restored database exactly as before (roles are cluster-wide: create missing ones
# first, see docs/RUNBOOK.md).
#
# Target (libpq): DATABASE_URL, else DB_HOST, DB_PORT (5432), DB_NAME, DB_USER,
# DB_PASSWORD — a superuser or the owner role (with the right to SET ROLE to the
# archive's owners). The database must already exist (createdb).
#
# Environment:
#   RESTORE_CLEAN         true: drop the objects the archive contains before restoring
#                         into a database that is not empty (default false: refuse)
#   RESTORE_CREATE_ROLES  true: create the missing roles as NOLOGIN roles without a
#                         password (a restore drill or a brand-new cluster; default
#                         false: refuse). Give login roles their passwords afterwards.
#   PG_BIN                directory holding pg_restore and psql (default: PATH)
set -euo pipefail

log() { printf '%s restore-db: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

tool() {
  if [[ -n "${PG_BIN:-}" ]]; then printf '%s/%s' "${PG_BIN%/}" "$1"; else printf '%s' "$1"; fi
}
PG_RESTORE=$(tool pg_restore)
PSQL=$(tool psql)

check_only=false
if [[ "${1:-}" == "--check" ]]; then check_only=true; shift; fi
[[ $# -eq 1 ]] || die "usage: $0 [--check] BACKUP.dump.gz"
backup=$1
[[ -f "$backup" ]] || die "$backup not found"
sidecar="$backup.sha256"
[[ -f "$sidecar" ]] || die "$sidecar not found: cannot verify the backup"

for command in "$PG_RESTORE" gzip sha256sum; do
  command -v "$command" >/dev/null || die "$command not found (set PG_BIN or PATH)"
done

log "verifying $backup"
expected=$(cut -d' ' -f1 <"$sidecar")
actual=$(sha256sum <"$backup" | cut -d' ' -f1)
[[ "$expected" == "$actual" ]] || die "sha256 mismatch: the backup is damaged or not the one the sidecar describes"
gzip -t "$backup" || die "gzip -t failed"

work=$(mktemp)  # in $TMPDIR
trap 'rm -f "$work"' EXIT
gzip -dc "$backup" >"$work"
listing=$("$PG_RESTORE" --list "$work") || die "pg_restore cannot read the archive"
entries=$(grep -c ' TABLE DATA ' <<<"$listing" || true)
[[ "$entries" -gt 0 ]] || die "the archive lists no table data"
log "ok: checksum, gzip and archive listing ($entries tables with data)"

connection=()
if [[ -n "${DATABASE_URL:-}" ]]; then
  connection=(--dbname="$DATABASE_URL")
else
  : "${DB_HOST:?set DATABASE_URL or DB_HOST, DB_NAME and DB_USER}"
  : "${DB_NAME:?set DATABASE_URL or DB_NAME}"
  : "${DB_USER:?set DATABASE_URL or DB_USER}"
  export PGHOST="$DB_HOST" PGPORT="${DB_PORT:-5432}" PGUSER="$DB_USER"
  if [[ -n "${DB_PASSWORD:-}" ]]; then export PGPASSWORD="$DB_PASSWORD"; fi
  connection=(--dbname="$DB_NAME")
fi
psql_target() { "$PSQL" --no-psqlrc --no-password --quiet -v ON_ERROR_STOP=1 "${connection[@]}" "$@"; }

command -v "$PSQL" >/dev/null || die "$PSQL not found (set PG_BIN or PATH)"

if [[ "$check_only" == "true" ]]; then
  [[ -f "$backup.content" ]] || die "$backup.content not found: cannot compare the restored rows"
  expected_content=$(<"$backup.content")
  # Same hashes as tools/backup-db.sh (keep the two in step).
  CONTENT_SQL=$(cat <<'SQL'
SET datestyle = ISO; SET TimeZone = 'UTC'; SET extra_float_digits = 3; SET intervalstyle = postgres;
SELECT 'SELECT coalesce(string_agg(v, '' '' ORDER BY v), '''') FROM ('
       || string_agg(format('SELECT %L || ''='' || count(*) || '':'' || coalesce(sum((''x'' || substr(md5(r::text), 1, 15))::bit(60)::bigint), 0) AS v FROM %I.%I AS r',
                            format('%I.%I', schemaname, tablename), schemaname, tablename), ' UNION ALL ')
       || ') AS s'
  FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')
\gexec
SQL
  )
  # pg_dump turns check_function_bodies off, so a damaged function body restores without
  # complaint: every SQL and PL/pgSQL function is defined again with the check on.
  FUNCTIONS_SQL=$(cat <<'SQL'
SET check_function_bodies = on; SET search_path = public, pg_catalog;
SELECT pg_get_functiondef(p.oid) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND p.prokind IN ('f', 'p')
   AND p.prolang IN (SELECT oid FROM pg_language WHERE lanname IN ('sql', 'plpgsql'))
\gexec
SQL
  )
  scratch="qcc_check_$(date -u +%Y%m%d%H%M%S)_$$"
  trap 'rm -f "$work"; psql_target --command="DROP DATABASE IF EXISTS \"$scratch\"" >/dev/null 2>&1 || true' EXIT
  psql_target --command="CREATE DATABASE \"$scratch\"" >/dev/null
  { printf '\\connect %s\n' "$scratch"; "$PG_RESTORE" --no-owner --no-privileges --file=- "$work"
      printf '%s\n' "$FUNCTIONS_SQL"; } \
    | psql_target --single-transaction >/dev/null || die "the archive does not restore into a scratch database"
  restored=$({ printf '\\connect %s\n' "$scratch"; printf '%s\n' "$CONTENT_SQL"; } \
    | psql_target --tuples-only --no-align) || die "could not hash the scratch database"
  [[ "$restored" == "$expected_content" ]] \
    || die "restored rows differ from the backup's snapshot: $(diff <(tr ' ' '\n' <<<"$expected_content") <(tr ' ' '\n' <<<"$restored") | head -5 | tr '\n' ' ')"
  log "ok: restored into a scratch database; row counts and content hashes of $(wc -w <<<"$restored") tables equal the backup's"
  exit 0
fi

# Every role the archive assigns ownership or privileges to must exist in this cluster;
# a restore that silently skipped them would leave the app role without its grants.
roles=$("$PG_RESTORE" --schema-only --file=- "$work" \
  | { grep -oE '(OWNER TO|^GRANT .* TO|^REVOKE .* FROM) [^;]+;' || true; } \
  | sed -E 's/^.* (TO|FROM) //; s/;$//' | tr ',' '\n' | sed -E 's/^ +//; s/ +$//; s/^"(.*)"$/\1/' \
  | { grep -vx 'PUBLIC' || true; } | sort -u | tr '\n' ' ')
if [[ -n "${roles// /}" ]]; then
  missing=$(psql_target --tuples-only --no-align -v roles="$roles" <<'SQL'
SELECT string_agg(r, ' ' ORDER BY r)
  FROM unnest(string_to_array(trim(:'roles'), ' ')) AS r
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r);
SQL
  )
  if [[ -n "$missing" && "${RESTORE_CREATE_ROLES:-false}" == "true" ]]; then
    for role in $missing; do
      log "creating missing role $role (NOLOGIN)"
      psql_target -v role="$role" <<'SQL'
CREATE ROLE :"role" NOLOGIN;
SQL
    done
    missing=""
  fi
  [[ -z "$missing" ]] || die "roles missing in the target cluster: $missing (create them first, see docs/RUNBOOK.md, or set RESTORE_CREATE_ROLES=true)"
  log "roles the archive needs are present: ${roles% }"
fi

existing=$(psql_target --tuples-only --no-align <<'SQL'
SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
   AND c.relkind IN ('r', 'p', 'v', 'm', 'S');
SQL
)
clean=()
if [[ "$existing" -gt 0 ]]; then
  [[ "${RESTORE_CLEAN:-false}" == "true" ]] \
    || die "the target database is not empty ($existing relations); restore into a new database or set RESTORE_CLEAN=true"
  log "RESTORE_CLEAN=true: dropping the archive's objects first"
  clean=(--clean --if-exists)
fi

log "restoring"
"$PG_RESTORE" --exit-on-error --single-transaction --no-password "${clean[@]}" \
  "${connection[@]}" "$work"
# pg_restore does not carry planner statistics over: gather them before traffic arrives.
psql_target --command='ANALYZE'
log "restored $backup"
