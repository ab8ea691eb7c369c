#!/usr/bin/env bash
# Provide a MySQL-compatible server (and client build deps) for the test suite.
#
# Usage:
#   scripts/mysql-server.sh ensure-client  # install build deps of the `mysqlclient` Python package
#   scripts/mysql-server.sh url            # print mysql://USER[:PASS]@HOST:PORT of a reachable server
#   scripts/mysql-server.sh stop           # stop throwaway servers started by `url`, remove their dirs
#                                          # (only the one in $MYSQL_SCRATCH_DIR when that is set)
#
# `url` resolution order:
#   1. $TEST_DATABASE_URL, printed unchanged;
#   2. a server answering on 127.0.0.1:3306 as root without password
#      (skipped when MYSQL_FORCE_THROWAWAY=1);
#   3. a throwaway MariaDB in ${MYSQL_SCRATCH_DIR:-/tmp/orders-mysql-<port>} on a free port
#      from 13306 upward (an already running throwaway server is reused).
# For cases 2 and 3 the server's max_connections is raised to at least
# $MYSQL_MIN_CONNECTIONS (default 500) when possible.
#
# Only the URL goes to stdout; all diagnostics go to stderr.

set -euo pipefail
shopt -s inherit_errexit 2>/dev/null || true

PROG=$(basename "$0")
SCRATCH_PREFIX=/tmp/orders-mysql-
LOCK_FILE=/tmp/orders-mysql.lock
MARKER=.orders-mysql-scratch
FIRST_PORT=13306
LAST_PORT=13405
START_TIMEOUT=60
MIN_CONNECTIONS=${MYSQL_MIN_CONNECTIONS:-500}

CLIENT_PKGS=(pkg-config libmariadb-dev libmariadb-dev-compat gcc)

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { log "error: $*"; exit 1; }

is_root() { [[ $(id -u) -eq 0 ]]; }

# Locate a binary on PATH or in the usual sbin dirs (not always on a user's PATH).
find_bin() {
    local name dir
    for name in "$@"; do
        if command -v "$name" >/dev/null 2>&1; then
            command -v "$name"
            return 0
        fi
        for dir in /usr/sbin /usr/local/sbin /usr/bin /usr/local/bin /usr/local/mysql/bin; do
            if [[ -x $dir/$name ]]; then
                printf '%s\n' "$dir/$name"
                return 0
            fi
        done
    done
    return 1
}

# apt_install PKG... : install non-interactively as root, or print the command and exit 1.
apt_install() {
    if ! is_root || ! command -v apt-get >/dev/null 2>&1; then
        log "missing packages: $*"
        if command -v apt-get >/dev/null 2>&1; then
            log "run: sudo apt-get install -y $*"
        else
            log "install them with your system's package manager"
        fi
        exit 1
    fi
    log "installing: $*"
    export DEBIAN_FRONTEND=noninteractive
    local opts=(-y -qq -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold --no-install-recommends)
    if ! apt-get install "${opts[@]}" "$@" </dev/null >&2; then
        log "apt-get install failed; running apt-get update and retrying"
        apt-get update -qq </dev/null >&2
        apt-get install "${opts[@]}" "$@" </dev/null >&2
    fi
}

