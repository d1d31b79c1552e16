# Sourced by the setup scripts: `pip_logged LABEL LOG COMMAND...` runs a pip COMMAND,
# keeps pip's whole output (stdout and stderr, in order) in LOG, and prints only its progress lines
# and its errors live.
#
# Why: a setup once failed in CI with nothing but "make: *** [setup] Error 1" to read. pip's error
# went to stderr while its progress lines sat in a buffered pipe, so the error scrolled away above
# them. Now a failure prints pip's exit status, the last lines of LOG and the free disk space (a full
# disk is the usual cause for a ~7 GB environment). Then it retries once without pip's cache, which
# also covers a wheel that was cut short in the download. A second failure stops the setup.
pip_logged() {
  local label=$1 log=$2
  shift 2
  mkdir -p "$(dirname "$log")"
  local attempt rc
  for attempt in 1 2; do
    set +e
    : > "$log"
    if [ "$attempt" = 1 ]; then
      "$@" > "$log" 2>&1 &
    else
      PIP_NO_CACHE_DIR=1 "$@" > "$log" 2>&1 &
    fi
    local pid=$!
    # Live progress: follow the log until pip exits (tail -f stops when its --pid is gone).
    tail -n +1 -f --pid="$pid" "$log" \
      | awk '/^(Collecting|Processing|Installing|Successfully|ERROR|error:)/ {print substr($0, 1, 160); fflush()}'
    wait "$pid"
    rc=$?
    set -e
    [ "$rc" = 0 ] && return 0
    echo "[$label] pip failed (exit status $rc, attempt $attempt of 2); the last lines of $log:" >&2
    tail -n 25 "$log" | cut -c1-300 >&2
    echo "[$label] free disk where the environment goes: $(df -h --output=avail . | tail -n 1 | tr -d ' ')" >&2
  done
  return "$rc"
}
