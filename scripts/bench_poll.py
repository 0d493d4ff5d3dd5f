#!/usr/bin/env python3
"""Polls a playlist over plain HTTP (Garage's web endpoint) until it ends, and
prints each segment URI with the wall-clock time it was first listed:
    bench_poll.py WEB_URL HOST KEY   ->   uri,epoch_seconds"""
import http.client
import sys
import time

web, host, key = sys.argv[1:4]
hostport = web.removeprefix("http://")
seen = set()
conn = http.client.HTTPConnection(hostport, timeout=5)
deadline = time.time() + 3600
while time.time() < deadline:
    try:
        conn.request("GET", "/" + key, headers={"Host": host})
        resp = conn.getresponse()
        body = resp.read().decode(errors="replace")
    except (OSError, http.client.HTTPException):
        conn.close()
        conn = http.client.HTTPConnection(hostport, timeout=5)
        time.sleep(0.01)
        continue
    now = time.time()
    if resp.status == 200:
        for line in body.splitlines():
            if line and not line.startswith("#") and line not in seen:
                seen.add(line)
                print(f"{line},{now:.6f}", flush=True)
        if "#EXT-X-ENDLIST" in body:
            break
    time.sleep(0.0005)
