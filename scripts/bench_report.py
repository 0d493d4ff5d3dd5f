#!/usr/bin/env python3
"""Turns the raw figures in target/bench into the benchmark section of
BENCHMARKS.md (between the bench markers):  bench_report.py DIR MINUTES RUNS LIVE
A part whose raw figures are not in DIR keeps the text BENCHMARKS.md has for it."""
import csv
import datetime
import json
import pathlib
import re
import statistics
import sys

from benchmarks_md import write_section

out = pathlib.Path(sys.argv[1])
minutes, runs, live = sys.argv[2], sys.argv[3], sys.argv[4]


def pct(values, p):
    values = sorted(values)
    k = (len(values) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def measured(*names):
    """When a part's raw figures were written (their files' dates)."""
    days = sorted({datetime.date.fromtimestamp((out / n).stat().st_mtime).isoformat() for n in names})
    return "_Measured " + " and ".join(days) + "._"


def cpu_line(path):
    user, sys_, wall = (float(x) for x in path.read_text().strip().split(","))
    return user + sys_, wall


def previous_block():
    """The generated text of the bench section as BENCHMARKS.md has it now."""
    text = pathlib.Path("BENCHMARKS.md").read_text()
    begin, end = "<!-- bench:begin -->", "<!-- bench:end -->"
    if begin not in text or end not in text:
        return ""
    return text.split(begin, 1)[1].split(end, 1)[0]


def previous(heading):
    """The subsection of the current bench section whose heading starts with
    HEADING, as it stands (None when there is none): a part whose raw figures
    are not in DIR (never run in this checkout) keeps its last published text."""
    parts = re.split(r"(?m)^(?=### )", previous_block())
    for part in parts:
        if part.startswith(heading):
            return part.strip("\n").splitlines()
    return None


lines = []
add = lines.append


def part(heading, *files):
    """True when the raw figures of the part titled HEADING are all in DIR;
    otherwise the part's text already in BENCHMARKS.md is kept, and False."""
    if all((out / f).exists() for f in files):
        return True
    kept = previous(heading)
    if kept is None:
        print(f"bench_report: no figures for '{heading}' and none published before; left out", file=sys.stderr)
    else:
        print(f"bench_report: no figures for '{heading}' in {out}; keeping the published ones", file=sys.stderr)
        lines.extend(kept)
        add("")
    return False


# 1. segmenting cost (TS) and 1b. the same with fMP4 segments
INPUTS = {"in720": "720p30 H.264+AAC, 4 Mbps", "in1080": "1080p60 H.264+AAC, 12 Mbps"}


def cpu(r):
    return float(r[2]) + float(r[3])


def cpu_table(rows, ffmpeg_name):
    """The median table of a CSV of runs (input, tool, user, sys, wall), each
    tool's min-max, and the ratio within each alternating pair of runs."""
    add(f"| input | live_upload CPU (user+sys) | {ffmpeg_name} CPU | CPU ratio | user time only: live_upload / ffmpeg "
        "| live_upload wall | ffmpeg wall | CPU min-max: live_upload; ffmpeg | ratio within each pair, min-max |")
    add("|---|---|---|---|---|---|---|---|---|")
    for inp in INPUTS:
        med, spread = {}, {}
        for label in ("live_upload", "ffmpeg"):
            sel = [r for r in rows if r[0] == inp and r[1] == label]
            med[label] = (statistics.median(cpu(r) for r in sel),
                          statistics.median(float(r[4]) for r in sel),
                          statistics.median(float(r[2]) for r in sel))
            spread[label] = f"{min(cpu(r) for r in sel):.2f}-{max(cpu(r) for r in sel):.2f} s"
        mine = [r for r in rows if r[0] == inp]
        pairs = [{r[1]: cpu(r) for r in mine[i:i + 2]} for i in range(0, len(mine) - 1, 2)]
        ratios = [p["live_upload"] / p["ffmpeg"] for p in pairs if len(p) == 2]
        (lc, lw, lu), (fc, fw, fu) = med["live_upload"], med["ffmpeg"]
        add(f"| {INPUTS[inp]} | {lc:.2f} s | {fc:.2f} s | **{lc / fc:.2f}** | {lu:.2f} s / {fu:.2f} s = {lu / fu:.2f} "
            f"| {lw:.2f} s | {fw:.2f} s | {spread['live_upload']}; {spread['ffmpeg']} "
            f"| {min(ratios):.2f}-{max(ratios):.2f} |")
    add("")
    add("Every run: " + "; ".join(f"{r[0]} {r[1]} {cpu(r):.2f} s" for r in rows) + ".")
    add("")
    if all(len(r) >= 7 for r in rows):  # runs that also recorded page faults and peak RSS
        said = []
        for inp in INPUTS:
            for label in ("live_upload", "ffmpeg"):
                sel = [r for r in rows if r[0] == inp and r[1] == label]
                said.append(f"{inp} {label} {statistics.median(int(r[6]) for r in sel) / 1024:.0f} MiB "
                            f"({statistics.median(int(r[5]) for r in sel):,.0f} minor page faults)")
        add("Peak RSS, median: " + "; ".join(said) + ".")
        add("")


def segmenting():
    rows = list(csv.reader(open(out / "segmenting.csv")))
    add(f"### Segmenting cost ({minutes} min of media into a local directory on tmpfs, median of {runs} runs each, alternating)")
    add("")
    add(measured("segmenting.csv"))
    add("")
    cpu_table(rows, "ffmpeg -c copy -f hls")


if part("### Segmenting cost (", "segmenting.csv"):
    segmenting()


def fmp4():
    rows = list(csv.reader(open(out / "fmp4.csv")))
    add(f"### fMP4 segmenting cost ({minutes} min of media into a local directory on tmpfs, "
        f"median of {runs} runs each, alternating)")
    add("")
    add(measured("fmp4.csv"))
    add("")
    add("`BENCH_ONLY=fmp4 scripts/bench.sh`: the inputs of the TS table, each side run as (paths shortened):")
    add("")
    for line in (out / "fmp4-commands.txt").read_text().splitlines():
        add("    " + line)
    add("")
    cpu_table(rows, "ffmpeg -f hls -hls_segment_type fmp4")
    # what each run left: input, tool, media segments, their bytes, init segments
    # in the output directory, init segments in live_upload's spool
    left = {}
    for inp, label, n, size, inits, spooled in csv.reader(open(out / "fmp4-files.csv")):
        left.setdefault((inp, label), set()).add((int(n), int(size), int(inits), int(spooled)))
    said = []
    for (inp, label), seen in left.items():
        runs_said = []
        for n, size, inits, spooled in sorted(seen):
            where = f"{inits} init segment(s) in the output directory"
            if label == "live_upload":
                where += f", {spooled} in the spool"
            runs_said.append(f"{n} .m4s segments ({size / 1e6:.1f} MB) and {where}")
        said.append(f"{inp} {label}: " + " or ".join(runs_said))
    add("Left in the output directory by every run (checked after each one): " + "; ".join(said) + ".")
    add("")
    version, command, status, files, *messages = (out / "fmp4-nobsf.txt").read_text().rstrip("\n").splitlines()
    add("Without `-bsf:a aac_adtstoasc` ffmpeg cannot write fMP4 segments from this input's AAC (ADTS "
        "frames, as a transport stream carries them), on the 1-minute 720p input:")
    add("")
    add("    " + command)
    add("")
    add(f"{version} exits with status {status}, leaving `{files}` in OUT, and writes:")
    add("")
    add("```")
    lines.extend(messages)
    add("```")
    add("")


if part("### fMP4 segmenting cost (", "fmp4.csv", "fmp4-commands.txt", "fmp4-files.csv", "fmp4-nobsf.txt"):
    fmp4()


# 2. publish latency
def latency():
    ready = {}
    for line in open(out / "latency.log"):
        m = re.match(r"\[(\S+) DEBUG live_upload::segmenter\] segment (\S+) ready:", line)
        if m:
            ready[m.group(2)] = datetime.datetime.fromisoformat(m.group(1).replace("Z", "+00:00")).timestamp()
    seen = {r[0]: float(r[1]) for r in csv.reader(open(out / "first_seen.csv"))}
    lat = [(seen[n] - t) * 1000 for n, t in ready.items() if n in seen]
    # baseline rounds: name, start (epoch seconds), time to the baseline's own GET
    rounds = [r for r in csv.reader(open(out / "baseline.txt")) if len(r) == 3]
    base_seen = {r[0]: float(r[1]) for r in csv.reader(open(out / "baseline_seen.csv"))}
    base = [(base_seen[n] - float(t)) * 1000 for n, t, _ in rounds if n in base_seen]
    base_get = [float(ms) for _, _, ms in rounds]
    add(f"### Publish latency (Garage on 127.0.0.1, 720p30 at 4 Mbps arriving at real speed, 1 s segments, {live} s)")
    add("")
    add(measured("latency.log", "baseline.txt"))
    add("")
    add("From the moment the segmenter closes a segment (its log line, to the microsecond) to the moment "
        "a poller reading Garage's web endpoint over plain HTTP (a GET every 0.5 ms) first sees a playlist "
        "that lists it, beside the baseline: one bare PUT of an object of the median segment size (a new piece of the "
        "same input each round: Garage compresses and deduplicates stored blocks, so the object must be "
        "new real media like a segment), "
        "then one PUT of a playlist that lists it, through the same S3 client, a round every second as segments "
        "arrive, timed from the round's start to the moment the same poller first sees the baseline "
        "playlist with the new name. Both sides are measured the same way, so the poller's own delay is in "
        "both.")
    add("")
    add("| | segments | p50 | p95 | p99 |")
    add("|---|---|---|---|---|")
    add(f"| live_upload, cut to readable | {len(lat)} | {pct(lat, 50):.1f} ms | {pct(lat, 95):.1f} ms | {pct(lat, 99):.1f} ms |")
    add(f"| baseline, PUT + PUT, seen by the poller | {len(base)} | {pct(base, 50):.1f} ms | {pct(base, 95):.1f} ms | {pct(base, 99):.1f} ms |")
    add(f"| ratio | | **{pct(lat, 50) / pct(base, 50):.2f}** | {pct(lat, 95) / pct(base, 95):.2f} | **{pct(lat, 99) / pct(base, 99):.2f}** |")
    add(f"| baseline, PUT + PUT + one GET right after (no poller) | {len(base_get)} | {pct(base_get, 50):.1f} ms | {pct(base_get, 95):.1f} ms | {pct(base_get, 99):.1f} ms |")
    add("")


if part("### Publish latency (", "latency.log", "first_seen.csv", "baseline.txt", "baseline_seen.csv"):
    latency()


# 4. real-time CPU
def realtime():
    cpu, wall = cpu_line(out / "realtime-cpu.txt")
    cpu_s3, wall_s3 = cpu_line(out / "latency-cpu.txt")
    add(f"### CPU while a 720p30 stream (4 Mbps) arrives at real speed ({live} s)")
    add("")
    add(measured("realtime-cpu.txt", "latency-cpu.txt"))
    add("")
    add("| destination | CPU time | wall | share of one core |")
    add("|---|---|---|---|")
    add(f"| local directory, 6 s segments | {cpu:.2f} s | {wall:.1f} s | **{100 * cpu / wall:.2f} %** |")
    add(f"| Garage over S3, 1 s segments (the latency run) | {cpu_s3:.2f} s | {wall_s3:.1f} s | {100 * cpu_s3 / wall_s3:.2f} % |")
    add("")


if part("### CPU while a 720p30 stream", "realtime-cpu.txt", "latency-cpu.txt"):
    realtime()


# 3. memory
def memory():
    add("### Memory over an hour of media at full speed (`scripts/longrun.sh 1`)")
    add("")
    add(measured("memory.md"))
    add("")
    add((out / "memory.md").read_text().strip())
    add("")


if part("### Memory over an hour", "memory.md"):
    memory()


# profile
def profile():
    refs = re.findall(r"I\s+refs:\s+([\d,]+)", (out / "valgrind.log").read_text())
    lu_refs, ff_refs = (int(x.replace(",", "")) for x in refs[:2])
    add("### Where the time goes (callgrind, 1 minute of the 720p input)")
    add("")
    add(measured("valgrind.log"))
    add("")
    add(f"Instructions: live_upload {lu_refs:,}, `ffmpeg -c copy -f hls` {ff_refs:,} "
        f"(ratio {lu_refs / ff_refs:.2f}). live_upload's most expensive functions (self cost):")
    add("")
    add("```")
    prof = (out / "profile.txt").read_text().splitlines()
    start = next(i for i, l in enumerate(prof) if "file:function" in l) + 2
    for l in prof[start:start + 14]:
        add(re.sub(r"\s+\[.*\]$", "", l)[:150])
    add("```")
    add("")


if part("### Where the time goes (", "valgrind.log", "profile.txt"):
    profile()


def profile_fmp4():
    refs = re.findall(r"I\s+refs:\s+([\d,]+)", (out / "valgrind-fmp4.log").read_text())
    lu_refs, ff_refs = (int(x.replace(",", "")) for x in refs[:2])
    add("### Where the fMP4 time goes (callgrind, 1 minute of the 720p input)")
    add("")
    add(measured("valgrind-fmp4.log"))
    add("")
    add(f"Instructions: `live_upload --format fmp4` {lu_refs:,}, `ffmpeg -c copy -bsf:a aac_adtstoasc -f hls "
        f"-hls_segment_type fmp4` {ff_refs:,} (ratio {lu_refs / ff_refs:.2f}). live_upload's most expensive "
        "functions (self cost; callgrind counts user-space instructions only, not the kernel's page faults):")
    add("")
    add("```")
    prof = (out / "profile-fmp4.txt").read_text().splitlines()
    start = next(i for i, l in enumerate(prof) if "file:function" in l) + 2
    for l in prof[start:start + 14]:
        add(re.sub(r"\s+\[.*\]$", "", l)[:150])
    add("```")


if part("### Where the fMP4 time goes (", "valgrind-fmp4.log", "profile-fmp4.txt"):
    profile_fmp4()


# 5. ABR ladders
def ladder_cpu():
    if lines and lines[-1]:  # the part before may end without a blank line
        add("")
    rows = list(csv.reader(open(out / "ladder-cpu.csv")))
    pairs = len(rows) // 2
    add(f"### ABR ladder against ffmpeg (a minute of 720p30 into a local directory on tmpfs, "
        f"{pairs} alternating pairs after a discarded one)")
    add("")
    add(measured("ladder-cpu.csv", "ladder-psnr.csv"))
    add("")
    add("`BENCH_ONLY=ladder scripts/bench.sh`: the 720p30 input of the segmenting table (4 Mbps, keyframes "
        "every 2 s, so both cut every 6 s), each side run as (paths shortened):")
    add("")
    for line in (out / "ladder-commands.txt").read_text().splitlines():
        add("    " + line)
    add("")
    add("| | CPU (user+sys), median | min-max | user time, median | wall, median | peak RSS, median |")
    add("|---|---|---|---|---|---|")
    med = {}
    for label in ("live_upload", "ffmpeg"):
        sel = [r for r in rows if r[1] == label]
        med[label] = statistics.median(cpu(r) for r in sel)
        add(f"| {label} | {med[label]:.2f} s | {min(cpu(r) for r in sel):.2f}-{max(cpu(r) for r in sel):.2f} s "
            f"| {statistics.median(float(r[2]) for r in sel):.2f} s | {statistics.median(float(r[4]) for r in sel):.2f} s "
            f"| {statistics.median(int(r[6]) for r in sel) / 1024:.0f} MiB |")
    decode = list(csv.reader(open(out / "ladder-decode.csv")))
    for label, name in (("ffmpeg-decode-scale", "third command: ffmpeg decoding and scaling only, no encoding"),
                        ("ffmpeg-decode-scale-1thread", "fourth: the same on one thread")):
        dec = [cpu(r) for r in decode if r[1] == label]
        if dec:
            add(f"| for reference, {name} | {statistics.median(dec):.2f} s | {min(dec):.2f}-{max(dec):.2f} s "
                f"| | {statistics.median(float(r[4]) for r in decode if r[1] == label):.2f} s | |")
    ratios = []
    for i in range(0, len(rows) - 1, 2):
        p = {r[1]: cpu(r) for r in rows[i:i + 2]}
        if len(p) == 2:
            ratios.append(p["live_upload"] / p["ffmpeg"])
    ratio = med["live_upload"] / med["ffmpeg"]
    add("")
    add(f"CPU ratio live_upload / ffmpeg: **{ratio:.2f}** (medians); within each pair "
        + ", ".join(f"{x:.2f}" for x in ratios) + ".")
    add("")
    add("Every run: " + "; ".join(f"{r[1]} {cpu(r):.2f} s" for r in rows) + ".")
    add("")
    # label, rung, frames, bytes, "PSNR y:.. u:.. v:.. average:.. min:.. max:.."
    psnr = {}
    for label, rung, frames, size, text in csv.reader(open(out / "ladder-psnr.csv")):
        vals = dict(re.findall(r"(\w+):([\d.]+|inf)", text))
        psnr[(label, rung)] = (int(frames), int(size), float(vals["y"]), float(vals["average"]))
    add("Quality of the last pair's output: each encoded rung's segments joined, against the source scaled to "
        "the rung's size with bicubic (`scale=W:H:flags=bicubic`, then ffmpeg's `psnr` filter, timestamps of "
        "both from 0). Bytes are the rung's segments (video, the copied audio and TS overhead).")
    add("")
    add("| rung | frames: live_upload; ffmpeg | PSNR Y: live_upload; ffmpeg | PSNR average of Y, U, V: live_upload; "
        "ffmpeg | difference (average) | bytes: live_upload; ffmpeg |")
    add("|---|---|---|---|---|---|")
    worst = None
    for rung in sorted({k[1] for k in psnr}, key=lambda r: -int(r.split("p")[0])):
        lf, ls, ly, la = psnr[("live_upload", rung)]
        ff_, fs, fy, fa = psnr[("ffmpeg", rung)]
        worst = la - fa if worst is None else min(worst, la - fa)
        add(f"| {rung} | {lf}; {ff_} | {ly:.2f} dB; {fy:.2f} dB | {la:.2f} dB; {fa:.2f} dB | {la - fa:+.2f} dB "
            f"| {ls / 1e6:.2f} MB; {fs / 1e6:.2f} MB |")
    add("")
    met_cpu, met_q = ratio <= 0.9, worst >= -0.2
    add(f"Goal (at most 0.9x ffmpeg's CPU, each rung's PSNR no more than 0.2 dB below ffmpeg's): "
        f"CPU {'met' if met_cpu else '**not met**'} ({ratio:.2f}), quality {'met' if met_q else '**not met**'} "
        f"(worst difference {worst:+.2f} dB).")
    add("")


if part("### ABR ladder against ffmpeg (", "ladder-cpu.csv", "ladder-psnr.csv", "ladder-commands.txt",
        "ladder-decode.csv"):
    ladder_cpu()


def journal_latency():
    """Per rendition folder: (sequence, ms from the cut to the stored playlist
    version that first lists it), and the cuts' lag behind the media."""
    cuts, lag, lists = {}, {}, {}
    for line in open(out / "ladder-live.jsonl"):
        e = json.loads(line)
        t = datetime.datetime.fromisoformat(e["t"].replace("Z", "+00:00")).timestamp()
        if e["event"] == "segment":
            if e["sequence"] not in cuts:
                cuts[e["sequence"]] = t
                lag[e["sequence"]] = t - (e["start"] + e["duration"]) / 90000
        elif e["event"] == "published" and e["key"].endswith("/index.m3u8"):
            folder = e["key"].split("/")[-2]
            for uri in e["text"].splitlines():
                m = re.match(r"\S*?(\d+)\.ts$", uri)
                if m:
                    lists.setdefault(folder, {}).setdefault(int(m.group(1)), t)
    lat = {f: [(n, (t - cuts[n]) * 1000) for n, t in sorted(seen.items()) if n in cuts]
           for f, seen in lists.items()}
    return lat, lag


def ladder_live():
    if lines and lines[-1]:  # the part before may end without a blank line
        add("")
    user, sys_, wall = (float(x) for x in (out / "ladder-live-cpu.txt").read_text().strip().split(","))
    lat, lag = journal_latency()
    seqs = sorted(lag)
    add(f"### ABR ladder at real speed ({wall:.0f} s of 720p30 into Garage on 127.0.0.1, 2 s segments)")
    add("")
    add(measured("ladder-live.jsonl", "ladder-live-cpu.txt"))
    add("")
    add("The 720p30 minute looped and sent at real speed (`ffmpeg -re -stream_loop -1 ... -c copy -f mpegts -`) "
        "into `live_upload - 2 ... --ladder source,480p@1200k,360p@600k --events JOURNAL` storing to Garage over "
        "S3. Latency per rendition is read from the event journal: from the cut (the `segment` events of that "
        "sequence number, written when every rendition has finished it) to the `published` event of the first "
        "version of the rendition's playlist that lists it (written when Garage has answered the PUT, so "
        "the playlist is readable from then on). No poller runs beside it, so the two cores are the ladder's "
        "and the machine's other work only.")
    add("")
    add("| rendition | segments | p50 | p95 | p99 | max |")
    add("|---|---|---|---|---|---|")
    for folder in sorted(lat, key=lambda f: (f != "source", -int(f.split("p")[0]) if f != "source" else 0)):
        ms = [v for _, v in lat[folder]]
        add(f"| {folder} | {len(ms)} | {pct(ms, 50):.1f} ms | {pct(ms, 95):.1f} ms | {pct(ms, 99):.1f} ms "
            f"| {max(ms):.1f} ms |")
    add("")
    stat = [[int(x) for x in l.split()[1:]] for l in (out / "ladder-live-stat.txt").read_text().splitlines()]
    busy = [sum(s) - s[3] - s[4] for s in stat]  # all but idle and iowait
    total = [sum(s) for s in stat]
    machine = (busy[1] - busy[0]) / (total[1] - total[0])
    seqs = seqs[:-1]  # the last segment is cut at the end of input, not at a keyframe
    base = min(lag[n] for n in seqs)
    behind = [(lag[n] - base) * 1000 for n in seqs]
    add(f"live_upload's CPU: {user + sys_:.1f} s (user {user:.1f} s, system {sys_:.1f} s) over {wall:.1f} s, "
        f"**{100 * (user + sys_) / wall / 2:.1f} % of the machine's two cores** ({100 * (user + sys_) / wall:.0f} % "
        f"of one). The whole machine, everything on it included, was {100 * machine:.0f} % busy meanwhile. "
        f"Keeping up: each cut's wall-clock time minus the end of its media time, relative to the smallest, "
        f"was {behind[0]:.0f} ms for the first of {len(seqs)} segments cut at a keyframe (the last one, cut at "
        f"the end of input, left out), {statistics.median(behind):.0f} ms at the median, {max(behind):.0f} ms "
        f"at most and {behind[-1]:.0f} ms for the last of them (a ladder that falls behind shows a lag that "
        f"grows with time).")
    add("")


if part("### ABR ladder at real speed (", "ladder-live.jsonl", "ladder-live-cpu.txt", "ladder-live-stat.txt"):
    ladder_live()


def ladder_streams():
    if lines and lines[-1]:  # the part before may end without a blank line
        add("")
    rows = list(csv.reader(open(out / "ladder-streams.csv")))
    rounds = len(rows) // 4
    sizes = (out / "ladder-streams-input.txt").read_text().split()
    add(f"### --ladder streams ({minutes} min of three video streams at full speed, {rounds} rounds after a "
        "discarded one, alternating)")
    add("")
    add(measured("ladder-streams.csv"))
    add("")
    add("One encoder's three aligned H.264 streams (" + "; ".join(
        f"{w}x{h} at {int(b) / 1e6:.1f} Mbps" for w, h, b in (s.split(",") for s in sizes))
        + ", keyframes every 2 s) and AAC, looped like the other inputs, into a local directory on tmpfs "
        "with 6 s segments: `live_upload INPUT 6 ... --ladder streams` against `live_upload` without a ladder "
        "on each video stream alone with the audio (`ffmpeg -map 0:v:N -map 0:a -c copy`).")
    add("")
    add("| run | CPU (user+sys), median | min-max | wall, median |")
    add("|---|---|---|---|")
    med = {}
    for label, name in (("streams", "--ladder streams, 3 renditions"), ("single0", "stream 0 alone (720p)"),
                        ("single1", "stream 1 alone (480p)"), ("single2", "stream 2 alone (360p)")):
        sel = [r for r in rows if r[1] == label]
        med[label] = statistics.median(cpu(r) for r in sel)
        add(f"| {name} | {med[label]:.2f} s | {min(cpu(r) for r in sel):.2f}-{max(cpu(r) for r in sel):.2f} s "
            f"| {statistics.median(float(r[4]) for r in sel):.2f} s |")
    add("")
    three = med["single0"] + med["single1"] + med["single2"]
    add(f"Per stream, the ladder of streams costs {med['streams'] / 3:.2f} s, "
        f"**{med['streams'] / 3 / med['single0']:.2f}x** a single-rendition run on the first stream "
        f"({med['single0']:.2f} s); the whole ladder costs {med['streams'] / three:.2f}x the three streams "
        f"run alone one after the other ({three:.2f} s).")
    add("")


if part("### --ladder streams (", "ladder-streams.csv", "ladder-streams-input.txt"):
    ladder_streams()


def ladder_memory():
    if lines and lines[-1]:  # the part before may end without a blank line
        add("")
    mem_minutes, wall_ms, segs, status, ended, hz = (int(x) for x in
                                                    (out / "ladder-memory-run.txt").read_text().split(","))
    # ms since start, RssAnon kB, VmRSS kB, open descriptors, CPU clock ticks
    rows = [[int(x) for x in l.split(",")] for l in open(out / "ladder-memory.csv") if l.count(",") == 4]
    wall = wall_ms / 1000
    speed = mem_minutes * 60 / wall
    add(f"### ABR ladder memory ({mem_minutes} min of 720p30 media at full speed, `--ladder "
        "source,480p@1200k,360p@600k`)")
    add("")
    add(measured("ladder-memory.csv"))
    add("")
    add(f"The 720p30 minute looped for {mem_minutes} minutes of media (`ffmpeg -stream_loop -1 ... -c copy "
        "-f mpegts -`) into `live_upload - 6 ... --ladder source,480p@1200k,360p@600k` writing to a "
        "local directory on tmpfs, as fast as it goes; RssAnon, VmRSS and open descriptors of the "
        "live_upload process read from /proc every second "
        f"(`LADDER_MEMORY_MINUTES={mem_minutes}`).")
    add("")
    after = [r for r in rows if r[0] / 1000 * speed >= 300] or rows  # after 5 minutes of media
    half = [r for r in rows if r[0] >= wall_ms / 2]
    a0, a1 = after[0][1], rows[-1][1]
    add("| media | wall | speed | CPU | RssAnon after 5 min of media | at the end | growth | second half: min-max "
        "| peak VmRSS | open fds after 5 min |")
    add("|---|---|---|---|---|---|---|---|---|---|")
    add(f"| {mem_minutes} min | {wall:.0f} s | {speed:.2f}x | {rows[-1][4] / hz:.0f} s | {a0} kB | {a1} kB "
        f"| {a1 - a0:+d} kB | {min(r[1] for r in half)}-{max(r[1] for r in half)} kB | {max(r[2] for r in rows)} kB "
        f"| {min(r[3] for r in after)}-{max(r[3] for r in after)} |")
    add("")

    def at(frac):
        return min(rows, key=lambda r: abs(r[0] - wall_ms * frac))[1]
    add("RssAnon (kB) across the run: " + ", ".join(f"{at(f)} at {f:.0%}" for f in (0.1, 0.25, 0.5, 0.75, 1.0))
        + f". Segments written (all renditions): {segs}; exit status {status}; "
        + ("the source rendition's playlist ends with EXT-X-ENDLIST." if ended else "**no EXT-X-ENDLIST**."))
    add("")


if part("### ABR ladder memory (", "ladder-memory.csv", "ladder-memory-run.txt"):
    ladder_memory()


section = "\n".join(lines)
write_section("bench", "live_upload against ffmpeg's HLS muxer", "scripts/bench.sh",
              f"_Generated by `scripts/bench.sh` on {datetime.date.today()}._\n\n{section}")
print(section)
