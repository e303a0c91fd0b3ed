#!/usr/bin/env bash
# Waits until the machine is quiet: at least ${QUIET_IDLE:-90}% idle over 2 s (from
# /proc/stat), checking for up to ${QUIET_MAX:-300} s. Prints the idle % it saw on stderr and
# exits 1 if no quiet window came (the caller then marks its figures as noisy).
want=${QUIET_IDLE:-90}
deadline=$((SECONDS + ${QUIET_MAX:-300}))
idle_pct() {
	read -r _ u n s i w q sq st _ < /proc/stat
	local t1=$((u + n + s + i + w + q + sq + st)) i1=$((i + w))
	sleep 2
	read -r _ u n s i w q sq st _ < /proc/stat
	local t2=$((u + n + s + i + w + q + sq + st)) i2=$((i + w))
	echo $(((i2 - i1) * 100 / (t2 - t1)))
}
while :; do
	p=$(idle_pct)
	if [ "$p" -ge "$want" ]; then
		echo "quiet: ${p}% idle" >&2
		exit 0
	fi
	if [ "$SECONDS" -ge "$deadline" ]; then
		echo "noisy: ${p}% idle (wanted ${want}%)" >&2
		exit 1
	fi
done
