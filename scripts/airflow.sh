#!/usr/bin/env bash
# Airflow for this project, locally: `make airflow` runs `scripts/airflow.sh standalone`.
#
#   scripts/airflow.sh init         metadata DB (SQLite) in $AIRFLOW_HOME and the pool screening_lake (1 slot)
#   scripts/airflow.sh standalone   init, start the warm engine (`screening engine start`) unless it runs already,
#                                   then `airflow standalone` (API server + UI, scheduler, DAG processor,
#                                   triggerer) with this project's DAGs; prints the URL and the login. Airflow runs
#                                   in a session of its own (setsid): Ctrl-C (SIGINT), SIGTERM or SIGHUP to this
#                                   script (or to `make airflow`, which passes SIGTERM on) stops every process of
#                                   that session (the components, their workers and task processes: SIGINT to
#                                   `airflow standalone`, which stops its components; what is left after
#                                   AIRFLOW_STOP_GRACE_S, default 30 s, gets SIGTERM, then SIGKILL), then the
#                                   engine if this script started it; the script returns when all have exited
#   scripts/airflow.sh CMD ...      any `airflow` subcommand in the same environment (e.g. dags list)
#
# Everything is configuration (env), nothing is edited in the DAGs:
#   AIRFLOW_HOME                       .airflow/ in the project (SQLite DB, logs, generated password)
#   AIRFLOW_CONN_SCREENING_SPARK       the Spark connection; local[*] here. For a cluster e.g.
#                                      '{"conn_type": "spark", "host": "spark://host", "port": 7077}'
#   AIRFLOW_VAR_SCREENING_LANDING/LAKE demo/landing and demo/lake (as `make run` makes them)
#   AIRFLOW_VAR_SCREENING_SPARK_REMOTE the engine the stage tasks are thin clients of: sc://127.0.0.1:PORT, PORT
#                                      SCREENING_ENGINE_PORT (default 15002); the engine's state folder is
#                                      SCREENING_ENGINE_HOME (default .engine/)
#   AIRFLOW_VAR_SCREENING_ENGINE       connect (default) or submit (a spark-submit per stage; no engine started)
#   SCREENING_START_DATE/END_DATE      the DAGs' schedule range; here the demo data's month, May 2022 (an empty
#                                      END_DATE means no end). A trigger with a logical date in it screens the demo
#   SCREENING_NIGHTLY_CATCHUP          false here: unpausing does not queue every night since the start date
#   AIRFLOW_VAR_SCREENING_ALERT_WEBHOOK where the DAGs post failure and lateness notices (JSON); unset: only logged
#                                      (docs/operations.md, Airflow, "Notices")
#   AIRFLOW_STOP_GRACE_S               seconds Airflow gets to stop cleanly on Ctrl-C / SIGTERM (a running task may
#                                      finish meanwhile) before what is left gets SIGTERM, then SIGKILL (default 30)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$ROOT/.venv/bin"

export AIRFLOW_HOME="${AIRFLOW_HOME:-$ROOT/.airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__EXECUTOR="${AIRFLOW__CORE__EXECUTOR:-LocalExecutor}"
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-4}"  # a 2-core machine: few task processes (the pool runs one anyway)
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:-sqlite:///$AIRFLOW_HOME/airflow.db}"
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS:-admin:admin}"
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="${AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION:-True}"
export AIRFLOW__API__PORT="${AIRFLOW__API__PORT:-8080}"
# the task processes reach the API server here (Airflow's default assumes port 8080, whatever AIRFLOW__API__PORT says)
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="${AIRFLOW__CORE__EXECUTION_API_SERVER_URL:-http://localhost:$AIRFLOW__API__PORT/execution/}"
LOCAL_SPARK='{"conn_type": "spark", "host": "local[*]"}'
export AIRFLOW_CONN_SCREENING_SPARK="${AIRFLOW_CONN_SCREENING_SPARK:-$LOCAL_SPARK}"
export AIRFLOW_VAR_SCREENING_LANDING="${AIRFLOW_VAR_SCREENING_LANDING:-$ROOT/demo/landing}"
export AIRFLOW_VAR_SCREENING_LAKE="${AIRFLOW_VAR_SCREENING_LAKE:-$ROOT/demo/lake}"
export AIRFLOW_VAR_SCREENING_SPARK_REMOTE="${AIRFLOW_VAR_SCREENING_SPARK_REMOTE:-sc://127.0.0.1:${SCREENING_ENGINE_PORT:-15002}}"
export SCREENING_START_DATE="${SCREENING_START_DATE:-2022-05-02}"
export SCREENING_END_DATE="${SCREENING_END_DATE-2022-05-31}"
export SCREENING_NIGHTLY_CATCHUP="${SCREENING_NIGHTLY_CATCHUP:-false}"
export SPARK_LOCAL_IP="${SPARK_LOCAL_IP:-127.0.0.1}"
export PATH="$BIN:$PATH"  # airflow, spark-submit and the python with the jobs package

