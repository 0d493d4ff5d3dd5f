#!/usr/bin/env python3
"""When each segment appears in the playlist while a stream arrives at real speed.

    scripts/ready_times.py INPUT.ts [RUNS] [BIN...]

Feeds INPUT.ts with `ffmpeg -re -c copy -f mpegts` into `ffmpeg -f hls` and into
each live_upload binary (default target/release/live_upload), 2 s segments into
a local directory, RUNS times each (default 2), alternating. A poller reads the
playlist every 5 ms and notes when each segment is first listed, in seconds
since the feed started. Prints each tool's medians per segment and, for every
binary, the median of its per-segment difference from ffmpeg's (negative:
listed earlier). The input's last segment is left out (it ends with the input).
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def listed_times(tool, source):
    work = tempfile.mkdtemp(prefix="ready_times.")
    out = os.path.join(work, "www", "live")
    os.makedirs(out)
    feed = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-i", source,
            "-c", "copy", "-f", "mpegts", "-"]
    if tool == "ffmpeg":
        cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-i", "-", "-c", "copy",
               "-f", "hls", "-hls_time", "2", "-hls_list_size", "5",
               os.path.join(out, "index.m3u8")]
    else:
        cmd = [tool, "-", "2", os.path.join(work, "spool"), "live", "index.m3u8", "",
               "file://" + os.path.join(work, "www"), "live", "-q"]
    start = time.monotonic()
    feeder = subprocess.Popen(feed, stdout=subprocess.PIPE)
    proc = subprocess.Popen(cmd, stdin=feeder.stdout)
    feeder.stdout.close()
    seen = {}
    playlist = os.path.join(out, "index.m3u8")
    while proc.poll() is None:
        try:
            with open(playlist) as f:
                for line in f:
                    line = line.strip()
                    if line.endswith(".ts") and line not in seen:
                        seen[line] = time.monotonic() - start
        except FileNotFoundError:
            pass
        time.sleep(0.005)
    feeder.wait()
    shutil.rmtree(work)
    return sorted(seen.values())[:-1]


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    source = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    bins = sys.argv[3:] or ["target/release/live_upload"]
    tools = ["ffmpeg"] + bins
    times = {t: [] for t in tools}
    for _ in range(runs):
        for t in tools:
            times[t].append(listed_times(t, source))
    medians = {}
    for t in tools:
        n = min(len(r) for r in times[t])
        medians[t] = [statistics.median(r[i] for r in times[t]) for i in range(n)]
        print(f"{t}: " + " ".join(f"{x:.3f}" for x in medians[t]))
    # ffmpeg lists its first segments late (it probes the input first): compare
    # from the third segment on
    for t in bins:
        n = min(len(medians[t]), len(medians["ffmpeg"]))
        diffs = [medians[t][i] - medians["ffmpeg"][i] for i in range(2, n)]
        print(f"{t}: median {statistics.median(diffs):+.3f} s against ffmpeg -f hls "
              f"(segments 3 to {n}, range {min(diffs):+.3f} to {max(diffs):+.3f} s)")


if __name__ == "__main__":
    main()
