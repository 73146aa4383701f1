"""A lossy, jittery network between alice and bob, for the impaired-call test.

Runs in the router namespace. iptables DNAT sends alice->bob UDP to SIDE_A
and bob->alice UDP to SIDE_B (conntrack makes our replies look as if they
came from the real peer). Every datagram is dropped with probability LOSS
(or, when LOSS is `ge:P:R`, by a Gilbert-Elliott chain: a good state that
turns bad with probability P per datagram, a bad state that drops
everything and turns good with probability R) or else delivered after DELAY_MS plus a uniform jitter of +-JITTER_MS,
seeded, so reordering happens as on a real path. Each direction has its
own seeded loss chain and delay draws. Stops after LIFETIME s.

usage: impairment_forwarder.py SIDE_A SIDE_B LOSS DELAY_MS JITTER_MS SEED LIFETIME
"""
import heapq
import random
import select
import socket
import sys
import time


def addr(s):
    host, port = s.rsplit(":", 1)
    return host, int(port)


def main():
    side_a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    side_a.bind(addr(sys.argv[1]))
    side_b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    side_b.bind(addr(sys.argv[2]))
    delay, jitter = float(sys.argv[4]), float(sys.argv[5])
    seed = int(sys.argv[6])
    # One loss chain and one delay draw per direction, each seeded on its
    # own: alice's packets to bob meet the same losses whatever bob sends
    # meanwhile, so a seed gives one pattern to our call and to GStreamer's
    # one-way stream alike (call-quality-beside-gstreamer).
    to_bob = (random.Random(seed), random.Random(seed + 1_000_003))
    to_alice = (random.Random(seed + 2_000_006), random.Random(seed + 3_000_009))
    if sys.argv[3].startswith("ge:"):
        _, p, r = sys.argv[3].split(":")
        p, r = float(p), float(r)
        bad = {id(to_bob): False, id(to_alice): False}

        def lost(way):
            rng = way[0]
            if bad[id(way)]:
                bad[id(way)] = rng.random() >= r
            else:
                bad[id(way)] = rng.random() < p
            return bad[id(way)]
    else:
        loss = float(sys.argv[3])

        def lost(way):
            return way[0].random() < loss
    deadline = time.time() + float(sys.argv[7])
    alice = bob = None
    queue, seq = [], 0
    sent = dropped = 0
    print("impairment ready", flush=True)
    while time.time() < deadline:
        wait = 0.2
        if queue:
            wait = max(0.0, min(wait, queue[0][0] - time.time()))
        ready, _, _ = select.select([side_a, side_b], [], [], wait)
        now = time.time()
        for sock in ready:
            data, src = sock.recvfrom(4096)
            if sock is side_a:
                alice = src
                out, way = (side_b, "bob"), to_bob
            else:
                bob = src
                out, way = (side_a, "alice"), to_alice
            if lost(way):
                dropped += 1
                continue
            at = now + (delay + way[1].uniform(-jitter, jitter)) / 1000.0
            seq += 1
            heapq.heappush(queue, (at, seq, out, data))
        while queue and queue[0][0] <= time.time():
            _, _, (sock, who), data = heapq.heappop(queue)
            dest = bob if who == "bob" else alice
            if dest:
                sock.sendto(data, dest)
                sent += 1
    print(f"impairment done: forwarded {sent}, dropped {dropped}", flush=True)


main()
