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
  local attempt rc no_cache=()
  for attempt in 1 2; do
    # stderr joins stdout before the pipe, so errors stay in order with the progress lines
    rc=0
    env "${no_cache[@]}" "$@" 2>&1 | tee "$log" \
      | awk '/^(Collecting|Processing|Installing|Successfully|ERROR|error:)/ {print substr($0, 1, 160); fflush()}' \
      || rc=${PIPESTATUS[0]}
    [ "$rc" = 0 ] && return 0
    echo "[$label] pip failed (exit status $rc, attempt $attempt of 2); the last lines of $log:" >&2
    tail -n 25 "$log" | cut -c1-300 >&2
    echo "[$label] free disk where the environment goes: $(df -h --output=avail . | tail -n 1 | tr -d ' ')" >&2
    no_cache=(PIP_NO_CACHE_DIR=1)
  done
  return "$rc"
}
