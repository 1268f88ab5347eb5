/*
 * A model of the fan-out protocol planned for rings with many subscribers
 * (the fan-out issue), written before the code so that the design is
 * checked first; the implementation and its FORMAT.md section are to
 * follow it. Checked by spin in .ci/run.
 *
 * One producer writes messages 0 .. N-1, one record each, into a ring of C
 * record places (place of message m: m % C). A reliable subscriber reads
 * every message and holds the producer back; a lossy one never holds it
 * back, and must never deliver a record that was overwritten while it read
 * it (a torn record): it finds out that it was lapped, and resumes at the
 * oldest record still in the ring.
 *
 * The shared words:
 *   - stamp[place]: the message whose record is committed there, stored
 *     last (as a record's stamp is today);
 *   - a[place], b[place]: the record's payload, written in two stores, so
 *     that a reader can see one old and one new;
 *   - head: the overwrite frontier. Every record before it may be
 *     overwritten at any time; the producer raises it before it writes over
 *     a place. With a reliable subscriber, the producer may raise it only up
 *     to that subscriber's position (rhead).
 *
 * The lossy reader: load the stamp at its position; if it is the message
 * expected, copy the payload, then load head; if head has passed the
 * position, the copy may be torn: drop it and resume at head (a record
 * boundary, the oldest message left). Otherwise deliver. The assertions: no
 * torn or wrong record is ever delivered by either subscriber, and the
 * reliable one gets every message, in order.
 *
 * Spin runs the processes sequentially consistent. The orders it needs are
 * store to store (head, then the payload, then the stamp) and load to load
 * (the stamp, the payload, then head), which x86 keeps and other CPUs keep
 * with release stores and acquire loads (or a load fence before head).
 * Not modelled yet: the counts of messages a lapped reader lost, and more
 * than one producer.
 *
 * Build with -DHEAD_LATE (the producer raises head after it wrote the
 * payload), -DNO_HEAD_CHECK (the lossy reader delivers without looking at
 * head), -DHEAD_FIRST (it looks at head before the copy instead of after),
 * or -DIGNORE_RELIABLE (the producer does not wait for the reliable
 * subscriber): spin must then find a violated assertion, which shows that
 * the model can fail.
 */

#define N 5      /* messages */
#define C 2      /* record places */

byte stamp[C];
byte a[C];
byte b[C];
byte head = 0;   /* overwrite frontier */
byte rhead = 0;  /* the reliable subscriber's position */
bool done = false;

init {
	byte i;
	for (i : 0 .. C - 1) {
		stamp[i] = 255   /* nothing committed yet */
	}
	atomic {
		run producer();
		run reliable();
		run lossy()
	}
}

proctype producer() {
	byte m, p;
	for (m : 0 .. N - 1) {
		p = m % C;
		if
		:: m >= C ->
			/* room: the place's previous record (m - C) must be behind
			 * the frontier, which may not pass the reliable reader */
#ifndef IGNORE_RELIABLE
			(rhead > m - C);
#endif
#ifndef HEAD_LATE
			if
			:: head < m - C + 1 -> head = m - C + 1
			:: else -> skip
			fi;
#endif
			skip
		:: else -> skip
		fi;
		a[p] = m;
		b[p] = m;
#ifdef HEAD_LATE
		if
		:: m >= C && head < m - C + 1 -> head = m - C + 1
		:: else -> skip
		fi;
#endif
		stamp[p] = m       /* commit */
	};
	done = true
}

proctype reliable() {
	byte p;
	do
	:: rhead == N -> break
	:: rhead < N && stamp[rhead % C] == rhead ->
		p = rhead % C;
		assert(a[p] == rhead && b[p] == rhead);
		rhead++
	od
}

proctype lossy() {
	byte pos = 0, p, s, x, y, h, got = 0;
	do
	:: pos >= N -> break
	:: pos < N ->
		p = pos % C;
		s = stamp[p];
		if
		:: s == pos ->
#ifdef HEAD_FIRST
			h = head;
#endif
			x = a[p];
			y = b[p];
#if !defined(HEAD_FIRST)
			h = head;
#endif
#ifdef NO_HEAD_CHECK
			h = 0;
#endif
			if
			:: h > pos -> pos = h         /* lapped: resume at the oldest */
			:: else ->
				assert(x == pos && y == pos);   /* never a torn record */
				got++;
				pos++
			fi
		:: s != 255 && s > pos && s != pos -> /* overwritten: lapped */
			(head > pos);             /* the frontier passed it first */
			pos = head
		:: else ->                        /* not yet written */
			if
			:: done && stamp[p] != pos && (stamp[p] == 255 || stamp[p] < pos) -> break
			:: else -> skip
			fi
		fi
	od
}
