//! The HLS master playlist of an ABR ladder (RFC 8216 §4.3.4), pure: the
//! model and its text both ways, the bit-rate bookkeeping behind each
//! variant's BANDWIDTH ([`RateTracker`]) and the RFC 6381 CODECS strings
//! of TS variants ([`video_codecs`], [`adts_codecs`]). No I/O.
//!
//! Rendering is written here rather than through m3u8-rs: its writer gives
//! FRAME-RATE in as many decimals as the float has (RFC 8216 §4.3.4.2 asks
//! for three at most, rounded) and orders attributes its own way. Reading
//! goes through m3u8-rs, and anything the model cannot hold is refused, so
//! that rendering what [`parse`] returns loses nothing.

mod codecs;
mod rate;

pub use codecs::{adts_codecs, video_codecs, VideoFacts, VideoKind};
pub use rate::RateTracker;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use m3u8_rs::{AlternativeMediaType, ClosedCaptionGroupId, Playlist};

use crate::media::Packaging;

/// One variant stream: an EXT-X-STREAM-INF and the media playlist it names.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    /// Relative to the master, e.g. `480p/index.m3u8`.
    pub uri: String,
    /// Peak segment bit rate, bits/s ([`RateTracker::declared`]).
    pub bandwidth: u64,
    pub average_bandwidth: Option<u64>,
    /// RFC 6381 strings, e.g. `["avc1.64001f", "mp4a.40.2"]`: every codec
    /// of the variant, its separate audio rendition's included.
    pub codecs: Vec<String>,
    /// Width and height in pixels.
    pub resolution: Option<(u32, u32)>,
    /// Frames per second, written with 3 decimals.
    pub frame_rate: Option<f64>,
    /// The GROUP-ID of its audio renditions, when audio is separate.
    pub audio_group: Option<String>,
    /// `false` writes CLOSED-CAPTIONS=NONE: no CEA-608/708 captions, so
    /// that clients need not look for them in the video; `true` leaves the
    /// attribute out. RFC 8216 §4.3.4.2: NONE on one variant means NONE on
    /// all of them.
    pub closed_captions: bool,
}

/// One audio rendition (EXT-X-MEDIA TYPE=AUDIO) with its own playlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioRendition {
    pub group_id: String,
    pub name: String,
    /// Relative to the master.
    pub uri: String,
    pub default: bool,
    /// RFC 5646 tag, e.g. `en`.
    pub language: Option<String>,
    /// Audio channels (CHANNELS is written as a quoted count).
    pub channels: Option<u32>,
}

/// A master playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct Master {
    /// EXT-X-VERSION; [`version_for`] gives the one to use.
    pub version: u8,
    /// EXT-X-INDEPENDENT-SEGMENTS: every segment of every variant starts
    /// with a keyframe.
    pub independent_segments: bool,
    pub audio: Vec<AudioRendition>,
    /// In any order: [`Master::render`] sorts them.
    pub variants: Vec<Variant>,
}

/// The EXT-X-VERSION of the master of a ladder in this packaging: that of
/// its media playlists (3 for TS, 6 for fMP4, whose EXT-X-MAP needs it).
///
/// RFC 8216 §7 asks for nothing above 1 for the master's own tags
/// (EXT-X-MEDIA, AUDIO and INDEPENDENT-SEGMENTS are compatible with version
/// 1; a server MAY declare 4 for the first two). Declaring the media
/// playlists' version makes a client too old for them stop at the master
/// rather than after loading a variant.
pub fn version_for(packaging: Packaging) -> u8 {
    u8::try_from(packaging.playlist_version()).unwrap_or(u8::MAX)
}

