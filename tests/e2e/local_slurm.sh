#!/usr/bin/env bash
# A one-node Slurm cluster on localhost for tests: munged, slurmctld and
# slurmd started by hand (no systemd) as root, with every file under one
# scratch directory, as TOOLCHAIN.md's recipe describes.
#
#   local_slurm.sh start <scratch-dir>      prints `export SLURM_CONF=...`; eval it
#   local_slurm.sh stop <scratch-dir>       stops slurmd, slurmctld, munged
#   local_slurm.sh wait-job <jobid> [secs]  waits for a job; fails unless COMPLETED
#
# Usage from a test (start exits 77, CTest's "skipped", without root or Slurm):
#   conf=$(tests/e2e/local_slurm.sh start "$dir") || exit $?
#   eval "$conf"; trap 'tests/e2e/local_slurm.sh stop "$dir"' EXIT
# Sourcing the file defines the same commands as functions local_slurm_start,
# local_slurm_stop and local_slurm_wait_job without running anything.
#
# Start and stop are idempotent: start first stops whatever an earlier run
# left in the same scratch directory and begins from a fresh state.
# Environment: LOCAL_SLURM_CPUS (default: nproc) declares more CPUs than the
# machine has, so that jobs may run more ranks than cores;
# LOCAL_SLURM_START_TIMEOUT (default 30 s).

# The commands' subshells keep their variables to themselves on purpose.
# shellcheck disable=SC2030,SC2031

local_slurm_die() {
  echo "local_slurm: $*" >&2
  exit 1
}

# Each command runs in a subshell so that its `exit` never ends a shell that
# sourced this file.
local_slurm_start() (
  local scratch=${1:?usage: local_slurm.sh start <scratch-dir>}
  if [[ $(id -u) -ne 0 ]]; then
    echo "local_slurm: skipped: the local cluster runs its daemons as root, and this is uid $(id -u)" >&2
    exit 77
  fi
  local binary
  for binary in munged mungekey slurmctld slurmd scontrol sinfo squeue; do
    if ! command -v "$binary" >/dev/null && [[ ! -x /usr/sbin/$binary ]]; then
      echo "local_slurm: skipped: $binary is missing; apt-get install slurm-wlm munge openmpi-bin libopenmpi-dev libpmix-dev" >&2
      exit 77
    fi
  done
  export PATH=$PATH:/usr/sbin

  local_slurm_stop "$scratch" || exit 1
  mkdir -p "$scratch" || local_slurm_die "cannot create scratch directory $scratch"
  scratch=$(cd "$scratch" && pwd)
  local munge=$scratch/munge slurm=$scratch/slurm
  rm -rf "$munge" "$slurm"
  mkdir -p "$munge" "$slurm/state" "$slurm/spool" || local_slurm_die "cannot create $munge or $slurm"
  # munged insists that everyone may search each directory above its socket
  # (mktemp -d makes 0700 ones).
  chmod a+x "$scratch" "$munge"

  local port
  for port in 6817 6818; do
    if ss -Hltn "sport = :$port" | grep -q .; then
      local_slurm_die "port $port is already in use (another Slurm: $(ss -Hltnp "sport = :$port" | awk '{print $NF}')); stop that cluster (local_slurm.sh stop <its scratch-dir>) and start again"
    fi
  done

  local host cpus memory
  host=$(hostname -s)
  cpus=${LOCAL_SLURM_CPUS:-$(nproc)}
  # slurmd drains a node that claims more CPUs than it has, unless told to trust the config.
  local overrides=""
  if ((cpus > $(nproc))); then overrides="SlurmdParameters=config_overrides"; fi
  # slurmd drains a node that claims more memory than it finds: leave a margin.
  memory=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
  [[ -n $memory ]] || local_slurm_die "slurmd -C printed no RealMemory"
  memory=$((memory - memory / 20))

  # A root munged refuses Debian's key (owned by the munge user): make one.
  mungekey --create --keyfile="$munge/munge.key" >/dev/null 2>&1 ||
    local_slurm_die "mungekey could not create $munge/munge.key"
  munged --socket="$munge/munge.socket" --key-file="$munge/munge.key" \
    --pid-file="$munge/munged.pid" --log-file="$munge/munged.log" \
    --seed-file="$munge/munged.seed" ||
    local_slurm_die "munged did not start; its log: $(tail -n 20 "$munge/munged.log" 2>/dev/null)"

  cat >"$slurm/slurm.conf" <<EOF
# Written by tests/e2e/local_slurm.sh for one test run.
ClusterName=moebench-local
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$munge/munge.socket
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
# Memory is not consumed, so that jobs can run side by side on the one node.
SelectTypeParameters=CR_Core
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
StateSaveLocation=$slurm/state
SlurmdSpoolDir=$slurm/spool
SlurmctldPidFile=$slurm/slurmctld.pid
SlurmdPidFile=$slurm/slurmd.pid
SlurmctldLogFile=$slurm/slurmctld.log
SlurmdLogFile=$slurm/slurmd.log
$overrides
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  export SLURM_CONF=$slurm/slurm.conf

  local_slurm_failed_start() {
    local log
    {
      echo "local_slurm: $1"
      for log in "$munge/munged.log" "$slurm/slurmctld.log" "$slurm/slurmd.log"; do
        echo "---- last lines of $log"
        tail -n 25 "$log" 2>/dev/null
      done
    } >&2
    local_slurm_stop "$scratch"
    exit 1
  }
  slurmctld || local_slurm_failed_start "slurmctld did not start"
  slurmd || local_slurm_failed_start "slurmd did not start"

  local timeout=${LOCAL_SLURM_START_TIMEOUT:-30} waited=0
  until scontrol ping 2>/dev/null | grep -q 'is UP' &&
    [[ $(sinfo -h -o %t 2>/dev/null) == idle ]]; do
    if ((waited >= timeout * 10)); then
      local_slurm_failed_start "the cluster was not up and idle after ${timeout} s (scontrol ping: $(scontrol ping 2>&1 | tr '\n' ' '); sinfo: $(sinfo -h -o '%t %E' 2>&1 | tr '\n' ' '))"
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  echo "export SLURM_CONF=$slurm/slurm.conf"
)

