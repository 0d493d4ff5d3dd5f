//! The rolling live playlist (RFC 8216), as a pure model rendered through
//! m3u8-rs. Durations stay [`MediaDuration`]s (90 kHz ticks) until
//! rendering.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};
use m3u8_rs::{Map, MediaPlaylist, MediaPlaylistType, MediaSegment};

use crate::journal;
use crate::media::{MediaDuration, Packaging};
use crate::timeline::TICKS_PER_SECOND;

/// EXT-X-VERSION 3 is the lowest that allows decimal EXTINF durations: the
/// version of TS playlists. A playlist whose entries have maps declares
/// fMP4's [`Packaging::playlist_version`] (6, for EXT-X-MAP).
pub const VERSION: usize = 3;

/// One segment as listed in the playlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub sequence: u64,
    pub uri: String,
    pub duration: MediaDuration,
    pub discontinuity: bool,
    pub program_date_time: Option<DateTime<Utc>>,
    /// fMP4: the URI of the init segment it needs (its EXT-X-MAP), the
    /// http prefix and the init's name. `None` for TS.
    pub map: Option<String>,
}

impl Entry {
    /// How a segment is listed: its URI is `http_prefix` and its name;
    /// `dated` gives it its EXT-X-PROGRAM-DATE-TIME.
    pub fn of_segment(seg: &crate::media::SegmentReady, http_prefix: &str, dated: bool) -> Self {
        Entry {
            sequence: seg.sequence,
            uri: format!("{http_prefix}{}", seg.name),
            duration: seg.duration,
            discontinuity: seg.discontinuity,
            program_date_time: dated.then_some(seg.program_date_time),
            map: seg.init.as_ref().map(|init| format!("{http_prefix}{init}")),
        }
    }
}

/// What a playlist is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The rolling live playlist: a sliding window, no EXT-X-PLAYLIST-TYPE.
    Live,
    /// The whole event: `EXT-X-PLAYLIST-TYPE:EVENT` keeps every segment;
    /// once ended it is `VOD`.
    Archive,
}

/// A media playlist: a sliding window, or (as an archive) every segment.
#[derive(Debug, Clone)]
pub struct Playlist {
    kind: Kind,
    target_duration: u64,
    window: usize,
    entries: VecDeque<Entry>,
    /// EXT-X-MEDIA-SEQUENCE; set by the first entry, then raised by one for
    /// every entry removed.
    media_sequence: Option<u64>,
    discontinuity_sequence: u64,
    ended: bool,
}

/// The EXT-X-TARGETDURATION a configured segment length starts with: the
/// length rounded up to whole seconds.
pub fn initial_target_duration(target: MediaDuration) -> u64 {
    ((target.ticks() + TICKS_PER_SECOND - 1) / TICKS_PER_SECOND).max(1) as u64
}

impl Playlist {
    /// A playlist for segments of `target` that keeps at least the last
    /// `window` segments.
    pub fn new(target: MediaDuration, window: usize) -> Self {
        Playlist {
            kind: Kind::Live,
            target_duration: initial_target_duration(target),
            window: window.max(1),
            entries: VecDeque::new(),
            media_sequence: None,
            discontinuity_sequence: 0,
            ended: false,
        }
    }

