//! Continuing after a restart: what an earlier run published and what it
//! left in the spool decide where this run starts. Pure logic, no I/O.

use std::path::PathBuf;

use chrono::Utc;

use crate::playlist::Entry;
use crate::segmenter::spool::Leftovers;
use crate::segmenter::SegmentReady;
use crate::timeline::ticks_from_secs;

/// A playlist an earlier run published.
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    pub entries: Vec<Entry>,
    pub media_sequence: u64,
    pub discontinuity_sequence: u64,
    pub target_duration: u64,
    pub ended: bool,
    /// The highest segment number among the entries named like ours.
    pub last_number: Option<u64>,
}

/// The number in a URI `<http_prefix><segment_prefix>-<N>.ts`.
pub fn segment_number(uri: &str, http_prefix: &str, segment_prefix: &str) -> Option<u64> {
    crate::segmenter::segment_number(uri.strip_prefix(http_prefix)?, segment_prefix)
}

/// Reads a published media playlist.
pub fn parse_published(
    text: &[u8],
    http_prefix: &str,
    segment_prefix: &str,
) -> Result<Published, String> {
    let pl = m3u8_rs::parse_media_playlist_res(text)
        .map_err(|_| "it is not an HLS media playlist".to_string())?;
    let mut last_number = None;
    let entries = pl
        .segments
        .iter()
        .enumerate()
        .map(|(i, seg)| {
            let number = segment_number(&seg.uri, http_prefix, segment_prefix);
            last_number = last_number.max(number);
            Entry {
                sequence: number.unwrap_or(pl.media_sequence + i as u64),
                uri: seg.uri.clone(),
                duration: ticks_from_secs(f64::from(seg.duration)),
                discontinuity: seg.discontinuity,
                program_date_time: seg.program_date_time.map(|t| t.with_timezone(&Utc)),
            }
        })
        .collect();
    Ok(Published {
        entries,
        media_sequence: pl.media_sequence,
        discontinuity_sequence: pl.discontinuity_sequence,
        target_duration: pl.target_duration,
        ended: pl.end_list,
        last_number,
    })
}

/// Where this run starts.
#[derive(Debug, Default)]
pub struct Plan {
    /// The playlist to continue.
    pub restored: Option<Published>,
    /// Complete segments of an earlier run not yet listed: published first.
    pub leftovers: Vec<SegmentReady>,
    /// Spool files that are no longer needed: segments already listed, or
    /// (with --fresh) everything an earlier run left.
    pub stale: Vec<PathBuf>,
    /// Segment files that were never finished.
    pub incomplete: Vec<PathBuf>,
    /// Number of the first segment this run cuts.
    pub first_sequence: u64,
    /// The first segment this run cuts follows a break.
    pub first_discontinuity: bool,
}

