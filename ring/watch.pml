/*
 * A model of a sleeper watching its peers' processes (FORMAT.md,
 * "Doorbells", "Watching the peers while asleep"), checked by spin in
 * .ci/run under sequential consistency.
 *
 * A consumer waits for data on data_bell with no timer: it learns of a
 * producer's death only from a watch of the producer's process. A producer
 * attaches (its slot marked attached, then it rings data_bell), claims the
 * record at the head, and dies before committing it; its lock is then free.
 * The kernel reports the end of a watched process (a pidfd turns readable)
 * at any time after the death, but only to a watch that began before it;
 * a watch begun after the death learns nothing, so the sleeper looks once
 * at the locks after starting a watch. A report rings the sleeper's alarm,
 * a word private to its process that its sleep also waits on (futex_waitv).
 *
 * Checked: the consumer always recovers the dead producer's claim and ends
 * (an invalid end state otherwise: a consumer asleep for ever).
 *
 * Must fail: -DNO_ATTACH_RING (the producer does not ring on attach: a
 * consumer that counted itself earlier sleeps without watching it),
 * -DWATCH_EARLY (the consumer lists the producers before it counts itself
 * as a waiter: an attach in between rings nobody), -DNO_LOOK (no look at
 * the locks after a watch begins: a death before the watch is never
 * reported), -DALARM_LATE (the alarm's value read after the look: a report
 * in between is slept through).
 */

bool attached = false;   /* slot_state */
bool alive = true;       /* the producer's process, and its lock */
bool claimed = false;    /* a claim at the head, never committed */
bool recovered = false;  /* the consumer skipped the dead claim */

byte dbell = 0, dwaiters = 0;
byte alarm = 0;
bool asleep = false;

bool watching = false;   /* the consumer watches the producer's process */
bool died = false;       /* a report arrived since the consumer's last look */
bool reportable = false; /* the watch began before the death */

active proctype producer() {
	attached = true;
#ifndef NO_ATTACH_RING
	if :: dwaiters > 0 -> dbell++; asleep = false :: else fi;
#endif
	claimed = true;
	atomic { alive = false; reportable = watching }
}

/* the kernel's report of the process's end, to a watch begun before it */
active proctype kernel() {
	(!alive);
	if
	:: reportable -> died = true; alarm++; asleep = false
	:: else
	fi
}

active proctype consumer() {
	byte v, av;
	bool look, listed;
	do
	:: recovered -> break
	:: else ->
#ifndef ALARM_LATE
		av = alarm;
#endif
#ifdef WATCH_EARLY
		listed = attached;
#endif
		v = dbell;
		dwaiters++;
#ifndef WATCH_EARLY
		listed = attached;
#endif
		atomic { look = died; died = false };   /* died.Swap(false) */
		if
		:: listed && !watching ->
			watching = true;
#ifndef NO_LOOK
			look = true
#endif
		:: else
		fi;
#ifdef ALARM_LATE
		av = alarm;
#endif
		if
		:: look && attached && !alive && claimed -> recovered = true   /* the lock is free: dead */
		:: else
		fi;
		if
		:: recovered -> dwaiters--
		:: else ->
			atomic { if :: dbell == v && alarm == av -> asleep = true :: else fi };
			(!asleep);
			dwaiters--
		fi
	od
}
