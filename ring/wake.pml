/*
 * A model of how many sleepers one ring of a doorbell wakes
 * (doorbell.ring and doorbell.wake in ring/doorbell.go), checked by spin in
 * .ci/run. wait.pml covers one waiter against x86's store buffer; this
 * model covers several waiters on one doorbell under sequential
 * consistency: two producers waiting for room, and a consumer that frees
 * room for both with one head store and rings once.
 *
 * The waker bumps the doorbell by compare-and-swap and then wakes as many
 * sleepers as the waiter count says, loaded after the swap. Every producer
 * that may be asleep on the old value counted itself before its last look
 * at the room, so it is counted; one that counts itself later sees the new
 * doorbell value and does not sleep on the old one.
 *
 * The sleep is futex(2) (the check of the word and the sleep are one step;
 * a wake of n wakes up to n sleepers on the word), or, with -DSEMAPHORE,
 * Windows: the word is checked, then the waiter waits on a semaphore, and a
 * wake of n releases n passes, which stay for waiters not yet asleep.
 *
 * Build with -DWAKE_ONE to wake a single sleeper per ring, or with
 * -DCOUNT_EARLY to use a waiter count read before the head store: spin must
 * then find a producer asleep for ever (an invalid end state), with either
 * sleep.
 */

#define P 2              /* producers waiting for room (the futex wake below is written for 2) */

byte room = 0;           /* free room, in messages */
byte waiters = 0;        /* the waiter count (space_waiters) */
byte bell = 0;           /* the doorbell (space_bell) */
byte armed = 0;          /* space_armed */
bool asleep[P];          /* futex: producer i sleeps on the word */
byte sem = 0;            /* the semaphore's count (-DSEMAPHORE) */

proctype producer(byte i) {
	byte v;
	do
	:: atomic { room > 0 -> room-- }; break          /* claimed its room */
	:: room == 0 ->
		v = bell;
		atomic { if :: v > armed -> armed = v :: else fi };  /* doorbell.arm */
		waiters++;
		if
		:: room > 0 -> waiters--                       /* the last look */
		:: else ->
#ifdef SEMAPHORE
			if
			:: bell == v -> atomic { sem > 0 -> sem-- }  /* check, then wait */
			:: else
			fi;
#else
			atomic {                               /* futex.Wait(bell, v) */
				if
				:: bell == v -> asleep[i] = true
				:: else
				fi
			};
			(!asleep[i]);
#endif
			waiters--
		fi
	od
}

active proctype consumer() {
	byte b, n;
	bool rung;
#ifdef COUNT_EARLY
	n = waiters;                                       /* the count read before the head store */
#endif
	room = room + P;                                   /* one head store frees room for all */
	if                                                 /* doorbell.ring */
	:: waiters > 0 ->
		b = bell;
		if
		:: b == armed ->
			atomic { rung = (bell == b); if :: rung -> bell++ :: else fi };
			if
			:: rung ->
#ifndef COUNT_EARLY
				n = waiters;                          /* doorbell.wake: loaded after the swap */
#endif
#ifdef WAKE_ONE
				if :: n > 1 -> n = 1 :: else fi;
#endif
#ifdef SEMAPHORE
				sem = sem + n
#else
				atomic {                              /* futex.Wake(bell, n): up to n sleepers, any of them */
					if
					:: n >= asleep[0] + asleep[1] -> asleep[0] = false; asleep[1] = false
					:: n == 1 && asleep[0] && asleep[1] -> asleep[0] = false
					:: n == 1 && asleep[0] && asleep[1] -> asleep[1] = false
					:: n == 0 && asleep[0] + asleep[1] > 0 -> skip
					fi
				}
#endif
			:: else
			fi
		:: else
		fi
	:: else
	fi
}

init {
	atomic {
		byte i;
		for (i : 0 .. P - 1) {
			run producer(i)
		}
	}
}