/// Why a [`Master`] cannot be rendered as a valid playlist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidMaster {
    #[error("a master playlist needs at least one variant")]
    NoVariants,
    /// An attribute value or URI line that RFC 8216 §4.2 cannot carry:
    /// empty, or with a double quote or a line break (or, for a URI line,
    /// starting with `#`, which would read as a tag).
    #[error("{what} {value:?} cannot be written in a playlist")]
    BadText { what: &'static str, value: String },
    #[error("variant {uri}: BANDWIDTH 0 (nothing measured nor declared yet)")]
    ZeroBandwidth { uri: String },
    #[error("variant {uri}: RESOLUTION with a side of 0")]
    ZeroResolution { uri: String },
    #[error("variant {uri}: FRAME-RATE must be a positive number")]
    BadFrameRate { uri: String },
    #[error("variant {uri}: audio group {group:?} has no EXT-X-MEDIA")]
    UnknownAudioGroup { uri: String, group: String },
    /// RFC 8216 §4.3.4.1.1: NAME is unique within a group.
    #[error("audio group {group:?}: two renditions are named {name:?}")]
    DuplicateName { group: String, name: String },
    /// RFC 8216 §4.3.4.1.1: at most one member of a group is the default.
    #[error("audio group {group:?}: more than one rendition is DEFAULT=YES")]
    SeveralDefaults { group: String },
    /// RFC 8216 §4.3.4.2: CLOSED-CAPTIONS=NONE is on every variant or none.
    #[error("CLOSED-CAPTIONS=NONE on some variants only")]
    MixedClosedCaptions,
}

/// Why a text is not read as a [`Master`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("it does not read as an HLS playlist")]
    Syntax,
    #[error("it is a media playlist, not a master playlist")]
    NotMaster,
    #[error("malformed {0}")]
    Malformed(String),
    /// Something valid that the model does not hold (I-frame variants,
    /// subtitles, unknown tags...): reading on would lose it.
    #[error("{0} is not supported here")]
    Unsupported(String),
    #[error(transparent)]
    Invalid(#[from] InvalidMaster),
}

impl Master {
    /// Checks what [`Master::render`] assumes: that the text it writes is a
    /// valid master playlist.
    pub fn check(&self) -> Result<(), InvalidMaster> {
        if self.variants.is_empty() {
            return Err(InvalidMaster::NoVariants);
        }
        let mut names: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        let mut defaults: BTreeSet<&str> = BTreeSet::new();
        for a in &self.audio {
            quotable("GROUP-ID", &a.group_id)?;
            quotable("NAME", &a.name)?;
            quotable("URI", &a.uri)?;
            if let Some(language) = &a.language {
                quotable("LANGUAGE", language)?;
            }
            if !names.entry(&a.group_id).or_default().insert(&a.name) {
                return Err(InvalidMaster::DuplicateName {
                    group: a.group_id.clone(),
                    name: a.name.clone(),
                });
            }
            if a.default && !defaults.insert(&a.group_id) {
                return Err(InvalidMaster::SeveralDefaults {
                    group: a.group_id.clone(),
                });
            }
        }
        for v in &self.variants {
            check_variant(v, |group| names.contains_key(group))?;
        }
        let captions = self.variants.iter().filter(|v| v.closed_captions).count();
        if captions != 0 && captions != self.variants.len() {
            return Err(InvalidMaster::MixedClosedCaptions);
        }
        Ok(())
    }

    /// The playlist text (for a master that passes [`Master::check`]).
    ///
    /// Variants are listed by descending BANDWIDTH (ties keep their order).
    /// Clients choose among them by BANDWIDTH whatever the order, but the
    /// first one listed is where Apple's players start, and hls.js's
    /// `firstLevel` unless set: highest first starts at full quality on
    /// links that carry it, and a client steps down after the first segment
    /// when its link does not.
    pub fn render(&self) -> String {
        let mut out = String::from("#EXTM3U\n");
        // writing to a String cannot fail
        let _ = writeln!(out, "#EXT-X-VERSION:{}", self.version);
        if self.independent_segments {
            out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
        }
        for a in &self.audio {
            render_audio(&mut out, a);
        }
        let mut variants: Vec<&Variant> = self.variants.iter().collect();
        variants.sort_by_key(|v| std::cmp::Reverse(v.bandwidth));
        for v in variants {
            render_variant(&mut out, v);
        }
        out
    }
}

