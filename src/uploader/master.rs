//! The master playlist of a ladder: [`MasterState`] decides (pure) what it
//! says and when a version is due; [`publish_masters`] stores the versions.
//!
//! - A master names only what exists: it is first published once every
//!   rendition still in the ladder has its codecs known, a segment of this
//!   run measured and a version of its playlist stored (with --archive, the archive master once every
//!   rendition's archive has one).
//! - BANDWIDTH is the measured peak segment bit rate of the variant (plus
//!   that of the audio rendition with fMP4), never below an encoded rung's
//!   rate-control bound; when a later segment exceeds what was declared, a
//!   new version is published with a logged line. The peak counts every
//!   segment cut, which includes those not yet listed, so a master never
//!   declares less than what its variants list.
//! - A rendition left out of the ladder is dropped from the next version.

use std::sync::Arc;

use tokio::sync::mpsc::UnboundedReceiver;

use super::retry::Retrier;
use super::store::{Body, ObjectMeta, Store};
use super::{object_key, UploadError, PLAYLIST_CONTENT_TYPE};
use crate::journal;
use crate::master::{AudioRendition, Master, RateTracker, Variant};
use crate::media::{LadderEvent, Packaging, RenditionLayout};

/// The audio rendition group's id in an fMP4 ladder's master.
const AUDIO_GROUP: &str = "audio";

/// What a ladder's masters say, from the events of its renditions.
pub struct MasterState {
    layout: Vec<RenditionLayout>,
    packaging: Packaging,
    /// The media playlist's name in each rendition's folder.
    index_name: String,
    /// The archive's name, with --archive.
    archive_name: Option<String>,
    video: Vec<Option<String>>,
    audio: Vec<Option<String>>,
    codecs_known: Vec<bool>,
    /// A segment of this run was cut: its rate is measured.
    measured: Vec<bool>,
    rates: Vec<RateTracker>,
    /// BANDWIDTH an earlier run's master declared for the variant, whose
    /// segments the playlists still list: never declared lower.
    carried: Vec<u64>,
    published: Vec<bool>,
    archived: Vec<bool>,
    active: Vec<bool>,
    /// A version of the master (and of the archive master) was handed out.
    master_out: bool,
    archive_out: bool,
    /// Something the published master says changed.
    changed: bool,
}

/// A master version to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// The archive master (else the live one).
    pub archive: bool,
    pub text: String,
}

impl MasterState {
    pub fn new(
        layout: Vec<RenditionLayout>,
        packaging: Packaging,
        index_name: &str,
        archive_name: Option<&str>,
    ) -> Self {
        let n = layout.len();
        MasterState {
            rates: layout
                .iter()
                .map(|r| RateTracker::new(r.floor_bps))
                .collect(),
            layout,
            packaging,
            index_name: index_name.to_string(),
            archive_name: archive_name.map(str::to_string),
            video: vec![None; n],
            audio: vec![None; n],
            codecs_known: vec![false; n],
            measured: vec![false; n],
            carried: vec![0; n],
            published: vec![false; n],
            archived: vec![false; n],
            active: vec![true; n],
            master_out: false,
            archive_out: false,
            changed: false,
        }
    }

    /// A restart: the master an earlier run published declared BANDWIDTH
    /// at least the peak of the segments it measured, which the playlists
    /// continued now still list; each variant it names (by its playlist's
    /// URI) keeps at least that. This run measures only its own segments.
    pub fn carry_over(&mut self, previous: &crate::master::Master) {
        for v in &previous.variants {
            let named = |r: &usize| {
                let l = &self.layout[*r];
                !l.audio_only && v.uri == format!("{}/{}", l.folder, self.index_name)
            };
            if let Some(r) = (0..self.layout.len()).find(named) {
                self.carried[r] = self.carried[r].max(v.bandwidth);
            }
        }
    }

    /// Takes one event of the run.
    pub fn on(&mut self, event: LadderEvent) {
        match event {
            LadderEvent::Codecs {
                rendition,
                video,
                audio,
            } => {
                if let Some(known) = self.codecs_known.get_mut(rendition) {
                    *known = true;
                    self.video[rendition] = video;
                    self.audio[rendition] = audio;
                }
            }
            LadderEvent::Segment {
                rendition,
                bytes,
                duration,
                ..
            } => {
                if let Some(rate) = self.rates.get_mut(rendition) {
                    self.measured[rendition] = true;
                    rate.record(bytes, duration);
                    if (self.master_out || self.archive_out) && rate.raise_if_exceeded() {
                        log::info!(
                            "{}: a segment of {} bytes in {} s is above the BANDWIDTH \
                             declared; publishing the master again with {} bit/s",
                            self.layout[rendition].label,
                            bytes,
                            duration,
                            rate.declared()
                        );
                        self.changed = true;
                    }
                }
            }
            LadderEvent::Dropped { rendition, .. } => {
                if let Some(a) = self.active.get_mut(rendition) {
                    if *a {
                        *a = false;
                        self.changed = true;
                    }
                }
            }
            LadderEvent::Published { rendition, archive } => {
                let flags = if archive {
                    &mut self.archived
                } else {
                    &mut self.published
                };
                if let Some(f) = flags.get_mut(rendition) {
                    *f = true;
                }
            }
        }
    }