    /// An archive of the whole event for segments of `target`.
    pub fn archive(target: MediaDuration) -> Self {
        Playlist {
            kind: Kind::Archive,
            window: usize::MAX,
            ..Playlist::new(target, 1)
        }
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Continues a playlist published earlier: its entries, sequences and
    /// target duration (which is never lowered). It is no longer ended.
    pub fn restore(
        &mut self,
        entries: Vec<Entry>,
        media_sequence: u64,
        discontinuity_sequence: u64,
        target_duration: u64,
    ) {
        self.entries = entries.into();
        self.media_sequence = Some(media_sequence);
        self.discontinuity_sequence = discontinuity_sequence;
        self.target_duration = self.target_duration.max(target_duration);
        self.ended = false;
    }

    /// Appends a segment and slides the window. Returns the entries that
    /// left the playlist.
    pub fn push(&mut self, entry: Entry) -> Vec<Entry> {
        let rounded = entry.duration.rounded_secs().max(0) as u64;
        if rounded > self.target_duration && self.kind == Kind::Live {
            log::warn!(
                "segment {} lasts {} s because the input's keyframes are spaced that far apart; \
                 raising EXT-X-TARGETDURATION from {} to {}",
                entry.uri,
                entry.duration,
                self.target_duration,
                rounded
            );
            journal::warning::keyframes_far_apart(
                &entry.uri,
                entry.duration,
                self.target_duration,
                rounded,
            );
        }
        self.target_duration = self.target_duration.max(rounded);
        self.media_sequence.get_or_insert(entry.sequence);
        self.entries.push_back(entry);
        let mut removed = Vec::new();
        // RFC 8216 §6.2.2: never shorter than three target durations
        let min_total = MediaDuration::from_whole_secs(3 * self.target_duration);
        while self.entries.len() > self.window {
            let front = self.entries[0].duration;
            if self.total() - front < min_total {
                break;
            }
            let gone = self.entries.pop_front().expect("not empty");
            self.media_sequence = self.media_sequence.map(|m| m + 1);
            if gone.discontinuity {
                self.discontinuity_sequence += 1;
            }
            removed.push(gone);
        }
        removed
    }

    /// Marks the stream as ended (EXT-X-ENDLIST).
    pub fn end(&mut self) {
        self.ended = true;
    }

    pub fn has_ended(&self) -> bool {
        self.ended
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }

    pub fn target_duration(&self) -> u64 {
        self.target_duration
    }

    /// EXT-X-MEDIA-SEQUENCE: the media sequence number of the first entry.
    pub fn media_sequence(&self) -> u64 {
        self.media_sequence.unwrap_or(0)
    }

    pub fn discontinuity_sequence(&self) -> u64 {
        self.discontinuity_sequence
    }

    /// The duration of the entries listed.
    pub fn total(&self) -> MediaDuration {
        self.entries.iter().map(|e| e.duration).sum()
    }

    /// Renders the playlist text. An entry with a map gets EXT-X-MAP when
    /// it is the first one or its map differs from the entry before it, so
    /// that when the oldest entry leaves, its map moves to the new first
    /// one (RFC 8216 §4.3.2.5: a map applies to the segments after it, up to
    /// the next one).
    pub fn render(&self) -> String {
        let mut previous: Option<&str> = None;
        let segments = self
            .entries
            .iter()
            .map(|e| {
                let declare = e.map.as_deref().filter(|m| previous != Some(*m));
                previous = e.map.as_deref();
                MediaSegment {
                    uri: e.uri.clone(),
                    duration: millis(e.duration) as f32 / 1000.0,
                    discontinuity: e.discontinuity,
                    program_date_time: e.program_date_time.map(|t| t.fixed_offset()),
                    map: declare.map(|uri| Map {
                        uri: uri.to_string(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }
            })
            .collect();
        let packaging = match self.entries.iter().any(|e| e.map.is_some()) {
            true => Packaging::Fmp4,
            false => Packaging::Ts,
        };
        let playlist = MediaPlaylist {
            version: Some(packaging.playlist_version()),
            // every fMP4 segment starts with a keyframe (the packager cuts
            // there); TS playlists stay as they were. A segment cut without
            // a keyframe would need a flag of its own on the entry.
            independent_segments: !self.entries.is_empty()
                && self.entries.iter().all(|e| e.map.is_some()),
            target_duration: self.target_duration,
            media_sequence: self.media_sequence(),
            discontinuity_sequence: self.discontinuity_sequence,
            end_list: self.ended,
            playlist_type: match (self.kind, self.ended) {
                (Kind::Live, _) => None,
                (Kind::Archive, false) => Some(MediaPlaylistType::Event),
                (Kind::Archive, true) => Some(MediaPlaylistType::Vod),
            },
            segments,
            ..Default::default()
        };
        m3u8_rs::WRITE_OPT_FLOAT_PRECISION.store(3, Ordering::Relaxed);
        let mut out = Vec::new();
        playlist
            .write_to(&mut out)
            .expect("writing to a Vec cannot fail");
        String::from_utf8(out).expect("m3u8-rs writes UTF-8")
    }
}

fn millis(d: MediaDuration) -> i64 {
    (d.ticks() * 1000 + TICKS_PER_SECOND / 2).div_euclid(TICKS_PER_SECOND)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const S: i64 = TICKS_PER_SECOND;

    fn entry(sequence: u64, duration: i64) -> Entry {
        let start = Utc.with_ymd_and_hms(2026, 11, 21, 20, 0, 0).unwrap();
        Entry {
            sequence,
            uri: format!("live-{sequence:05}.ts"),
            duration: MediaDuration(duration),
            discontinuity: false,
            program_date_time: Some(start + chrono::Duration::seconds(10 * sequence as i64)),
            map: None,
        }
    }

    #[test]
    fn renders_a_sliding_window() {
        let mut p = Playlist::new(MediaDuration(10 * S), 3);
        for n in 1..=4 {
            p.push(entry(n, 10 * S + 900));
        }
        p.push(Entry {
            discontinuity: true,
            ..entry(5, 9 * S)
        });
        assert_eq!(
            p.render(),
            "#EXTM3U\n\
             #EXT-X-VERSION:3\n\
             #EXT-X-TARGETDURATION:10\n\
             #EXT-X-MEDIA-SEQUENCE:2\n\
             #EXT-X-PROGRAM-DATE-TIME:2026-11-21T20:00:20.000Z\n\
             #EXTINF:10.010,\n\
             live-00002.ts\n\
             #EXT-X-PROGRAM-DATE-TIME:2026-11-21T20:00:30.000Z\n\
             #EXTINF:10.010,\n\
             live-00003.ts\n\
             #EXT-X-PROGRAM-DATE-TIME:2026-11-21T20:00:40.000Z\n\
             #EXTINF:10.010,\n\
             live-00004.ts\n\
             #EXT-X-DISCONTINUITY\n\
             #EXT-X-PROGRAM-DATE-TIME:2026-11-21T20:00:50.000Z\n\
             #EXTINF:9.000,\n\
             live-00005.ts\n"
        );
    }

    #[test]
    fn removing_a_discontinuity_raises_its_sequence_and_end_adds_endlist() {
        let mut p = Playlist::new(MediaDuration(2 * S), 3);
        p.push(Entry {
            discontinuity: true,
            program_date_time: None,
            ..entry(7, 2 * S)
        });
        for n in 8..=10 {
            p.push(Entry {
                program_date_time: None,
                ..entry(n, 2 * S)
            });
        }
        p.end();
        assert_eq!(
            p.render(),
            "#EXTM3U\n\
             #EXT-X-VERSION:3\n\
             #EXT-X-TARGETDURATION:2\n\
             #EXT-X-MEDIA-SEQUENCE:8\n\
             #EXT-X-DISCONTINUITY-SEQUENCE:1\n\
             #EXTINF:2.000,\n\
             live-00008.ts\n\
             #EXTINF:2.000,\n\
             live-00009.ts\n\
             #EXTINF:2.000,\n\
             live-00010.ts\n\
             #EXT-X-ENDLIST\n"
        );
    }

    #[test]
    fn a_restored_playlist_continues_its_sequences() {
        let mut p = Playlist::new(MediaDuration(2 * S), 3);
        let old: Vec<Entry> = (40..43).map(|n| entry(n, 2 * S)).collect();
        p.restore(old, 17, 2, 3);
        assert_eq!(p.target_duration(), 3);
        // the new run's segments have other numbers: the media sequence does not care
        p.push(Entry {
            discontinuity: true,
            ..entry(90, 2 * S)
        });
        p.push(entry(91, 2 * S));
        assert_eq!(
            p.media_sequence(),
            17,
            "five entries are needed for 3 x 3 s"
        );
        p.push(entry(92, 2 * S));
        let text = p.render();
        assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:18\n"), "{text}");
        assert!(text.contains("#EXT-X-DISCONTINUITY-SEQUENCE:2\n"), "{text}");
        assert!(text.contains("#EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME:2026-11-21T20:15:00.000Z\n#EXTINF:2.000,\nlive-00090.ts"));
        assert!(!text.contains("ENDLIST"));
    }

    #[test]
    fn an_archive_keeps_everything_and_ends_as_video_on_demand() {
        let mut p = Playlist::archive(MediaDuration(2 * S));
        for n in 1..=400 {
            assert!(p.push(entry(n, 2 * S)).is_empty());
        }
        p.push(entry(401, 3 * S + S / 2));
        assert_eq!(p.target_duration(), 4);
        let text = p.render();
        assert!(text.starts_with(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:1\n\
             #EXT-X-PLAYLIST-TYPE:EVENT\n"
        ));
        assert_eq!(text.matches("#EXTINF").count(), 401);
        assert_eq!(text.matches("#EXT-X-PROGRAM-DATE-TIME").count(), 401);
        assert!(!text.contains("ENDLIST"));
        p.end();
        let text = p.render();
        assert!(text.contains("#EXT-X-PLAYLIST-TYPE:VOD\n"));
        assert!(text.ends_with("live-00401.ts\n#EXT-X-ENDLIST\n"), "{text}");
        // a live playlist never carries a type
        let mut live = Playlist::new(MediaDuration(2 * S), 3);
        live.push(entry(1, 2 * S));
        live.end();
        assert!(!live.render().contains("PLAYLIST-TYPE"));
    }

    #[test]
    fn target_duration_rises_for_long_segments_and_never_falls() {
        let mut p = Playlist::new(MediaDuration(4 * S), 5);
        assert_eq!(p.target_duration(), 4);
        p.push(entry(1, 4 * S + S / 2)); // 4.5 rounds to 5
        assert_eq!(p.target_duration(), 5);
        p.push(entry(2, 3 * S));
        assert_eq!(p.target_duration(), 5);
        assert_eq!(initial_target_duration(MediaDuration(S / 2)), 1);
        assert_eq!(initial_target_duration(MediaDuration(2 * S + 1)), 3);
    }

    /// An fMP4 entry: 2 s, undated, needing init `init`.
    fn fmp4(sequence: u64, init: &str) -> Entry {
        Entry {
            uri: format!("live-{sequence:05}.m4s"),
            program_date_time: None,
            map: Some(format!("https://cdn.example/live/live-init-{init}.mp4")),
            ..entry(sequence, 2 * S)
        }
    }

    #[test]
    fn the_map_moves_with_the_first_entry_and_a_new_init_gets_its_own() {
        let mut p = Playlist::new(MediaDuration(2 * S), 3);
        for n in 1..=3 {
            p.push(fmp4(n, "a"));
        }
        assert_eq!(
            p.render(),
            "#EXTM3U\n\
             #EXT-X-VERSION:6\n\
             #EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-TARGETDURATION:2\n\
             #EXT-X-MEDIA-SEQUENCE:1\n\
             #EXT-X-MAP:URI=\"https://cdn.example/live/live-init-a.mp4\"\n\
             #EXTINF:2.000,\n\
             live-00001.m4s\n\
             #EXTINF:2.000,\n\
             live-00002.m4s\n\
             #EXTINF:2.000,\n\
             live-00003.m4s\n"
        );
        // a new init (another resolution) after a break: its own map, and
        // the first entry, now 2, keeps the map of the one that left
        p.push(Entry {
            discontinuity: true,
            ..fmp4(4, "b")
        });
        assert_eq!(
            p.render(),
            "#EXTM3U\n\
             #EXT-X-VERSION:6\n\
             #EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-TARGETDURATION:2\n\
             #EXT-X-MEDIA-SEQUENCE:2\n\
             #EXT-X-MAP:URI=\"https://cdn.example/live/live-init-a.mp4\"\n\
             #EXTINF:2.000,\n\
             live-00002.m4s\n\
             #EXTINF:2.000,\n\
             live-00003.m4s\n\
             #EXT-X-MAP:URI=\"https://cdn.example/live/live-init-b.mp4\"\n\
             #EXT-X-DISCONTINUITY\n\
             #EXTINF:2.000,\n\
             live-00004.m4s\n"
        );
        p.push(fmp4(5, "b"));
        let text = p.render();
        assert_eq!(text.matches("#EXT-X-MAP:").count(), 2, "{text}");
        assert!(text.contains("live-init-a.mp4\"\n#EXTINF:2.000,\nlive-00003.m4s\n"));
        // once every entry needs b, b is declared once, before the first
        p.push(fmp4(6, "b"));
        let text = p.render();
        assert_eq!(text.matches("#EXT-X-MAP:").count(), 1, "{text}");
        assert!(text.contains(
            "#EXT-X-MEDIA-SEQUENCE:4\n\
             #EXT-X-MAP:URI=\"https://cdn.example/live/live-init-b.mp4\"\n\
             #EXT-X-DISCONTINUITY\n\
             #EXTINF:2.000,\nlive-00004.m4s\n"
        ));
    }

    #[test]
    fn an_fmp4_archive_declares_version_6_and_its_maps_and_ts_stays_at_3() {
        let mut a = Playlist::archive(MediaDuration(2 * S));
        for n in 1..=4 {
            a.push(fmp4(n, if n < 3 { "a" } else { "b" }));
        }
        a.end();
        let text = a.render();
        assert!(text.starts_with(
            "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-TARGETDURATION:2\n"
        ));
        assert!(text.contains(
            "#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-MAP:URI=\"https://cdn.example/live/live-init-a.mp4\"\n"
        ));
        assert!(text.contains(
            "live-00002.m4s\n#EXT-X-MAP:URI=\"https://cdn.example/live/live-init-b.mp4\"\n#EXTINF"
        ));
        assert_eq!(text.matches("#EXT-X-MAP:").count(), 2);
        // TS: no map, no independent segments, version 3 (the exact texts
        // of the tests above)
        let mut ts = Playlist::archive(MediaDuration(2 * S));
        ts.push(entry(1, 2 * S));
        let text = ts.render();
        assert!(text.starts_with("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n"));
        assert!(!text.contains("MAP") && !text.contains("INDEPENDENT"));
    }

    #[test]
    fn window_keeps_three_target_durations() {
        // window 3 of 2 s segments, but one 7 s segment raises the target to 7:
        // the playlist keeps enough entries to cover 21 s
        let mut p = Playlist::new(MediaDuration(2 * S), 3);
        p.push(entry(1, 7 * S));
        for n in 2..=12 {
            let removed = p.push(entry(n, 2 * S));
            assert!(removed.len() <= 1);
        }
        assert!(p.total() >= MediaDuration(21 * S), "{}", p.total());
        assert_eq!(p.entries().count(), 11);
        assert_eq!(p.media_sequence(), 2);
    }
}
