//! Clips: a VOD playlist over the archive's segments for a time range.
//! Pure logic (parsing the range, choosing segments, rendering); the
//! `live_upload clip` command reads the archive and stores the result.

use chrono::{DateTime, Utc};

use crate::master::Master;
use crate::media::MediaDuration;
use crate::playlist::{Entry, Playlist};
use crate::resume::Published;
use crate::timeline::TICKS_PER_SECOND;

/// One end of a clip's range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// Wall-clock time, matched against EXT-X-PROGRAM-DATE-TIME.
    Wall(DateTime<Utc>),
    /// Time from the start of the archive.
    Offset(MediaDuration),
}

/// Reads an RFC 3339 time (`2026-11-22T20:15:00Z`) or an offset from the
/// start of the archive: seconds (`95.5`), `MM:SS` or `HH:MM:SS[.fff]`.
pub fn parse_bound(text: &str) -> Result<Bound, String> {
    let t = text.trim();
    if t.contains('T') || t.contains('t') {
        return DateTime::parse_from_rfc3339(t)
            .map(|d| Bound::Wall(d.with_timezone(&Utc)))
            .map_err(|e| format!("{text:?} is not an RFC 3339 time ({e})"));
    }
    let bad = || {
        format!(
            "{text:?} is neither an RFC 3339 time (2026-11-22T20:15:00Z) nor an offset \
             (seconds, MM:SS or HH:MM:SS)"
        )
    };
    let parts: Vec<&str> = t.split(':').collect();
    if parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
        return Err(bad());
    }
    let mut secs = 0.0;
    for (i, p) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        // only the seconds may have a fraction; minutes and seconds after a
        // larger unit stay below 60
        let v: f64 = if last {
            p.parse().map_err(|_| bad())?
        } else {
            p.parse::<u32>().map_err(|_| bad())?.into()
        };
        if !v.is_finite() || v < 0.0 || (i > 0 && v >= 60.0) {
            return Err(bad());
        }
        secs = secs * 60.0 + v;
    }
    Ok(Bound::Offset(MediaDuration::from_secs(secs)))
}

/// An archive segment placed on both time axes.
#[derive(Debug, Clone)]
struct Placed {
    entry: Entry,
    offset: MediaDuration,
    wall: Option<DateTime<Utc>>,
}

/// Why a range cannot be clipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("the range is empty: --from and --to are the same time")]
    Empty,
    #[error("the range is reversed: --to ({to}) comes before --from ({from})")]
    Reversed { from: String, to: String },
    #[error("give --from and --to the same way: both RFC 3339 times or both offsets")]
    Mixed,
    #[error("the archive has no program date times; give the range as offsets")]
    NoDates,
    #[error("the archive is empty")]
    EmptyArchive,
    #[error("the range starts before the archive does ({start})")]
    BeforeStart { start: String },
    #[error("{bound} is not archived yet: the archive ends at {end}")]
    NotYetArchived { bound: String, end: String },
    #[error("{bound} is after the end of the event ({end})")]
    AfterEnd { bound: String, end: String },
    #[error("no archived segment lies in the range (it falls in a break in the event)")]
    NoSegments,
    #[error(
        "the renditions' archives disagree over the range: {rendition} does not list the \
         segments {first} does"
    )]
    Unaligned { rendition: String, first: String },
}

