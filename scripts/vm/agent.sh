#!/bin/sh
# The command agent on the virtio-serial port "igw.agent". The host writes one request per line:
#   <id> <timeout-seconds> <base64 of a shell script>
# and the agent answers, in order,
#   BEGIN <id>
#   <base64 of the script's combined stdout and stderr, wrapped>
#   END <id> <exit status>
# Requests run one after another; long-running loads are started in the background by the script.
port=""
for d in /sys/class/virtio-ports/*; do
  [ "$(cat "$d/name" 2>/dev/null)" = igw.agent ] && port="/dev/${d##*/}"
done
[ -n "$port" ] || { echo "igw-agent: no virtio port named igw.agent"; sleep 5; exit 1; }
exec 3<>"$port"
echo "READY" >&3
while read -r id tmo script <&3; do
  [ -n "$id" ] || continue
  echo "$script" | base64 -d > "/tmp/.cmd.$id" 2>/dev/null
  timeout "$tmo" sh "/tmp/.cmd.$id" > "/tmp/.out.$id" 2>&1 < /dev/null
  rc=$?
  { echo "BEGIN $id"; base64 < "/tmp/.out.$id"; echo "END $id $rc"; } >&3
  rm -f "/tmp/.cmd.$id" "/tmp/.out.$id"
done
