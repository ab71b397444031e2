#!/usr/bin/env bash
# Starts a ctnas coordinator and N worker processes on this machine, over loopback.
#
#   deploy/local/start.sh [-n N] [-o DIR] [-d DATA] [-r RUNDIR] [-p PORT] [-t THREADS] [-k KEYS] [--] [coordinator options...]
#
#   -n N        worker processes (default 2)
#   -o DIR      the search's output folder (default runs/local). If DIR/run.json exists the run is
#               resumed (--resume DIR) and coordinator options may not be given.
#   -d DATA     benchmark table, passed as --data (default: the coordinator's own default,
#               ../shared/data/nasbench101.csv.gz relative to the working directory)
#   -r RUNDIR   where pid files and logs go (default DIR/local)
#   -p PORT     loopback port (default: a free one)
#   -t THREADS  jobs each worker computes at once (default 1)
#   -k KEYS     CurveZMQ keys folder (ctnas keygen KEYS): coordinator --keys KEYS, workers --keys KEYS
#   anything else is passed to `ctnas coordinator` (e.g. --seed 3 --preset paper --iterations 500).
#
# The ctnas binary is $CTNAS_BIN, else `ctnas` on PATH, else .build*/release/ctnas in this checkout.
# Stop everything with deploy/local/stop.sh -r RUNDIR (the coordinator writes a checkpoint); run
# this script again with the same -o DIR to continue.
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
die() { echo "start.sh: $*" >&2; exit 1; }

workers=2 output=runs/local data="" rundir="" port="" threads=1 keys=""
# Our options come first; the first other argument starts the coordinator's options.
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --) shift; break ;;
    -n|-o|-d|-r|-p|-t|-k)
      [[ $# -ge 2 ]] || { usage >&2; exit 2; }
      case "$1" in
        -n) workers=$2 ;; -o) output=$2 ;; -d) data=$2 ;; -r) rundir=$2 ;;
        -p) port=$2 ;; -t) threads=$2 ;; -k) keys=$2 ;;
      esac
      shift 2 ;;
    *) break ;;
  esac
done
extra=("$@")

[[ "$workers" =~ ^[1-9][0-9]*$ ]] || die "-n expects a positive number of workers, not '$workers'"
[[ "$threads" =~ ^[1-9][0-9]*$ ]] || die "-t expects a positive number of threads, not '$threads'"
[[ -z "$port" || "$port" =~ ^[0-9]+$ ]] || die "-p expects a port number, not '$port'"

# The binary, as an absolute path (pid checks compare it with /proc/PID/cmdline).
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
bin=${CTNAS_BIN:-}
if [[ -z "$bin" ]]; then
  if command -v ctnas >/dev/null 2>&1; then
    bin=$(command -v ctnas)
  else
    for candidate in "$repo"/.build/release/ctnas "$repo"/.build-*/release/ctnas; do
      if [[ -x "$candidate" ]]; then bin=$candidate; break; fi
    done
  fi
fi
[[ -n "$bin" && -x "$bin" ]] || die "no ctnas binary: set CTNAS_BIN, put ctnas on PATH or run 'swift build -c release'"
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")

mkdir -p "$output"
output=$(cd "$output" && pwd)
rundir=${rundir:-$output/local}
mkdir -p "$rundir"
rundir=$(cd "$rundir" && pwd)
[[ -z "$keys" ]] || keys=$(cd "$keys" && pwd)

