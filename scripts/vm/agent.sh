#!/bin/sh
# The command agent on the virtio-serial port "igw.agent". The host writes one request per line:
#   <id> <timeout-seconds> <base64 of a shell script>
# and the agent answers, in order,
#   BEGIN <id>
#   <base64 of the script's combined stdout and stderr, wrapped>
#   END <id> <exit status>
# Requests run concurrently (one hung in uninterruptible I/O does not block the others); each
# answer is composed in a file and written under a lock, so answers never interleave.
port=""
for d in /sys/class/virtio-ports/*; do
  [ "$(cat "$d/name" 2>/dev/null)" = igw.agent ] && port="/dev/${d##*/}"
done
[ -n "$port" ] || { echo "igw-agent: no virtio port named igw.agent"; sleep 5; exit 1; }
exec 3<>"$port"
echo "READY" >&3
while read -r id tmo script <&3; do
  [ -n "$id" ] || continue
  (
    echo "$script" | base64 -d > "/tmp/.cmd.$id" 2>/dev/null
    timeout "$tmo" sh "/tmp/.cmd.$id" > "/tmp/.out.$id" 2>&1 < /dev/null 3>&-
    rc=$?
    { echo "BEGIN $id"; base64 < "/tmp/.out.$id"; echo "END $id $rc"; } > "/tmp/.ans.$id"
    # busybox-static has no flock: mkdir is the atomic lock.
    n=0
    while ! mkdir /tmp/.agent.lock 2> /dev/null && [ $n -lt 3000 ]; do sleep 0.01; n=$((n + 1)); done
    cat "/tmp/.ans.$id" >&3
    rmdir /tmp/.agent.lock
    rm -f "/tmp/.cmd.$id" "/tmp/.out.$id" "/tmp/.ans.$id"
  ) &
done
