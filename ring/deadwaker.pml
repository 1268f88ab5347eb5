/*
 * A model of a waker that dies in the middle of its wake (FORMAT.md,
 * "Doorbells", "Watching the peers while asleep"), checked by spin in
 * .ci/run under sequential consistency.
 *
 * A producer that waits for room for a new consumer (it watches nobody:
 * WaitForConsumer) sleeps on space_bell by the doorbell procedure: it reads
 * the doorbell, arms it, counts itself, looks, and sleeps while the
 * doorbell holds the value it read (futex semantics: a wake call wakes
 * whoever is asleep at that moment). The consumer rings by the wake
 * procedure, with the armed check: only if the doorbell still holds the
 * armed value, it moves it by compare-and-swap and then makes the wake
 * call. The consumer dies between the two. A new consumer attaches, drains
 * the ring, and rings as any consumer does.
 *
 * Checked: the producer always wakes and finds its room (an invalid end
 * state otherwise: a producer asleep for ever beside a live consumer).
 *
 * Must fail: -DARMED_ATTACH (the attach rings with the armed check, as the
 * wake procedure does: the doorbell the dead consumer moved looks rung
 * already, and nobody wakes the producer).
 */

byte bell = 0, armed = 0, waiters = 0;
bool asleep = false;
bool room = false;
bool dead = false;

active proctype producer() {
	byte v;
	do
	:: room -> break
	:: else ->
		v = bell;
		if :: v > armed -> armed = v :: else fi;
		waiters++;
		if
		:: room -> waiters--; break
		:: else
		fi;
		atomic { if :: bell == v -> asleep = true :: else fi };
		(!asleep);
		waiters--
	od
}

/* rings with the armed check, and dies between its compare-and-swap and
 * its wake call */
active proctype consumer1() {
	(asleep);
	atomic { if :: waiters > 0 && bell == armed -> bell++ :: else fi };
	dead = true
}

active proctype consumer2() {
	(dead);
	/* the attach */
#ifdef ARMED_ATTACH
	atomic { if :: waiters > 0 && bell == armed -> bell++; asleep = false :: else fi };
#else
	atomic { if :: waiters > 0 -> bell++; asleep = false :: else fi };
#endif
	room = true;   /* it drains the ring */
	/* and publishes its head, ringing with the armed check */
	atomic { if :: waiters > 0 && bell == armed -> bell++; asleep = false :: else fi }
}
