#!/usr/bin/env bash
# Back up the QC Collector database.
#
#   pg_dump (custom format, uncompressed) -> gzip -> integrity check -> sha256 sidecar
#   -> prune backups older than BACKUP_RETENTION_DAYS.
#
# Connection (libpq): DATABASE_URL (a postgresql:// URI or a key=value conninfo), else
# DB_HOST, DB_PORT (5432), DB_NAME, DB_USER, DB_PASSWORD. The role must read every row:
# row-level security is FORCEd on the tenant tables, so use a superuser or the table
# owner with BYPASSRLS (never the app role, which would be refused).
#
# Environment:
#   BACKUP_DIR              where backups go (default ./backups)
#   BACKUP_RETENTION_DAYS   delete backups older than this many days (default 30; 0 keeps all)
#   PG_BIN                  directory holding pg_dump and pg_restore (default: PATH)
#
# Output: $BACKUP_DIR/qc-collector-<UTC time>.dump.gz and <that>.sha256 (sha256sum format);
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

for command in "$PG_DUMP" "$PG_RESTORE" gzip sha256sum find; do
  command -v "$command" >/dev/null || die "$command not found (set PG_BIN or PATH)"
done

mkdir -p "$BACKUP_DIR"
name="qc-collector-$(date -u +%Y%m%dT%H%M%SZ).dump.gz"
[[ ! -e "$BACKUP_DIR/$name" ]] || die "$BACKUP_DIR/$name already exists"

# Work on a temporary file (tmp.*) and rename at the end: a crash never leaves a file
# that looks like a complete backup (nor one the retention step would count).
work=$(mktemp -p "$BACKUP_DIR")  # tmp.* beside the backups; removed on any failure
cleanup() { rm -f "$work" "$work.gz"; }
trap cleanup EXIT

log "dumping"
# Custom format keeps owners, grants, RLS policies and function owners, and lets
# pg_restore list the contents; compression is left to gzip (-Z0) as required.
"$PG_DUMP" --format=custom --compress=0 --no-password "${connection[@]}" --file="$work"

log "checking integrity"
# The archive is listed before compression (pg_restore --list reads a file; on a pipe
# it stops after the table of contents and the writer dies of SIGPIPE); gzip -t then
# proves, by its CRC, that the compressed file holds exactly those bytes.
listing=$("$PG_RESTORE" --list "$work") || die "pg_restore cannot list the archive"
entries=$(grep -c ' TABLE DATA ' <<<"$listing" || true)
[[ "$entries" -gt 0 ]] || die "the archive lists no table data"
gzip -6 --no-name "$work"
gzip -t "$work.gz" || die "gzip -t failed"

mv "$work.gz" "$BACKUP_DIR/$name"
(cd "$BACKUP_DIR" && sha256sum "$name" >"$name.sha256")
log "wrote $BACKUP_DIR/$name ($entries tables with data, $(wc -c <"$BACKUP_DIR/$name") bytes)"

if [[ "$RETENTION_DAYS" -gt 0 ]]; then
  # -mmin instead of -mtime: find's day arithmetic rounds down whole days.
  pruned=$(find "$BACKUP_DIR" -maxdepth 1 -type f \
    \( -name 'qc-collector-*.dump.gz' -o -name 'qc-collector-*.dump.gz.sha256' \) \
    -mmin +$((RETENTION_DAYS * 1440)) -print -delete | wc -l)
  log "retention ${RETENTION_DAYS} days: removed ${pruned} old file(s)"
fi

printf '%s\n' "$BACKUP_DIR/$name"
