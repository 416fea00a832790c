#!/usr/bin/env bash
# The shim's own descriptors (libunwind's validation pipe, files it opens
# while a hook runs) are never the program's: not in a subsystem, not in a
# site, not found by the exit reconciliation, and a program closing them is
# not closing one of its own. Held against the kernel's view (edgeprobe lists
# /proc/self/fd just before it exits) and real programs that open nothing.
# Needs: LEAKSCOPE, EDGEPROBE, jq.
. "$(dirname "$0")/../e2e/lib.sh"
S="$TMP/s.json"
mkdir -p "$LEAKSCOPE_DIR" && chmod 700 "$LEAKSCOPE_DIR"

fdj() { jq -r ".processes[0].fd | $1" "$S"; }
# Descriptors open at exit in subsystems other than stdio, and in sites.
not_stdio() { fdj '[.by_subsystem | to_entries[] | select(.key != "stdio") | .value.open] | add // 0'; }
in_sites() { fdj '[.sites[].open] | add // 0'; }
# kernel N pipe P device D, as edgeprobe printed it
kernel() { awk -v k="$1" '$1 == "kernel" { for (i = 1; i < NF; i++) if ($i == k) print $(i + 1) }' "$TMP/out"; }

# 1. A program that keeps nothing, its creations at the bottom of deep
# stacks (main thread and another): all the kernel holds beyond stdio at
# exit is the shim's.
for shims in "" --fd; do
  name="quiet${shims:+ $shims}"
  lks run --quiet $shims --summary "$S" -- "$EDGEPROBE" quiet >"$TMP/out" 2>"$TMP/err"
  check "$name: exit 0" 0 "$?"
  check "$name: nothing open beyond stdio" 0 "$(not_stdio)"
  check "$name: no site holds a descriptor" 0 "$(in_sites)"
  check "$name: pipe and device 0" "0 0" "$(fdj '"\(.by_subsystem.pipe.open // 0) \(.by_subsystem.device.open // 0)"')"
  check "$name: the kernel's descriptors beyond stdio are the shim's own" "$(kernel kernel)" "$(fdj .shim_own)"
  check "$name: the shim's are its pipe" "$(kernel pipe)" "$(fdj .shim_own)"
  check "$name: nothing unattributed, stale or closed unknown" "0 0 0" \
    "$(fdj '"\(.unattributed) \(.stale) \(.unknown_closes)"')"
done

# 2. A daemon's close-all loop takes the shim's pipe with everything else:
# that is no close of the program's, and the one device it keeps is all it has.
lks run --quiet --summary "$S" -- "$EDGEPROBE" closeall >"$TMP/out" 2>"$TMP/err"
check "closeall: the kernel holds the kept device" 1 "$(kernel device)"
check "closeall: the program closed nothing it had" 0 "$(fdj .unknown_closes)"
check "closeall: device 1, pipe 0" "1 0" "$(fdj '"\(.by_subsystem.device.open) \(.by_subsystem.pipe.open // 0)"')"
check "closeall: open + shim's own = the kernel's" "$(($(kernel kernel) + 3))" "$(fdj '.open_total + .shim_own')"
check "closeall: nothing unattributed or stale" "0 0" "$(fdj '"\(.unattributed) \(.stale)"')"

# 3. Real programs that open nothing they keep, with both shims.
for prog in /bin/true "/bin/sh -c true" "/usr/bin/python3 -c pass"; do
  lks run --quiet --summary "$S" -- $prog >"$TMP/out" 2>"$TMP/err"
  check "$prog: stdio only" "3 0" "$(fdj '"\(.by_subsystem.stdio.open) \(.open_total - .by_subsystem.stdio.open)"')"
  check "$prog: no site holds a descriptor" 0 "$(in_sites)"
  check "$prog: nothing unattributed, stale or closed unknown" "0 0 0" \
    "$(fdj '"\(.unattributed) \(.stale) \(.unknown_closes)"')"
done

# 4. Descriptors the program inherits (a job runner's /dev/null and pipe,
# as under a CI agent) are the program's, as the kernel says: they are the
# "device 1" and "pipe 1" such a run shows, never the shim's.
isolated bash -c 'exec 10</dev/null 11< <(:); exec "$@"' _ \
  "$LEAKSCOPE" run --quiet --summary "$S" -- "$EDGEPROBE" quiet >"$TMP/out" 2>"$TMP/err"
check "inherited: the kernel shows them" "1 $(($(fdj .shim_own) + 1))" "$(kernel device) $(kernel pipe)"
check "inherited: device 1, pipe 1, the program's" "1 1" "$(fdj '"\(.by_subsystem.device.open) \(.by_subsystem.pipe.open)"')"
check "inherited: open + shim's own = the kernel's" "$(($(kernel kernel) + 3))" "$(fdj '.open_total + .shim_own')"
finish