/// A quoted-string attribute value (RFC 8216 §4.2): not empty, no double
/// quote, no line break.
fn quotable(what: &'static str, value: &str) -> Result<(), InvalidMaster> {
    if value.is_empty() || value.contains(['"', '\r', '\n']) {
        return Err(InvalidMaster::BadText {
            what,
            value: value.to_string(),
        });
    }
    Ok(())
}

fn check_variant(v: &Variant, has_group: impl Fn(&str) -> bool) -> Result<(), InvalidMaster> {
    let uri = || v.uri.clone();
    if v.uri.is_empty() || v.uri.starts_with('#') || v.uri.contains(['\r', '\n']) {
        return Err(InvalidMaster::BadText {
            what: "variant URI",
            value: v.uri.clone(),
        });
    }
    if v.bandwidth == 0 {
        return Err(InvalidMaster::ZeroBandwidth { uri: uri() });
    }
    for codec in &v.codecs {
        quotable("codec", codec)?;
        if codec.contains(',') {
            return Err(InvalidMaster::BadText {
                what: "codec",
                value: codec.clone(),
            });
        }
    }
    if matches!(v.resolution, Some((0, _) | (_, 0))) {
        return Err(InvalidMaster::ZeroResolution { uri: uri() });
    }
    if v.frame_rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
        return Err(InvalidMaster::BadFrameRate { uri: uri() });
    }
    if let Some(group) = &v.audio_group {
        quotable("AUDIO", group)?;
        if !has_group(group) {
            return Err(InvalidMaster::UnknownAudioGroup {
                uri: uri(),
                group: group.clone(),
            });
        }
    }
    Ok(())
}

fn yes_no(flag: bool) -> &'static str {
    if flag {
        "YES"
    } else {
        "NO"
    }
}

/// EXT-X-MEDIA of one audio rendition. AUTOSELECT=YES always: a client may
/// pick any of them by its user's language.
fn render_audio(out: &mut String, a: &AudioRendition) {
    let _ = write!(
        out,
        "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"{}\",NAME=\"{}\"",
        a.group_id, a.name
    );
    if let Some(language) = &a.language {
        let _ = write!(out, ",LANGUAGE=\"{language}\"");
    }
    let _ = write!(out, ",DEFAULT={},AUTOSELECT=YES", yes_no(a.default));
    if let Some(channels) = a.channels {
        let _ = write!(out, ",CHANNELS=\"{channels}\"");
    }
    let _ = writeln!(out, ",URI=\"{}\"", a.uri);
}

fn render_variant(out: &mut String, v: &Variant) {
    let _ = write!(out, "#EXT-X-STREAM-INF:BANDWIDTH={}", v.bandwidth);
    if let Some(average) = v.average_bandwidth {
        let _ = write!(out, ",AVERAGE-BANDWIDTH={average}");
    }
    if !v.codecs.is_empty() {
        let _ = write!(out, ",CODECS=\"{}\"", v.codecs.join(","));
    }
    if let Some((w, h)) = v.resolution {
        let _ = write!(out, ",RESOLUTION={w}x{h}");
    }
    if let Some(rate) = v.frame_rate {
        let _ = write!(out, ",FRAME-RATE={rate:.3}");
    }
    if let Some(group) = &v.audio_group {
        let _ = write!(out, ",AUDIO=\"{group}\"");
    }
    if !v.closed_captions {
        // an enumerated string: unquoted
        out.push_str(",CLOSED-CAPTIONS=NONE");
    }
    let _ = writeln!(out, "\n{}", v.uri);
}