/// The segments of `archive` that overlap `[from, to)`: the clip covers the
/// range and overshoots it by less than a segment at each end.
pub fn select(archive: &Published, from: Bound, to: Bound) -> Result<Vec<Entry>, RangeError> {
    let placed = place(archive);
    let (first, last) = match (placed.first(), placed.last()) {
        (Some(f), Some(l)) => (f, l),
        _ => return Err(RangeError::EmptyArchive),
    };
    let describe = |b: Bound| match b {
        Bound::Wall(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        Bound::Offset(o) => format!("offset {o} s"),
    };
    // (start, end) of a segment in ticks on the axis of the bounds: from
    // the archive's start, or since 1970
    let span = |p: &Placed, b: Bound| -> Option<(i64, i64)> {
        let start = match b {
            Bound::Offset(_) => p.offset.ticks(),
            Bound::Wall(_) => wall_ticks(p.wall?),
        };
        Some((start, start + p.entry.duration.ticks()))
    };
    let value = |b: Bound| match b {
        Bound::Offset(o) => o.ticks(),
        Bound::Wall(t) => wall_ticks(t),
    };
    let (lo, hi) = match (from, to) {
        (Bound::Wall(_), Bound::Offset(_)) | (Bound::Offset(_), Bound::Wall(_)) => {
            return Err(RangeError::Mixed)
        }
        _ => (value(from), value(to)),
    };
    if lo == hi {
        return Err(RangeError::Empty);
    }
    if hi < lo {
        return Err(RangeError::Reversed {
            from: describe(from),
            to: describe(to),
        });
    }
    let (Some((start, _)), Some((_, end))) = (span(first, from), span(last, to)) else {
        return Err(RangeError::NoDates);
    };
    let at = |ticks: i64| match from {
        Bound::Offset(_) => describe(Bound::Offset(MediaDuration(ticks))),
        Bound::Wall(_) => describe(Bound::Wall(
            DateTime::from_timestamp_millis(ticks / TICKS_PER_MILLI).unwrap_or_default(),
        )),
    };
    if lo < start {
        return Err(RangeError::BeforeStart { start: at(start) });
    }
    if hi > end {
        let bound = if lo >= end {
            describe(from)
        } else {
            describe(to)
        };
        return Err(if archive.ended {
            RangeError::AfterEnd {
                bound,
                end: at(end),
            }
        } else {
            RangeError::NotYetArchived {
                bound,
                end: at(end),
            }
        });
    }
    let chosen: Vec<Entry> = placed
        .iter()
        .filter(|p| span(p, from).is_some_and(|(s, e)| e > lo && s < hi))
        .map(|p| Entry {
            // the clip dates every segment, extrapolated where the archive did not
            program_date_time: p.wall,
            ..p.entry.clone()
        })
        .collect();
    if chosen.is_empty() {
        return Err(RangeError::NoSegments);
    }
    Ok(chosen)
}

/// Where a rendition's clip goes: beside its archive playlist (`uri`, as
/// the archive master names it), under the clip's name, so that the
/// archive's relative segment URIs stay valid.
pub fn beside(uri: &str, name: &str) -> String {
    match uri.rsplit_once('/') {
        Some((folder, _)) => format!("{folder}/{name}"),
        None => name.to_string(),
    }
}

/// The archive playlists an archive master names: every variant's, then
/// every audio rendition's, each once.
pub fn renditions(master: &Master) -> Vec<String> {
    let mut uris: Vec<String> = Vec::new();
    let named = master.variants.iter().map(|v| &v.uri);
    for uri in named.chain(master.audio.iter().map(|a| &a.uri)) {
        if !uris.contains(uri) {
            uris.push(uri.clone());
        }
    }
    uris
}

/// The clip master: the archive master's variants and audio renditions,
/// each naming its rendition's clip (see [`beside`]) instead of its archive.
pub fn clip_master(archive: &Master, name: &str) -> Master {
    let mut clip = archive.clone();
    for v in &mut clip.variants {
        v.uri = beside(&v.uri, name);
    }
    for a in &mut clip.audio {
        a.uri = beside(&a.uri, name);
    }
    clip
}

/// Checks that every rendition's clip is the same run of segments (the
/// renditions of a ladder are cut in step, so their archives list the same
/// numbers with the same durations): `choices` pairs each archive's URI
/// with what [`select`] chose from it.
pub fn check_aligned(choices: &[(String, Vec<Entry>)]) -> Result<(), RangeError> {
    let shape = |c: &[Entry]| -> Vec<(u64, MediaDuration)> {
        c.iter().map(|e| (e.sequence, e.duration)).collect()
    };
    let Some((_, first)) = choices.first() else {
        return Ok(());
    };
    let want = shape(first);
    match choices.iter().find(|(_, c)| shape(c) != want) {
        Some((uri, _)) => Err(RangeError::Unaligned {
            rendition: uri.clone(),
            first: choices[0].0.clone(),
        }),
        None => Ok(()),
    }
}

const TICKS_PER_MILLI: i64 = TICKS_PER_SECOND / 1000;

/// A wall-clock time as ticks since 1970 (program date times carry
/// milliseconds).
fn wall_ticks(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis() * TICKS_PER_MILLI
}

/// Places every entry at its offset from the archive's start and at its
/// wall-clock time: its own program date time, or the last one seen plus
/// the durations since (RFC 8216 §4.3.2.6).
fn place(archive: &Published) -> Vec<Placed> {
    let mut offset = MediaDuration::ZERO;
    let mut wall: Option<DateTime<Utc>> = None;
    archive
        .entries
        .iter()
        .map(|e| {
            if let Some(t) = e.program_date_time {
                wall = Some(t);
            }
            let p = Placed {
                entry: e.clone(),
                offset,
                wall,
            };
            offset += e.duration;
            let micros = e.duration.ticks() * 1_000_000 / TICKS_PER_SECOND;
            wall = wall.map(|t| t + chrono::Duration::microseconds(micros));
            p
        })
        .collect()
}

/// The clip's VOD playlist: the chosen entries as the archive lists them
/// (same URIs, durations, dates, breaks and, for fMP4, the EXT-X-MAP of
/// each, declared before the clip's first segment and wherever it changes),
/// with EXT-X-ENDLIST.
pub fn render(archive: &Published, chosen: &[Entry]) -> String {
    let mut playlist = Playlist::archive(MediaDuration::from_whole_secs(archive.target_duration));
    for (i, e) in chosen.iter().enumerate() {
        playlist.push(Entry {
            // a clip starts clean: its first segment follows no break in it
            discontinuity: e.discontinuity && i > 0,
            ..e.clone()
        });
    }
    playlist.end();
    playlist.render()
}

/// The default clip name: the numbers of its first and last segments.
pub fn default_name(chosen: &[Entry]) -> String {
    match (chosen.first(), chosen.last()) {
        (Some(a), Some(b)) => format!("clip-{:05}-{:05}.m3u8", a.sequence, b.sequence),
        _ => "clip.m3u8".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resume::parse_published;
    use chrono::TimeZone;

    const S: i64 = TICKS_PER_SECOND;

    /// Ten 4 s segments from 20:00:00, a break (and a one-minute jump in
    /// wall-clock time) before the seventh.
    fn archive(ended: bool) -> Published {
        let mut text = String::from(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:1\n\
             #EXT-X-PLAYLIST-TYPE:EVENT\n",
        );
        for n in 1..=10u32 {
            let secs = 4 * (n - 1) + if n >= 7 { 60 } else { 0 };
            if n == 7 {
                text += "#EXT-X-DISCONTINUITY\n";
            }
            // only some segments carry a date: the rest are extrapolated
            if n % 3 == 1 {
                text += &format!(
                    "#EXT-X-PROGRAM-DATE-TIME:2026-11-22T20:{:02}:{:02}.000Z\n",
                    secs / 60,
                    secs % 60
                );
            }
            text += &format!("#EXTINF:4.000,\nlive-{n:05}.ts\n");
        }
        if ended {
            text += "#EXT-X-ENDLIST\n";
        }
        parse_published(text.as_bytes(), "", "live").unwrap()
    }

    fn numbers(chosen: &[Entry]) -> Vec<u64> {
        chosen.iter().map(|e| e.sequence).collect()
    }

    fn offset(ticks: i64) -> Bound {
        Bound::Offset(MediaDuration(ticks))
    }

    fn wall(h: u32, m: u32, s: u32) -> Bound {
        Bound::Wall(Utc.with_ymd_and_hms(2026, 11, 22, h, m, s).unwrap())
    }

    #[test]
    fn bounds_parse_as_times_or_offsets() {
        assert_eq!(parse_bound("2026-11-22T20:00:04Z").unwrap(), wall(20, 0, 4));
        assert_eq!(
            parse_bound("2026-11-22T21:00:04+01:00").unwrap(),
            wall(20, 0, 4)
        );
        assert_eq!(parse_bound("95.5").unwrap(), offset(95 * S + S / 2));
        assert_eq!(parse_bound("1:30").unwrap(), offset(90 * S));
        assert_eq!(
            parse_bound("01:00:02.25").unwrap(),
            offset(3602 * S + S / 4)
        );
        for bad in [
            "",
            "abc",
            "1:75",
            "-3",
            "1::2",
            "2026-11-22T25:00:00Z",
            "1:2:3:4",
            "inf",
        ] {
            assert!(parse_bound(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn offsets_choose_the_segments_that_overlap_the_range() {
        let a = archive(false);
        let pick = |f: i64, t: i64| select(&a, offset(f), offset(t));
        assert_eq!(numbers(&pick(0, 4 * S).unwrap()), vec![1]);
        assert_eq!(numbers(&pick(5 * S, 9 * S).unwrap()), vec![2, 3]);
        assert_eq!(numbers(&pick(8 * S, 8 * S + 1).unwrap()), vec![3]);
        assert_eq!(numbers(&pick(0, 40 * S).unwrap()).len(), 10);
    }

    #[test]
    fn wall_clock_times_follow_program_date_time_across_a_break() {
        let a = archive(false);
        let chosen = select(&a, wall(20, 0, 6), wall(20, 1, 26)).unwrap();
        // 20:00:06 is in segment 2; 20:01:26 in segment 7 (starts 20:01:24)
        assert_eq!(numbers(&chosen), vec![2, 3, 4, 5, 6, 7]);
        // a range inside the minute without video
        assert_eq!(
            select(&a, wall(20, 0, 30), wall(20, 0, 50)),
            Err(RangeError::NoSegments)
        );
        let text = render(&a, &chosen);
        assert!(text.contains("#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-PROGRAM-DATE-TIME:"));
        assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:2\n"));
        assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 1);
        assert!(text.ends_with("live-00007.ts\n#EXT-X-ENDLIST\n"), "{text}");
        assert_eq!(default_name(&chosen), "clip-00002-00007.m3u8");
    }

    #[test]
    fn a_clip_of_an_fmp4_archive_carries_the_maps_of_its_segments() {
        // eight 4 s segments; a new init after the break before the sixth
        let mut text = String::from(
            "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-TARGETDURATION:4\n\
             #EXT-X-MEDIA-SEQUENCE:1\n#EXT-X-PLAYLIST-TYPE:VOD\n\
             #EXT-X-MAP:URI=\"live-init-aaaaaaaaaaaaaaaa.mp4\"\n",
        );
        for n in 1..=8 {
            if n == 6 {
                text += "#EXT-X-MAP:URI=\"live-init-bbbbbbbbbbbbbbbb.mp4\"\n#EXT-X-DISCONTINUITY\n";
            }
            text += &format!("#EXTINF:4.000,\nlive-{n:05}.m4s\n");
        }
        text += "#EXT-X-ENDLIST\n";
        let a = parse_published(text.as_bytes(), "", "live").unwrap();
        // 12 s to 28 s: segments 4 to 7
        let chosen = select(&a, offset(12 * S), offset(28 * S)).unwrap();
        assert_eq!(numbers(&chosen), vec![4, 5, 6, 7]);
        assert_eq!(
            render(&a, &chosen),
            "#EXTM3U\n\
             #EXT-X-VERSION:6\n\
             #EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-TARGETDURATION:4\n\
             #EXT-X-MEDIA-SEQUENCE:4\n\
             #EXT-X-PLAYLIST-TYPE:VOD\n\
             #EXT-X-MAP:URI=\"live-init-aaaaaaaaaaaaaaaa.mp4\"\n\
             #EXTINF:4.000,\n\
             live-00004.m4s\n\
             #EXTINF:4.000,\n\
             live-00005.m4s\n\
             #EXT-X-MAP:URI=\"live-init-bbbbbbbbbbbbbbbb.mp4\"\n\
             #EXT-X-DISCONTINUITY\n\
             #EXTINF:4.000,\n\
             live-00006.m4s\n\
             #EXTINF:4.000,\n\
             live-00007.m4s\n\
             #EXT-X-ENDLIST\n"
        );
        // a clip within the second init's segments declares only that one
        let chosen = select(&a, offset(24 * S), offset(32 * S)).unwrap();
        let clip = render(&a, &chosen);
        assert_eq!(clip.matches("#EXT-X-MAP:").count(), 1);
        assert!(clip.contains(
            "#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-MAP:URI=\"live-init-bbbbbbbbbbbbbbbb.mp4\"\n#EXTINF"
        ));
    }

    #[test]
    fn bad_ranges_are_refused_with_reasons() {
        let live = archive(false);
        let o = offset;
        assert_eq!(select(&live, o(5 * S), o(5 * S)), Err(RangeError::Empty));
        assert!(matches!(
            select(&live, o(9 * S), o(5 * S)),
            Err(RangeError::Reversed { .. })
        ));
        assert_eq!(
            select(&live, o(5 * S), wall(20, 0, 9)),
            Err(RangeError::Mixed)
        );
        let err = select(&live, o(30 * S), o(45 * S)).unwrap_err();
        assert!(
            err.to_string().contains(
                "offset 45.000 s is not archived yet: the archive ends at offset 40.000 s"
            ),
            "{err}"
        );
        assert!(matches!(
            select(&archive(true), o(41 * S), o(45 * S)),
            Err(RangeError::AfterEnd { .. })
        ));
        assert!(matches!(
            select(&live, wall(19, 59, 0), wall(20, 0, 2)),
            Err(RangeError::BeforeStart { .. })
        ));
        let mut undated = archive(true);
        undated
            .entries
            .iter_mut()
            .for_each(|e| e.program_date_time = None);
        assert_eq!(
            select(&undated, wall(20, 0, 0), wall(20, 0, 2)),
            Err(RangeError::NoDates)
        );
        undated.entries.clear();
        assert_eq!(select(&undated, o(0), o(1)), Err(RangeError::EmptyArchive));
    }

    #[test]
    fn a_clip_master_names_each_renditions_clip_beside_its_archive() {
        let text = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n\
            #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"audio\",DEFAULT=YES,AUTOSELECT=YES,\
            URI=\"audio/archive.m3u8\"\n\
            #EXT-X-STREAM-INF:BANDWIDTH=2000000,CODECS=\"avc1.64001f,mp4a.40.2\",\
            AUDIO=\"aud\",CLOSED-CAPTIONS=NONE\nsource/archive.m3u8\n\
            #EXT-X-STREAM-INF:BANDWIDTH=900000,CODECS=\"avc1.64001e,mp4a.40.2\",\
            AUDIO=\"aud\",CLOSED-CAPTIONS=NONE\n360p-600k/archive.m3u8\n";
        let archive = crate::master::parse(text).unwrap();
        assert_eq!(
            renditions(&archive),
            [
                "source/archive.m3u8",
                "360p-600k/archive.m3u8",
                "audio/archive.m3u8"
            ]
        );
        let clip = clip_master(&archive, "goal.m3u8");
        let uris: Vec<&str> = clip.variants.iter().map(|v| v.uri.as_str()).collect();
        assert_eq!(uris, ["source/goal.m3u8", "360p-600k/goal.m3u8"]);
        assert_eq!(clip.audio[0].uri, "audio/goal.m3u8");
        assert_eq!(clip.variants[1].bandwidth, 900_000);
        assert_eq!(beside("top.m3u8", "c.m3u8"), "c.m3u8");
        // the renditions of one range agree; one that differs is named
        let a = archive_choice();
        let mut short = a.clone();
        short.pop();
        assert!(check_aligned(&[("x".into(), a.clone()), ("y".into(), a.clone())]).is_ok());
        let err = check_aligned(&[("x".into(), a), ("y".into(), short)]).unwrap_err();
        assert!(
            err.to_string()
                .contains("y does not list the segments x does"),
            "{err}"
        );
    }

    fn archive_choice() -> Vec<Entry> {
        select(&archive(true), offset(0), offset(9 * S)).unwrap()
    }
}