# True when the pid file names a live process running our binary.
running() {
  local pid
  [[ -f "$1" ]] || return 1
  pid=$(cat "$1")
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  [[ ! -r "/proc/$pid/cmdline" ]] || tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$(cat "$rundir/bin" 2>/dev/null || echo "$bin")"
}
for f in "$rundir"/*.pid; do
  [[ -e "$f" ]] || continue
  if running "$f"; then die "$(basename "$f" .pid) (pid $(cat "$f")) from an earlier start is still running; stop it first: deploy/local/stop.sh -r $rundir"; fi
done
rm -f "$rundir"/*.pid "$rundir"/*.exit
echo "$bin" >"$rundir/bin"

# True when something accepts connections on 127.0.0.1:$1.
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if [[ -f "$output/result.json" ]]; then
  die "$output already holds a finished search (result.json); choose another -o"
elif [[ -f "$output/run.json" ]]; then
  [[ ${#extra[@]} -eq 0 ]] || die "$output holds a run to resume; its settings come from $output/run.json, so drop: ${extra[*]}"
  [[ -z "$data" && -z "$port" && -z "$keys" ]] || echo "start.sh: resuming $output: -d, -p and -k come from its run.json" >&2
  # run.json escapes slashes ("tcp:\/\/127.0.0.1:5555"): keep the port only.
  port=$(sed -n 's/^ *"listen" *: *"[^"]*:\([0-9][0-9]*\)".*/\1/p' "$output/run.json" | head -n 1)
  [[ -n "$port" ]] || die "$output/run.json names no tcp listen address; cannot attach local workers"
  keys=$(sed -n 's/^ *"keys" *: *"\(.*\)".*/\1/p' "$output/run.json" | sed 's#\\/#/#g' | head -n 1)
  coordinator_args=(coordinator --resume "$output")
  echo "start.sh: resuming the run in $output" >&2
else
  if [[ -z "$port" ]]; then
    for _ in $(seq 1 100); do
      candidate=$((20000 + RANDOM % 40000))
      if ! listening "$candidate"; then port=$candidate; break; fi
    done
    [[ -n "$port" ]] || die "found no free loopback port; give one with -p"
  fi
  coordinator_args=(coordinator --listen "tcp://127.0.0.1:$port" --output "$output")
  has_min_workers=no
  for a in "${extra[@]}"; do [[ "$a" != --min-workers* ]] || has_min_workers=yes; done
  [[ "$has_min_workers" == yes ]] || coordinator_args+=(--min-workers "$workers")
  [[ -z "$data" ]] || coordinator_args+=(--data "$data")
  [[ -z "$keys" ]] || coordinator_args+=(--keys "$keys")
  coordinator_args+=("${extra[@]}")
fi
endpoint="tcp://127.0.0.1:$port"
echo "$endpoint" >"$rundir/endpoint"
echo "$output" >"$rundir/output"
if listening "$port"; then die "something already listens on 127.0.0.1:$port"; fi

# Starts "$@" in the background with its log in $rundir/$name.log, its pid in $rundir/$name.pid
# and, once it ends, its exit status in $rundir/$name.exit. Nothing keeps this terminal's output.
launch() {
  local name=$1; shift
  (
    "$@" </dev/null >"$rundir/$name.log" 2>&1 &
    child=$!
    echo "$child" >"$rundir/$name.pid"
    wait "$child"
    echo $? >"$rundir/$name.exit"
  ) </dev/null >/dev/null 2>&1 &
  for _ in $(seq 1 100); do
    [[ -s "$rundir/$name.pid" ]] && return 0
    sleep 0.05
  done
  die "$name did not start"
}

launch coordinator "$bin" "${coordinator_args[@]}"
# Loading the table takes a moment; a coordinator that fails (bad option, missing data) ends here.
for _ in $(seq 1 600); do
  listening "$port" && break
  if [[ -f "$rundir/coordinator.exit" ]] || ! kill -0 "$(cat "$rundir/coordinator.pid")" 2>/dev/null; then
    sleep 0.2
    echo "start.sh: the coordinator exited before listening; $rundir/coordinator.log says:" >&2
    tail -n 20 "$rundir/coordinator.log" >&2
    exit 1
  fi
  sleep 0.1
done
listening "$port" || die "the coordinator is not listening on $endpoint after 60 s (see $rundir/coordinator.log)"

worker_keys=()
[[ -z "$keys" ]] || worker_keys=(--keys "$keys")
for i in $(seq 1 "$workers"); do
  launch "worker-$i" "$bin" worker --connect "$endpoint" --threads "$threads" --id "local-$i" "${worker_keys[@]}"
done

echo "coordinator pid $(cat "$rundir/coordinator.pid") on $endpoint, $workers worker(s): $(cat "$rundir"/worker-*.pid | tr '\n' ' ')"
echo "output:  $output"
echo "logs:    $rundir/*.log"
echo "follow:  $bin status $output"
echo "stop:    $here/stop.sh -r $rundir"