# True while the pid runs; an exited daemon may linger as a zombie until
# whoever adopted it reaps it, and that counts as gone.
local_slurm_running() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  [[ ${stat##*) } != Z* ]]
}

# Ends one daemon by its pid file, if the pid still names that daemon.
local_slurm_stop_daemon() (
  local name=$1 pid_file=$2 pid
  [[ -f $pid_file ]] || exit 0
  pid=$(<"$pid_file")
  if [[ $pid =~ ^[0-9]+$ ]] && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$name" ]]; then
    kill -TERM "$pid" 2>/dev/null
    local tenths
    for ((tenths = 0; tenths < 100; tenths++)); do
      local_slurm_running "$pid" || break
      sleep 0.1
    done
    if local_slurm_running "$pid"; then
      echo "local_slurm: $name (pid $pid) ignored SIGTERM for 10 s; killing it" >&2
      kill -KILL "$pid" 2>/dev/null
    fi
  fi
  rm -f "$pid_file"
)

local_slurm_stop() (
  local scratch=${1:?usage: local_slurm.sh stop <scratch-dir>}
  local_slurm_stop_daemon slurmd "$scratch/slurm/slurmd.pid"
  local_slurm_stop_daemon slurmctld "$scratch/slurm/slurmctld.pid"
  local_slurm_stop_daemon munged "$scratch/munge/munged.pid"
)

# Without accounting, sacct knows nothing: a job is over when squeue no
# longer lists it, and scontrol still remembers how it ended.
local_slurm_wait_job() (
  local job=${1:?usage: local_slurm.sh wait-job <jobid> [timeout-seconds]}
  local timeout=${2:-300} waited=0
  export PATH=$PATH:/usr/sbin
  [[ -n ${SLURM_CONF:-} ]] || local_slurm_die "SLURM_CONF is not set; eval the line that 'local_slurm.sh start' printed"
  local queued
  while :; do
    # An unknown id means the job is long gone; any other failure is retried.
    if queued=$(squeue -h -j "$job" -o %T 2>&1); then
      [[ -z $queued ]] && break
    elif [[ $queued == *"Invalid job id"* ]]; then
      break
    fi
    if ((waited >= timeout)); then
      scontrol show job "$job" >&2
      local_slurm_die "job $job still in the queue after $timeout s; raise the timeout or scancel $job"
    fi
    sleep 1
    waited=$((waited + 1))
  done
  local report
  report=$(scontrol show job "$job") || local_slurm_die "scontrol knows no job $job"
  echo "$report"
  grep -q 'JobState=COMPLETED' <<<"$report" ||
    local_slurm_die "job $job ended $(grep -o 'JobState=[A-Z_]*' <<<"$report") $(grep -o 'ExitCode=[0-9:]*' <<<"$report")"
)

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  case ${1:-} in
    start) local_slurm_start "${@:2}" ;;
    stop) local_slurm_stop "${@:2}" ;;
    wait-job) local_slurm_wait_job "${@:2}" ;;
    *)
      echo "usage: $0 start <scratch-dir> | stop <scratch-dir> | wait-job <jobid> [timeout-seconds]" >&2
      exit 2
      ;;
  esac
fi
