"""A lossy, jittery network between alice and bob, for the impaired-call test.

Runs in the router namespace. iptables DNAT sends alice->bob UDP to SIDE_A
and bob->alice UDP to SIDE_B (conntrack makes our replies look as if they
came from the real peer). Every datagram is dropped with probability LOSS
(or, when LOSS is `ge:P:R`, by a Gilbert-Elliott chain: a good state that
turns bad with probability P per datagram, a bad state that drops
everything and turns good with probability R) or else delivered after DELAY_MS plus a uniform jitter of +-JITTER_MS,
seeded, so reordering happens as on a real path. Stops after LIFETIME s.

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
    rng = random.Random(int(sys.argv[6]))
    if sys.argv[3].startswith("ge:"):
        _, p, r = sys.argv[3].split(":")
        chain = {"p": float(p), "r": float(r), "bad": False}

        def lost():
            if chain["bad"]:
                chain["bad"] = rng.random() >= chain["r"]
            else:
                chain["bad"] = rng.random() < chain["p"]
            return chain["bad"]
    else:
        loss = float(sys.argv[3])

        def lost():
            return rng.random() < loss
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
                out = (side_b, "bob")
            else:
                bob = src
                out = (side_a, "alice")
            if lost():
                dropped += 1
                continue
            at = now + (delay + rng.uniform(-jitter, jitter)) / 1000.0
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
