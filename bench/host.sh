#!/bin/sh
# Runs one benchmark (its command line as arguments) and then prints what the host did
# meanwhile, from /proc/stat: the share of CPU time the hypervisor gave to others
# ("steal": the virtual CPUs were runnable, not running) and the share spent idle. A
# figure measured while a tenth of the time was stolen is the host's, not the code's.
set -u
ticks() {
	# cpu user nice system idle iowait irq softirq steal ...: total, idle, steal
	awk '/^cpu / { t = 0; for (i = 2; i <= 9; i++) t += $i; print t, $5, $9; exit }' /proc/stat
}
before=$(ticks)
"$@"
rc=$?
after=$(ticks)
echo "$before $after" | awk -v name="$(basename "$1")" '{
	t = $4 - $1; if (t <= 0) t = 1
	printf "host during %s: %.1f%% of CPU time stolen by the hypervisor, %.1f%% idle\n",
		name, 100 * ($6 - $3) / t, 100 * ($5 - $2) / t }'
exit $rc
