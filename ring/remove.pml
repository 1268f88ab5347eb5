/*
 * A model of marking a ring removed (Ring.MarkRemoved, FORMAT.md
 * "Removal"), checked by spin in .ci/run, under sequential consistency (the
 * mark is a sequentially consistent store, and the bell increments are
 * locked instructions).
 *
 * Three peers of one ring: a producer waiting for room on a full ring
 * (space_bell), the consumer waiting for data (data_bell), and a writer,
 * another producer, that checks the mark, claims, and commits one message,
 * with any delay between the claim and the commit. A remover stores the
 * mark, then, for each doorbell, increments it and wakes as many sleepers
 * as its waiter count says.
 *
 * Checked: every peer ends (no one sleeps for ever after the mark: an
 * invalid end state otherwise), and a message committed before the mark is
 * delivered before the consumer reports the removal (an assertion).
 *
 * Must fail: -DNO_WAKE (the mark without waking: a sleeper stays asleep),
 * -DBELL_FIRST (the doorbell incremented before the mark is stored: a
 * waiter reads the new value, looks before the mark, and sleeps on a value
 * nobody changes again), -DONE_LOOK (the consumer reports the removal
 * without looking once more after it sees the mark: a message committed
 * before the mark is lost).
 */

bool removed = false;
bool committed = false;  /* the writer's message is committed */
bool before = false;     /* ... and was committed before the mark */
bool delivered = false;  /* the consumer took it */
bool reported = false;   /* the consumer reported the removal */

byte dbell = 0, dwaiters = 0;   /* data_bell and data_waiters */
byte sbell = 0, swaiters = 0;   /* space_bell and space_waiters */
bool casleep = false, pasleep = false;

/* futex.Wait(bell, v): the check and the sleep are one step */
inline sleep(bell, v, asleep) {
	atomic { if :: bell == v -> asleep = true :: else fi };
	(!asleep)
}

/* doorbell.interrupt: increment, then wake as many as the count says */
inline interrupt(bell, waiters, asleep) {
	bell++;
	if :: waiters > 0 -> asleep = false :: else fi
}

active proctype writer() {
	if
	:: !removed ->                      /* the claim checks the mark */
		atomic { committed = true; before = !removed }
	:: else
	fi
}

active proctype producer() {           /* waits for room that never comes */
	byte v;
	do
	:: removed -> break
	:: !removed ->
		v = sbell;
		swaiters++;
		if
		:: removed -> swaiters--             /* the last look */
		:: else -> sleep(sbell, v, pasleep); swaiters--
		fi
	od
}

active proctype consumer() {
	byte v;
	do
	:: committed && !delivered -> delivered = true
	:: else ->                               /* looked: nothing committed */
		if
		:: removed ->                        /* then it sees the mark */
#ifndef ONE_LOOK
			if :: committed && !delivered -> delivered = true :: else fi;  /* once more */
#endif
			assert(!before || delivered);
			reported = true;
			break
		:: else ->
			v = dbell;
			dwaiters++;
			if
			:: (committed && !delivered) || removed -> dwaiters--   /* the last look */
			:: else -> sleep(dbell, v, casleep); dwaiters--
			fi
		fi
	od
}

active proctype remover() {
#ifdef BELL_FIRST
	dbell++; sbell++;
	removed = true;
	if :: dwaiters > 0 -> casleep = false :: else fi;
	if :: swaiters > 0 -> pasleep = false :: else fi
#else
	removed = true;
#ifndef NO_WAKE
	interrupt(dbell, dwaiters, casleep);
	interrupt(sbell, swaiters, pasleep)
#endif
#endif
}