/// Decides how to continue from what was published and what is in the
/// spool; `fresh` starts over, ignoring both.
pub fn plan(published: Option<Published>, spool: Leftovers, fresh: bool) -> Plan {
    if fresh {
        return Plan {
            stale: spool.complete.into_iter().map(|s| s.path).collect(),
            incomplete: spool.incomplete,
            first_sequence: 1,
            ..Plan::default()
        };
    }
    let last_listed = published.as_ref().and_then(|p| p.last_number).unwrap_or(0);
    let (mut leftovers, listed): (Vec<SegmentReady>, Vec<SegmentReady>) = spool
        .complete
        .into_iter()
        .partition(|s| s.sequence > last_listed);
    // a leftover that does not follow the one before it left a gap in time
    let mut previous = (published.is_some() && last_listed > 0).then_some(last_listed);
    for seg in &mut leftovers {
        if previous.is_some_and(|p| seg.sequence != p + 1) {
            seg.discontinuity = true;
        }
        previous = Some(seg.sequence);
    }
    let last = leftovers.last().map_or(last_listed, |s| s.sequence);
    Plan {
        first_discontinuity: published.is_some() || !leftovers.is_empty(),
        restored: published,
        leftovers,
        stale: listed.into_iter().map(|s| s.path).collect(),
        incomplete: spool.incomplete,
        first_sequence: last + 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const TEXT: &str =
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:7\n\
        #EXT-X-DISCONTINUITY-SEQUENCE:1\n#EXT-X-PROGRAM-DATE-TIME:2026-11-21T20:00:00.000Z\n\
        #EXTINF:4.004,\nhttps://cdn.example/live/cam-00011.ts\n#EXT-X-DISCONTINUITY\n\
        #EXTINF:3.500,\nhttps://cdn.example/live/cam-00012.ts\n#EXT-X-ENDLIST\n";

    fn leftover(n: u64) -> SegmentReady {
        SegmentReady {
            sequence: n,
            name: format!("cam-{n:05}.ts"),
            path: PathBuf::from(format!("/spool/cam-{n:05}.ts")),
            bytes: 10,
            start: 0,
            duration: 360_000,
            discontinuity: false,
            program_date_time: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        }
    }

    #[test]
    fn a_published_playlist_is_read_back() {
        let p = parse_published(TEXT.as_bytes(), "https://cdn.example/live/", "cam").unwrap();
        assert_eq!(p.media_sequence, 7);
        assert_eq!(p.discontinuity_sequence, 1);
        assert_eq!(p.target_duration, 4);
        assert!(p.ended);
        assert_eq!(p.last_number, Some(12));
        assert_eq!(p.entries[0].duration, 360_360);
        assert_eq!(p.entries[0].sequence, 11);
        assert!(p.entries[1].discontinuity);
        assert!(p.entries[0].program_date_time.is_some());
        assert!(parse_published(b"not a playlist", "", "cam").is_err());
        assert_eq!(segment_number("cam-00042.ts", "", "cam"), Some(42));
        assert_eq!(segment_number("cam-123456.ts", "", "cam"), Some(123_456));
        assert_eq!(segment_number("other-00042.ts", "", "cam"), None);
        assert_eq!(segment_number("cam-x.ts", "", "cam"), None);
    }

    #[test]
    fn leftovers_after_the_last_listed_go_first_and_numbering_continues() {
        let published =
            parse_published(TEXT.as_bytes(), "https://cdn.example/live/", "cam").unwrap();
        let spool = Leftovers {
            complete: vec![leftover(12), leftover(13), leftover(14), leftover(16)],
            incomplete: vec![PathBuf::from("/spool/cam-00017.ts.part")],
        };
        let plan = plan(Some(published), spool, false);
        let numbers: Vec<u64> = plan.leftovers.iter().map(|s| s.sequence).collect();
        assert_eq!(numbers, vec![13, 14, 16]);
        let breaks: Vec<bool> = plan.leftovers.iter().map(|s| s.discontinuity).collect();
        assert_eq!(breaks, vec![false, false, true], "15 is missing: a gap");
        assert_eq!(plan.stale, vec![PathBuf::from("/spool/cam-00012.ts")]);
        assert_eq!(plan.incomplete.len(), 1);
        assert_eq!(plan.first_sequence, 17);
        assert!(plan.first_discontinuity);
        assert!(plan.restored.is_some());
    }

    #[test]
    fn a_first_run_starts_at_one_and_fresh_ignores_what_was_there() {
        let first = plan(None, Leftovers::default(), false);
        assert_eq!(first.first_sequence, 1);
        assert!(!first.first_discontinuity);
        let published =
            parse_published(TEXT.as_bytes(), "https://cdn.example/live/", "cam").unwrap();
        let spool = Leftovers {
            complete: vec![leftover(13)],
            incomplete: vec![],
        };
        let fresh = plan(Some(published), spool, true);
        assert!(fresh.restored.is_none());
        assert!(fresh.leftovers.is_empty());
        assert_eq!(fresh.stale.len(), 1);
        assert_eq!(fresh.first_sequence, 1);
        // a crash before anything was published: the spool alone
        let spool_only = plan(
            None,
            Leftovers {
                complete: vec![leftover(1), leftover(2)],
                incomplete: vec![],
            },
            false,
        );
        assert_eq!(spool_only.leftovers.len(), 2);
        assert!(!spool_only.leftovers[0].discontinuity);
        assert_eq!(spool_only.first_sequence, 3);
    }
}
