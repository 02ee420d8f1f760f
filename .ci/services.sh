#!/usr/bin/env bash
# Starts (installing first when missing) the real servers the tests talk to:
# MariaDB on 127.0.0.1:3306 and MinIO on 127.0.0.1:9000 (9100 when a server on
# 9000 that is not ours cannot write), plus the AWS CLI and Debian's chromium
# (and python3-pandas with SERVICES_PANDAS=1, for make bench).
# Idempotent: servers already running are left alone. Prints the variables
# the tests read, for `eval "$(bash .ci/services.sh --env)"`.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
tools="$here/.tools"            # git-ignored cache of built tools
state="${SERVICES_STATE:-$here/.tools/state}"
mkdir -p "$tools" "$state"
quiet=0; [ "${1:-}" = "--env" ] && quiet=1
log() { [ "$quiet" = 1 ] && echo "$*" >&2 || echo "$*"; }

apt_ready=0
apt_install() {
  if [ "$apt_ready" = 0 ]; then apt-get update -qq >&2; apt_ready=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

mysql_up() { mariadb -uroot -h127.0.0.1 -P3306 -e 'SELECT 1' >/dev/null 2>&1; }

start_mariadb() {
  if mysql_up; then log "mariadb: running on 127.0.0.1:3306"; return; fi
  if ! command -v mariadbd >/dev/null 2>&1 && [ ! -x /usr/sbin/mariadbd ]; then
    log "mariadb: installing Debian's mariadb-server"
    apt_install mariadb-server mariadb-client
  fi
  if [ ! -d /var/lib/mysql/mysql ]; then
    mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
  fi
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql --bind-address=127.0.0.1 --port=3306 --local-infile=1
  for _ in $(seq 1 60); do mysql_up && break; sleep 0.5; done
  if ! mysql_up; then
    # a fresh install may give root unix_socket auth only: allow the empty TCP password the tests use
    mariadb -uroot -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD(''); FLUSH PRIVILEGES;" 2>/dev/null || true
  fi
  mysql_up || { echo "mariadb: could not start" >&2; exit 1; }
  mariadb -uroot -h127.0.0.1 -e 'CREATE DATABASE IF NOT EXISTS test' >/dev/null
  log "mariadb: started on 127.0.0.1:3306"
}

minio_bin() {
  local running=""
  pid=$(pgrep -xo minio 2>/dev/null || true)
  [ -n "$pid" ] && running=$(readlink -f "/proc/$pid/exe" 2>/dev/null || true)
  for c in "$tools/minio" "$(command -v minio 2>/dev/null || true)" "$(go env GOPATH)/bin/minio" "$running"; do
    [ -n "$c" ] && [ -x "$c" ] && { echo "$c"; return; }
  done
  echo "minio: building from the Go module proxy (about 3 minutes, cached in .tools/)" >&2
  GOBIN="$tools" go install github.com/minio/minio@latest >&2
  echo "$tools/minio"
}

minio_port=9000
minio_up() { curl -fsS -o /dev/null "http://127.0.0.1:$1/minio/health/live" 2>/dev/null; }

# minio_writes checks that the server on port $1 can write: it creates and
# deletes a bucket. A MinIO whose data folder was deleted still answers the
# health check, but refuses every write with 503 SlowDownWrite.
minio_writes() {
  local b="services-probe-$$-$RANDOM" sig=(--aws-sigv4 "aws:amz:us-east-1:s3" --user minioadmin:minioadmin)
  curl -fsS -o /dev/null "${sig[@]}" -X PUT "http://127.0.0.1:$1/$b" 2>/dev/null || return 1
  curl -fsS -o /dev/null "${sig[@]}" -X DELETE "http://127.0.0.1:$1/$b" 2>/dev/null
}

start_minio() {
  if minio_up 9000; then
    if minio_writes 9000; then log "minio: running on 127.0.0.1:9000"; return; fi
    local own; own=$(cat "$state/minio.pid" 2>/dev/null || true)
    if [ -n "$own" ] && [ "$(pgrep -xo minio 2>/dev/null)" = "$own" ]; then
      log "minio: our server on 127.0.0.1:9000 cannot write (data folder gone?): restarting it"
      kill "$own" 2>/dev/null || true
      for _ in $(seq 1 40); do minio_up 9000 || break; sleep 0.25; done
    else
      minio_port=9100
      log "minio: the server on 127.0.0.1:9000 cannot write (it answers but refuses a bucket): starting our own on 127.0.0.1:$minio_port"
      if minio_up $minio_port && minio_writes $minio_port; then return; fi
    fi
  fi
  local bin; bin=$(minio_bin)
  rm -rf "$state/minio.$minio_port"; mkdir -p "$state/minio.$minio_port"
  MINIO_ROOT_USER=minioadmin MINIO_ROOT_PASSWORD=minioadmin MINIO_BROWSER=off \
    setsid nohup "$bin" server --quiet --address 127.0.0.1:$minio_port "$state/minio.$minio_port" >"$state/minio.log" 2>&1 &
  [ "$minio_port" = 9000 ] && echo $! >"$state/minio.pid"
  for _ in $(seq 1 120); do minio_up $minio_port && minio_writes $minio_port && break; sleep 0.25; done
  minio_writes $minio_port || { echo "minio: could not start a server that writes (see $state/minio.log)" >&2; exit 1; }
  log "minio: started on 127.0.0.1:$minio_port (data in $state/minio.$minio_port)"
}

ensure_awscli() {
  if command -v aws >/dev/null 2>&1 && aws --version >/dev/null 2>&1; then return; fi
  log "aws: installing Debian's awscli"
  apt_install awscli
}

# Debian's chromium: the browser test of the live page and the run report
# drives it headless (as root it needs --no-sandbox, which the test passes).
ensure_chromium() {
  if command -v chromium >/dev/null 2>&1; then return; fi
  log "chromium: installing Debian's chromium"
  apt_install chromium
}

# pandas (Debian's python3-pandas), only for `make bench`: the seeds' runtime
# floor its cold-start section compares the bootstraps with.
ensure_pandas() {
  if python3 -c 'import pandas' >/dev/null 2>&1 || /usr/bin/python3 -c 'import pandas' >/dev/null 2>&1; then return; fi
  log "pandas: installing Debian's python3-pandas (the cold-start baseline of make bench)"
  apt_install python3-pandas
}

command -v curl >/dev/null 2>&1 || apt_install curl
start_mariadb
start_minio
ensure_awscli
ensure_chromium
if [ "${SERVICES_PANDAS:-}" = 1 ]; then ensure_pandas; fi

if [ "$quiet" = 1 ]; then
  echo "export TEST_MYSQL_DSN='root@tcp(127.0.0.1:3306)/'"
  echo "export TEST_S3_ENDPOINT='http://127.0.0.1:$minio_port'"
  echo "export TEST_S3_ACCESS_KEY=minioadmin TEST_S3_SECRET_KEY=minioadmin"
  echo "export MINIO_BIN='$(minio_bin)'"
fi
