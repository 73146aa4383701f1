"""An on-path attacker for the man-in-the-middle test.

Runs in the router namespace. iptables DNAT sends alice->bob UDP to SIDE_A
and bob->alice UDP to SIDE_B (conntrack makes our replies look as if they
came from the real peer). STUN is forwarded untouched, so ICE connects
through us; DTLS is not: bob's ClientHello goes to an `openssl s_server`
and an `openssl s_client` handshakes with alice, each with the attacker's
own certificate. SRTP is dropped (we have no keys). Stops after LIFETIME
seconds.

usage: mitm_forwarder.py SIDE_A SIDE_B OPENSSL_SERVER CLIENT_SIDE LIFETIME
       (addresses as ip:port)
"""
import select
import socket
import sys
import time


def addr(s):
    host, port = s.rsplit(":", 1)
    return host, int(port)


def udp(bind):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(bind)
    return s


def main():
    side_a = udp(addr(sys.argv[1]))
    side_b = udp(addr(sys.argv[2]))
    openssl_server = addr(sys.argv[3])
    to_server = udp(("127.0.0.1", 0))
    client_side = udp(addr(sys.argv[4]))
    deadline = time.time() + float(sys.argv[5])
    alice = bob = s_client = None
    to_bob, to_alice, to_s_client = [], [], []
    print("mitm ready", flush=True)
    while time.time() < deadline:
        ready, _, _ = select.select([side_a, side_b, to_server, client_side], [], [], 0.2)
        for sock in ready:
            data, src = sock.recvfrom(4096)
            if not data:
                continue
            first = data[0]
            dtls = 20 <= first <= 63
            if sock is side_a:
                alice = src
                if dtls:
                    to_s_client.append(data)
                elif first < 4:
                    to_bob.append(data)
            elif sock is side_b:
                bob = src
                if dtls:
                    to_server.sendto(data, openssl_server)
                elif first < 4:
                    to_alice.append(data)
            elif sock is to_server:
                if bob:
                    side_b.sendto(data, bob)
            elif sock is client_side:
                s_client = src
                to_alice.append(data)
        if bob:
            for d in to_bob:
                side_b.sendto(d, bob)
            to_bob.clear()
        if alice:
            for d in to_alice:
                side_a.sendto(d, alice)
            to_alice.clear()
        if s_client:
            for d in to_s_client:
                client_side.sendto(d, s_client)
            to_s_client.clear()


main()