POOL=screening_lake
PASSWORDS="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"

init() {
  mkdir -p "$AIRFLOW_HOME"
  airflow db migrate >"$AIRFLOW_HOME/db-migrate.log" 2>&1 || { tail -20 "$AIRFLOW_HOME/db-migrate.log"; echo "airflow db migrate failed (log: $AIRFLOW_HOME/db-migrate.log)"; exit 1; }
  airflow pools set "$POOL" 1 "one writer of the screening lake at a time (both screening DAGs)" >/dev/null
  if [ ! -s "$PASSWORDS" ]; then  # a password of our own, kept across restarts
    "$BIN/python" -c 'import json,secrets,sys; json.dump({"admin": secrets.token_urlsafe(12)}, open(sys.argv[1], "w"))' "$PASSWORDS"
  fi
}

# The warm engine the stage tasks are thin clients of: started here (before Airflow) when the remote is on this
# machine and nothing runs there yet, and then stopped when this script exits. An engine that was already running
# is left alone. ENGINE_NOTE is the banner's line.
ENGINE_STARTED=
stop_engine() {
  if [ -n "$ENGINE_STARTED" ]; then
    ENGINE_STARTED=
    echo "stopping the engine this script started"
    "$BIN/screening" engine stop || true
  fi
}
start_engine() {
  local remote="$AIRFLOW_VAR_SCREENING_SPARK_REMOTE" port
  if [ "$(echo "${AIRFLOW_VAR_SCREENING_ENGINE:-connect}" | tr '[:upper:]' '[:lower:]')" = submit ]; then
    ENGINE_NOTE="none (screening_engine=submit: a spark-submit per stage)"; return
  fi
  if ! [[ "$remote" =~ ^sc://(127\.0\.0\.1|localhost)(:([0-9]+))?(/.*)?$ ]]; then
    ENGINE_NOTE="$remote (not on this machine: start it there)"; return
  fi
  port="${BASH_REMATCH[3]:-15002}"
  if "$BIN/screening" engine status >/dev/null 2>&1 || (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    ENGINE_NOTE="$remote (already up; left running when Airflow exits)"; return
  fi
  ENGINE_STARTED=1
  "$BIN/screening" engine start --port "$port"
  ENGINE_NOTE="$remote (started here; stopped when Airflow exits)"
}

# `airflow standalone` in a session of its own, so that it can be stopped whole. Its components (scheduler, API
# server, DAG processor, triggerer) are its children, and their workers and task processes theirs (some in process
# groups of their own: the task supervisor puts each task in one), all in that one session; only the engine
# (`screening engine start` detaches it) leaves it. Signalling the script alone used to leave them running: a
# SIGTERM killed `airflow standalone` (exec'd) without it stopping its components, or reached a bash that waited
# for Airflow before running its trap. Now the script waits in `wait`, which a trapped signal interrupts.
AIRFLOW_SID=
AIRFLOW_STOP_GRACE_S="${AIRFLOW_STOP_GRACE_S:-30}"
session_alive() {  # any process of session $1 still running (zombies waiting to be reaped do not count)
  ps -e -o sid=,stat= | awk -v sid="$1" '$1 == sid && $2 !~ /^Z/ { found = 1 } END { exit !found }'
}
wait_session() {  # until session $1 has no process left, at most $2 seconds; false when some remain
  local i
  for ((i = 0; i < $2 * 2; i++)); do
    session_alive "$1" || return 0
    sleep 0.5
  done
  ! session_alive "$1"
}
stop_airflow() {
  local sid="$AIRFLOW_SID"
  [ -n "$sid" ] || return 0
  AIRFLOW_SID=
  session_alive "$sid" || return 0
  echo "stopping Airflow: every process of its session $sid (scheduler, API server, DAG processor, triggerer, their workers and tasks)"
  # SIGINT to `airflow standalone` alone: it sends each component one SIGTERM, and each stops its own workers (the
  # scheduler lets a running task finish). Not to all of them, as Ctrl-C in a terminal does: each component would
  # get two signals, and a second one is Airflow's "force" (the triggerer then hung until killed).
  kill -INT "$sid" 2>/dev/null || true
  if ! wait_session "$sid" "$AIRFLOW_STOP_GRACE_S"; then
    echo "Airflow still running after ${AIRFLOW_STOP_GRACE_S} s: SIGTERM to all that is left (a running task is killed)"
    ps -o pid=,args= -s "$sid" 2>/dev/null | cut -c1-120 | sed 's/^/  /' || true
    pkill -TERM -s "$sid" 2>/dev/null || true
    if ! wait_session "$sid" 10; then
      echo "still running after 10 s more: SIGKILL"
      pkill -KILL -s "$sid" 2>/dev/null || true
      wait_session "$sid" 10 || echo "WARNING: processes of session $sid outlived SIGKILL: ps -s $sid"
    fi
  fi
  wait 2>/dev/null || true  # reap them
  echo "Airflow stopped"
}
cleanup() {
  stop_airflow
  stop_engine
}
stop_on_signals() {  # from here on a signal ends the script, and the script's end stops what it started
  trap cleanup EXIT
  trap 'exit 129' HUP
  trap 'exit 130' INT
  trap 'exit 143' TERM
}
# Starts `airflow ARGS` as the leader of a new session (os.setsid: a background job is never a process group
# leader, so it needs no fork and $! is the session id) with SIGINT and SIGQUIT back to their defaults: bash starts
# a background job with them ignored, and `airflow standalone` then ignored the SIGINT that should stop it.
LAUNCH='import os, signal, sys
os.setsid()
signal.signal(signal.SIGINT, signal.SIG_DFL)
signal.signal(signal.SIGQUIT, signal.SIG_DFL)
os.execvp(sys.argv[1], sys.argv[1:])'
run_airflow() {
  local code=0
  "$BIN/python" -c "$LAUNCH" airflow "$@" &
  AIRFLOW_SID=$!
  wait "$AIRFLOW_SID" || code=$?  # returns at once when a trapped signal arrives (the trap exits, EXIT cleans up)
  exit "$code"  # Airflow exited by itself: EXIT still stops whatever it left and the engine
}

case "${1:-standalone}" in
  init)
    init
    ;;
  standalone)
    stop_on_signals
    init
    [ -d "$AIRFLOW_VAR_SCREENING_LANDING" ] || echo "note: $AIRFLOW_VAR_SCREENING_LANDING does not exist yet: run 'make run' first for demo data"
    password=$("$BIN/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["admin"])' "$PASSWORDS")
    start_engine
    if [ -n "${AIRFLOW_VAR_SCREENING_ALERT_WEBHOOK:-}" ]; then
      NOTICES_NOTE="failures and lateness posted to the webhook in AIRFLOW_VAR_SCREENING_ALERT_WEBHOOK"
    else
      NOTICES_NOTE="logged only (post them: AIRFLOW_VAR_SCREENING_ALERT_WEBHOOK or the Variable screening_alert_webhook)"
    fi
    cat <<MSG

  Airflow UI:  http://localhost:$AIRFLOW__API__PORT
  Login:       admin / $password   (kept in $PASSWORDS)
  DAGs:        screening_nightly (01:00 Asia/Shanghai), screening_hourly (:10), paused at first; their
               schedule covers the demo data's month ($SCREENING_START_DATE to ${SCREENING_END_DATE:-no end}).
               To screen the demo: unpause screening_nightly, press Trigger and set the logical date
               to 2022-05-16 01:00 (Asia/Shanghai): the night after the one make run screened
  Landing:     $AIRFLOW_VAR_SCREENING_LANDING
  Lake:        $AIRFLOW_VAR_SCREENING_LAKE
  Engine:      $ENGINE_NOTE
  Notices:     $NOTICES_NOTE
  Ctrl-C (or SIGTERM to this script or to make) stops all of it.

MSG
    run_airflow standalone
    ;;
  *)
    exec airflow "$@"
    ;;
esac
