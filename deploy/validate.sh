#!/usr/bin/env bash
# Validates everything under deploy/ and runs the local and Slurm recipes for real on this machine.
#
#   deploy/validate.sh [--static]
#
#   --static    only the file checks: no search is run
#
# Environment:
#   CTNAS_BIN   the ctnas binary for the live checks (default: ctnas on PATH, else
#               .build*/release/ctnas in this checkout)
#   CTNAS_DATA  the NAS-Bench-101 table (default: ../shared/data/nasbench101.csv.gz beside the checkout)
#   KEEP=1      keep the temporary folder (printed at the start)
#
# Checks: bash -n and shellcheck (when installed) on the scripts; systemd-analyze verify on the units
# (when available) plus a structural check; the coordinator start script against a stub binary;
# YAML parsing (PyYAML when importable, else a structural check) and the expected kinds, names,
# ports and volumes of the Kubernetes manifests; the Dockerfile; the #SBATCH lines; the README's
# code fences. Live: deploy/local/start.sh + stop.sh (a finished search, a stop and resume, a stop
# while waiting for workers) and deploy/slurm/ctnas.sbatch with stand-ins for srun and scontrol
# (a finished job, a time-limit signal with checkpoint, requeue and resume). Every process started
# must be gone at the end. Exits non-zero on any failure.
set -uo pipefail

static=no
for arg in "$@"; do
  case "$arg" in
    --static) static=yes ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "validate.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done

deploy=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$deploy/.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ctnas-validate.XXXXXX")
echo "validate.sh: deploy folder $deploy, temporary folder $tmp"

passed=0 failed=0 skipped=0
ok() { passed=$((passed + 1)); echo "  ok    $*"; }
fail() { failed=$((failed + 1)); echo "  FAIL  $*"; }
skip() { skipped=$((skipped + 1)); echo "  skip  $*"; }
note() { echo "  note  $*"; }
section() { echo "== $* (at ${SECONDS} s)"; }
# check NAME COMMAND...: ok when the command succeeds; its output is shown on failure.
check() {
  local name=$1 out
  shift
  local t0=$SECONDS
  if out=$("$@" 2>&1); then ok "$name$( ((SECONDS - t0 < 5)) || echo " ($((SECONDS - t0)) s)")"; else fail "$name"; [[ -z "$out" ]] || echo "        ${out//$'\n'/$'\n'        }"; fi
}
# logged NAME LOG COMMAND...: like check, with the command's output in LOG (shown on failure).
logged() {
  local name=$1 log=$2
  shift 2
  if "$@" >"$log" 2>&1; then ok "$name"; else fail "$name"; grep -v ' received$' "$log" | tail -n 30 | sed 's/^/        /'; fi
}

