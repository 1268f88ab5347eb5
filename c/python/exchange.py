"""Test driver: python3 exchange.py send NAME COUNT SIZE | recv NAME | subscribe NAME

send: sends COUNT messages of SIZE bytes, message i filled with the byte
i % 251 and starting with i as 8 little-endian bytes, then prints the rate as
JSON. recv: receives until the end of the stream, checks each message the
same way, and prints how many it got as JSON.
"""

import json
import struct
import sys
import time

import shmring


def body(i, size):
    b = bytearray([i % 251]) * size
    b[:8] = struct.pack("<Q", i)
    return bytes(b)


def main():
    mode, name = sys.argv[1], sys.argv[2]
    with shmring.open(name) as r:
        if mode == "send":
            count, size = int(sys.argv[3]), int(sys.argv[4])
            msgs = [body(i, size) for i in range(count)]
            with r.producer() as p:
                start = time.perf_counter()
                for m in msgs:
                    p.send(m, timeout=30)
                secs = time.perf_counter() - start
            print(json.dumps({"sent": count, "msgs_per_sec": count / secs}))
        elif mode == "subscribe":
            # A lossy subscriber: what it gets must be in order and whole,
            # and the losses it is told of must account for every gap.
            n, lost = 0, 0
            with r.subscribe(lossy=True) as s:
                while True:
                    try:
                        m = s.recv()
                    except shmring.Lost as e:
                        lost += e.messages
                        continue
                    except shmring.EOF:
                        break
                    i = struct.unpack("<Q", m[:8])[0]
                    if m != body(i, len(m)) or i != n + lost:
                        print(json.dumps({"error": f"message {i} after {n} received and {lost} lost"}))
                        return 1
                    n += 1
            print(json.dumps({"received": n, "lost": lost}))
        else:
            n = 0
            with r.consumer(eof=True) as c:
                for m in c:
                    if m != body(n, len(m)):
                        print(json.dumps({"error": f"message {n} is not what was sent"}))
                        return 1
                    n += 1
            print(json.dumps({"received": n}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
