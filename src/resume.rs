//! Continuing after a restart: what an earlier run published and what it
//! left in the spool decide where this run starts. Pure logic, no I/O.

use std::path::PathBuf;

use chrono::Utc;

use crate::media::{InitReady, MediaDuration, SegmentReady};
use crate::playlist::Entry;
use crate::spool::Leftovers;

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
    crate::media::segment::segment_number(uri.strip_prefix(http_prefix)?, segment_prefix)
}

/// Reads a published media playlist. Each entry gets the EXT-X-MAP that
/// applies to it (the last one before it), as the playlist was rendered.
pub fn parse_published(
    text: &[u8],
    http_prefix: &str,
    segment_prefix: &str,
) -> Result<Published, String> {
    let pl = m3u8_rs::parse_media_playlist_res(text)
        .map_err(|_| "it is not an HLS media playlist".to_string())?;
    let mut last_number = None;
    // an EXT-X-MAP applies to every segment after it, up to the next one
    let mut map: Option<String> = None;
    let entries = pl
        .segments
        .iter()
        .enumerate()
        .map(|(i, seg)| {
            let number = segment_number(&seg.uri, http_prefix, segment_prefix);
            last_number = last_number.max(number);
            if let Some(m) = &seg.map {
                map = Some(m.uri.clone());
            }
            Entry {
                sequence: number.unwrap_or(pl.media_sequence + i as u64),
                uri: seg.uri.clone(),
                duration: MediaDuration::from_secs(f64::from(seg.duration)),
                discontinuity: seg.discontinuity,
                program_date_time: seg.program_date_time.map(|t| t.with_timezone(&Utc)),
                map: map.clone(),
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
    /// The init segments in the spool that leftovers need: stored again
    /// before them (cheap, and the same bytes under the same name).
    pub inits: Vec<InitReady>,
    /// Spool files that are no longer needed: segments already listed,
    /// init segments no leftover needs, or (with --fresh) everything an
    /// earlier run left.
    pub stale: Vec<PathBuf>,
    /// Segment files that were never finished, and fMP4 segments whose init
    /// segment is not in the spool (they can never be listed).
    pub incomplete: Vec<PathBuf>,
    /// Number of the first segment this run cuts.
    pub first_sequence: u64,
    /// The first segment this run cuts follows a break.
    pub first_discontinuity: bool,
    /// With --archive: the archive to continue, and what to append to it
    /// first (see [`plan_archive`]).
    pub archive: Option<ArchivePlan>,
}

/// How an archive continues.
#[derive(Debug, Default)]
pub struct ArchivePlan {
    /// The archive an earlier run published, if any.
    pub restored: Option<Published>,
    /// Segments already stored and listed in the rolling playlist that the
    /// archive's last version did not list yet (it is published less
    /// often): appended before this run's.
    pub backfill: Vec<Entry>,
    /// Spool files of backfilled segments: removed once the archive lists them.
    pub spool: Vec<PathBuf>,
    /// Segments between the archive and the rolling playlist that neither
    /// the rolling playlist nor the spool still describe.
    pub missing: u64,
}

/// Decides how to continue from what was published and what is in the
/// spool; `fresh` starts over, ignoring both.
pub fn plan(published: Option<Published>, spool: Leftovers, fresh: bool) -> Plan {
    plan_archive(published, None, spool, fresh, "", false)
}

/// [`plan`] with an archive: `archive` is what an earlier run published
/// under --archive (`None` when there is none yet); spool segments become
/// archive entries with `http_prefix` and, if `dated`, program date times
/// (as the uploader lists them). Segments the archive already lists are
/// never listed again; those the rolling playlist lists but the archive does
/// not yet are appended to it from the rolling playlist or the spool.
pub fn plan_archive(
    published: Option<Published>,
    archive: Option<Option<Published>>,
    spool: Leftovers,
    fresh: bool,
    http_prefix: &str,
    dated: bool,
) -> Plan {
    if fresh {
        let inits = spool.inits.into_iter().map(|i| i.path);
        return Plan {
            stale: spool
                .complete
                .into_iter()
                .map(|s| s.path)
                .chain(inits)
                .collect(),
            incomplete: spool.incomplete,
            first_sequence: 1,
            archive: archive.map(|_| ArchivePlan::default()),
            ..Plan::default()
        };
    }
    let rolling_last = published.as_ref().and_then(|p| p.last_number).unwrap_or(0);
    let archive_last = archive
        .as_ref()
        .and_then(|a| a.as_ref()?.last_number)
        .unwrap_or(0);
    // an archive version may land before the rolling one that lists the same segment
    let last_listed = rolling_last.max(archive_last);
    let (leftovers, listed): (Vec<SegmentReady>, Vec<SegmentReady>) = spool
        .complete
        .into_iter()
        .partition(|s| s.sequence > last_listed);
    // numbering continues after every leftover, even one that cannot be listed
    let last = leftovers.last().map_or(last_listed, |s| s.sequence);
    let mut incomplete = spool.incomplete;
    let has_init = |s: &SegmentReady| {
        s.init
            .as_ref()
            .is_none_or(|name| spool.inits.iter().any(|i| &i.name == name))
    };
    let (mut leftovers, orphans): (Vec<SegmentReady>, Vec<SegmentReady>) =
        leftovers.into_iter().partition(has_init);
    incomplete.extend(orphans.into_iter().map(|s| s.path));
    let (inits, unneeded): (Vec<InitReady>, Vec<InitReady>) =
        spool.inits.into_iter().partition(|i| {
            leftovers
                .iter()
                .any(|s| s.init.as_deref() == Some(i.name.as_str()))
        });
    // a leftover that does not follow the one before it left a gap in time
    let mut previous = (published.is_some() && last_listed > 0).then_some(last_listed);
    for seg in &mut leftovers {
        if previous.is_some_and(|p| seg.sequence != p + 1) {
            seg.discontinuity = true;
        }
        previous = Some(seg.sequence);
    }
    let archive = archive.map(|restored| {
        let mut plan = ArchivePlan::default();
        // with no archive yet, it starts with what the rolling playlist holds
        let from = match &restored {
            Some(_) => archive_last + 1,
            None => published
                .iter()
                .flat_map(|p| &p.entries)
                .map(|e| e.sequence)
                .min()
                .unwrap_or(rolling_last + 1),
        };
        let mut gap = false;
        for n in from..=rolling_last {
            let from_rolling = published
                .iter()
                .flat_map(|p| &p.entries)
                .find(|e| e.sequence == n)
                .cloned();
            let from_spool = listed.iter().find(|s| s.sequence == n);
            let spooled = || from_spool.map(|s| Entry::of_segment(s, http_prefix, dated));
            let Some(mut e) = from_rolling.or_else(spooled) else {
                plan.missing += 1;
                gap = true;
                continue;
            };
            e.discontinuity |= gap;
            gap = false;
            plan.spool.extend(from_spool.map(|s| s.path.clone()));
            plan.backfill.push(e);
        }
        plan.restored = restored;
        plan
    });
    let archive_needs = |path: &PathBuf| archive.as_ref().is_some_and(|a| a.spool.contains(path));
    let stale = listed
        .into_iter()
        .map(|s| s.path)
        .filter(|p| !archive_needs(p))
        .chain(unneeded.into_iter().map(|i| i.path))
        .collect();
    Plan {
        first_discontinuity: published.is_some()
            || !leftovers.is_empty()
            || archive.as_ref().is_some_and(|a| a.restored.is_some()),
        restored: published,
        leftovers,
        inits,
        archive,
        stale,
        incomplete,
        first_sequence: last + 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::MediaTime;
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
            start: MediaTime(0),
            duration: MediaDuration(360_000),
            discontinuity: false,
            program_date_time: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            packaging: crate::media::Packaging::Ts,
            init: None,
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
        assert_eq!(p.entries[0].duration, MediaDuration(360_360));
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
            inits: vec![],
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
            inits: vec![],
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
                inits: vec![],
                incomplete: vec![],
            },
            false,
        );
        assert_eq!(spool_only.leftovers.len(), 2);
        assert!(!spool_only.leftovers[0].discontinuity);
        assert_eq!(spool_only.first_sequence, 3);
    }

    #[test]
    fn maps_are_read_back_and_a_restart_continues_with_them() {
        let http = "https://cdn.example/live/";
        let map = |init: &str| Some(format!("{http}cam-init-{init}.mp4"));
        let mut before = crate::playlist::Playlist::new(MediaDuration(4 * 90_000), 3);
        for n in 1..=5u64 {
            before.push(Entry {
                sequence: n,
                uri: format!("{http}cam-{n:05}.m4s"),
                duration: MediaDuration(360_000),
                discontinuity: n == 3,
                program_date_time: None,
                map: map(if n < 3 { "a" } else { "b" }),
            });
        }
        // 3, 4 and 5 are listed; the map of 3 is b, declared once before it
        let text = before.render();
        let p = parse_published(text.as_bytes(), http, "cam").unwrap();
        let maps: Vec<Option<String>> = p.entries.iter().map(|e| e.map.clone()).collect();
        assert_eq!(maps, vec![map("b"), map("b"), map("b")]);
        assert_eq!(p.entries, before.entries().cloned().collect::<Vec<_>>());
        // a new run continues it: the old entries keep their map, the new
        // init gets its own
        let mut after = crate::playlist::Playlist::new(MediaDuration(4 * 90_000), 3);
        after.restore(
            p.entries,
            p.media_sequence,
            p.discontinuity_sequence,
            p.target_duration,
        );
        after.push(Entry {
            sequence: 6,
            uri: format!("{http}cam-00006.m4s"),
            duration: MediaDuration(360_000),
            discontinuity: true,
            program_date_time: None,
            map: map("c"),
        });
        let text = after.render();
        assert!(text.starts_with("#EXTM3U\n#EXT-X-VERSION:6\n"), "{text}");
        assert!(text.contains(&format!(
            "#EXT-X-MEDIA-SEQUENCE:4\n#EXT-X-DISCONTINUITY-SEQUENCE:1\n\
             #EXT-X-MAP:URI=\"{http}cam-init-b.mp4\"\n#EXTINF:4.000,\n{http}cam-00004.m4s\n"
        )));
        assert!(text.ends_with(&format!(
            "#EXT-X-MAP:URI=\"{http}cam-init-c.mp4\"\n#EXT-X-DISCONTINUITY\n\
             #EXTINF:4.000,\n{http}cam-00006.m4s\n"
        )));
        // TS entries have none
        let ts = parse_published(TEXT.as_bytes(), http, "cam").unwrap();
        assert!(ts.entries.iter().all(|e| e.map.is_none()));
    }

    fn spool_init(hex: char) -> InitReady {
        let name = format!("cam-init-{}.mp4", hex.to_string().repeat(16));
        InitReady {
            path: PathBuf::from(format!("/spool/{name}")),
            name,
            bytes: 700,
            codecs: "avc1.64001f".into(),
            audio_only: false,
        }
    }

    fn fmp4_leftover(n: u64, init: &InitReady) -> SegmentReady {
        SegmentReady {
            name: format!("cam-{n:05}.m4s"),
            path: PathBuf::from(format!("/spool/cam-{n:05}.m4s")),
            packaging: crate::media::Packaging::Fmp4,
            init: Some(init.name.clone()),
            ..leftover(n)
        }
    }

    #[test]
    fn fmp4_leftovers_are_published_after_the_init_they_need() {
        let published =
            parse_published(TEXT.as_bytes(), "https://cdn.example/live/", "cam").unwrap();
        let (a, b, c) = (spool_init('a'), spool_init('b'), spool_init('c'));
        // 12 is listed; 13 and 14 need a (in the spool), 15 needs b (gone);
        // c is needed by none of them
        let spool = Leftovers {
            complete: vec![
                fmp4_leftover(12, &a),
                fmp4_leftover(13, &a),
                fmp4_leftover(14, &a),
                fmp4_leftover(15, &b),
            ],
            inits: vec![a.clone(), c.clone()],
            incomplete: vec![],
        };
        let p = plan(Some(published.clone()), spool, false);
        let numbers: Vec<u64> = p.leftovers.iter().map(|s| s.sequence).collect();
        assert_eq!(numbers, vec![13, 14]);
        assert_eq!(p.inits, vec![a.clone()]);
        assert_eq!(
            p.stale,
            vec![PathBuf::from("/spool/cam-00012.m4s"), c.path.clone()]
        );
        assert_eq!(p.incomplete, vec![PathBuf::from("/spool/cam-00015.m4s")]);
        assert_eq!(p.first_sequence, 16, "15's number is not reused");
        // --fresh: the inits go too
        let spool = Leftovers {
            complete: vec![fmp4_leftover(13, &a)],
            inits: vec![a.clone()],
            incomplete: vec![],
        };
        let fresh = plan(Some(published), spool, true);
        assert!(fresh.inits.is_empty());
        assert_eq!(
            fresh.stale,
            vec![PathBuf::from("/spool/cam-00013.m4s"), a.path]
        );
    }

    fn archived(numbers: std::ops::RangeInclusive<u64>) -> Published {
        let mut text = String::from(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:1\n\
             #EXT-X-PLAYLIST-TYPE:EVENT\n",
        );
        for n in numbers {
            text += &format!("#EXTINF:4.000,\nhttps://cdn.example/live/cam-{n:05}.ts\n");
        }
        parse_published(text.as_bytes(), "https://cdn.example/live/", "cam").unwrap()
    }

    #[test]
    fn the_archive_gets_what_the_rolling_playlist_listed_since_its_last_version() {
        // archive up to 9; the rolling playlist lists 11 and 12; the spool
        // still holds 10 (kept until archived), 12, and the unlisted 13
        let published =
            parse_published(TEXT.as_bytes(), "https://cdn.example/live/", "cam").unwrap();
        let spool = Leftovers {
            complete: vec![leftover(10), leftover(12), leftover(13)],
            inits: vec![],
            incomplete: vec![],
        };
        let plan = plan_archive(
            Some(published),
            Some(Some(archived(1..=9))),
            spool,
            false,
            "https://cdn.example/live/",
            true,
        );
        let a = plan.archive.as_ref().unwrap();
        let numbers: Vec<u64> = a.backfill.iter().map(|e| e.sequence).collect();
        assert_eq!(numbers, vec![10, 11, 12]);
        assert_eq!(a.backfill[0].uri, "https://cdn.example/live/cam-00010.ts");
        // 11 comes from the rolling playlist, with its duration
        assert_eq!(a.backfill[1].duration, MediaDuration(360_360));
        assert!(
            a.backfill[2].discontinuity,
            "the rolling playlist's flag is kept"
        );
        assert_eq!(a.missing, 0);
        assert_eq!(
            a.spool,
            vec![
                PathBuf::from("/spool/cam-00010.ts"),
                PathBuf::from("/spool/cam-00012.ts")
            ]
        );
        assert!(plan.stale.is_empty(), "{:?}", plan.stale);
        assert_eq!(plan.leftovers.len(), 1);
        assert_eq!(plan.first_sequence, 14);
        assert_eq!(a.restored.as_ref().unwrap().last_number, Some(9));
    }

    #[test]
    fn an_archive_ahead_of_the_rolling_playlist_or_missing_pieces() {
        let published =
            parse_published(TEXT.as_bytes(), "https://cdn.example/live/", "cam").unwrap();
        // the archive version with 13 landed, the rolling one did not
        let spool = Leftovers {
            complete: vec![leftover(13)],
            inits: vec![],
            incomplete: vec![],
        };
        let plan = plan_archive(
            Some(published.clone()),
            Some(Some(archived(1..=13))),
            spool,
            false,
            "https://cdn.example/live/",
            true,
        );
        assert!(plan.leftovers.is_empty(), "13 is not listed twice");
        assert!(plan.archive.as_ref().unwrap().backfill.is_empty());
        assert_eq!(plan.stale, vec![PathBuf::from("/spool/cam-00013.ts")]);
        assert_eq!(plan.first_sequence, 14);
        // the archive stops at 5; 6-10 are gone from both the rolling
        // playlist and the spool
        let plan = plan_archive(
            Some(published.clone()),
            Some(Some(archived(1..=5))),
            Leftovers::default(),
            false,
            "https://cdn.example/live/",
            true,
        );
        let a = plan.archive.unwrap();
        assert_eq!(a.missing, 5);
        assert_eq!(a.backfill.len(), 2);
        assert!(a.backfill[0].discontinuity, "a gap is a discontinuity");
        // no archive yet: it starts from the rolling playlist
        let plan = plan_archive(
            Some(published),
            Some(None),
            Leftovers::default(),
            false,
            "https://cdn.example/live/",
            true,
        );
        let a = plan.archive.unwrap();
        assert_eq!(a.missing, 0);
        assert_eq!(a.backfill.len(), 2);
        assert!(a.restored.is_none());
    }
}
