#!/usr/bin/env bash
# Back up the QC Collector database.
#
#   pg_dump (custom format, uncompressed) of one snapshot, with every table's row count
#   and content hash taken in that same snapshot -> a restore of the dump into a scratch
#   database whose counts and hashes must be equal -> gzip -> sha256 sidecar and content
#   sidecar -> prune backups older than BACKUP_RETENTION_DAYS.
#
# Connection (libpq): DATABASE_URL (a postgresql:// URI or a key=value conninfo), else
# DB_HOST, DB_PORT (5432), DB_NAME, DB_USER, DB_PASSWORD. The role must read every row:
# row-level security is FORCEd on the tenant tables, so use a superuser or the table
# owner with BYPASSRLS (never the app role, which would be refused).
#
# Environment:
#   BACKUP_DIR              where backups go (default ./backups)
#   BACKUP_RETENTION_DAYS   delete backups older than this many days (default 30; 0 keeps all)
#   PG_BIN                  directory holding pg_dump, pg_restore and psql (default: PATH)
#   BACKUP_VERIFY           true (default): restore into a scratch database and compare;
#                           false skips it (logged), e.g. where the role may not create one
#   BACKUP_VERIFY_URL       where the scratch database is made (the role needs CREATEDB
#                           there; it is dropped afterwards); default: the source server
#
# Output: $BACKUP_DIR/qc-collector-<UTC time>.dump.gz, <that>.sha256 (sha256sum format)
# and <that>.content (one "schema.table=rows:hash" word per table, what a restore of this
# backup must reproduce: tools/restore-db.sh --check compares against it);
# the path of the new backup is the only line on stdout, progress goes to stderr.
# Exit status is non-zero when anything fails; a failed run leaves no partial file.
set -euo pipefail

