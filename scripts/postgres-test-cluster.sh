#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the store's Postgres tests.
#
#   scripts/postgres-test-cluster.sh start   # install if needed, start, print the URL on stdout
#   scripts/postgres-test-cluster.sh url     # print the URL of the running cluster
#   scripts/postgres-test-cluster.sh stop    # stop it and delete its files
#
#   GATECAST_TEST_POSTGRES_URL=$(scripts/postgres-test-cluster.sh start) \
#     cargo test -p gatecast-store
#
# The cluster lives in a fresh temp dir, listens on 127.0.0.1 only, on a free port, with a
# random password. PostgreSQL refuses to run as root, so as root it runs as the `postgres`
# system user that Debian's package creates. When PostgreSQL is missing it is installed with
# apt-get (root only). Any failure exits non-zero with a message: it never skips silently.
#
# Environment: GATECAST_PG_STATE (state file, default ${TMPDIR:-/tmp}/gatecast-pg-test.env).
set -euo pipefail

STATE="${GATECAST_PG_STATE:-${TMPDIR:-/tmp}/gatecast-pg-test.env}"
DB_NAME="gatecast_test"
DB_USER="gatecast"

die() {
  printf 'postgres-test-cluster: error: %s\n' "$*" >&2
  exit 1
}
log() { printf 'postgres-test-cluster: %s\n' "$*" >&2; }

# Prints the directory holding initdb/pg_ctl/postgres, newest version first.
find_bindir() {
  local dir
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" && -x "$dir/postgres" ]]; then
      echo "$dir"
      return 0
    fi
  done
  local initdb
  if initdb=$(command -v initdb 2>/dev/null) && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(readlink -f "$initdb")"
    return 0
  fi
  return 1
}

install_postgres() {
  [[ $(id -u) -eq 0 ]] || die "PostgreSQL (initdb, pg_ctl) is not installed and installing it needs root: run 'apt-get install postgresql' first"
  command -v apt-get >/dev/null 2>&1 || die "PostgreSQL is not installed and apt-get is not available to install it"
  log "PostgreSQL not found; installing it with apt-get"
  # The package's own cluster is not used; keep its service from starting where possible.
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 || die "apt-get update failed"
  apt-get install -y -qq postgresql >&2 || die "apt-get install postgresql failed"
}

# Runs a command as the cluster's owner.
as_owner() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u "$OWNER" -- "$@"
  else
    "$@"
  fi
}

port_is_free() {
  # A refused connection means nothing listens there.
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pick_port() {
  local port i
  for i in $(seq 1 50); do
    port=$(( 20000 + RANDOM % 40000 ))
    if port_is_free "$port"; then
      echo "$port"
      return 0
    fi
  done
  die "could not find a free local port"
}

load_state() {
  [[ -f "$STATE" ]] || return 1
  # shellcheck disable=SC1090
  source "$STATE"
}

is_running() {
  load_state && [[ -d "${PGDATA_DIR:-}" ]] &&
    OWNER="$OWNER" as_owner "$BINDIR/pg_ctl" -D "$PGDATA_DIR" status >/dev/null 2>&1
}

cmd_start() {
  if is_running; then
    log "already running on port $PORT"
    echo "$URL"
    return 0
  fi
  [[ -f "$STATE" ]] && { log "removing stale state $STATE"; cmd_stop >/dev/null 2>&1 || true; }

  BINDIR=$(find_bindir) || { install_postgres; BINDIR=$(find_bindir) || die "PostgreSQL was installed but initdb/pg_ctl cannot be found under /usr/lib/postgresql/*/bin"; }

  if [[ $(id -u) -eq 0 ]]; then
    OWNER=postgres
    if ! id "$OWNER" >/dev/null 2>&1; then
      log "creating system user $OWNER"
      useradd --system --home-dir /var/lib/postgresql --shell /usr/sbin/nologin "$OWNER" ||
        die "cannot create the '$OWNER' user to own the cluster (PostgreSQL refuses to run as root)"
    fi
    command -v runuser >/dev/null 2>&1 || die "runuser is needed to run PostgreSQL as '$OWNER'"
  else
    OWNER=$(id -un)
  fi

  local dir password port
  dir=$(mktemp -d "${TMPDIR:-/tmp}/gatecast-pg.XXXXXX")
  chmod 0755 "$dir"
  password=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
  printf '%s\n' "$password" >"$dir/pwfile"
  chmod 0600 "$dir/pwfile"
  [[ $(id -u) -eq 0 ]] && chown -R "$OWNER" "$dir"
  PGDATA_DIR="$dir/data"

  log "initdb in $PGDATA_DIR (PostgreSQL from $BINDIR, owner $OWNER)"
  if ! as_owner "$BINDIR/initdb" -D "$PGDATA_DIR" -U "$DB_USER" --pwfile="$dir/pwfile" \
      -A scram-sha-256 -E UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1; then
    cat "$dir/initdb.log" >&2
    rm -rf "$dir"
    die "initdb failed"
  fi
  rm -f "$dir/pwfile"

  local attempt started=0
  for attempt in 1 2 3; do
    port=$(pick_port)
    if as_owner "$BINDIR/pg_ctl" -D "$PGDATA_DIR" -l "$dir/server.log" -w -t 60 \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
        start >/dev/null 2>&1; then
      started=1
      break
    fi
    log "start on port $port failed (attempt $attempt)"
  done
  if [[ $started -ne 1 ]]; then
    tail -n 30 "$dir/server.log" >&2 || true
    rm -rf "$dir"
    die "PostgreSQL did not start; see the log above"
  fi

  if ! PGPASSWORD="$password" "$BINDIR/createdb" -h 127.0.0.1 -p "$port" -U "$DB_USER" "$DB_NAME" >&2; then
    as_owner "$BINDIR/pg_ctl" -D "$PGDATA_DIR" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    die "createdb $DB_NAME failed"
  fi

  URL="postgres://$DB_USER:$password@127.0.0.1:$port/$DB_NAME"
  PORT=$port
  umask 077
  cat >"$STATE" <<EOF
BINDIR='$BINDIR'
OWNER='$OWNER'
DIR='$dir'
PGDATA_DIR='$PGDATA_DIR'
PORT='$PORT'
URL='$URL'
EOF
  log "running on 127.0.0.1:$port (state in $STATE)"
  echo "$URL"
}

cmd_url() {
  is_running || die "no test cluster is running; run '$0 start'"
  echo "$URL"
}

cmd_stop() {
  if ! load_state; then
    log "no test cluster to stop"
    return 0
  fi
  if [[ -d "${PGDATA_DIR:-}" ]]; then
    as_owner "$BINDIR/pg_ctl" -D "$PGDATA_DIR" -m fast -w -t 30 stop >/dev/null 2>&1 ||
      as_owner "$BINDIR/pg_ctl" -D "$PGDATA_DIR" -m immediate stop >/dev/null 2>&1 || true
  fi
  # Only ever delete what this script created.
  case "${DIR:-}" in
    "${TMPDIR:-/tmp}"/gatecast-pg.*) rm -rf "$DIR" ;;
    *) log "not deleting unexpected directory '${DIR:-}'" ;;
  esac
  rm -f "$STATE"
  log "stopped"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  url) cmd_url ;;
  *)
    echo "usage: $0 start|stop|url" >&2
    exit 2
    ;;
esac
