#!/usr/bin/env bash
# A real single-node Slurm on this machine, for greenbench's Slurm tests and for trying
# `greenbench slurm` without a cluster: Debian's slurm-wlm and munge, a generated slurm.conf
# in a state directory, two partitions (`cpu`, `cpu2`) on this host, proctrack/linuxproc,
# task/none (no cgroups), no accounting database. Needs root (as on CI).
#
#   eval "$(scripts/slurm/local-cluster.sh start)"   # starts it, prints `export SLURM_CONF=...`
#   scripts/slurm/local-cluster.sh stop
#
# GREENBENCH_SLURM_DIR chooses the state directory (default /tmp/greenbench-slurm).
set -euo pipefail
D="${GREENBENCH_SLURM_DIR:-/tmp/greenbench-slurm}"
CONF="$D/slurm.conf"

need() {
  local missing=()
  command -v slurmctld >/dev/null || missing+=(slurm-wlm)
  command -v munged >/dev/null || missing+=(munge)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]} (Debian packages)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
  fi
}

stop() {
  for p in slurmd slurmctld; do
    [ -f "$D/$p.pid" ] && kill "$(cat "$D/$p.pid")" 2>/dev/null || true
  done
  pkill -f "slurmctld -f $CONF" 2>/dev/null || true
  pkill -f "slurmd -f $CONF" 2>/dev/null || true
  sleep 1
}

start() {
  need
  stop
  rm -rf "$D"
  mkdir -p "$D/state" "$D/spool"
  local host cpus mem
  host="$(hostname -s)"
  cpus="$(nproc)"
  mem="$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)"
  cat >"$CONF" <<CONF
ClusterName=greenbench-local
SlurmctldHost=$host
AuthType=auth/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.pid
SlurmctldLogFile=$D/slurmctld.log
SlurmdLogFile=$D/slurmd.log
SlurmctldPort=${GREENBENCH_SLURM_PORT:-6817}
SlurmdPort=$(( ${GREENBENCH_SLURM_PORT:-6817} + 1 ))
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
# Keep finished jobs in the controller for an hour, so squeue -t all can tell their state.
MinJobAge=3600
SlurmdTimeout=60
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=cpu Nodes=$host Default=YES MaxTime=INFINITE State=UP
PartitionName=cpu2 Nodes=$host MaxTime=INFINITE State=UP
CONF
  # munge: the key Debian's package made; the daemon runs as root here (--force).
  if ! pgrep -x munged >/dev/null; then
    mkdir -p /run/munge && chown munge:munge /run/munge 2>/dev/null || true
    if id munge >/dev/null 2>&1; then
      su -s /bin/sh munge -c "munged" >&2 2>/dev/null || munged --force >&2
    else
      munged --force >&2
    fi
  fi
  slurmctld -f "$CONF" >&2
  slurmd -f "$CONF" -N "$host" >&2
  export SLURM_CONF="$CONF"
  for _ in $(seq 1 40); do
    if sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
      echo "export SLURM_CONF=$CONF"
      echo "local Slurm up: partitions cpu, cpu2 on $host ($cpus CPUs); logs in $D" >&2
      return 0
    fi
    sleep 0.5
  done
  echo "local Slurm did not come up; see $D/slurmctld.log and $D/slurmd.log" >&2
  sinfo >&2 || true
  return 1
}

case "${1:-}" in
  start) start ;;
  stop) stop; echo "local Slurm stopped" >&2 ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
