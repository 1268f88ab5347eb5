#!/bin/sh
# Checks ring/wait.pml with spin: the protocol as built must show no lost
# wake-up, and each of the two broken variants must show one (so the model
# can fail). Needs spin and a C compiler.
set -eu
model=$(cd "$(dirname "$0")" && pwd)/wait.pml
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
check() { # check NAME EXPECT [spin flags]: EXPECT is pass or fail
	name=$1 expect=$2
	shift 2
	rm -f pan pan.c ./*.trail
	spin -a "$@" "$model" >/dev/null
	cc -O2 -o pan pan.c
	out=$(./pan -m100000 2>&1)
	errors=$(echo "$out" | sed -n 's/.*errors: \([0-9]*\).*/\1/p')
	if [ "$expect" = pass ] && [ "$errors" = 0 ]; then
		echo "ok   $name: no lost wake-up in $(echo "$out" | grep -o '[0-9]* states, stored')"
	elif [ "$expect" = fail ] && [ "${errors:-0}" != 0 ]; then
		echo "ok   $name: spin finds the lost wake-up, as it must"
	else
		echo "FAIL $name: expected $expect"; echo "$out"; exit 1
	fi
}
check "doorbell protocol" pass
check "without the barrier" fail -DNO_BARRIER
check "doorbell read after the last look" fail -DLATE_READ
