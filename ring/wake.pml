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
 *
 * -DRESLEEP has producer 0, once woken and served, sleep again on the same
 * doorbell, for a ring that never comes (as a subscriber that got its
 * message waits for the next): that sleep may last for ever. Under the
 * semaphore its check and wait can take the pass released for producer 1
 * while producer 1 is between its own check and wait, and producer 1 then
 * sleeps for ever though its doorbell moved: spin must find that. -DLOOK is
 * the fix (internal/futex/futex_windows.go): a sleeper on the semaphore
 * looks at its word again after a bounded wait, so a moved word ends its
 * sleep, pass or no pass. Under futex the re-sleeper can come in after the
 * waker counted the waiters and before its wake call, and so be one more
 * sleeper than the wake wakes; the wake then reaches the one asleep the
 * longest, as Linux's does among threads of equal priority, which is the
 * one it was for. With -DANY_ORDER (a wake that may pick the newcomer,
 * as one of a higher real-time priority would be picked) spin finds the
 * other asleep for ever, unless the wake wakes every sleeper on the word
 * (-DWAKE_ALL), as doorbell.wake does under futex.
 */

#define P 2              /* producers waiting for room (the futex wake below is written for 2) */

byte room = 0;           /* free room, in messages */
byte waiters = 0;        /* the waiter count (space_waiters) */
byte bell = 0;           /* the doorbell (space_bell) */
byte armed = 0;          /* space_armed */
bool asleep[P];          /* futex: producer i sleeps on the word */
byte order = 0;          /* futex: sleeps so far, and ... */
byte slept0, slept1;     /* ... when producers 0 and 1 fell asleep, for the wake order */
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
			:: bell == v ->                        /* check, then wait */
#ifdef LOOK
				if
				:: atomic { sem > 0 -> sem-- }
				:: bell != v                   /* a later look: the word moved */
				fi
#else
				atomic { sem > 0 -> sem-- }
#endif
			:: else
			fi;
#else
			atomic {                               /* futex.Wait(bell, v) */
				if
				:: bell == v -> asleep[i] = true; order++; if :: i == 0 -> slept0 = order :: else -> slept1 = order fi
				:: else
				fi
			};
			(!asleep[i]);
#endif
			waiters--
		fi
	od;
#ifdef RESLEEP
	if
	:: i == 0 ->                                       /* back to sleep, for nothing */
		v = bell;
		waiters++;
#ifdef SEMAPHORE
		if
		:: bell == v ->
#ifdef LOOK
end_resleep_look:	if
			:: atomic { sem > 0 -> sem-- }
			:: bell != v
			fi
#else
end_resleep:		atomic { sem > 0 -> sem-- }          /* takes any pass left */
#endif
		:: else
		fi;
#else
		atomic { if :: bell == v -> asleep[i] = true; order++; if :: i == 0 -> slept0 = order :: else -> slept1 = order fi :: else fi };
end_resleep2:	(!asleep[i]);
#endif
		waiters--
	:: else
	fi
#endif
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
#if defined(WAKE_ALL) && !defined(SEMAPHORE)
				n = P;                                /* futex: every sleeper on the word */
#endif
#ifdef WAKE_ONE
				if :: n > 1 -> n = 1 :: else fi;
#endif
#ifdef SEMAPHORE
				sem = sem + n
#else
				atomic {                              /* futex.Wake(bell, n): up to n sleepers */
					if
					:: n >= asleep[0] + asleep[1] -> asleep[0] = false; asleep[1] = false
#ifdef ANY_ORDER
					:: n == 1 && asleep[0] && asleep[1] -> asleep[0] = false
					:: n == 1 && asleep[0] && asleep[1] -> asleep[1] = false
#else
					/* the one asleep the longest, as Linux wakes among equal priorities */
					:: n == 1 && asleep[0] && asleep[1] && slept0 < slept1 -> asleep[0] = false
					:: n == 1 && asleep[0] && asleep[1] && slept1 < slept0 -> asleep[1] = false
#endif
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