/// Reads a master playlist: one this module rendered, or one of the same
/// shape. What the model cannot hold is refused ([`ParseError::Unsupported`])
/// rather than dropped, and the result passes [`Master::check`].
pub fn parse(text: &str) -> Result<Master, ParseError> {
    let playlist = match m3u8_rs::parse_playlist_res(text.as_bytes()) {
        Ok(Playlist::MasterPlaylist(m)) => m,
        Ok(Playlist::MediaPlaylist(_)) => return Err(ParseError::NotMaster),
        Err(_) => return Err(ParseError::Syntax),
    };
    // a tag m3u8-rs does not know, or one whose attributes it could not
    // read (it keeps those as unknown tags)
    if let Some(unknown) = playlist.unknown_tags.first() {
        let tag = format!("#EXT-{}", unknown.tag);
        return Err(match KNOWN_TAGS.contains(&unknown.tag.as_str()) {
            true => ParseError::Malformed(format!("{tag} (its attributes)")),
            false => ParseError::Unsupported(format!("the tag {tag}")),
        });
    }
    if !playlist.session_data.is_empty() {
        return Err(unsupported("EXT-X-SESSION-DATA"));
    }
    if !playlist.session_key.is_empty() {
        return Err(unsupported("EXT-X-SESSION-KEY"));
    }
    if playlist.start.is_some() {
        return Err(unsupported("EXT-X-START"));
    }
    // no EXT-X-VERSION means version 1 (RFC 8216 §4.3.1.2)
    let version = u8::try_from(playlist.version.unwrap_or(1))
        .map_err(|_| ParseError::Malformed("EXT-X-VERSION".to_string()))?;
    let audio = playlist
        .alternatives
        .into_iter()
        .map(audio_from)
        .collect::<Result<_, _>>()?;
    let variants = playlist
        .variants
        .into_iter()
        .map(variant_from)
        .collect::<Result<_, _>>()?;
    let master = Master {
        version,
        independent_segments: playlist.independent_segments,
        audio,
        variants,
    };
    master.check()?;
    Ok(master)
}

/// Master playlist tags m3u8-rs reads (less `#EXT-`): one of them among its
/// unknown tags is one whose attributes it could not read.
const KNOWN_TAGS: [&str; 7] = [
    "X-VERSION",
    "X-STREAM-INF",
    "X-I-FRAME-STREAM-INF",
    "X-MEDIA",
    "X-SESSION-DATA",
    "X-SESSION-KEY",
    "X-START",
];

fn unsupported(what: &str) -> ParseError {
    ParseError::Unsupported(what.to_string())
}

fn extra_attributes<V>(
    tag: &str,
    attributes: Option<std::collections::HashMap<String, V>>,
) -> Result<(), ParseError> {
    match attributes {
        Some(attributes) if !attributes.is_empty() => {
            let mut names: Vec<String> = attributes.into_keys().collect();
            names.sort();
            Err(ParseError::Unsupported(format!(
                "{tag} attribute {}",
                names.join(", ")
            )))
        }
        _ => Ok(()),
    }
}

fn audio_from(m: m3u8_rs::AlternativeMedia) -> Result<AudioRendition, ParseError> {
    const TAG: &str = "EXT-X-MEDIA";
    if m.media_type != AlternativeMediaType::Audio {
        return Err(ParseError::Unsupported(format!(
            "{TAG} TYPE={}",
            m.media_type
        )));
    }
    if m.assoc_language.is_some() {
        return Err(unsupported("EXT-X-MEDIA ASSOC-LANGUAGE"));
    }
    if m.characteristics.is_some() {
        return Err(unsupported("EXT-X-MEDIA CHARACTERISTICS"));
    }
    if !m.autoselect {
        return Err(unsupported("EXT-X-MEDIA without AUTOSELECT=YES"));
    }
    extra_attributes(TAG, m.other_attributes)?;
    let uri = m
        .uri
        .ok_or_else(|| unsupported("an audio EXT-X-MEDIA without URI (audio in the variants)"))?;
    let channels = m
        .channels
        .map(|c| {
            c.parse::<u32>()
                .map_err(|_| ParseError::Unsupported(format!("EXT-X-MEDIA CHANNELS={c:?}")))
        })
        .transpose()?;
    Ok(AudioRendition {
        group_id: m.group_id,
        name: m.name,
        uri,
        default: m.default,
        language: m.language,
        channels,
    })
}

