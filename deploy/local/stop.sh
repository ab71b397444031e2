#!/usr/bin/env bash
# Stops what deploy/local/start.sh started: SIGTERM to the coordinator (it writes a checkpoint and
# stands its workers down), then to any worker still running; waits, and reports.
#
#   deploy/local/stop.sh [-r RUNDIR | -o DIR] [-t SECONDS]
#
#   -r RUNDIR   the run folder start.sh printed (default DIR/local)
#   -o DIR      the search's output folder (default runs/local)
#   -t SECONDS  how long the coordinator may take to checkpoint and exit (default 120); then it gets
#               a second SIGTERM (exit at once), then SIGKILL
#
# Exits 0 when every process is gone, 1 otherwise. Continue the search with
# deploy/local/start.sh -o DIR.
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
die() { echo "stop.sh: $*" >&2; exit 1; }

rundir="" output=runs/local timeout=120
while getopts "r:o:t:h" opt; do
  case "$opt" in
    r) rundir=$OPTARG ;;
    o) output=$OPTARG ;;
    t) timeout=$OPTARG ;;
    h) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
[[ "$timeout" =~ ^[0-9]+$ ]] || die "-t expects seconds, not '$timeout'"
rundir=${rundir:-$output/local}
[[ -d "$rundir" ]] || die "no run folder $rundir"
bin=$(cat "$rundir/bin" 2>/dev/null || true)
if [[ -f "$rundir/output" ]]; then output=$(cat "$rundir/output"); fi

# The pid in $1 when it is a live process running our binary (a recycled pid is not ours).
live_pid() {
  local pid
  [[ -f "$1" ]] || return 1
  pid=$(cat "$1")
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  if [[ -n "$bin" && -r "/proc/$pid/cmdline" ]]; then
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$bin" || return 1
  fi
  echo "$pid"
}

# Waits up to $2 seconds (tenths) for the process in pid file $1 to end. True when it has.
wait_gone() {
  local ticks=$(($2 * 10))
  while live_pid "$1" >/dev/null; do
    ((ticks-- > 0)) || return 1
    sleep 0.1
  done
}

# "exited with status N" once the launcher has recorded it.
outcome() {
  local name=$1 status=""
  for _ in $(seq 1 20); do
    if [[ -s "$rundir/$name.exit" ]]; then status=$(cat "$rundir/$name.exit"); break; fi
    sleep 0.05
  done
  if [[ -n "$status" ]]; then echo "exited with status $status"; else echo "is gone"; fi
}

# True when the coordinator's log says it is waiting for workers and has not started searching
# since (lines may carry a timestamp; --quiet logs neither, and then the timeout applies).
waiting_for_workers() {
  awk '/waiting for [0-9]+ worker/ { waiting = 1 } /(^|[[:space:]])searching / { waiting = 0 } END { exit !waiting }' \
    "$rundir/coordinator.log" 2>/dev/null
}

failed=0
grace=10  # seconds the workers get to stand down by themselves
coordinator="$rundir/coordinator.pid"
if pid=$(live_pid "$coordinator"); then
  echo "stopping the coordinator (pid $pid): SIGTERM, checkpoint, standby to its workers"
  kill -TERM "$pid" 2>/dev/null || true
  # Before the search starts the coordinator waits for workers and only a second signal ends it.
  # Nothing is lost then: run.json (and any checkpoint) is already on disk.
  sleep 0.5
  if live_pid "$coordinator" >/dev/null && waiting_for_workers; then
    echo "the coordinator was still waiting for workers: second SIGTERM"
    kill -TERM "$pid" 2>/dev/null || true
    grace=0  # it exits at once, without standing its workers down
  fi
  if ! wait_gone "$coordinator" "$timeout"; then
    echo "the coordinator did not exit within $timeout s: second SIGTERM (no checkpoint)" >&2
    grace=0
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_gone "$coordinator" 5; then
      echo "the coordinator ignores SIGTERM: SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
      wait_gone "$coordinator" 5 || true
    fi
    failed=1
  fi
  echo "coordinator $(outcome coordinator)"
elif [[ -f "$coordinator" ]]; then
  echo "coordinator was not running ($(outcome coordinator))"
fi

# Workers stand down by themselves when the coordinator goes; give them a moment, then SIGTERM.
workers=()
for f in "$rundir"/worker-*.pid; do [[ -e "$f" ]] && workers+=("$f"); done
for f in "${workers[@]}"; do wait_gone "$f" "$grace" || true; done
for f in "${workers[@]}"; do
  name=$(basename "$f" .pid)
  if pid=$(live_pid "$f"); then
    echo "stopping $name (pid $pid): SIGTERM"
    kill -TERM "$pid" 2>/dev/null || true
  fi
done
for f in "${workers[@]}"; do
  name=$(basename "$f" .pid)
  if ! wait_gone "$f" 30; then
    pid=$(live_pid "$f" || true)
    echo "$name (pid $pid) did not exit within 30 s: SIGKILL" >&2
    [[ -z "$pid" ]] || kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$f" 5 || true
    failed=1
  fi
  echo "$name $(outcome "$name")"
done

left=()
for f in "$coordinator" "${workers[@]}"; do
  if pid=$(live_pid "$f"); then left+=("$(basename "$f" .pid)=$pid"); fi
done
if [[ ${#left[@]} -gt 0 ]]; then
  echo "still running: ${left[*]}" >&2
  exit 1
fi
rm -f "$rundir"/*.pid
if [[ -f "$output/result.json" ]]; then
  echo "the search had finished: $output/result.json"
elif [[ -f "$output/run.json" ]]; then
  echo "continue with: $(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/start.sh -o $output"
fi
[[ $failed -eq 0 ]] || echo "some process had to be forced" >&2
exit 0
