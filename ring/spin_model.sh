#!/bin/sh
# Checks the Promela models with spin: wait.pml (the doorbell wake-up,
# fenced commits, and sleepers on a connection's bell),
# wake.pml (how many sleepers a ring wakes), remove.pml (the removed mark),
# watch.pml (peers watched while asleep), deadwaker.pml (a waker that dies
# in the middle of its wake), waitset.pml (waiting on many rings),
# fanout.pml (the fan-out protocol: frontier, lossy laps, eviction)
# and claim.pml (multi-producer claims, commits and recovery). The protocols as
# built must pass, and each broken variant must fail, so that the models are
# shown able to fail. Needs spin and a C compiler.
set -eu
dir=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
check() { # check MODEL NAME EXPECT [spin flags]: EXPECT is pass or fail
	model=$1 name=$2 expect=$3
	shift 3
	rm -f pan pan.c ./*.trail
	spin -a "$@" "$dir/$model" >/dev/null
	cc -O2 -DSAFETY -DCOLLAPSE -o pan pan.c
	out=$(./pan -m100000 2>&1)
	errors=$(echo "$out" | sed -n 's/.*errors: \([0-9]*\).*/\1/p')
	if [ "$expect" = pass ] && [ "$errors" = 0 ]; then
		echo "ok   $model, $name: no violation in $(echo "$out" | grep -o '[0-9.e+]* states, stored')"
	elif [ "$expect" = fail ] && [ "${errors:-0}" != 0 ]; then
		echo "ok   $model, $name: spin finds the violation, as it must: $(echo "$out" | grep -m1 -o 'assertion violated.*\|invalid end state.*' || true)"
	else
		echo "FAIL $model, $name: expected $expect"; echo "$out"; exit 1
	fi
}
check wait.pml "doorbell protocol" pass
check wait.pml "without the barrier" fail -DNO_BARRIER
check wait.pml "doorbell read after the last look" fail -DLATE_READ
check wait.pml "doorbell armed after the last look" fail -DARM_LATE
check wait.pml "fenced producer that does not fence" fail -DNO_COMMIT_FENCE
check wait.pml "fenced word decremented by a plain store" fail -DPLAIN_UNFENCE
check wait.pml "unfenced commit before the decrement" fail -DUNFENCE_LATE
check wait.pml "sleepers on a bell or the futex" pass -DBELL
check wait.pml "bell emptied after the look at the word" fail -DBELL -DBELL_CHECK_FIRST
check wait.pml "bell sleep with no look after emptying the FIFO" fail -DBELL -DNO_BELL_CHECK
check wait.pml "a bell sleeper woken by the futex only" fail -DBELL -DFUTEX_WAKE_ONLY
check wake.pml "two sleepers, futex" pass
check wake.pml "two sleepers, Windows semaphore" pass -DSEMAPHORE
check wake.pml "one sleeper woken per ring" fail -DWAKE_ONE
check wake.pml "one sleeper woken per ring, semaphore" fail -DSEMAPHORE -DWAKE_ONE
check wake.pml "waiter count read before the head store" fail -DCOUNT_EARLY
check wake.pml "waiter count read before the head store, semaphore" fail -DSEMAPHORE -DCOUNT_EARLY
check wake.pml "a woken sleeper back asleep, futex" pass -DRESLEEP
check wake.pml "a woken sleeper back asleep, futex waking in any order" fail -DRESLEEP -DANY_ORDER
check wake.pml "a woken sleeper back asleep, futex waking in any order, every sleeper woken" pass -DRESLEEP -DANY_ORDER -DWAKE_ALL
check wake.pml "a woken sleeper back asleep takes another's pass, semaphore" fail -DSEMAPHORE -DRESLEEP
check wake.pml "a woken sleeper back asleep, semaphore with looks at the word" pass -DSEMAPHORE -DRESLEEP -DLOOK
check remove.pml "removal mark" pass
check remove.pml "mark without waking" fail -DNO_WAKE
check remove.pml "doorbell rung before the mark" fail -DBELL_FIRST
check remove.pml "removal reported without a last look" fail -DONE_LOOK
check claim.pml "claim, commit and recovery" pass
check claim.pml "recovery without the live-claimant check" fail -DNO_LIVE_CHECK
check claim.pml "shortest dead claim without the boundary test" fail -DSHORTEST
check claim.pml "claim recorded after the compare-and-swap" fail -DINTENT_AFTER_CAS
check claim.pml "whole claim skipped when only its padding is missing" fail -DNO_PAD_CHECK
check deadwaker.pml "a waker that dies between its swap and its wake" pass
check deadwaker.pml "an attach that rings with the armed check" fail -DARMED_ATTACH
check watch.pml "peers watched while asleep" pass
check watch.pml "no doorbell rung on attach" fail -DNO_ATTACH_RING
check watch.pml "peers listed before counting as a waiter" fail -DWATCH_EARLY
check watch.pml "no look after a watch begins" fail -DNO_LOOK
check watch.pml "alarm read after the look" fail -DALARM_LATE
check waitset.pml "waiting on two rings, members armed across waits" pass
check waitset.pml "watch of the value read after the last look" fail -DSTALE_WATCH
check waitset.pml "fired member not armed again" fail -DNO_REARM
check fanout.pml "fan-out: reliable, stalled and lossy subscribers" pass
check fanout.pml "head raised after the payload is written" fail -DHEAD_LATE
check fanout.pml "lossy reader that does not look at head" fail -DNO_HEAD_CHECK
check fanout.pml "head looked at before the copy" fail -DHEAD_FIRST
check fanout.pml "producer that does not wait for the reliable subscriber" fail -DIGNORE_RELIABLE
check fanout.pml "frontier kept in one copy, updated in place" fail -DONE_COPY
check fanout.pml "stalled reliable subscriber never evicted" fail -DNO_EVICT
check fanout.pml "frontier left short of a subscriber that stalls ahead of it" fail -DQUICK_EXIT
check fanout.pml "evicted subscriber that does not look at head" fail -DNO_EVICT_CHECK
