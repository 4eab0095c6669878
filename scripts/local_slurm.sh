#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for trying `sweep.py --launcher slurm` and for the slow tests.
#
#   scripts/local_slurm.sh start    # install what is missing (apt-get), configure, start, wait for an idle node
#   scripts/local_slurm.sh status   # which daemons run, the node and the queue (exit 0: all three run, else 3)
#   scripts/local_slurm.sh stop     # stop exactly the daemons `start` started (by their pid files)
#   eval "$(scripts/local_slurm.sh env)"   # point sbatch, squeue, sinfo … at this cluster (SLURM_CONF)
#
# Needs root (the daemons run as root) and Debian's packages slurmctld, slurmd, slurm-client and munge.
# Everything it writes is in one folder it owns, $SELFDISTILL_SLURM_DIR (default /var/tmp/selfdistill-slurm):
# slurm.conf, the munge key and socket, the controller's state, the pid files and the logs (log/). Nothing
# under /etc is written, and the clients find the cluster through SLURM_CONF. All traffic stays on
# 127.0.0.1 (ports 6817 and 6818). No accounting (AccountingStorageType=accounting_storage/none), no cgroups
# (proctrack/linuxproc, task/none): small clusters look like this. The node has this machine's CPUs and memory.
set -euo pipefail

DIR="${SELFDISTILL_SLURM_DIR:-/var/tmp/selfdistill-slurm}"
WAIT_S="${SELFDISTILL_SLURM_WAIT_S:-90}" # how long `start` waits for the node to be idle
CONF="$DIR/slurm.conf"
SOCKET="$DIR/munge/munge.socket.2"
DAEMONS=(munged slurmctld slurmd) # in start order; stopped in reverse
PACKAGES=(munge slurmctld slurmd slurm-client)
COMMANDS=(munged slurmctld slurmd sinfo) # one command of each package, to see what is installed

fail() {
	echo "local_slurm.sh: $*" >&2
	exit 1
}

pid_file() { echo "$DIR/run/$1.pid"; }

