#!/bin/sh
# make demo: respawner supervises a real program in the foreground, the program
# is killed once with SIGKILL, respawner restarts it after -t 1, then a SIGTERM
# to respawner stops everything cleanly. About 4 seconds.
set -eu
bin=${1:-bin/respawner}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cat > "$dir/worker.sh" <<'W'
#!/bin/sh
echo "worker $$: serving"
trap 'echo "worker $$: got SIGTERM, bye"; exit 0' TERM
while :; do sleep 1 & wait $!; done
W
chmod +x "$dir/worker.sh"

say() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }
child() { cat /proc/"$1"/task/*/children 2>/dev/null | tr -d ' '; }

say "respawner start -D -t 1 $dir/worker.sh"
"$bin" start -D -t 1 "$dir/worker.sh" &
rsp=$!
sleep 1
pid=$(child "$rsp")
say "kill -9 $pid  (the worker dies abnormally; respawner restarts it after 1s)"
kill -9 "$pid"
sleep 2
new=$(child "$rsp")
say "worker is back as pid $new; kill -TERM $rsp  (respawner stops the worker and exits 0)"
kill -TERM "$rsp"
status=0
wait "$rsp" || status=$?
say "respawner exited with status $status"
[ "$status" -eq 0 ] && [ -n "$new" ] && [ "$new" != "$pid" ]