    /// Every active rendition has `flags` (a stored playlist, or archive),
    /// its codecs and a measured rate: after a restart, a restored archive
    /// is stored again before this run has cut anything.
    fn ready(&self, flags: &[bool]) -> bool {
        (0..self.layout.len())
            .all(|r| !self.active[r] || (flags[r] && self.codecs_known[r] && self.measured[r]))
            && self.active.iter().any(|&a| a)
    }

    /// The versions due now: the first once everything it names exists,
    /// then one after each change.
    pub fn due(&mut self) -> Vec<Due> {
        let mut out = Vec::new();
        let changed = std::mem::take(&mut self.changed);
        let first = !self.master_out && !self.archive_out;
        let live_due = self.ready(&self.published) && (!self.master_out || changed);
        let archive_due = self.archive_name.is_some()
            && self.ready(&self.archived)
            && (!self.archive_out || changed);
        if first && (live_due || archive_due) {
            // whichever master goes out first declares the rates both name
            for rate in &mut self.rates {
                rate.declare();
            }
        }
        if live_due {
            self.master_out = true;
            out.push(Due {
                archive: false,
                text: self.render(&self.index_name),
            });
        }
        if let Some(name) = self.archive_name.clone().filter(|_| archive_due) {
            self.archive_out = true;
            out.push(Due {
                archive: true,
                text: self.render(&name),
            });
        }
        if !self.master_out && changed {
            // nothing published yet: the first version has it all
            self.changed = false;
        }
        out
    }

    /// The master naming each active rendition's playlist `name`.
    pub fn render(&self, name: &str) -> String {
        let audio = (0..self.layout.len()).find(|&r| self.active[r] && self.layout[r].audio_only);
        let audio_codecs = audio.and_then(|a| self.audio[a].clone());
        let audio_rate = audio.map_or(0, |a| self.rates[a].declared());
        let audio_average = audio.and_then(|a| self.rates[a].average()).unwrap_or(0);
        let mut variants = Vec::new();
        for r in 0..self.layout.len() {
            let l = &self.layout[r];
            if !self.active[r] || l.audio_only {
                continue;
            }
            let codecs: Vec<String> = [self.video[r].clone(), self.audio[r].clone()]
                .into_iter()
                .flatten()
                .chain(audio_codecs.clone())
                .collect();
            variants.push(Variant {
                uri: format!("{}/{name}", l.folder),
                bandwidth: (self.rates[r].declared() + audio_rate).max(self.carried[r]),
                average_bandwidth: self.rates[r].average().map(|a| a + audio_average),
                codecs,
                resolution: l.resolution,
                frame_rate: l.frame_rate,
                audio_group: audio.map(|_| AUDIO_GROUP.to_string()),
                closed_captions: false,
            });
        }
        let audio = audio
            .map(|a| AudioRendition {
                group_id: AUDIO_GROUP.to_string(),
                name: "audio".to_string(),
                uri: format!("{}/{name}", self.layout[a].folder),
                default: true,
                language: None,
                channels: None,
            })
            .into_iter()
            .collect();
        Master {
            version: crate::master::version_for(self.packaging),
            independent_segments: true,
            audio,
            variants,
        }
        .render()
    }
}

/// Where the masters go.
pub struct MasterTarget {
    pub store: Arc<dyn Store>,
    pub retrier: Retrier,
    pub key_prefix: String,
    pub master_name: String,
    /// The archive master's name (the archive's own), with --archive.
    pub archive_name: Option<String>,
    pub cache_control: String,
}

/// What the masters' publisher did.
#[derive(Debug, Default, Clone, Copy)]
pub struct MasterSummary {
    pub versions: u64,
    pub archive_versions: u64,
}