# Processes the live checks start (pid files), killed at exit if still there.
pidfiles=()
cleanup() {
  local f pid
  for f in "${pidfiles[@]}"; do
    [[ -f "$f" ]] || continue
    pid=$(cat "$f" 2>/dev/null)
    # Only our own processes (a pid may have been reused since).
    [[ "$pid" =~ ^[0-9]+$ ]] && { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -q 'ctnas' && kill -KILL "$pid" 2>/dev/null
  done
  if [[ "${KEEP:-0}" == 1 ]]; then echo "validate.sh: kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
section "files"
files=(
  README.md validate.sh
  local/start.sh local/stop.sh
  systemd/ctnas-coordinator.service systemd/ctnas-worker@.service systemd/ctnas.env.example
  systemd/ctnas-coordinator-start
  slurm/ctnas.sbatch
  kubernetes/kustomization.yaml kubernetes/namespace.yaml kubernetes/configmap.yaml
  kubernetes/coordinator-service.yaml kubernetes/coordinator-statefulset.yaml
  kubernetes/worker-deployment.yaml kubernetes/networkpolicy.yaml
  kubernetes/Dockerfile kubernetes/Dockerfile.dockerignore
)
for f in "${files[@]}"; do check "$f exists" test -s "$deploy/$f"; done
while IFS= read -r f; do
  known=no
  for g in "${files[@]}"; do [[ "$f" == "$g" ]] && known=yes; done
  [[ "$known" == yes ]] || fail "deploy/$f is not checked by validate.sh (add it to the list)"
done < <(cd "$deploy" && find . -type f ! -name '*~' ! -name '*.swp' | sed 's#^\./##' | sort)

# ---------------------------------------------------------------------------------------------
section "scripts"
scripts=(validate.sh local/start.sh local/stop.sh systemd/ctnas-coordinator-start slurm/ctnas.sbatch)
have_shellcheck=no
command -v shellcheck >/dev/null 2>&1 && have_shellcheck=yes
[[ "$have_shellcheck" == yes ]] || skip "shellcheck is not installed (apt-get install shellcheck): lint skipped"
for s in "${scripts[@]}"; do
  path=$deploy/$s
  check "$s is executable" test -x "$path"
  check "$s: bash -n" bash -n "$path"
  if head -n 1 "$path" | grep -q '^#!/bin/sh'; then
    check "$s: sh -n (POSIX sh)" sh -n "$path"
  fi
  [[ "$have_shellcheck" == no ]] || check "$s: shellcheck" shellcheck -x "$path"
done
for s in local/start.sh local/stop.sh validate.sh; do
  check "$s -h prints its usage" grep -q . <("$deploy/$s" -h)
done

# ---------------------------------------------------------------------------------------------
section "systemd"
units=(ctnas-coordinator.service ctnas-worker@.service)
# value KEY FILE: the last value of KEY= in FILE.
value() { sed -n "s/^$1=//p" "$2" | tail -n 1; }
unit_structure() {
  local file=$1 name problems=() key
  name=$(basename "$file")
  for key in '\[Unit\]' '\[Service\]' '\[Install\]'; do
    grep -q "^$key\$" "$file" || problems+=("no $key section")
  done
  # Every key line must sit below a section header, in the form Key=value.
  awk '/^[[:space:]]*(#|;|$)/ { next } /^\[[A-Za-z]+\]$/ { s = 1; next }
       !s || !/^[A-Za-z]+=/ { print "line " NR ": " $0; bad = 1 } END { exit bad }' "$file" \
    || problems+=("malformed lines")
  [[ "$(value ExecStart "$file")" == /* ]] || problems+=("ExecStart is not an absolute path")
  [[ "$(value Restart "$file")" =~ ^(on-failure|always)$ ]] || problems+=("Restart= is not on-failure/always")
  grep -q '^EnvironmentFile=/etc/ctnas/ctnas.env$' "$file" || problems+=("no EnvironmentFile=/etc/ctnas/ctnas.env")
  [[ "$(value User "$file")" == ctnas ]] || problems+=("User= is not ctnas")
  [[ "$(value NoNewPrivileges "$file")" == yes ]] || problems+=("NoNewPrivileges=yes missing")
  [[ "$(value ProtectSystem "$file")" == strict ]] || problems+=("ProtectSystem=strict missing")
  [[ "$(value PrivateTmp "$file")" == yes ]] || problems+=("PrivateTmp=yes missing")
  [[ "$(value KillSignal "$file")" == SIGTERM ]] || problems+=("KillSignal=SIGTERM missing")
  [[ "$(value TimeoutStopSec "$file")" =~ ^[0-9]+$ && $(value TimeoutStopSec "$file") -ge 60 ]] \
    || problems+=("TimeoutStopSec below 60 s")
  [[ -n "$(value WantedBy "$file")" ]] || problems+=("no WantedBy=")
  case "$name" in
    ctnas-coordinator.service)
      [[ "$(value Restart "$file")" == on-failure ]] || problems+=("the coordinator should restart on failure only")
      [[ "$(value ExecStart "$file")" == */ctnas-coordinator-start ]] || problems+=("ExecStart is not the start script")
      [[ "$(value ReadWritePaths "$file")" == /var/lib/ctnas ]] || problems+=("ReadWritePaths=/var/lib/ctnas missing")
      [[ "$(value ExecReload "$file")" == *HUP*MAINPID* ]] || problems+=("ExecReload does not send SIGHUP")
      [[ "$(value TimeoutStopSec "$file")" -ge 120 ]] || problems+=("TimeoutStopSec too short for a checkpoint")
      ;;
    ctnas-worker@.service)
      # shellcheck disable=SC2016  # systemd's ${VAR}, not the shell's
      value ExecStart "$file" | grep -q -- '--connect ${CTNAS_CONNECT}' || problems+=("ExecStart does not connect to \${CTNAS_CONNECT}")
      # shellcheck disable=SC2016
      value ExecStart "$file" | grep -q -- '--key ${CTNAS_WORKER_KEY} --server-key ${CTNAS_SERVER_KEY}' || problems+=("ExecStart has no key options")
      grep -q '%i' "$file" || problems+=("the template does not use its instance name %i")
      ;;
  esac
  if [[ ${#problems[@]} -gt 0 ]]; then printf '%s\n' "${problems[@]}"; return 1; fi
}
for u in "${units[@]}"; do check "$u: sections, ExecStart, restart, hardening, stop timeout" unit_structure "$deploy/systemd/$u"; done

if command -v systemd-analyze >/dev/null 2>&1; then
  # verify wants the executables to exist: point them at this checkout's files.
  mkdir -p "$tmp/units"
  for u in "${units[@]}"; do
    sed -e "s#^ExecStart=/usr/local/lib/ctnas/ctnas-coordinator-start#ExecStart=$deploy/systemd/ctnas-coordinator-start#" \
        -e "s#^ExecStart=/usr/local/bin/ctnas #ExecStart=/bin/true #" "$deploy/systemd/$u" >"$tmp/units/$u"
  done
  verify_units() {
    local out
    out=$(cd "$tmp/units" && SYSTEMD_LOG_LEVEL=notice systemd-analyze verify ./ctnas-coordinator.service ./ctnas-worker@1.service 2>&1)
    local status=$?
    # Complaints about other units of this machine are not ours.
    out=$(grep -E 'ctnas' <<<"$out")
    [[ $status -eq 0 && -z "$out" ]] || { echo "$out"; return 1; }
  }
  check "systemd-analyze verify (coordinator, worker@1)" verify_units
else
  skip "systemd-analyze is not available: structural check only"
fi

env_example() {
  local file=$deploy/systemd/ctnas.env.example problems=() v
  # Only comments, blank lines and VAR=value.
  grep -nvE '^(#.*|[A-Z][A-Z0-9_]*=.*|)$' "$file" && problems+=("lines that are not VAR=value or comments")
  while read -r v; do
    grep -q "^$v=" "$file" || problems+=("$v is used but not in ctnas.env.example")
  done < <(cat "$deploy/systemd/"*.service "$deploy/systemd/ctnas-coordinator-start" | grep -oE 'CTNAS_[A-Z_]+' | sort -u)
  if [[ ${#problems[@]} -gt 0 ]]; then printf '%s\n' "${problems[@]}"; return 1; fi
}
check "ctnas.env.example: VAR=value lines covering every CTNAS_ variable the units use" env_example

# The start script against a stub binary that prints its arguments.
start_script() {
  local dir=$tmp/start-script stub out problems=()
  mkdir -p "$dir/out"
  stub=$dir/ctnas-stub
  printf '#!/bin/sh\necho "$@"\n' >"$stub"
  chmod +x "$stub"
  run() { env -i PATH=/usr/bin:/bin CTNAS_BIN="$stub" CTNAS_OUTPUT="$dir/out" CTNAS_LISTEN=tcp://0.0.0.0:7000 \
            CTNAS_DATA=/data/t.csv.gz CTNAS_KEYS=/etc/ctnas/keys CTNAS_MIN_WORKERS=3 CTNAS_ARGS="--seed 7  --preset paper" \
            "$deploy/systemd/ctnas-coordinator-start" 2>/dev/null; }
  out=$(run)
  [[ "$out" == "coordinator --listen tcp://0.0.0.0:7000 --output $dir/out --min-workers 3 --data /data/t.csv.gz --keys /etc/ctnas/keys --seed 7 --preset paper" ]] \
    || problems+=("new run: got '$out'")
  echo '{}' >"$dir/out/run.json"
  out=$(run)
  [[ "$out" == "coordinator --resume $dir/out" ]] || problems+=("with run.json: got '$out'")
  echo '{}' >"$dir/out/result.json"
  out=$(run) || problems+=("with result.json: non-zero exit")
  [[ -z "$out" ]] || problems+=("with result.json: ran '$out'")
  if [[ ${#problems[@]} -gt 0 ]]; then printf '%s\n' "${problems[@]}"; return 1; fi
}
check "ctnas-coordinator-start: new run, --resume when run.json exists, nothing once result.json exists" start_script

# ---------------------------------------------------------------------------------------------
section "kubernetes"
k8s=$deploy/kubernetes
if command -v python3 >/dev/null 2>&1 && python3 -c 'import yaml' 2>/dev/null; then
  k8s_check() {
    python3 - "$k8s" <<'PY'
import os, sys, yaml
root = sys.argv[1]
problems = []
def need(cond, what):
    if not cond: problems.append(what)

kustomization = yaml.safe_load(open(os.path.join(root, "kustomization.yaml")))
need(kustomization.get("kind") == "Kustomization", "kustomization.yaml: kind Kustomization")
resources = kustomization.get("resources", [])
docs = {}
for r in resources:
    path = os.path.join(root, r)
    if not os.path.exists(path):
        problems.append(f"kustomization.yaml lists {r}, which does not exist"); continue
    for d in yaml.safe_load_all(open(path)):
        if d is None: continue
        need("apiVersion" in d and "kind" in d and "name" in d.get("metadata", {}), f"{r}: apiVersion, kind and metadata.name")
        docs[(d.get("kind"), d.get("metadata", {}).get("name"))] = d
for f in sorted(os.listdir(root)):
    if f.endswith(".yaml") and f != "kustomization.yaml":
        need(f in resources, f"{f} is not listed in kustomization.yaml")
        list(yaml.safe_load_all(open(os.path.join(root, f))))  # parses
images = [i.get("name") for i in kustomization.get("images", [])]
need("ctnas" in images, "kustomization.yaml: images entry for the placeholder 'ctnas'")

def get(kind, name):
    d = docs.get((kind, name))
    need(d is not None, f"no {kind} {name}")
    return d or {}

sts = get("StatefulSet", "ctnas-coordinator")
svc = get("Service", "ctnas-coordinator")
dep = get("Deployment", "ctnas-worker")
get("ConfigMap", "ctnas-config")
get("Namespace", "ctnas")

spec = sts.get("spec", {})
need(spec.get("replicas") == 1, "StatefulSet: replicas 1")
need(spec.get("serviceName") == "ctnas-coordinator", "StatefulSet: serviceName ctnas-coordinator")
claims = spec.get("volumeClaimTemplates", [])
need(len(claims) == 1 and claims[0]["spec"]["accessModes"] == ["ReadWriteOnce"], "StatefulSet: one ReadWriteOnce volumeClaimTemplate")
claim = claims[0]["metadata"]["name"] if claims else None
pod = spec.get("template", {}).get("spec", {})
need(pod.get("terminationGracePeriodSeconds", 30) >= 120, "StatefulSet: terminationGracePeriodSeconds >= 120 (checkpoint)")
c = (pod.get("containers") or [{}])[0]
need(c.get("image") == "ctnas", "StatefulSet: image placeholder ctnas")
need(any(p.get("containerPort") == 5555 for p in c.get("ports", [])), "StatefulSet: containerPort 5555")
mounts = {m["name"]: m for m in c.get("volumeMounts", [])}
need(claim in mounts, "StatefulSet: the claim is mounted")
script = " ".join(c.get("command", []) + c.get("args", []))
need("run.json" in script and "--resume" in script, "StatefulSet: the command resumes when run.json exists")
need("--keys" in script and "tcp://0.0.0.0:5555" in script, "StatefulSet: listens on 0.0.0.0:5555 with --keys")

def secret_items(pod, container):
    m = {x["name"]: x for x in container.get("volumeMounts", [])}
    for v in pod.get("volumes", []):
        s = v.get("secret")
        if s and s.get("secretName") == "ctnas-keys":
            need(m.get(v["name"], {}).get("readOnly") is True, f"{container.get('name')}: the key Secret is mounted read-only")
            return {i["key"] for i in s.get("items", [])}
    problems.append(f"{container.get('name')}: no volume from Secret ctnas-keys")
    return set()
need(secret_items(pod, c) == {"coordinator.key", "coordinator.pub", "authorized_workers"}, "StatefulSet: coordinator.key, coordinator.pub, authorized_workers from the Secret")

sspec = svc.get("spec", {})
need(sspec.get("type", "ClusterIP") == "ClusterIP", "Service: ClusterIP")
need([p.get("port") for p in sspec.get("ports", [])] == [5555], "Service: port 5555")
labels = spec.get("template", {}).get("metadata", {}).get("labels", {})
need(sspec.get("selector") and all(labels.get(k) == v for k, v in sspec["selector"].items()), "Service selects the coordinator's pods")

dspec = dep.get("spec", {})
need(isinstance(dspec.get("replicas"), int) and dspec["replicas"] >= 1, "Deployment: replicas")
wpod = dspec.get("template", {}).get("spec", {})
w = (wpod.get("containers") or [{}])[0]
need(w.get("image") == "ctnas", "Deployment: image placeholder ctnas")
wscript = " ".join(w.get("command", []) + w.get("args", []))
env = {e["name"]: e.get("value") for e in w.get("env", [])}
need("worker" in wscript and "--connect" in wscript, "Deployment: runs ctnas worker --connect")
need(env.get("CTNAS_CONNECT") == "tcp://ctnas-coordinator:5555", "Deployment: connects to tcp://ctnas-coordinator:5555")
need(secret_items(wpod, w) == {"worker.key", "coordinator.pub"}, "Deployment: worker.key and coordinator.pub from the Secret")
for name, p in (("StatefulSet", pod), ("Deployment", wpod)):
    need(p.get("securityContext", {}).get("runAsNonRoot") is True, f"{name}: runAsNonRoot")
need(set(docs) >= {("NetworkPolicy", "ctnas-coordinator")}, "NetworkPolicy ctnas-coordinator")
if problems:
    print("\n".join(problems)); sys.exit(1)
PY
  }
  check "manifests parse (PyYAML); kinds, names, ports, volumes, keys, resume command" k8s_check
else
  skip "PyYAML is not importable (pip install pyyaml): structural check of the manifests only"
  k8s_check() {
    local f problems=()
    for f in "$k8s"/*.yaml; do
      grep -q $'\t' "$f" && problems+=("$(basename "$f"): tab characters")
      grep -q '^kind: ' "$f" || problems+=("$(basename "$f"): no kind")
    done
    grep -q '^kind: StatefulSet' "$k8s/coordinator-statefulset.yaml" || problems+=("no StatefulSet")
    grep -q 'volumeClaimTemplates:' "$k8s/coordinator-statefulset.yaml" || problems+=("no volumeClaimTemplates")
    grep -q 'run.json' "$k8s/coordinator-statefulset.yaml" || problems+=("the coordinator does not resume")
    grep -q '^kind: Service' "$k8s/coordinator-service.yaml" || problems+=("no Service")
    grep -q 'port: 5555' "$k8s/coordinator-service.yaml" || problems+=("Service not on 5555")
    grep -q '^kind: Deployment' "$k8s/worker-deployment.yaml" || problems+=("no Deployment")
    grep -q 'secretName: ctnas-keys' "$k8s/worker-deployment.yaml" || problems+=("workers have no keys")
    if [[ ${#problems[@]} -gt 0 ]]; then printf '%s\n' "${problems[@]}"; return 1; fi
  }
  check "manifests: kinds, names, ports, volumes (structural)" k8s_check
fi
if command -v kubectl >/dev/null 2>&1; then
  check "kubectl kustomize builds" kubectl kustomize "$k8s"
fi
dockerfile() {
  local f=$k8s/Dockerfile problems=()
  [[ $(grep -c '^FROM ' "$f") -ge 2 ]] || problems+=("not a two-stage build")
  for p in libzmq5 libopenblas0 tini 'COPY --from=build' 'usr/lib/swift/linux' 'swift build -c release'; do
    grep -qF -- "$p" "$f" || problems+=("no '$p'")
  done
  grep -qE '^USER [1-9]' "$f" || problems+=("does not run as a non-root user")
  grep -q '^ENTRYPOINT \["/usr/bin/tini"' "$f" || problems+=("no tini entrypoint")
  grep -q '"/usr/bin/tini"' "$k8s/coordinator-statefulset.yaml" || problems+=("the manifests do not start tini")
  # Every COPY source from the build context exists.
  while read -r src; do [[ -e "$repo/$src" ]] || problems+=("COPY $src: not in the repository"); done \
    < <(awk '$1 == "COPY" && $2 !~ /^--/ { print $2 }' "$f")
  if [[ ${#problems[@]} -gt 0 ]]; then printf '%s\n' "${problems[@]}"; return 1; fi
}
check "Dockerfile: Debian runtime, Swift libraries, libzmq5, libopenblas0, tini, non-root" dockerfile

# ---------------------------------------------------------------------------------------------
section "slurm"
sbatch_lines() {
  local f=$deploy/slurm/ctnas.sbatch o
  for o in --nodes --ntasks-per-node --cpus-per-task --time --requeue --signal; do
    grep -qE "^#SBATCH $o([= ]|\$)" "$f" || { echo "no #SBATCH $o"; return 1; }
  done
  # #SBATCH lines must come before the first command.
  awk '/^#SBATCH/ && cmd { print "line " NR ": #SBATCH after a command"; bad = 1 }
       NR > 1 && !/^#/ && !/^$/ { cmd = 1 } END { exit bad }' "$f"
}
check "ctnas.sbatch: #SBATCH lines (nodes, tasks, cpus, time, requeue, signal) before any command" sbatch_lines

# ---------------------------------------------------------------------------------------------
section "README"
readme() {
  local f=$deploy/README.md problems=() t
  # Fences: every opening ``` has a closing one.
  awk '/^[[:space:]]*```/ { open = !open } END { exit open }' "$f" || problems+=("unbalanced code fences")
  for t in 'ctnas keygen' authorized_workers SIGHUP --resume SIGTERM local/start.sh local/stop.sh \
           ctnas-coordinator.service 'ctnas-worker@' ctnas.sbatch 'kubectl apply -k' Dockerfile validate.sh; do
    grep -qF -- "$t" "$f" || problems+=("does not mention $t")
  done
  if [[ ${#problems[@]} -gt 0 ]]; then printf '%s\n' "${problems[@]}"; return 1; fi
}
check "README.md: balanced fences, every deployment kind, keys, resume, rotation" readme

# ---------------------------------------------------------------------------------------------
if [[ "$static" == yes ]]; then
  echo "validate.sh: --static: live checks skipped"
else
  bin=${CTNAS_BIN:-}
  if [[ -z "$bin" ]]; then
    if command -v ctnas >/dev/null 2>&1; then bin=$(command -v ctnas); else
      for candidate in "$repo"/.build/release/ctnas "$repo"/.build-*/release/ctnas; do
        if [[ -x "$candidate" ]]; then bin=$candidate; break; fi
      done
    fi
  fi
  data=${CTNAS_DATA:-$repo/../shared/data/nasbench101.csv.gz}
  tiny=(--queries 60 --comparator-epochs 5 --iterations 50 --baseline-every 25 --explore-every 25 --quiet)
  tiny_loud=(--queries 60 --comparator-epochs 5 --iterations 50 --baseline-every 25 --explore-every 25)
  longer=(--queries 60 --comparator-epochs 5 --iterations 2000 --baseline-every 500 --explore-every 500 --checkpoint-every 100 --quiet)

  # wait_for SECONDS COMMAND...: polls every 0.1 s.
  wait_for() {
    local ticks=$(($1 * 10))
    shift
    until "$@"; do
      ((ticks-- > 0)) || return 1
      sleep 0.1
    done
  }
  # gone PIDFILE...: no pid in these files is a live process.
  gone() {
    local f pid
    for f in "$@"; do
      [[ -f "$f" ]] || continue
      pid=$(cat "$f")
      if kill -0 "$pid" 2>/dev/null; then echo "pid $pid ($f) is still running"; return 1; fi
    done
  }
  search_started() { grep -q '"search_started"' "$1/metrics.jsonl" 2>/dev/null; }
  # in_run_folder DIR NAME...: DIR/NAME.pid and DIR/NAME.log exist.
  in_run_folder() {
    local dir=$1 n
    shift
    for n in "$@"; do [[ -s "$dir/$n.pid" && -f "$dir/$n.log" ]] || { echo "no $dir/$n.pid or .log"; return 1; }; done
  }
  # exited_zero DIR NAME...: DIR/NAME.exit says 0.
  exited_zero() {
    local dir=$1 n
    shift
    for n in "$@"; do [[ "$(cat "$dir/$n.exit" 2>/dev/null)" == 0 ]] || { echo "$n: exit status $(cat "$dir/$n.exit" 2>/dev/null || echo unknown)"; return 1; }; done
  }
  # checkpointed DIR: a checkpoint and no result.json.
  checkpointed() { compgen -G "$1/checkpoint-*.ctnas" >/dev/null && [[ ! -e "$1/result.json" ]]; }
  exit_status_is() { [[ -f "$1" && "$(cat "$1")" == "$2" ]] || { echo "$1: $(cat "$1" 2>/dev/null || echo missing), expected $2"; return 1; }; }

  if [[ -z "$bin" || ! -x "$bin" ]]; then
    fail "live checks: no ctnas binary (set CTNAS_BIN)"
  elif [[ ! -f "$data" ]]; then
    fail "live checks: no table at $data (set CTNAS_DATA)"
  else
    export CTNAS_BIN=$bin
    section "local: start.sh + stop.sh ($bin)"
    out=$tmp/local-finish
    logged "start.sh -n 2 starts a coordinator and 2 workers" "$tmp/local-finish.start.log" \
      "$deploy/local/start.sh" -n 2 -o "$out" -d "$data" "${tiny[@]}"
    pids=("$out"/local/coordinator.pid "$out"/local/worker-1.pid "$out"/local/worker-2.pid)
    saved=$tmp/local-finish.pids
    mkdir -p "$saved" && cp "${pids[@]}" "$saved/" 2>/dev/null
    pidfiles+=("$saved"/*.pid)
    check "pid files and logs in the run folder" in_run_folder "$out/local" coordinator worker-1 worker-2
    check "result.json appears" wait_for 180 test -s "$out/result.json"
    check "the coordinator exits by itself" wait_for 60 gone "$out/local/coordinator.pid"
    # A worker that misses the finished coordinator's standby keeps reconnecting; stop.sh ends it.
    if wait_for 15 gone "$out/local/worker-1.pid" "$out/local/worker-2.pid" >/dev/null; then
      ok "the workers stand down by themselves"
    else
      note "a worker missed the coordinator's standby and is still reconnecting; stop.sh ends it"
    fi
    check "stop.sh reports and exits 0" "$deploy/local/stop.sh" -r "$out/local"
    check "every process is gone" gone "$saved"/*.pid
    check "exit statuses 0" exited_zero "$out/local" coordinator worker-1 worker-2
    check "state_digest in result.json" grep -q '"state_digest"' "$out/result.json"

    out=$tmp/local-resume
    logged "start.sh (a longer search)" "$tmp/local-resume.start.log" \
      "$deploy/local/start.sh" -n 2 -o "$out" -d "$data" "${longer[@]}"
    mkdir -p "$tmp/local-resume.pids" && cp "$out"/local/*.pid "$tmp/local-resume.pids/" 2>/dev/null
    pidfiles+=("$tmp/local-resume.pids"/*.pid)
    check "the search phase starts" wait_for 120 search_started "$out"
    if [[ -f "$out/result.json" ]]; then
      fail "the search finished before it could be stopped (make 'longer' longer)"
    else
      check "stop.sh mid-search (SIGTERM, checkpoint)" "$deploy/local/stop.sh" -r "$out/local" -t 60
      check "every process is gone" gone "$tmp/local-resume.pids"/*.pid
      check "the coordinator exited 0" exit_status_is "$out/local/coordinator.exit" 0
      check "a checkpoint and no result" checkpointed "$out"
      logged "start.sh -o DIR again resumes" "$tmp/local-resume.restart.log" "$deploy/local/start.sh" -n 2 -o "$out"
      mkdir -p "$tmp/local-resume.pids2" && cp "$out"/local/*.pid "$tmp/local-resume.pids2/" 2>/dev/null
      pidfiles+=("$tmp/local-resume.pids2"/*.pid)
      check "the log says it resumed" grep -q 'resuming from checkpoint' "$out/local/coordinator.log"
      check "the resumed search finishes" wait_for 180 test -s "$out/result.json"
      check "stop.sh after the end" "$deploy/local/stop.sh" -r "$out/local"
      check "every process is gone" gone "$tmp/local-resume.pids2"/*.pid
    fi

    out=$tmp/local-waiting
    logged "start.sh -n 1 with --min-workers 3" "$tmp/local-waiting.start.log" \
      "$deploy/local/start.sh" -n 1 -o "$out" -d "$data" --min-workers 3 "${tiny_loud[@]}"
    mkdir -p "$tmp/local-waiting.pids" && cp "$out"/local/*.pid "$tmp/local-waiting.pids/" 2>/dev/null
    pidfiles+=("$tmp/local-waiting.pids"/*.pid)
    check "the coordinator waits for workers" wait_for 60 grep -q 'waiting for 3 worker' "$out/local/coordinator.log"
    started=$SECONDS
    check "stop.sh while waiting for workers" "$deploy/local/stop.sh" -r "$out/local" -t 60
    check "... takes under 30 s" test $((SECONDS - started)) -lt 30
    check "every process is gone" gone "$tmp/local-waiting.pids"/*.pid

    section "slurm: ctnas.sbatch with stand-ins for srun and scontrol"
    stubs=$tmp/slurm-bin
    mkdir -p "$stubs"
    cat >"$stubs/srun" <<'EOF'
#!/usr/bin/env bash
# Stand-in for srun: runs the command once per node, here.
n=1
while [[ $# -gt 0 && "$1" == -* ]]; do
  case "$1" in --nodes=*) n=${1#--nodes=} ;; esac
  shift
done
pids=()
for i in $(seq 0 $((n - 1))); do SLURM_PROCID=$i "$@" & pids+=($!); done
echo "${pids[*]}" >"$SRUN_PIDS"
trap 'kill -TERM "${pids[@]}" 2>/dev/null' TERM INT
status=0
for p in "${pids[@]}"; do wait "$p" || status=$?; done
exit "$status"
EOF
    cat >"$stubs/scontrol" <<'EOF'
#!/usr/bin/env bash
# Stand-in for scontrol: this machine is the only node; requeue is written down.
case "$1 ${2:-}" in
  "show hostnames") echo 127.0.0.1 ;;
  "requeue "*) echo "$2" >>"$SCONTROL_LOG" ;;
  *) exit 1 ;;
esac
EOF
    chmod +x "$stubs/srun" "$stubs/scontrol"
    job=$tmp/slurm-submit
    mkdir -p "$job"
    # A port that is free now (the script would derive one from the job id).
    port=""
    for _ in $(seq 1 100); do
      candidate=$((20000 + RANDOM % 40000))
      if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then port=$candidate; break; fi
    done
    sbatch_env=(env PATH="$stubs:$PATH" SLURM_JOB_ID=77 SLURM_SUBMIT_DIR="$job" SLURM_JOB_NODELIST=node1
                SLURM_JOB_NUM_NODES=2 SLURM_CPUS_PER_TASK=1 CTNAS_BIN="$bin" CTNAS_DATA="$data" CTNAS_PORT="$port"
                CTNAS_LISTEN_HOST=127.0.0.1
                SCONTROL_LOG="$job/requeue.log" SRUN_PIDS="$job/srun.pids")
    slurm_pids() { tr ' ' '\n' <"$job/srun.pids" 2>/dev/null | while read -r p; do [[ -n "$p" ]] && echo "$p" >"$job/worker-$p.pid"; done; }

    (cd "$job" && "${sbatch_env[@]}" SLURM_JOB_ID=76 bash "$deploy/slurm/ctnas.sbatch" "${tiny[@]}") >"$job/finish.log" 2>&1
    status=$?
    check "a job runs to the end (exit 0)" test "$status" -eq 0
    check "... keys in the job folder" test -f "$job/ctnas-76/keys/coordinator.key" -a -f "$job/ctnas-76/keys/worker.key"
    check "... result.json" test -s "$job/ctnas-76/output/result.json"
    check "... the run listened on all interfaces with keys" grep -q '"keys"' "$job/ctnas-76/output/run.json"
    slurm_pids; check "... its workers are gone" gone "$job"/worker-*.pid
    [[ $status -eq 0 ]] || sed 's/^/        /' "$job/finish.log" | grep -v 'received' | tail -n 20
    rm -f "$job"/worker-*.pid

    (cd "$job" && exec "${sbatch_env[@]}" bash "$deploy/slurm/ctnas.sbatch" "${longer[@]}") >"$job/first.log" 2>&1 &
    script_pid=$!
    echo "$script_pid" >"$job/script.pid"
    pidfiles+=("$job/script.pid")
    check "the job's search phase starts" wait_for 120 search_started "$job/ctnas-77/output"
    slurm_pids; pidfiles+=("$job"/worker-*.pid)
    kill -USR1 "$script_pid" 2>/dev/null
    wait "$script_pid"
    status=$?
    check "time limit (USR1): the script exits 0" test "$status" -eq 0
    check "... checkpoint written, no result" checkpointed "$job/ctnas-77/output"
    check "... the job asked to be requeued" grep -qx 77 "$job/requeue.log"
    check "... its workers are gone" gone "$job"/worker-*.pid
    [[ $status -eq 0 ]] || sed 's/^/        /' "$job/first.log" | grep -v 'received' | tail -n 20
    rm -f "$job"/worker-*.pid
    (cd "$job" && "${sbatch_env[@]}" bash "$deploy/slurm/ctnas.sbatch") >"$job/second.log" 2>&1
    status=$?
    check "the requeued job resumes and finishes (exit 0)" test "$status" -eq 0
    check "... it resumed" grep -q 'resuming the run' "$job/second.log"
    check "... result.json" test -s "$job/ctnas-77/output/result.json"
    slurm_pids; check "... its workers are gone" gone "$job"/worker-*.pid
    [[ $status -eq 0 ]] || sed 's/^/        /' "$job/second.log" | grep -v 'received' | tail -n 20
  fi
fi

echo "validate.sh: $passed checks ok, $failed failing, $skipped skipped in ${SECONDS} s"
[[ $failed -eq 0 ]]