dpkg_installed() {
    [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}

# ---------------------------------------------------------------- ensure-client

cmd_ensure_client() {
    local missing=() pkg
    if command -v dpkg-query >/dev/null 2>&1; then
        for pkg in "${CLIENT_PKGS[@]}"; do
            dpkg_installed "$pkg" || missing+=("$pkg")
        done
    else
        # Not Debian-like: best effort check.
        if command -v pkg-config >/dev/null 2>&1 &&
            { pkg-config --exists libmariadb || pkg-config --exists mysqlclient; } &&
            command -v gcc >/dev/null 2>&1; then
            return 0
        fi
        missing=("${CLIENT_PKGS[@]}")
    fi
    if ((${#missing[@]} == 0)); then
        return 0
    fi
    apt_install "${missing[@]}"
}

# ---------------------------------------------------------------- server helpers

client_bin() {
    find_bin mariadb mysql
}

ensure_sql_client() {
    if ! client_bin >/dev/null; then
        apt_install mariadb-client
    fi
}

# sql PORT QUERY... : run a query as root over TCP, no password, batch output.
sql() {
    local port=$1
    shift
    "$(client_bin)" --no-defaults --protocol=TCP -h127.0.0.1 -P"$port" -uroot \
        --connect-timeout=3 --batch --skip-column-names -e "$*"
}

answers() {
    sql "$1" 'select 1' >/dev/null 2>&1
}

port_in_use() {
    # A successful TCP connect means something listens there.
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

ensure_max_connections() {
    local port=$1 current
    if ! current=$(sql "$port" 'select @@global.max_connections' 2>/dev/null); then
        log "warning: could not read max_connections on port $port"
        return 0
    fi
    if [[ $current =~ ^[0-9]+$ ]] && ((current < MIN_CONNECTIONS)); then
        if sql "$port" "SET GLOBAL max_connections = $MIN_CONNECTIONS" 2>/dev/null; then
            log "raised max_connections on port $port from $current to $MIN_CONNECTIONS"
        else
            log "warning: max_connections on port $port is $current (< $MIN_CONNECTIONS) and could not be raised"
        fi
    fi
}

# True if PID runs (zombies count as dead: PID 1 in containers may not reap them).
pid_alive() {
    local pid=${1:-} state
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    if [[ -d /proc/self ]]; then
        [[ -r /proc/$pid/stat ]] || return 1
        state=$(sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$pid/stat" 2>/dev/null || true)
        [[ -n $state && $state != Z ]]
    else
        kill -0 "$pid" 2>/dev/null
    fi
}

# pid of the throwaway server living in DIR, if it is running; empty otherwise.
# The process must be a mysqld/mariadbd whose command line mentions DIR, so a
# stale pid file can never make us kill an unrelated process.
dir_server_pid() {
    local dir=$1 pid cmdline
    [[ -f $dir/mysqld.pid ]] || return 0
    pid=$(tr -dc '0-9' <"$dir/mysqld.pid" 2>/dev/null || true)
    pid_alive "$pid" || return 0
    cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
    if [[ ! -d /proc/self ]] || { [[ $cmdline == *mysqld* || $cmdline == *mariadbd* ]] && [[ $cmdline == *"--datadir=$dir/data"* ]]; }; then
        printf '%s\n' "$pid"
    fi
}

scratch_dirs() {
    local d
    for d in "$SCRATCH_PREFIX"*; do
        [[ -d $d ]] && printf '%s\n' "$d"
    done
    if [[ -n ${MYSQL_SCRATCH_DIR:-} && -d $MYSQL_SCRATCH_DIR && $MYSQL_SCRATCH_DIR != "$SCRATCH_PREFIX"* ]]; then
        printf '%s\n' "$MYSQL_SCRATCH_DIR"
    fi
    return 0
}

# Reuse an already running throwaway server; prints its port.
find_running_throwaway() {
    local dirs=() d pid port
    if [[ -n ${MYSQL_SCRATCH_DIR:-} ]]; then
        dirs=("$MYSQL_SCRATCH_DIR")
    else
        mapfile -t dirs < <(scratch_dirs)
    fi
    for d in "${dirs[@]}"; do
        [[ -f $d/port ]] || continue
        pid=$(dir_server_pid "$d")
        [[ -n $pid ]] || continue
        port=$(tr -dc '0-9' <"$d/port")
        if [[ -n $port ]] && answers "$port"; then
            printf '%s\n' "$port"
            return 0
        fi
    done
    return 1
}

pick_port() {
    local port
    for ((port = FIRST_PORT; port <= LAST_PORT; port++)); do
        if [[ -z ${MYSQL_SCRATCH_DIR:-} && -e $SCRATCH_PREFIX$port ]]; then
            # Leftover dir of a dead server: reusable only if nothing listens.
            [[ -n $(dir_server_pid "$SCRATCH_PREFIX$port") ]] && continue
        fi
        port_in_use "$port" && continue
        printf '%s\n' "$port"
        return 0
    done
    return 1
}

# Remove a scratch dir, but only one we created (marker) or one under our prefix.
remove_scratch_dir() {
    local dir=$1
    [[ -d $dir ]] || return 0
    if [[ -e $dir/$MARKER || $dir == "$SCRATCH_PREFIX"* ]]; then
        rm -rf -- "$dir"
    else
        log "warning: not removing $dir (no $MARKER marker; not created by this script?)"
    fi
}

start_throwaway() {
    local server install_db port dir pid i user_opt=()
    if ! server=$(find_bin mariadbd mysqld); then
        apt_install mariadb-server
        server=$(find_bin mariadbd mysqld) || die "mariadbd not found even after installing mariadb-server"
    fi
    ensure_sql_client

    port=$(pick_port) || die "no free port in $FIRST_PORT..$LAST_PORT"
    dir=${MYSQL_SCRATCH_DIR:-$SCRATCH_PREFIX$port}
    if [[ -e $dir ]]; then
        if [[ -n $(ls -A -- "$dir") && ! -e $dir/$MARKER && $dir != "$SCRATCH_PREFIX"* ]]; then
            die "$dir exists, is not empty and was not created by this script; refusing to use it"
        fi
        [[ -z $(dir_server_pid "$dir") ]] || die "a server from $dir is running but does not answer; run '$0 stop'"
        remove_scratch_dir "$dir"
    fi
    mkdir -p -- "$dir"
    dir=$(cd -- "$dir" && pwd -P)
    : >"$dir/$MARKER"
    printf '%s\n' "$port" >"$dir/port"

    if is_root; then
        user_opt=(--user=root)
    fi

    log "initialising throwaway server in $dir"
    if install_db=$(find_bin mariadb-install-db mysql_install_db); then
        if ! "$install_db" --no-defaults --datadir="$dir/data" "${user_opt[@]}" \
            --auth-root-authentication-method=normal --skip-test-db --skip-name-resolve \
            >"$dir/install.log" 2>&1 </dev/null; then
            tail -n 30 "$dir/install.log" >&2 || true
            die "mariadb-install-db failed (see $dir/install.log)"
        fi
    else
        # Oracle MySQL: root@localhost without password.
        if ! "$server" --no-defaults --initialize-insecure --datadir="$dir/data" "${user_opt[@]}" \
            >"$dir/install.log" 2>&1 </dev/null; then
            tail -n 30 "$dir/install.log" >&2 || true
            die "mysqld --initialize-insecure failed (see $dir/install.log)"
        fi
    fi

    log "starting $(basename "$server") on 127.0.0.1:$port"
    local launcher=(nohup)
    if command -v setsid >/dev/null 2>&1; then
        launcher=(setsid nohup)
    fi
    "${launcher[@]}" "$server" --no-defaults \
        --datadir="$dir/data" \
        --port="$port" \
        --bind-address=127.0.0.1 \
        --socket="$dir/mysqld.sock" \
        --pid-file="$dir/mysqld.pid" \
        --skip-log-bin \
        --skip-name-resolve \
        --innodb-flush-log-at-trx-commit=2 \
        --max-connections=1000 \
        --character-set-server=utf8mb4 \
        --collation-server=utf8mb4_general_ci \
        "${user_opt[@]}" \
        >"$dir/mysqld.log" 2>&1 </dev/null 9>&- &
    pid=$!
    printf '%s\n' "$pid" >"$dir/mysqld.pid"

    for ((i = 0; i < START_TIMEOUT * 4; i++)); do
        if answers "$port"; then
            printf '%s\n' "$port"
            return 0
        fi
        if ! pid_alive "$pid"; then
            tail -n 30 "$dir/mysqld.log" >&2 || true
            die "server exited during startup (see $dir/mysqld.log)"
        fi
        sleep 0.25
    done
    tail -n 30 "$dir/mysqld.log" >&2 || true
    kill "$pid" 2>/dev/null || true
    die "server did not answer on port $port within ${START_TIMEOUT}s (see $dir/mysqld.log)"
}

# ---------------------------------------------------------------- commands

cmd_url() {
    if [[ -n ${TEST_DATABASE_URL:-} ]]; then
        printf '%s\n' "$TEST_DATABASE_URL"
        return 0
    fi

    ensure_sql_client

    if [[ ${MYSQL_FORCE_THROWAWAY:-0} != 1 ]] && answers 3306; then
        ensure_max_connections 3306
        printf 'mysql://root@127.0.0.1:3306\n'
        return 0
    fi

    # Serialise concurrent callers so they share one throwaway server.
    if command -v flock >/dev/null 2>&1; then
        if { exec 9>>"$LOCK_FILE"; } 2>/dev/null; then
            chmod a+rw "$LOCK_FILE" 2>/dev/null || true
            flock -w 120 9 || die "timed out waiting for $LOCK_FILE"
        else
            log "warning: cannot open $LOCK_FILE; continuing without locking"
        fi
    fi

    local port
    if port=$(find_running_throwaway); then
        log "reusing throwaway server on port $port"
    else
        port=$(start_throwaway)
    fi
    ensure_max_connections "$port"
    printf 'mysql://root@127.0.0.1:%s\n' "$port"
}

cmd_stop() {
    local dirs=() d pid i
    if [[ -n ${MYSQL_SCRATCH_DIR:-} ]]; then
        dirs=("$MYSQL_SCRATCH_DIR") # only the server `url` started there
    else
        mapfile -t dirs < <(scratch_dirs)
    fi
    for d in "${dirs[@]}"; do
        pid=$(dir_server_pid "$d")
        if [[ -n $pid ]]; then
            log "stopping throwaway server pid $pid ($d)"
            if ! kill -TERM "$pid" 2>/dev/null; then
                log "warning: cannot signal pid $pid (owned by another user?); leaving $d alone"
                continue
            fi
            for ((i = 0; i < 120; i++)); do
                pid_alive "$pid" || break
                sleep 0.25
            done
            if pid_alive "$pid"; then
                log "pid $pid did not exit after 30s; killing"
                kill -KILL "$pid" 2>/dev/null || true
                sleep 0.5
            fi
        fi
        if [[ -e $d/$MARKER || $d == "$SCRATCH_PREFIX"* ]]; then
            log "removing $d"
        fi
        remove_scratch_dir "$d"
    done
}

usage() {
    sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//' >&2
}

main() {
    case ${1:-} in
    ensure-client) cmd_ensure_client ;;
    url) cmd_url ;;
    stop) cmd_stop ;;
    -h | --help | help) usage ;;
    *)
        usage
        exit 2
        ;;
    esac
}

main "$@"
