#!/bin/bash
# How often the idle daemon wakes: runs bench:idle (egress on) from the built
# tree in DIR (default: this checkout), attaches strace to the daemon 35 s in,
# and counts over 60 s its event-loop waits that blocked (wake-ups) and all
# of its event-loop iterations. Needs root, strace, and what bench:idle needs.
# Strace slows the daemon: read the bench's own CPU figure from a run without it.
#   usage: scripts/idle-wakeups.sh [DIR]
set -euo pipefail
DIR=$(cd "${1:-$(dirname "$0")/..}" && pwd)
command -v strace >/dev/null || { echo "idle-wakeups: strace is not installed (apt-get install strace)" >&2; exit 2; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
( cd "$DIR" && flock /tmp/bench.lock env BENCH_EGRESS=on BENCH_SECONDS=90 node dist/bench/idle.js >"$out/bench" 2>&1 ) &
bench=$!
pid=''
for _ in $(seq 1 90); do
  pid=$(pgrep -f "$DIR/dist/cli/main.js daemon" | head -1 || true)
  [ -n "$pid" ] && break
  sleep 2
done
[ -n "$pid" ] || { echo "idle-wakeups: the bench's daemon did not start" >&2; cat "$out/bench" >&2; exit 1; }
sleep 35
timeout 60 strace -f -p "$pid" -e trace=epoll_pwait,epoll_wait -o "$out/strace" -tt 2>/dev/null || true
wait "$bench" || { cat "$out/bench" >&2; exit 1; }
# The main loop's waits: the ones with a 1024-event buffer (libuv's). A timeout of 0 is a poll
# that does not block; any other wait ends in a wake-up.
iterations=$(grep -cE 'epoll_p?wait\([0-9]+, .*1024, -?[0-9]+' "$out/strace" || true)
blocking=$(grep -E 'epoll_p?wait\([0-9]+, .*1024, -?[0-9]+' "$out/strace" | grep -cvE '1024, 0[,)]' || true)
echo "daemon $pid over 60 s: $blocking wake-ups (blocking waits), $iterations event-loop iterations"
echo "wake-ups by second:"
grep -E 'epoll_p?wait\([0-9]+, .*1024, -?[0-9]+' "$out/strace" | grep -vE '1024, 0[,)]' | awk '{print substr($2,1,8)}' | uniq -c | sed 's/^/  /'