/// Publishes the masters as `events` say, until every sender is gone (the
/// segmenter and every rendition's publisher have ended).
pub async fn publish_masters(
    mut state: MasterState,
    mut events: UnboundedReceiver<LadderEvent>,
    target: MasterTarget,
) -> Result<MasterSummary, UploadError> {
    let mut summary = MasterSummary::default();
    while let Some(event) = events.recv().await {
        state.on(event);
        // take what else has arrived: one version for a burst of events
        while let Ok(event) = events.try_recv() {
            state.on(event);
        }
        for due in state.due() {
            let (name, count) = match (due.archive, &target.archive_name) {
                (true, Some(a)) => (a.clone(), &mut summary.archive_versions),
                _ => (target.master_name.clone(), &mut summary.versions),
            };
            let key = object_key(&target.key_prefix, &name);
            let body = Body::Bytes(Arc::new(due.text.clone().into_bytes()));
            let meta = ObjectMeta {
                content_type: PLAYLIST_CONTENT_TYPE.to_string(),
                cache_control: target.cache_control.clone(),
            };
            let store = target.store.clone();
            target
                .retrier
                .run(&format!("PUT {key}"), || {
                    store.put(key.clone(), body.clone(), meta.clone())
                })
                .await
                .map_err(|source| UploadError::Store {
                    key: key.clone(),
                    destination: target.store.describe(),
                    source,
                })?;
            *count += 1;
            log::info!("published {key} version {count}");
            journal::published(&key, *count, due.text.as_bytes());
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::MediaDuration;

    fn layout() -> Vec<RenditionLayout> {
        ["source", "360p-600k"]
            .iter()
            .map(|f| RenditionLayout {
                folder: f.to_string(),
                label: f.to_string(),
                audio_only: false,
                resolution: Some((640, 360)),
                frame_rate: Some(30.0),
                floor_bps: 0,
            })
            .collect()
    }

    fn codecs(rendition: usize) -> LadderEvent {
        LadderEvent::Codecs {
            rendition,
            video: Some("avc1.64001e".into()),
            audio: Some("mp4a.40.2".into()),
        }
    }

    fn segment(rendition: usize, bytes: u64) -> LadderEvent {
        LadderEvent::Segment {
            rendition,
            sequence: 1,
            bytes,
            duration: MediaDuration::from_secs(2.0),
        }
    }

    #[test]
    fn a_restart_keeps_the_bandwidth_an_earlier_master_declared() {
        let mut s = MasterState::new(layout(), Packaging::Ts, "index.m3u8", None);
        let earlier = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n\
            #EXT-X-STREAM-INF:BANDWIDTH=9000000,CODECS=\"avc1.64001e,mp4a.40.2\"\n\
            source/index.m3u8\n\
            #EXT-X-STREAM-INF:BANDWIDTH=100,CODECS=\"avc1.64001e,mp4a.40.2\"\n\
            360p-600k/index.m3u8\n\
            #EXT-X-STREAM-INF:BANDWIDTH=7,CODECS=\"avc1.64001e\"\n\
            gone/index.m3u8\n";
        s.carry_over(&crate::master::parse(earlier).unwrap());
        for r in 0..2 {
            s.on(codecs(r));
            s.on(segment(r, 250_000));
            s.on(LadderEvent::Published {
                rendition: r,
                archive: false,
            });
        }
        let due = s.due();
        let master = crate::master::parse(&due[0].text).unwrap();
        let bw: Vec<u64> = master.variants.iter().map(|v| v.bandwidth).collect();
        // 250 kB in 2 s is 1 Mbit/s, 1.1 Mbit/s with headroom
        assert_eq!(bw, [9_000_000, 1_100_000], "{}", due[0].text);
    }

    #[test]
    fn a_master_waits_for_a_measured_segment_of_every_rendition() {
        let mut s = MasterState::new(layout(), Packaging::Ts, "index.m3u8", Some("archive.m3u8"));
        // a restart: the restored archives are stored again before anything is cut
        for r in 0..2 {
            s.on(LadderEvent::Published {
                rendition: r,
                archive: true,
            });
            s.on(codecs(r));
        }
        assert!(s.due().is_empty(), "no rate is measured yet");
        s.on(segment(0, 500_000));
        assert!(s.due().is_empty(), "one rendition is not measured yet");
        s.on(segment(1, 150_000));
        let due = s.due();
        assert_eq!(due.len(), 1);
        assert!(due[0].archive);
        let archive = crate::master::parse(&due[0].text).unwrap();
        assert!(
            archive.variants.iter().all(|v| v.bandwidth >= 600_000),
            "{archive:?}"
        );
        // the live master, when its playlists are stored, declares the same rates
        for r in 0..2 {
            s.on(LadderEvent::Published {
                rendition: r,
                archive: false,
            });
        }
        let due = s.due();
        assert_eq!(due.len(), 1);
        let live = crate::master::parse(&due[0].text).unwrap();
        let rates = |m: &Master| m.variants.iter().map(|v| v.bandwidth).collect::<Vec<_>>();
        assert_eq!(rates(&live), rates(&archive));
        assert!(live.variants[0].uri.ends_with("/index.m3u8"));
        // a segment above what was declared republishes both
        s.on(segment(1, 400_000));
        assert_eq!(s.due().len(), 2);
    }
}
