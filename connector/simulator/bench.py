"""Flood throughput of the simulator, measured from outside its process.

    python -m connector.simulator.bench --reader raw --seconds 10
    python -m connector.simulator.bench --reader websocket-client --seconds 10

Starts ``connector simulate genesys --flood`` as a subprocess (ledger on), creates channels,
subscribes each to a realistic mix of topics, connects ``--sockets`` readers (one process each)
and counts complete WebSocket frames received during the measuring window.
"""

from __future__ import annotations

import argparse
import base64
import multiprocessing as mp
import os
import re
import socket
import struct
import subprocess
import sys
import time
from typing import Any

import requests


def _topics(entities: dict[str, Any], n_conversation_ids: int = 20) -> list[str]:
    out: list[str] = []
    for q in entities["queues"]:
        qid = q["id"]
        out += [
            f"v2.routing.queues.{qid}.conversations",
            f"v2.analytics.queues.{qid}.observations",
            f"v2.routing.queues.{qid}.users",
        ]
    for u in entities["users"]:
        uid = u["id"]
        out += [
            f"v2.users.{uid}.{leaf}"
            for leaf in ("conversations", "presence", "activity", "routingStatus")
        ]
    for i in range(n_conversation_ids):
        cid = f"00000000-0000-4000-8000-{i:012d}"
        out += [
            f"v2.detail.events.conversation.{cid}.{k}" for k in ("acd.start", "user.end", "acw")
        ]
    return out


def raw_reader(uri: str, seconds: float, warmup: float, result: Any) -> None:
    """Minimal RFC 6455 client: handshake, then count frames by parsing headers only."""
    m = re.match(r"ws://([^:/]+):(\d+)(/.*)", uri)
    assert m
    sock = socket.create_connection((m.group(1), int(m.group(2))))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET {m.group(3)} HTTP/1.1\r\nHost: {m.group(1)}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(65536)
    buf = buf.split(b"\r\n\r\n", 1)[1]
    frames = nbytes = 0
    counting = False
    t_start = time.perf_counter() + warmup
    t_end = t_start + seconds
    unpack_h, unpack_q = struct.Struct("!H").unpack_from, struct.Struct("!Q").unpack_from
    pos = 0
    while True:
        data = sock.recv(1 << 20)
        if not data:
            break
        buf = buf[pos:] + data if pos < len(buf) else data
        pos = 0
        n = len(buf)
        while pos + 2 <= n:
            ln = buf[pos + 1] & 0x7F
            hl = 2
            if ln == 126:
                if pos + 4 > n:
                    break
                ln = unpack_h(buf, pos + 2)[0]
                hl = 4
            elif ln == 127:
                if pos + 10 > n:
                    break
                ln = unpack_q(buf, pos + 2)[0]
                hl = 10
            if pos + hl + ln > n:
                break
            pos += hl + ln
            if counting:
                frames += 1
                nbytes += ln
        now = time.perf_counter()
        if not counting and now >= t_start:
            counting = True
        if now >= t_end:
            break
    sock.close()
    result.put((frames, nbytes, time.perf_counter() - t_start))


def wsclient_reader(uri: str, seconds: float, warmup: float, result: Any) -> None:
    import websocket

    ws = websocket.create_connection(uri, skip_utf8_validation=True)
    frames = nbytes = 0
    t_start = time.perf_counter() + warmup
    t_end = t_start + seconds
    while True:
        msg = ws.recv()
        now = time.perf_counter()
        if now >= t_start:
            frames += 1
            nbytes += len(msg)
            if frames % 256 == 0 and now >= t_end:
                break
    ws.close()
    result.put((frames, nbytes, time.perf_counter() - t_start))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--reader", choices=("raw", "websocket-client"), default="raw")
    ap.add_argument("--sockets", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--no-ledger", action="store_true")
    args = ap.parse_args(argv)
    cmd = [
        sys.executable,
        "-m",
        "connector",
        "--log-level",
        "WARNING",
        "simulate",
        "genesys",
        "--port",
        "0",
        "--flood",
        "--agents",
        "40",
        "--queues",
        "8",
    ]
    if args.no_ledger:
        cmd.append("--no-ledger")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        base = re.search(r"(http://\S+)", line)
        assert base, line
        url = base.group(1)
        tok = requests.post(
            f"{url}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=("demo-client", "demo-secret"),
            timeout=5,
        ).json()["access_token"]
        h = {"Authorization": f"Bearer {tok}"}
        entities = requests.get(f"{url}/_sim/entities", timeout=5).json()
        topics = [{"id": t} for t in _topics(entities)]
        uris = []
        for _ in range(args.sockets):
            ch = requests.post(f"{url}/api/v2/notifications/channels", headers=h, timeout=5).json()
            r = requests.put(
                f"{url}/api/v2/notifications/channels/{ch['id']}/subscriptions",
                headers=h,
                json=topics,
                timeout=5,
            )
            r.raise_for_status()
            uris.append(ch["connectUri"])
        result: Any = mp.Queue()
        target = raw_reader if args.reader == "raw" else wsclient_reader
        procs = [
            mp.Process(target=target, args=(u, args.seconds, args.warmup, result)) for u in uris
        ]
        for p in procs:
            p.start()
        results = [result.get(timeout=args.seconds + args.warmup + 60) for _ in procs]
        for p in procs:
            p.join()
        summary = requests.get(f"{url}/_sim/ledger/summary", timeout=60).json()
    finally:
        proc.terminate()
        proc.wait(10)
    frames = sum(r[0] for r in results)
    nbytes = sum(r[1] for r in results)
    elapsed = max(r[2] for r in results)
    print(
        f"reader={args.reader} sockets={args.sockets} topics/channel={len(topics)} "
        f"ledger={'off' if args.no_ledger else 'on'}: {frames} events in {elapsed:.2f} s = "
        f"{frames / elapsed:,.0f} events/s, {nbytes / elapsed / 1e6:.1f} MB/s payload, "
        f"mean payload {nbytes / max(frames, 1):.0f} B; ledger total {summary['total']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