# The pid of daemon $1 if its pid file names a live process of that program, else nothing.
running_pid() {
	local file pid
	file="$(pid_file "$1")"
	[[ -f "$file" ]] || return 0
	pid="$(tr -dc '0-9' <"$file")"
	[[ -n "$pid" && "$pid" -gt 1 && -r "/proc/$pid/comm" ]] || return 0
	# comm is the program's name (at most 15 characters): a reused pid of another program is not ours
	[[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$1"* ]] || return 0
	# a killed daemon whose parent has not reaped it yet is a zombie (state Z): not running
	[[ "$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)" != "Z" ]] && echo "$pid"
	return 0
}

install_missing() {
	local missing=() i
	for i in "${!COMMANDS[@]}"; do
		command -v "${COMMANDS[$i]}" >/dev/null 2>&1 || missing+=("${PACKAGES[$i]}")
	done
	[[ ${#missing[@]} -eq 0 ]] && return 0
	command -v apt-get >/dev/null 2>&1 ||
		fail "missing ${missing[*]} and no apt-get here: install SLURM and munge with your package manager"
	echo "installing ${missing[*]} with apt-get" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q </dev/null >&2 || fail "apt-get update failed (is a package mirror reachable?)"
	apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null >&2 ||
		fail "apt-get install ${missing[*]} failed (see its output above)"
}

# This machine's node line as slurmd sees it (CPUs, sockets, cores, threads, RealMemory), under our node name.
node_line() {
	local hardware
	hardware="$(slurmd -C | head -n 1)" || fail "slurmd -C could not read this machine's CPUs and memory"
	echo "$hardware" | sed "s/^NodeName=[^ ]*/NodeName=$NODE/; s/\$/ NodeAddr=127.0.0.1 NodeHostname=$NODE State=UNKNOWN/"
}

write_config() {
	mkdir -p "$DIR"/{munge,run,log,state,spool}
	chmod 0755 "$DIR" "$DIR"/{run,log,state,spool}
	chmod 0755 "$DIR/munge" # clients reach the socket in it; the key itself is 0400
	if [[ ! -s "$DIR/munge/munge.key" ]]; then
		mungekey --create --keyfile="$DIR/munge/munge.key" >/dev/null 2>&1 ||
			dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
	fi
	chmod 0400 "$DIR/munge/munge.key"
	cat >"$CONF.tmp" <<EOF
# Written by scripts/local_slurm.sh: a single-node cluster on 127.0.0.1, no accounting, no cgroups.
ClusterName=selfdistill
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=6817
SlurmdPort=6818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCKET
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$(pid_file slurmctld)
SlurmdPidFile=$(pid_file slurmd)
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
KillWait=15
MinJobAge=300
$(node_line)
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
	mv -f "$CONF.tmp" "$CONF"
}

start_daemon() {
	local name="$1" pid
	shift
	pid="$(running_pid "$name")"
	if [[ -n "$pid" ]]; then
		echo "$name already runs (pid $pid)" >&2
		return 0
	fi
	"$@" </dev/null 9>&- || fail "$name did not start; see $DIR/log/$name.log" # the daemon must not hold the lock
	for _ in $(seq 50); do
		pid="$(running_pid "$name")"
		[[ -n "$pid" ]] && {
			echo "started $name (pid $pid)" >&2
			return 0
		}
		sleep 0.1
	done
	fail "$name did not write its pid file $(pid_file "$name"); see $DIR/log/$name.log"
}

node_state() { SLURM_CONF="$CONF" sinfo -h -n "$NODE" -o '%t' 2>/dev/null | head -n 1; }

start() {
	install_missing
	write_config
	start_daemon munged munged --key-file="$DIR/munge/munge.key" --socket="$SOCKET" \
		--pid-file="$(pid_file munged)" --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/munged.seed"
	start_daemon slurmctld slurmctld -f "$CONF"
	start_daemon slurmd slurmd -f "$CONF" -N "$NODE"
	local deadline=$((SECONDS + WAIT_S)) state=""
	while ((SECONDS < deadline)); do
		state="$(node_state)"
		[[ "$state" == idle* || "$state" == mix* || "$state" == alloc* ]] && break
		sleep 1
	done
	if [[ "$state" != idle* && "$state" != mix* && "$state" != alloc* ]]; then
		echo "the node $NODE is not up after ${WAIT_S} s (state: ${state:-no answer from slurmctld}); the logs:" >&2
		tail -n 5 "$DIR"/log/*.log >&2 || true
		fail "the cluster did not come up (see the logs above, in $DIR/log/); stop it with: $0 stop"
	fi
	echo "SLURM is up: node $NODE $state; before sbatch, squeue or sweep.py --launcher slurm:" >&2
	echo "  export SLURM_CONF=$CONF" >&2
}

stop() {
	local i name pid stopped=0
	if [[ -n "$(running_pid slurmctld)" ]]; then
		local queued
		queued="$(SLURM_CONF="$CONF" squeue -h 2>/dev/null | wc -l || true)"
		[[ "${queued:-0}" -gt 0 ]] && echo "$queued job(s) still in the queue are dropped with the cluster" >&2
	fi
	for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
		name="${DAEMONS[$i]}"
		pid="$(running_pid "$name")"
		[[ -n "$pid" ]] || continue
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 100); do
			[[ -d "/proc/$pid" ]] || break
			sleep 0.1
		done
		[[ -d "/proc/$pid" ]] && kill -KILL "$pid" 2>/dev/null
		rm -f "$(pid_file "$name")"
		echo "stopped $name (pid $pid)" >&2
		stopped=$((stopped + 1))
	done
	[[ $stopped -gt 0 ]] || echo "nothing to stop: no daemon of $DIR runs" >&2
}

status() {
	local name pid up=0
	for name in "${DAEMONS[@]}"; do
		pid="$(running_pid "$name")"
		if [[ -n "$pid" ]]; then
			echo "$name: running (pid $pid)"
			up=$((up + 1))
		else
			echo "$name: not running"
		fi
	done
	if [[ -n "$(running_pid slurmctld)" ]]; then
		echo "node $NODE: $(node_state)"
		echo "jobs in the queue: $(SLURM_CONF="$CONF" squeue -h 2>/dev/null | wc -l)"
	fi
	echo "config: $CONF (export SLURM_CONF=$CONF)"
	[[ $up -eq ${#DAEMONS[@]} ]] || return 3
}

NODE="$(hostname -s)"
case "${1:-}" in
start | stop)
	[[ $# -eq 1 ]] || fail "usage: $0 start|stop|status|env"
	[[ "$(id -u)" -eq 0 ]] || fail "run it as root (the daemons run as root): sudo $0 $1"
	mkdir -p "$DIR"
	[[ -d "$DIR" && ! -L "$DIR" && "$(stat -c %u "$DIR")" -eq 0 ]] ||
		fail "$DIR must be a folder owned by root (not a link); set SELFDISTILL_SLURM_DIR to another folder"
	# one start or stop at a time (a second waits), so two callers never start two sets of daemons
	exec 9>>"$DIR/lock"
	flock 9
	"$1"
	;;
status) status ;;
env) echo "export SLURM_CONF=$CONF" ;;
*)
	echo "usage: $0 start|stop|status|env" >&2
	exit 2
	;;
esac
