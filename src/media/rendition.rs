//! Renditions: one input can be published as several (an ABR ladder); every
//! segment and init segment says which one it belongs to. The ladder is
//! asked for with `--ladder SPEC`, parsed here (pure).

use std::fmt;
use std::str::FromStr;

/// The master playlist's default name (`--master`).
pub const DEFAULT_MASTER: &str = "master.m3u8";

/// A rendition's index in the run's ladder; the input's own stream, the only
/// rendition without a ladder, is [`RenditionId::SOURCE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct RenditionId(pub u16);

impl RenditionId {
    /// The input's own stream, passed through or repackaged.
    pub const SOURCE: RenditionId = RenditionId(0);
}

impl fmt::Display for RenditionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rendition {}", self.0)
    }
}

/// One rung of a transcoded ladder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rung {
    /// The input's video, unchanged.
    Source,
    /// H.264 encoded in-process: `height` lines at `kbps` kbit/s.
    Encoded { height: u32, kbps: u32 },
}

impl Rung {
    /// The rung's folder below the key prefix (and in the spool directory):
    /// `source`, or `480p-1200k`.
    pub fn folder(&self) -> String {
        match self {
            Rung::Source => "source".to_string(),
            Rung::Encoded { height, kbps } => format!("{height}p-{kbps}k"),
        }
    }
}

impl fmt::Display for Rung {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rung::Source => f.write_str("source"),
            Rung::Encoded { height, kbps } => write!(f, "{height}p@{kbps}k"),
        }
    }
}

/// What `--ladder` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LadderSpec {
    /// Rungs made from the input's first video stream.
    Rungs(Vec<Rung>),
    /// Each video stream of the input is a rendition of its own.
    Streams,
}

/// Lowest and highest rung height and bit rate accepted.
const HEIGHTS: std::ops::RangeInclusive<u32> = 64..=4320;
const KBPS: std::ops::RangeInclusive<u32> = 50..=100_000;

impl FromStr for LadderSpec {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, String> {
        let spec = spec.trim();
        if spec == "streams" {
            return Ok(LadderSpec::Streams);
        }
        let mut rungs: Vec<Rung> = Vec::new();
        for part in spec.split(',') {
            let rung = parse_rung(part.trim())?;
            if rungs.contains(&rung) {
                return Err(format!("rung {rung} is given twice"));
            }
            rungs.push(rung);
        }
        Ok(LadderSpec::Rungs(rungs))
    }
}

fn parse_rung(part: &str) -> Result<Rung, String> {
    const FORM: &str = "expected `source`, `streams` or HEIGHTp@KBPS such as 480p@1200k";
    if part == "source" {
        return Ok(Rung::Source);
    }
    if part == "streams" {
        return Err("`streams` cannot be combined with other rungs".to_string());
    }
    let bad = || format!("rung {part:?}: {FORM}");
    let (height, rate) = part.split_once('@').ok_or_else(bad)?;
    let height: u32 = height
        .strip_suffix('p')
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(bad)?
        .parse()
        .map_err(|_| bad())?;
    let kbps: u32 = rate
        .strip_suffix('k')
        .filter(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(bad)?
        .parse()
        .map_err(|_| bad())?;
    if !HEIGHTS.contains(&height) || !height.is_multiple_of(2) {
        return Err(format!(
            "rung {part:?}: the height must be even, from {} to {}",
            HEIGHTS.start(),
            HEIGHTS.end()
        ));
    }
    if !KBPS.contains(&kbps) {
        return Err(format!(
            "rung {part:?}: the bit rate must be from {}k to {}k",
            KBPS.start(),
            KBPS.end()
        ));
    }
    Ok(Rung::Encoded { height, kbps })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ladder_of_rungs_parses_in_its_order() {
        let spec: LadderSpec = "source, 480p@1200k,360p@600k".parse().unwrap();
        assert_eq!(
            spec,
            LadderSpec::Rungs(vec![
                Rung::Source,
                Rung::Encoded {
                    height: 480,
                    kbps: 1200
                },
                Rung::Encoded {
                    height: 360,
                    kbps: 600
                },
            ])
        );
        assert_eq!("streams".parse::<LadderSpec>(), Ok(LadderSpec::Streams));
        let LadderSpec::Rungs(rungs) = spec else {
            unreachable!()
        };
        let folders: Vec<String> = rungs.iter().map(Rung::folder).collect();
        assert_eq!(folders, ["source", "480p-1200k", "360p-600k"]);
        assert_eq!(rungs[1].to_string(), "480p@1200k");
    }

    #[test]
    fn bad_ladders_name_what_is_wrong() {
        let err = |s: &str| s.parse::<LadderSpec>().unwrap_err();
        assert!(err("source,480p").contains("rung \"480p\": expected"));
        assert!(err("source,480@1200k").contains("expected"));
        assert!(err("source,480p@1.2M").contains("expected"));
        assert!(err("source,source").contains("rung source is given twice"));
        assert!(err("480p@600k,480p@600k").contains("480p@600k is given twice"));
        assert_eq!(
            "source".parse::<LadderSpec>(),
            Ok(LadderSpec::Rungs(vec![Rung::Source]))
        );
        assert!(err("source,streams").contains("cannot be combined"));
        assert!(err("source,481p@600k").contains("even"));
        assert!(err("source,480p@10k").contains("bit rate"));
        assert!(err("").contains("expected"));
    }

    #[test]
    fn one_height_at_two_bit_rates_is_two_rungs() {
        let spec: LadderSpec = "480p@600k,480p@1200k".parse().unwrap();
        assert!(matches!(spec, LadderSpec::Rungs(r) if r.len() == 2));
    }
}

/// One rendition of a ladder as the segmenter lays it out, for the
/// publisher: where it goes and what the master playlist says of it.
#[derive(Debug, Clone, PartialEq)]
pub struct RenditionLayout {
    /// Its folder below the key prefix and in the spool directory.
    pub folder: String,
    /// For people: `source`, `480p@1200k`, `stream 1`, `audio`.
    pub label: String,
    /// The audio rendition of an fMP4 ladder (EXT-X-MEDIA), not a variant.
    pub audio_only: bool,
    pub resolution: Option<(u32, u32)>,
    pub frame_rate: Option<f64>,
    /// The least BANDWIDTH to declare (bits/s): an encoded rung's rate
    /// control bound; 0 where only measurement tells.
    pub floor_bps: u64,
}

/// What the segmenter tells the master playlist's publisher as a ladder
/// runs (rendition: an index into the layout).
#[derive(Debug, Clone, PartialEq)]
pub enum LadderEvent {
    /// The RFC 6381 codecs of a rendition's video and of its audio, read
    /// from the streams.
    Codecs {
        rendition: usize,
        video: Option<String>,
        audio: Option<String>,
    },
    /// A segment of the rendition, cut (its bit rate counts in BANDWIDTH).
    Segment {
        rendition: usize,
        sequence: u64,
        bytes: u64,
        duration: super::MediaDuration,
    },
    /// The rendition was left out of the ladder (its keyframes do not line
    /// up with the cuts): the master no longer names it.
    Dropped { rendition: usize, why: String },
    /// The rendition's playlist (or, with `archive`, its archive) has a
    /// version stored: sent by its publisher.
    Published { rendition: usize, archive: bool },
}
