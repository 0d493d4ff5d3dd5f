#!/usr/bin/env python3
"""Turns scripts/bench_archive.sh's results into the archive section of
BENCHMARKS.md (between the archive-bench markers):
    bench_archive_report.py RESULTS.tsv HOURS RATE"""
import datetime
import os
import re
import sys

from benchmarks_md import write_section

rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
hours, rate = int(sys.argv[2]), sys.argv[3]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
day = datetime.date.fromtimestamp(os.stat(sys.argv[1]).st_mtime)
out = [
    f"_Measured {day} on {os.cpu_count()} cores ({cpu}) with `scripts/bench_archive.sh {hours} {rate}`._",
    "",
    f"{hours} h of media at 2 s segments, absolute segment URIs (`https://cdn.example/live/live-NNNNN.ts`),",
    f"program date times on, fed at {rate}x real speed into a local destination. The bytes are those of",
    "every playlist version published, as live_upload's closing summary counts them. The expected",
    "count is one version per interval of media, plus the first and the final one; a count below it",
    "means versions were merged because the feed outran the writes (at real speed they never are).",
    "",
    "| --archive-every | archive versions (expected) | archive bytes uploaded | final archive | rolling playlist bytes | segment bytes | archive / segment bytes | run time |",
    "|---|---|---|---|---|---|---|---|",
]
MB = 1e6
summary = re.compile(
    r"published (\d+) segment\(s\), [\d.]+ s of media, (\d+) bytes, (\d+) playlist version\(s\) "
    r"\((\d+) bytes\), (\d+) archive version\(s\) \((\d+) bytes\)")
for every, ms, final, line in rows:
    segs, seg_bytes, _, pbytes, versions, abytes = map(int, summary.search(line).groups())
    expected = hours * 3600 // int(every) + 1
    out.append(
        f"| {every} s | {versions:,} ({expected:,}) | {abytes / MB:,.1f} MB | {int(final) / 1e3:,.0f} kB "
        f"| {pbytes / MB:,.1f} MB | {seg_bytes / MB:,.0f} MB ({segs:,} segments) "
        f"| {abytes / seg_bytes * 100:.2f} % | {int(ms) / 1000:.0f} s |")
text = "\n".join(out) + "\n"
write_section("archive-bench", "Archive uploads (--archive)", "scripts/bench_archive.sh", text)
print(text)
