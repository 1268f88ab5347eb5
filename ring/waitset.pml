/*
 * A model of waiting on many rings (package shmring's WaitSet, with
 * ring/waitmany.go and internal/futex's watches), checked by spin in .ci/run
 * under sequential consistency (the fence of the doorbell protocol, which
 * wait.pml checks against a store buffer, is taken as given here).
 *
 * Two rings, each fed by a producer that commits M messages and rings its
 * doorbell by the wake procedure (FORMAT.md, "Doorbells"). One waiter
 * serves both: each Wait takes the members whose watch fired (and uncounts
 * them as waiters), looks at the members not armed, and arms those it finds
 * empty: reads the doorbell, arms it, counts itself a waiter, looks again,
 * and only then registers a watch of the doorbell with the value read
 * first. An armed member stays armed across Waits until its watch fires. A
 * watch fires when its word no longer holds its value (a watcher thread in
 * futex_waitv), and wakes the Wait (a channel with room for one token).
 *
 * Checked: the waiter receives every message of both rings and ends (an
 * invalid end state otherwise: a Wait asleep with a message waiting, or a
 * ring never reported ready again).
 *
 * Must fail: -DSTALE_WATCH (the watch takes the doorbell's value read after
 * the last look: a commit in between is slept through), -DNO_REARM (a member
 * whose watch fired is uncounted but not looked at and armed again: its
 * ring is never reported ready again).
 */

#define M 2

byte committed[2];
byte taken[2];
byte bell[2];
byte armedv[2];
byte waiters[2];

bool armed[2];      /* the member is armed (counted, watched) */
bool watching[2];   /* its watch is registered */
byte wv[2];         /* the value the watch waits to change */
bool fired[2];      /* the watch fired; the next Wait takes it */
bool token = false; /* the Wait's wake channel holds a token */

proctype producer(byte r) {
	byte b;
	do
	:: committed[r] < M ->
		committed[r]++;
		if
		:: waiters[r] > 0 ->
			b = bell[r];
			if
			:: b == armedv[r] -> atomic { if :: bell[r] == b -> bell[r]++ :: else fi }
			:: else
			fi
		:: else
		fi
	:: else -> break
	od
}

/* the watcher threads: a watch fires once its word has moved */
active proctype watcher() {
	byte r;
end:
	do
	:: atomic {
		(watching[0] && bell[0] != wv[0]) || (watching[1] && bell[1] != wv[1]) ->
		if
		:: watching[0] && bell[0] != wv[0] -> r = 0
		:: watching[1] && bell[1] != wv[1] -> r = 1
		fi;
		watching[r] = false;
		fired[r] = true;
		token = true
	   }
	od
}

active proctype waiter() {
	byte r, v;
	do
	:: taken[0] == M && taken[1] == M -> break
	:: else ->
		/* takeFired */
		for (r : 0 .. 1) {
			atomic {
				if
				:: fired[r] ->
					fired[r] = false;
					waiters[r]--;
#ifndef NO_REARM
					armed[r] = false
#endif
				:: else
				fi
			}
		}
		/* look at the members not armed; serve what is there */
		for (r : 0 .. 1) {
			if
			:: !armed[r] && taken[r] < committed[r] -> taken[r] = committed[r]
			:: else
			fi
		}
		/* arm the empty ones: read, arm, count, look again, watch */
		for (r : 0 .. 1) {
			if
			:: !armed[r] && taken[r] == committed[r] && taken[r] < M ->
				v = bell[r];
				if :: armedv[r] != v -> armedv[r] = v :: else fi;
				waiters[r]++;
				armed[r] = true;
				if
				:: taken[r] < committed[r] ->   /* the last look found one */
					waiters[r]--;
					armed[r] = false;
					taken[r] = committed[r]
				:: else ->
#ifdef STALE_WATCH
					v = bell[r];
#endif
					atomic { wv[r] = v; watching[r] = true }
				fi
			:: else
			fi
		}
		/* sleep until a watch fires, unless a member was served */
		if
		:: (armed[0] || taken[0] == M) && (armed[1] || taken[1] == M) && !(taken[0] == M && taken[1] == M) ->
			atomic { token -> token = false }
		:: else
		fi
	od
}

init {
	run producer(0);
	run producer(1)
}
