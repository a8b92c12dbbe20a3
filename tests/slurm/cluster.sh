#!/usr/bin/env bash
# Single-node SLURM test cluster for the thinkcost test suite.
#
#   cluster.sh start    install packages if needed, start munged, mariadbd,
#                       slurmdbd, slurmctld and slurmd, wait until the node is idle
#   cluster.sh stop     stop the daemons (by the PIDs in their own pid files)
#   cluster.sh status   print which daemons are alive (exit 0 only if all are)
#
# All state lives under ${THINKCOST_SLURM_DIR:-/tmp/thinkcost-slurm}, except
# /etc/slurm/{slurm,slurmdbd,gres}.conf: slurm.conf must be at its default
# location because the Snakemake SLURM job step unsets SLURM_CONF before srun,
# and slurmdbd only looks for slurmdbd.conf next to slurm.conf.
# Must run as root (daemons, apt, /etc/slurm).
set -euo pipefail

B="${THINKCOST_SLURM_DIR:-/tmp/thinkcost-slurm}"
CLUSTER=thinkcost
ACCOUNT=thinkcost
PARTITION=debug
CONF_DIR=/etc/slurm
NODE="$(hostname -s)"
START_TIMEOUT="${THINKCOST_SLURM_START_TIMEOUT:-30}"

MUNGE_DIR="$B/munge"
MUNGE_KEY="$MUNGE_DIR/munge.key"
MUNGE_SOCKET="$MUNGE_DIR/munge.socket.2"
MYSQL_DIR="$B/mysql"
MYSQL_DATA="$MYSQL_DIR/data"
MYSQL_SOCKET="$MYSQL_DIR/mysqld.sock"
DB_NAME=slurm_acct_db
DB_USER=slurm
DB_PASS=slurm
RUN_DIR="$B/run"
LOG_DIR="$B/log"
PORTS_FILE="$B/ports.env"
GPU_DEV="$B/dev/nvidia0"

# Daemons in start order; stop goes in reverse.
DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd)
PACKAGES=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server)
COMMANDS=(munged mungekey mariadbd mariadb-install-db mariadb slurmdbd slurmctld slurmd sbatch sinfo sacct sacctmgr scontrol)

