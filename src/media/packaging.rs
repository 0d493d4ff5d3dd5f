//! How segments are packaged, and the HTTP metadata that follows from it:
//! shared by the publisher (which stores objects with it) and `serve`
//! (which answers with it).

/// Content-Type of HLS playlists (RFC 8216 §4).
pub const PLAYLIST_CONTENT_TYPE: &str = "application/vnd.apple.mpegurl";

/// Cache-Control of segments and init segments: their names are never
/// reused for other bytes, so caches may keep them for a day.
pub const SEGMENT_CACHE_CONTROL: &str = "public, max-age=86400";

/// The segment format of a rendition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Packaging {
    /// MPEG-TS: the input's own transport stream packets.
    #[default]
    Ts,
    /// Fragmented MP4 (CMAF): an init segment and `.m4s` media segments.
    Fmp4,
}

impl Packaging {
    /// The media segment file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Packaging::Ts => "ts",
            Packaging::Fmp4 => "m4s",
        }
    }

    /// Content-Type of media segments; `audio_only` for a rendition without
    /// video.
    pub fn content_type(self, audio_only: bool) -> &'static str {
        match (self, audio_only) {
            (Packaging::Ts, _) => "video/mp2t",
            (Packaging::Fmp4, false) => "video/mp4",
            (Packaging::Fmp4, true) => "audio/mp4",
        }
    }

    /// The EXT-X-VERSION a media playlist of this packaging needs: 3 for
    /// decimal EXTINF, 6 for EXT-X-MAP in a live playlist (RFC 8216 §7).
    pub fn playlist_version(self) -> usize {
        match self {
            Packaging::Ts => 3,
            Packaging::Fmp4 => 6,
        }
    }
}

/// Content-Type of an object by the extension of its key, for `serve` and
/// for objects whose packaging is not known (what a player expects).
pub fn content_type_for(key: &str) -> &'static str {
    let ext = key.rsplit_once('.').map_or("", |(_, e)| e);
    match ext.to_ascii_lowercase().as_str() {
        "m3u8" => PLAYLIST_CONTENT_TYPE,
        "ts" => Packaging::Ts.content_type(false),
        "m4s" | "mp4" => Packaging::Fmp4.content_type(false),
        "m4a" => Packaging::Fmp4.content_type(true),
        "aac" => "audio/aac",
        "vtt" => "text/vtt; charset=utf-8",
        "html" => "text/html; charset=utf-8",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// True for keys of media objects that never change once written (segments
/// and init segments), which may be cached long.
pub fn is_immutable_media(key: &str) -> bool {
    let ext = key.rsplit_once('.').map_or("", |(_, e)| e);
    matches!(
        ext.to_ascii_lowercase().as_str(),
        "ts" | "m4s" | "mp4" | "m4a" | "aac"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_follow_the_packaging() {
        assert_eq!(Packaging::Ts.content_type(false), "video/mp2t");
        assert_eq!(Packaging::Fmp4.content_type(false), "video/mp4");
        assert_eq!(Packaging::Fmp4.content_type(true), "audio/mp4");
        assert_eq!(content_type_for("a/live-00001.m4s"), "video/mp4");
        assert_eq!(content_type_for("a/live-init-1.mp4"), "video/mp4");
        assert_eq!(content_type_for("a/index.M3U8"), PLAYLIST_CONTENT_TYPE);
        assert!(is_immutable_media("x.m4s") && !is_immutable_media("index.m3u8"));
        assert_eq!(Packaging::Fmp4.playlist_version(), 6);
    }
}