log() { printf '%s backup-db: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

tool() {
  if [[ -n "${PG_BIN:-}" ]]; then printf '%s/%s' "${PG_BIN%/}" "$1"; else printf '%s' "$1"; fi
}
PG_DUMP=$(tool pg_dump)
PG_RESTORE=$(tool pg_restore)
PSQL=$(tool psql)
VERIFY=${BACKUP_VERIFY:-true}

BACKUP_DIR=${BACKUP_DIR:-./backups}
RETENTION_DAYS=${BACKUP_RETENTION_DAYS:-30}
[[ "$RETENTION_DAYS" =~ ^[0-9]+$ ]] || die "BACKUP_RETENTION_DAYS must be a whole number of days"

# Connection: DATABASE_URL wins; otherwise the DB_* variables become libpq's PG* variables
# (so the password never appears on a command line).
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

for command in "$PG_DUMP" "$PG_RESTORE" "$PSQL" gzip sha256sum find; do
  command -v "$command" >/dev/null || die "$command not found (set PG_BIN or PATH)"
done

mkdir -p "$BACKUP_DIR"
name="qc-collector-$(date -u +%Y%m%dT%H%M%SZ).dump.gz"
[[ ! -e "$BACKUP_DIR/$name" ]] || die "$BACKUP_DIR/$name already exists"

# Work on a temporary file (tmp.*) and rename at the end: a crash never leaves a file
# that looks like a complete backup (nor one the retention step would count).
work=$(mktemp -p "$BACKUP_DIR")  # tmp.* beside the backups; removed on any failure
scratch=""
cleanup() {
  rm -f "$work" "$work.gz" "$work.content"
  if [[ -n "$scratch" ]]; then
    psql_verify --command="DROP DATABASE IF EXISTS \"$scratch\"" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

psql_source() { "$PSQL" --no-psqlrc --no-password --quiet -v ON_ERROR_STOP=1 "${connection[@]}" "$@"; }
psql_verify() {
  if [[ -n "${BACKUP_VERIFY_URL:-}" ]]; then
    "$PSQL" --no-psqlrc --no-password --quiet -v ON_ERROR_STOP=1 --dbname="$BACKUP_VERIFY_URL" "$@"
  else
    psql_source "$@"
  fi
}
# Row count and an order-independent content hash (sum of 60-bit md5 prefixes of each
# row's text) per table, as one line; constant memory whatever the table size. psql's
# \gexec runs the one query built from the table list.
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

log "dumping"
# One snapshot for the dump and the content hashes: a psql session holds a repeatable
# read transaction and exports its snapshot to pg_dump.
coproc SNAP { psql_source --tuples-only --no-align; }
# bash unsets SNAP_PID as soon as the coprocess exits: keep it for the wait below
# shellcheck disable=SC2153 # SNAP_PID is set by coproc
snap_pid=$SNAP_PID
printf '%s\n' "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;" "SELECT pg_export_snapshot();" >&"${SNAP[1]}"
read -r -t 120 snapshot <&"${SNAP[0]}" || die "could not open a snapshot on the source"
# Custom format keeps owners, grants, RLS policies and function owners, and lets
# pg_restore list the contents; compression is left to gzip (-Z0) as required.
"$PG_DUMP" --format=custom --compress=0 --no-password --snapshot="$snapshot" "${connection[@]}" --file="$work"
printf '%s\n' "$CONTENT_SQL" >&"${SNAP[1]}"
read -r -t 3600 content <&"${SNAP[0]}" || die "could not hash the source tables"
printf '%s\n' "COMMIT;" '\q' >&"${SNAP[1]}"
wait "$snap_pid" || die "the snapshot session failed"
[[ -n "$content" ]] || die "the source has no tables"
printf '%s\n' "$content" >"$work.content"

log "checking integrity"
# The archive is listed before compression (pg_restore --list reads a file; on a pipe
# it stops after the table of contents and the writer dies of SIGPIPE); gzip -t then
# proves, by its CRC, that the compressed file holds exactly those bytes.
listing=$("$PG_RESTORE" --list "$work") || die "pg_restore cannot list the archive"
entries=$(grep -c ' TABLE DATA ' <<<"$listing" || true)
[[ "$entries" -gt 0 ]] || die "the archive lists no table data"
if [[ "$VERIFY" == "true" ]]; then
  # The proof that counts: the dump restores (every statement, functions included) and
  # holds exactly the rows of the snapshot. No owners or grants are needed for that.
  scratch="qcc_verify_$(date -u +%Y%m%d%H%M%S)_$$"
  log "restoring into scratch database $scratch"
  psql_verify --command="CREATE DATABASE \"$scratch\"" >/dev/null
  { printf '\\connect %s\n' "$scratch"; "$PG_RESTORE" --no-owner --no-privileges --file=- "$work"
    printf '%s\n' "$FUNCTIONS_SQL"; } \
    | psql_verify --single-transaction >/dev/null || die "the dump does not restore into a scratch database"
  restored=$({ printf '\\connect %s\n' "$scratch"; printf '%s\n' "$CONTENT_SQL"; } \
    | psql_verify --tuples-only --no-align) || die "could not hash the scratch database"
  [[ "$restored" == "$content" ]] || die "the restored rows differ from the source snapshot: $(diff <(tr ' ' '\n' <<<"$content") <(tr ' ' '\n' <<<"$restored") | head -5 | tr '\n' ' ')"
  psql_verify --command="DROP DATABASE \"$scratch\"" >/dev/null
  scratch=""
  log "verified: $(wc -w <<<"$content") tables, row counts and content hashes equal"
else
  log "warning: BACKUP_VERIFY=false: the dump was not restored and compared"
fi

gzip -6 --no-name "$work"
gzip -t "$work.gz" || die "gzip -t failed"

mv "$work.content" "$BACKUP_DIR/$name.content"
mv "$work.gz" "$BACKUP_DIR/$name"
(cd "$BACKUP_DIR" && sha256sum "$name" >"$name.sha256")
log "wrote $BACKUP_DIR/$name ($entries tables with data, $(wc -c <"$BACKUP_DIR/$name") bytes)"

if [[ "$RETENTION_DAYS" -gt 0 ]]; then
  # -mmin instead of -mtime: find's day arithmetic rounds down whole days.
  pruned=$(find "$BACKUP_DIR" -maxdepth 1 -type f \
    \( -name 'qc-collector-*.dump.gz' -o -name 'qc-collector-*.dump.gz.sha256' \
       -o -name 'qc-collector-*.dump.gz.content' \) \
    -mmin +$((RETENTION_DAYS * 1440)) -print -delete | wc -l)
  log "retention ${RETENTION_DAYS} days: removed ${pruned} old file(s)"
fi

printf '%s\n' "$BACKUP_DIR/$name"