log() { printf '[cluster.sh] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

pidfile() { printf '%s/%s.pid' "$RUN_DIR" "$1"; }

# Print the PID of daemon $1 if it is alive (zombies count as dead, and a
# reused PID that now belongs to another program is ignored).
daemon_pid() {
    local name=$1 file pid stat comm
    file="$(pidfile "$name")"
    [[ -s $file ]] || return 1
    pid="$(tr -dc '0-9' 2>/dev/null <"$file")" || return 1 # the daemon may remove it meanwhile
    [[ -n $pid ]] || return 1
    stat="$(ps -o stat= -p "$pid" 2>/dev/null || true)"
    [[ -n $stat && $stat != Z* ]] || return 1
    comm="$(ps -o comm= -p "$pid" 2>/dev/null || true)"
    [[ $comm == "$name"* ]] || return 1
    printf '%s\n' "$pid"
}

alive() { daemon_pid "$1" >/dev/null; }
dead() { ! alive "$1"; }

any_alive() {
    local d
    for d in "${DAEMONS[@]}"; do
        if alive "$d"; then return 0; fi
    done
    return 1
}

all_alive() {
    local d
    for d in "${DAEMONS[@]}"; do
        alive "$d" || return 1
    done
}

node_state() { sinfo -h -n "$NODE" -o %T 2>/dev/null | head -n1 || true; }

# Wait until "$@" succeeds, for at most $timeout seconds (0.5 s steps).
wait_for() {
    local timeout=$1 i
    shift
    for ((i = 0; i < timeout * 2; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.5
    done
    return 1
}

show_logs() {
    local f
    for f in "$LOG_DIR"/*.log; do
        [[ -e $f ]] || continue
        printf '==> %s (last 20 lines) <==\n' "$f" >&2
        tail -n 20 "$f" >&2 || true
    done
}

# Run a daemon's start command with stdio on /dev/null / its .out file and
# without our lock fd 9: a daemon inheriting fd 9 would hold the lock forever.
launch() {
    local name=$1
    shift
    "$@" </dev/null >>"$LOG_DIR/$name.out" 2>&1 9>&-
}

fail() {
    log "ERROR: $*"
    show_logs
    exit 1
}

ensure_installed() {
    local missing=() c
    for c in "${COMMANDS[@]}"; do
        command -v "$c" >/dev/null 2>&1 || missing+=("$c")
    done
    ((${#missing[@]} == 0)) && return 0
    log "missing ${missing[*]}; installing ${PACKAGES[*]}"
    export DEBIAN_FRONTEND=noninteractive
    local apt=(apt-get install -y --no-install-recommends "${PACKAGES[@]}")
    if ! "${apt[@]}" >"$LOG_DIR/apt.out" 2>&1; then
        log "apt-get install failed; running apt-get update and retrying"
        apt-get update >>"$LOG_DIR/apt.out" 2>&1 || { tail -n 20 "$LOG_DIR/apt.out" >&2; die "apt-get update failed"; }
        "${apt[@]}" >>"$LOG_DIR/apt.out" 2>&1 || { tail -n 20 "$LOG_DIR/apt.out" >&2; die "apt-get install failed"; }
    fi
}

# Four free TCP ports on 127.0.0.1, chosen together so they are distinct.
choose_ports() {
    python3 - <<'EOF'
import socket
socks = []
for _ in range(4):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
ports = [s.getsockname()[1] for s in socks]
for name, port in zip(("MYSQL_PORT", "DBD_PORT", "CTLD_PORT", "SLURMD_PORT"), ports):
    print(f"{name}={port}")
EOF
}

write_configs() {
    local real_mem
    real_mem="$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')"
    [[ -n $real_mem ]] || die "could not read RealMemory from 'slurmd -C'"
    real_mem=$((real_mem * 9 / 10))

    mkdir -p "$CONF_DIR"
    cat >"$CONF_DIR/slurm.conf" <<EOF
# Written by tests/slurm/cluster.sh for the thinkcost test cluster ($B).
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
CredType=cred/munge
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
StateSaveLocation=$B/state
SlurmdSpoolDir=$B/spool
SlurmctldPidFile=$(pidfile slurmctld)
SlurmdPidFile=$(pidfile slurmd)
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=512
ReturnToService=2
MailProg=/bin/true
MinJobAge=600
KillWait=5
# Memory enforcement without cgroups: kill steps whose RSS exceeds their
# request, sampled every second.
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=1
JobAcctGatherParams=OverMemoryKill
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$DBD_PORT
# For slurmdbd connections the munge socket is taken from here, not AuthInfo.
AccountingStoragePass=$MUNGE_SOCKET
AccountingStorageTRES=gres/gpu
GresTypes=gpu
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=2 RealMemory=$real_mem Gres=gpu:1 State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF

    cat >"$CONF_DIR/gres.conf" <<EOF
# Written by tests/slurm/cluster.sh: fake GPU backed by a copy of /dev/null.
NodeName=$NODE Name=gpu File=$GPU_DEV
EOF

    (
        umask 077
        cat >"$CONF_DIR/slurmdbd.conf" <<EOF
# Written by tests/slurm/cluster.sh for the thinkcost test cluster ($B).
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
DbdHost=localhost
DbdPort=$DBD_PORT
SlurmUser=root
PidFile=$(pidfile slurmdbd)
LogFile=$LOG_DIR/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$MYSQL_PORT
StorageUser=$DB_USER
StoragePass=$DB_PASS
StorageLoc=$DB_NAME
EOF
    )
    chmod 600 "$CONF_DIR/slurmdbd.conf"
}

start_munged() {
    if [[ ! -s $MUNGE_KEY ]]; then
        mungekey --create --keyfile="$MUNGE_KEY"
    fi
    chmod 600 "$MUNGE_KEY"
    rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
    launch munged munged --force --socket="$MUNGE_SOCKET" --key-file="$MUNGE_KEY" \
        --pid-file="$(pidfile munged)" --log-file="$LOG_DIR/munged.log" \
        --seed-file="$MUNGE_DIR/munged.seed" ||
        fail "munged failed to start"
    wait_for 10 munge -n -S "$MUNGE_SOCKET" || fail "munged is not answering on $MUNGE_SOCKET"
}

mysql_root() { mariadb --no-defaults --protocol=socket --socket="$MYSQL_SOCKET" -uroot "$@"; }

start_mariadbd() {
    if [[ ! -d $MYSQL_DATA/mysql ]]; then
        mkdir -p "$MYSQL_DATA"
        mariadb-install-db --no-defaults --user=root --datadir="$MYSQL_DATA" \
            --auth-root-authentication-method=socket --skip-test-db \
            >"$LOG_DIR/mariadb-install-db.out" 2>&1 ||
            { tail -n 20 "$LOG_DIR/mariadb-install-db.out" >&2; die "mariadb-install-db failed"; }
    fi
    rm -f "$MYSQL_SOCKET"
    # mariadbd does not daemonize: fork it off with setsid -f and redirect all
    # output, so callers capturing our stdout (pytest) do not hang.
    launch mariadbd setsid -f mariadbd --no-defaults --user=root --datadir="$MYSQL_DATA" \
        --socket="$MYSQL_SOCKET" --port="$MYSQL_PORT" --bind-address=127.0.0.1 \
        --skip-log-bin --skip-name-resolve --pid-file="$(pidfile mariadbd)" \
        --log-error="$LOG_DIR/mariadbd.log" --innodb-buffer-pool-size=512M \
        --innodb-lock-wait-timeout=900
    wait_for 30 mysql_root -e 'SELECT 1' || fail "mariadbd did not come up on $MYSQL_SOCKET"
    wait_for 10 alive mariadbd || fail "mariadbd did not write its pid file"
    mysql_root -e "
        CREATE DATABASE IF NOT EXISTS $DB_NAME;
        CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
        CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
        GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'127.0.0.1';
        GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'localhost';"
}

start_slurmdbd() {
    launch slurmdbd slurmdbd || fail "slurmdbd failed to start"
    wait_for "$START_TIMEOUT" sacctmgr -n list cluster || fail "slurmdbd is not answering on port $DBD_PORT"
    if [[ -z "$(sacctmgr -n -P list cluster "$CLUSTER" format=cluster)" ]]; then
        sacctmgr -i add cluster "$CLUSTER" >/dev/null
    fi
    if [[ -z "$(sacctmgr -n -P list account "$ACCOUNT" format=account)" ]]; then
        sacctmgr -i add account "$ACCOUNT" Cluster="$CLUSTER" \
            Description="thinkcost tests" Organization=thinkcost >/dev/null
    fi
    if [[ -z "$(sacctmgr -n -P list association cluster="$CLUSTER" account="$ACCOUNT" user=root format=user)" ]]; then
        sacctmgr -i add user root Account="$ACCOUNT" Cluster="$CLUSTER" >/dev/null
    fi
}

start_slurmctld() {
    launch slurmctld slurmctld || fail "slurmctld failed to start"
    wait_for "$START_TIMEOUT" scontrol ping || fail "slurmctld is not answering"
}

start_slurmd() {
    launch slurmd slurmd || fail "slurmd failed to start"
}

wait_idle() {
    local i state=""
    for ((i = 0; i < START_TIMEOUT * 2; i++)); do
        state="$(node_state)"
        case $state in
            idle | mixed | allocated | completing) return 0 ;;
            down* | drain* | fail*)
                # ReturnToService=2 should handle this; resume once just in case.
                scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true ;;
        esac
        sleep 0.5
    done
    fail "node $NODE not idle after ${START_TIMEOUT}s (state: '${state:-unknown}')"
}

print_state() {
    local d pid line=""
    for d in "${DAEMONS[@]}"; do
        if pid="$(daemon_pid "$d")"; then line+=" $d=$pid"; else line+=" $d=dead"; fi
    done
    printf 'slurm cluster %s: node=%s state=%s;%s; base=%s conf=%s/slurm.conf logs=%s munge=%s\n' \
        "$1" "$NODE" "$(node_state)" "$line" "$B" "$CONF_DIR" "$LOG_DIR" "$MUNGE_SOCKET"
}

cmd_start() {
    if all_alive && [[ "$(node_state)" =~ ^(idle|mixed|alloc) ]]; then
        print_state "already running"
        return 0
    fi
    [[ $(id -u) -eq 0 ]] || die "must run as root"
    ensure_installed
    mkdir -p "$MUNGE_DIR" "$MYSQL_DIR" "$RUN_DIR" "$B/state" "$B/spool" "$B/dev"
    chmod 755 "$MUNGE_DIR" # clients need x on the socket's directory; the key stays 600
    [[ -c $GPU_DEV ]] || mknod "$GPU_DEV" c 1 3

    # Keep the ports (and the config written with them) while any daemon of
    # ours still runs; otherwise start fresh on newly chosen free ports.
    if any_alive && [[ -s $PORTS_FILE ]]; then
        log "some daemons still running; restarting the others on the same ports"
    else
        choose_ports >"$PORTS_FILE"
    fi
    # shellcheck source=/dev/null
    . "$PORTS_FILE"
    write_configs

    local d
    for d in "${DAEMONS[@]}"; do
        if alive "$d"; then continue; fi
        rm -f "$(pidfile "$d")"
        "start_$d"
    done
    wait_idle
    print_state "started"
}

stop_daemon() {
    local name=$1 pid i
    if ! pid="$(daemon_pid "$name")"; then
        rm -f "$(pidfile "$name")"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 40; i++)); do
        alive "$name" || break
        sleep 0.5
    done
    if alive "$name"; then
        log "$name (pid $pid) ignored SIGTERM for 20s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        wait_for 5 dead "$name" || die "could not stop $name (pid $pid)"
    fi
    rm -f "$(pidfile "$name")"
}

cmd_stop() {
    if ! any_alive; then
        log "already stopped"
        return 0
    fi
    local i
    for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
        stop_daemon "${DAEMONS[i]}"
    done
    log "stopped"
}

cmd_status() {
    local d pid rc=0
    for d in "${DAEMONS[@]}"; do
        if pid="$(daemon_pid "$d")"; then
            printf '%-10s alive (pid %s)\n' "$d" "$pid"
        else
            printf '%-10s dead\n' "$d"
            rc=3
        fi
    done
    if alive slurmctld; then
        printf 'node %s: %s\n' "$NODE" "$(node_state)"
    fi
    return "$rc"
}

main() {
    local cmd=${1:-}
    case $cmd in
        start | stop) ;;
        status) cmd_status; return ;;
        *) printf 'usage: %s start|stop|status\n' "$0" >&2; return 2 ;;
    esac
    if [[ $cmd == stop && ! -d $B ]]; then
        log "already stopped ($B does not exist)"
        return 0
    fi
    mkdir -p "$B" "$LOG_DIR"
    # Serialize concurrent start/stop calls.
    exec 9>"$B/.lock"
    flock 9
    "cmd_$cmd"
}

main "$@"