fn variant_from(v: m3u8_rs::VariantStream) -> Result<Variant, ParseError> {
    const TAG: &str = "EXT-X-STREAM-INF";
    if v.is_i_frame {
        return Err(unsupported("EXT-X-I-FRAME-STREAM-INF"));
    }
    if v.hdcp_level.is_some() {
        return Err(unsupported("EXT-X-STREAM-INF HDCP-LEVEL"));
    }
    if v.video.is_some() {
        return Err(unsupported("EXT-X-STREAM-INF VIDEO"));
    }
    if v.subtitles.is_some() {
        return Err(unsupported("EXT-X-STREAM-INF SUBTITLES"));
    }
    extra_attributes(TAG, v.other_attributes)?;
    if v.uri.is_empty() {
        return Err(ParseError::Malformed(format!(
            "{TAG} without a URI line after it"
        )));
    }
    let closed_captions = match v.closed_captions {
        None => true,
        Some(ClosedCaptionGroupId::None) => false,
        Some(_) => return Err(unsupported("EXT-X-STREAM-INF CLOSED-CAPTIONS group")),
    };
    let resolution = v
        .resolution
        .map(
            |r| match (u32::try_from(r.width), u32::try_from(r.height)) {
                (Ok(w), Ok(h)) => Ok((w, h)),
                _ => Err(ParseError::Malformed(format!("{TAG} RESOLUTION"))),
            },
        )
        .transpose()?;
    let codecs = v
        .codecs
        .map(|c| c.split(',').map(|s| s.trim().to_string()).collect())
        .unwrap_or_default();
    Ok(Variant {
        uri: v.uri,
        bandwidth: v.bandwidth,
        average_bandwidth: v.average_bandwidth,
        codecs,
        resolution,
        frame_rate: v.frame_rate,
        audio_group: v.audio,
        closed_captions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ladder() -> Master {
        Master {
            version: 6,
            independent_segments: true,
            audio: vec![AudioRendition {
                group_id: "aac".to_string(),
                name: "English".to_string(),
                uri: "audio/index.m3u8".to_string(),
                default: true,
                language: Some("en".to_string()),
                channels: Some(2),
            }],
            variants: vec![
                Variant {
                    uri: "480p/index.m3u8".to_string(),
                    bandwidth: 1_400_000,
                    average_bandwidth: Some(1_200_000),
                    codecs: vec!["avc1.64001f".to_string(), "mp4a.40.2".to_string()],
                    resolution: Some((854, 480)),
                    frame_rate: Some(29.97),
                    audio_group: Some("aac".to_string()),
                    closed_captions: false,
                },
                Variant {
                    uri: "1080p/index.m3u8".to_string(),
                    bandwidth: 6_600_000,
                    average_bandwidth: Some(5_000_000),
                    codecs: vec!["avc1.640028".to_string(), "mp4a.40.2".to_string()],
                    resolution: Some((1920, 1080)),
                    frame_rate: Some(30.0),
                    audio_group: Some("aac".to_string()),
                    closed_captions: false,
                },
            ],
        }
    }

    const LADDER: &str = "#EXTM3U\n\
        #EXT-X-VERSION:6\n\
        #EXT-X-INDEPENDENT-SEGMENTS\n\
        #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aac\",NAME=\"English\",LANGUAGE=\"en\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\",URI=\"audio/index.m3u8\"\n\
        #EXT-X-STREAM-INF:BANDWIDTH=6600000,AVERAGE-BANDWIDTH=5000000,CODECS=\"avc1.640028,mp4a.40.2\",RESOLUTION=1920x1080,FRAME-RATE=30.000,AUDIO=\"aac\",CLOSED-CAPTIONS=NONE\n\
        1080p/index.m3u8\n\
        #EXT-X-STREAM-INF:BANDWIDTH=1400000,AVERAGE-BANDWIDTH=1200000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=854x480,FRAME-RATE=29.970,AUDIO=\"aac\",CLOSED-CAPTIONS=NONE\n\
        480p/index.m3u8\n";

    #[test]
    fn renders_two_variants_and_one_audio_rendition_exactly() {
        let master = ladder();
        assert_eq!(master.check(), Ok(()));
        assert_eq!(master.render(), LADDER);
    }

    #[test]
    fn render_parse_round_trip() {
        let master = ladder();
        let back = parse(&master.render()).unwrap();
        // parse keeps the text's order: highest bandwidth first
        let mut sorted = master.clone();
        sorted.variants.reverse();
        assert_eq!(back, sorted);
        assert_eq!(back.render(), master.render());

        // the sparse form: TS, muxed audio, optional attributes absent
        let ts = Master {
            version: version_for(Packaging::Ts),
            independent_segments: false,
            audio: Vec::new(),
            variants: vec![Variant {
                uri: "source/index.m3u8".to_string(),
                bandwidth: 2_000_000,
                average_bandwidth: None,
                codecs: Vec::new(),
                resolution: None,
                frame_rate: None,
                audio_group: None,
                closed_captions: true,
            }],
        };
        let text = ts.render();
        assert_eq!(
            text,
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-STREAM-INF:BANDWIDTH=2000000\nsource/index.m3u8\n"
        );
        assert_eq!(parse(&text).unwrap(), ts);
    }

    #[test]
    fn versions_follow_the_media_playlists() {
        assert_eq!(version_for(Packaging::Ts), 3);
        assert_eq!(version_for(Packaging::Fmp4), 6);
        let no_version = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000\na.m3u8\n";
        assert_eq!(parse(no_version).unwrap().version, 1);
    }

    #[test]
    fn check_refuses_what_would_not_be_valid() {
        let mut m = ladder();
        m.variants[0].audio_group = Some("ac3".to_string());
        assert!(matches!(
            m.check(),
            Err(InvalidMaster::UnknownAudioGroup { group, .. }) if group == "ac3"
        ));
        let mut m = ladder();
        m.audio.push(m.audio[0].clone());
        assert!(matches!(
            m.check(),
            Err(InvalidMaster::DuplicateName { .. })
        ));
        m.audio[1].name = "Other".to_string();
        assert!(matches!(
            m.check(),
            Err(InvalidMaster::SeveralDefaults { .. })
        ));
        m.audio[1].default = false;
        assert_eq!(m.check(), Ok(()));
        let mut m = ladder();
        m.audio[0].name = "say \"hi\"".to_string();
        assert!(matches!(
            m.check(),
            Err(InvalidMaster::BadText { what: "NAME", .. })
        ));
        let mut m = ladder();
        m.variants[1].uri = "#x.m3u8".to_string();
        assert!(matches!(m.check(), Err(InvalidMaster::BadText { .. })));
        let mut m = ladder();
        m.variants[1].codecs.push("a,b".to_string());
        assert!(matches!(
            m.check(),
            Err(InvalidMaster::BadText { what: "codec", .. })
        ));
        let mut m = ladder();
        m.variants[0].bandwidth = 0;
        assert!(matches!(
            m.check(),
            Err(InvalidMaster::ZeroBandwidth { .. })
        ));
        let mut m = ladder();
        m.variants[0].frame_rate = Some(f64::NAN);
        assert!(matches!(m.check(), Err(InvalidMaster::BadFrameRate { .. })));
        let mut m = ladder();
        m.variants[0].resolution = Some((0, 480));
        assert!(matches!(
            m.check(),
            Err(InvalidMaster::ZeroResolution { .. })
        ));
        let mut m = ladder();
        m.variants[0].closed_captions = true;
        assert_eq!(m.check(), Err(InvalidMaster::MixedClosedCaptions));
        m.variants[1].closed_captions = true;
        assert_eq!(m.check(), Ok(()));
        let mut m = ladder();
        m.variants.clear();
        assert_eq!(m.check(), Err(InvalidMaster::NoVariants));
    }

    #[test]
    fn parse_refuses_what_the_model_cannot_hold() {
        let media = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.000,\na.ts\n";
        assert_eq!(parse(media), Err(ParseError::NotMaster));
        assert_eq!(parse("not a playlist"), Err(ParseError::Syntax));
        let head = "#EXTM3U\n#EXT-X-VERSION:6\n";
        let variant = "#EXT-X-STREAM-INF:BANDWIDTH=1000\na.m3u8\n";
        let cases = [
            "#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=100,URI=\"i.m3u8\"\n",
            "#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"s\",NAME=\"en\",URI=\"s.m3u8\"\n",
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"en\",DEFAULT=YES,URI=\"a.m3u8\"\n",
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"en\",AUTOSELECT=YES,CHANNELS=\"16/JOC\",URI=\"a.m3u8\"\n",
            "#EXT-X-STREAM-INF:BANDWIDTH=900,SUBTITLES=\"s\"\nb.m3u8\n",
            "#EXT-X-STREAM-INF:BANDWIDTH=900,SCORE=2.0\nb.m3u8\n",
            "#EXT-X-STREAM-INF:BANDWIDTH=900,CLOSED-CAPTIONS=\"cc\"\nb.m3u8\n",
            "#EXT-X-SESSION-DATA:DATA-ID=\"com.example\",VALUE=\"1\"\n",
            "#EXT-X-FOO:1\n",
        ];
        for case in cases {
            let text = format!("{head}{case}{variant}");
            assert!(
                matches!(parse(&text), Err(ParseError::Unsupported(_))),
                "{case}: {:?}",
                parse(&text)
            );
        }
        // a STREAM-INF without BANDWIDTH is kept by m3u8-rs as an unknown tag
        let text = format!("{head}#EXT-X-STREAM-INF:CODECS=\"avc1.64001f\"\nb.m3u8\n{variant}");
        assert_eq!(
            parse(&text),
            Err(ParseError::Malformed(
                "#EXT-X-STREAM-INF (its attributes)".to_string()
            ))
        );
        let text = format!("{head}#EXT-X-MEDIA:TYPE=AUDIO,NAME=\"x\",URI=\"a.m3u8\"\n{variant}");
        assert!(matches!(parse(&text), Err(ParseError::Malformed(_))));
        // what check refuses is refused
        let text = format!("{head}#EXT-X-STREAM-INF:BANDWIDTH=900,AUDIO=\"none\"\nb.m3u8\n");
        assert!(matches!(
            parse(&text),
            Err(ParseError::Invalid(InvalidMaster::UnknownAudioGroup { .. }))
        ));
    }

    #[test]
    fn parse_reads_codec_lists_with_spaces_and_other_masters_orders() {
        let text = "#EXTM3U\n\
            #EXT-X-STREAM-INF:BANDWIDTH=800000,CODECS=\"avc1.4d401e, mp4a.40.2\",RESOLUTION=640x360\n\
            low.m3u8\n\
            #EXT-X-STREAM-INF:BANDWIDTH=3000000,CODECS=\"avc1.64001f,mp4a.40.2\"\n\
            high.m3u8\n";
        let m = parse(text).unwrap();
        assert_eq!(m.variants[0].codecs, ["avc1.4d401e", "mp4a.40.2"]);
        assert_eq!(m.variants[0].resolution, Some((640, 360)));
        assert!(m.variants[0].closed_captions, "no CLOSED-CAPTIONS=NONE");
        let rendered = m.render();
        let high = rendered.find("high.m3u8").unwrap();
        let low = rendered.find("low.m3u8").unwrap();
        assert!(high < low, "rendered highest first");
    }
}
