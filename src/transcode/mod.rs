//! The encoded rungs of an ABR ladder, made in-process with libav: the
//! source video is decoded once, each rung's picture is scaled with
//! libswscale (bicubic, as ffmpeg's `scale` filter; from the source or, see
//! [`CASCADE_MIN_RATIO`], from a larger rung's picture) and encoded to
//! H.264 by libx264, each rung's encoder on a thread of its own
//! (`worker.rs`) while the caller's thread decodes and scales the next
//! picture.
//!
//! Every rung gets an IDR at exactly the source pictures the segmenter cuts
//! at ([`Transcoder::force_keyframe_at`]), so that all renditions' segments
//! start at the same time. Timestamps in and out are 90 kHz ticks on the
//! caller's unwrapped timeline: the decoder and the encoders all work in a
//! 1/90000 time base, so no timestamp is ever rescaled.

mod plan;
mod worker;

use std::collections::BTreeSet;
use std::fmt;
use std::sync::mpsc::{self, Receiver};

use ffmpeg_next as ffmpeg;
use ffmpeg_next::codec::{self, decoder, encoder};
use ffmpeg_next::format::Pixel;
use ffmpeg_next::software::scaling;
use ffmpeg_next::util::frame;
use ffmpeg_next::util::picture;
use ffmpeg_next::{ffi, Dictionary, Packet, Rational};
use worker::Worker;

pub use plan::{
    bit_rate, buffer_size, max_rate, scale_order, scaled_width, segment_peak_bps, ScaleFrom,
    BUFFER_PERCENT, CASCADE_MIN_RATIO, MAX_RATE_PERCENT,
};

use crate::timeline::TICKS_PER_SECOND;

/// libx264's preset when none is asked for: a good quality per CPU second
/// for live work on a small machine.
pub const DEFAULT_PRESET: &str = "veryfast";

/// The longest run of frames without an IDR libx264 may make on its own.
/// Long, so that IDRs come where they are forced (and at scene cuts); the
/// segmenter cuts far more often than this.
pub const GOP_FRAMES: u32 = 600;

/// What every rung is encoded from: 8-bit 4:2:0, what every HLS player
/// decodes.
const OUTPUT_FORMAT: Pixel = Pixel::YUV420P;

/// The 90 kHz time base of every packet and frame here.
const TIME_BASE: Rational = Rational(1, TICKS_PER_SECOND as i32);

/// One encoded rung of the ladder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RungSpec {
    /// Lines of picture (even; not above the source's).
    pub height: u32,
    /// Target bit rate in kbit/s.
    pub kbps: u32,
}

impl fmt::Display for RungSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}p@{}k", self.height, self.kbps)
    }
}

/// How the rungs are encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscodeSettings {
    /// libx264's preset, [`DEFAULT_PRESET`] unless asked otherwise.
    pub preset: String,
    /// The input's frame rate (numerator, denominator): libx264's rate
    /// control and lookahead work per frame.
    pub frame_rate: (i32, i32),
}

impl TranscodeSettings {
    /// The default preset at the input's `frame_rate`.
    pub fn new(frame_rate: (i32, i32)) -> Self {
        TranscodeSettings {
            preset: DEFAULT_PRESET.to_string(),
            frame_rate,
        }
    }
}

/// One encoded access unit of one rung.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// Index into the rungs given to [`Transcoder::new`].
    pub rung: usize,
    /// 90 kHz ticks on the timeline of the packets fed.
    pub pts: i64,
    pub dts: i64,
    /// An IDR (libx264 makes closed GOPs: its only keyframes are IDRs).
    pub key: bool,
    /// Annex B; an IDR carries its SPS and PPS in band before it.
    pub data: Vec<u8>,
}

/// What the transcoder skipped and made so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TranscodeStats {
    /// Source packets the decoder refused (damaged): skipped, not fatal.
    pub refused_packets: u64,
    /// Decoded pictures without a timestamp: dropped.
    pub untimed_frames: u64,
    /// Decoded pictures not after the one before (damaged timestamps):
    /// dropped, as libx264 needs increasing timestamps.
    pub out_of_order_frames: u64,
    /// Forced keyframe times no decoded picture had: nothing was forced.
    pub missed_keyframes: u64,
    /// Access units encoded, per rung (in the order given).
    pub frames_encoded: Vec<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum TranscodeError {
    #[error("no rungs to encode")]
    NoRungs,
    #[error("the stream to transcode is not video (libav says {0:?})")]
    NotVideo(ffmpeg::media::Type),
    #[error("libav has no decoder for the source video codec {0}")]
    NoDecoder(String),
    #[error("cannot open the {codec} decoder: {reason}")]
    OpenDecoder { codec: String, reason: String },
    #[error("the source video's picture size is unknown")]
    UnknownSize,
    #[error("rung {rung}: the height must be even and above 0")]
    BadHeight { rung: RungSpec },
    #[error("rung {rung}: the bit rate must be above 0")]
    ZeroRate { rung: RungSpec },
    #[error("rung {rung} is taller than the source ({source_height} lines); upscaling is refused")]
    Upscale { rung: RungSpec, source_height: u32 },
    #[error("the input's frame rate {0}/{1} is not a rate")]
    FrameRate(i32, i32),
    #[error("libx264 is not available in this libav")]
    NoX264,
    #[error("cannot open libx264 (preset {preset}) for rung {rung}: {reason}")]
    OpenEncoder {
        rung: RungSpec,
        preset: String,
        reason: String,
    },
    #[error("cannot scale a {from} picture for rung {rung}: {reason}")]
    Scale {
        rung: RungSpec,
        from: String,
        reason: String,
    },
    #[error("libx264 failed on rung {rung}: {reason}")]
    Encode { rung: RungSpec, reason: String },
    #[error("the transcoder has finished; it takes no more input")]
    Finished,
}

/// One rung's scaler, picture and encoder (on its own thread).
struct Rung {
    spec: RungSpec,
    width: u32,
    height: u32,
    /// Built for the picture it scales from; rebuilt if that changes
    /// (a source whose size or format changes mid-stream).
    scaler: Option<scaling::Context>,
    /// The next picture to hand to the encoder: written by the scaler and
    /// read by the rungs scaled from this one first.
    picture: frame::Video,
    worker: Worker,
    /// Access units received from the worker.
    encoded: u64,
    /// Left out by [`Transcoder::stop`]: neither scaled nor encoded.
    stopped: bool,
}

/// Decodes one source video stream and encodes it as every rung.
pub struct Transcoder {
    decoder: decoder::Video,
    /// Reused for every decoded picture (libav unreferences it first).
    decoded: frame::Video,
    rungs: Vec<Rung>,
    /// Every rung's packets, from the workers, each rung's in decode order.
    out: Receiver<Encoded>,
    /// [`scale_order`] of the rungs.
    order: Vec<(usize, ScaleFrom)>,
    /// Source pts still to be made IDRs.
    forced: BTreeSet<i64>,
    /// After [`Transcoder::new_timeline`]: forced times of the new
    /// timeline, kept apart until its first picture.
    pending: Option<BTreeSet<i64>>,
    /// The pts of the last picture encoded, on the encoders' timeline.
    last_pts: Option<i64>,
    /// The encoders' timeline against the input's.
    epochs: Epochs,
    /// One picture's duration in ticks: the gap the encoders' timeline
    /// leaves at a timestamp reset.
    frame_ticks: i64,
    stats: TranscodeStats,
    finished: bool,
}

// SAFETY: every libav object here (the decoder context, frames, the swscale
// contexts; the encoders live on their workers' threads) is owned by the
// Transcoder alone and only used through `&mut self`; none has thread
// affinity. ffmpeg-next marks all but `scaling::Context` Send already; an
// SwsContext, like the others, may be used from any thread as long as it is
// not used from two at once.
unsafe impl Send for Transcoder {}

impl Transcoder {
    /// `params`: the source video stream's codec parameters (from the
    /// demuxer); H.264, HEVC or MPEG-2 (any video libav decodes).
    ///
    /// Fails if the decoder or libx264 cannot be opened, or a rung is
    /// taller than the source (upscaling only costs bits).
    pub fn new(
        params: codec::Parameters,
        rungs: &[RungSpec],
        settings: &TranscodeSettings,
    ) -> Result<Transcoder, TranscodeError> {
        if rungs.is_empty() {
            return Err(TranscodeError::NoRungs);
        }
        let (num, den) = settings.frame_rate;
        if num <= 0 || den <= 0 {
            return Err(TranscodeError::FrameRate(num, den));
        }
        let decoder = open_decoder(params)?;
        let (src_w, src_h) = (decoder.width(), decoder.height());
        if src_w == 0 || src_h == 0 {
            return Err(TranscodeError::UnknownSize);
        }
        let sar = decoder.aspect_ratio();
        let sar = (
            u32::try_from(sar.numerator()).unwrap_or(0),
            u32::try_from(sar.denominator()).unwrap_or(0),
        );
        for &spec in rungs {
            check_rung(spec, src_h)?;
        }
        let (to_transcoder, out) = mpsc::channel();
        let mut built = Vec::with_capacity(rungs.len());
        for (index, &spec) in rungs.iter().enumerate() {
            let width = scaled_width(src_w, src_h, sar, spec.height);
            let encoder = open_encoder(spec, (width, spec.height), settings, &decoder)?;
            built.push(Rung {
                spec,
                width,
                height: spec.height,
                scaler: None,
                picture: frame::Video::empty(),
                worker: Worker::start(index, spec, encoder, to_transcoder.clone())?,
                encoded: 0,
                stopped: false,
            });
        }
        let sizes: Vec<(u32, u32)> = built.iter().map(|r| (r.width, r.height)).collect();
        let order = scale_order(&sizes);
        for &(i, from) in &order {
            log::debug!(
                "rung {} ({}x{}) is scaled from {}",
                built[i].spec,
                built[i].width,
                built[i].height,
                match from {
                    ScaleFrom::Source => format!("the source ({src_w}x{src_h})"),
                    ScaleFrom::Rung(j) => format!("rung {}", built[j].spec),
                }
            );
        }
        Ok(Transcoder {
            decoder,
            decoded: frame::Video::empty(),
            out,
            stats: TranscodeStats {
                frames_encoded: vec![0; built.len()],
                ..TranscodeStats::default()
            },
            rungs: built,
            order,
            forced: BTreeSet::new(),
            pending: None,
            last_pts: None,
            epochs: Epochs::default(),
            frame_ticks: (90_000 * i64::from(den) / i64::from(num)).max(1),
            finished: false,
        })
    }

    /// Every rung gets an IDR at the source picture whose pts is `pts`
    /// (called when the cut is decided, before that packet is fed).
    pub fn force_keyframe_at(&mut self, pts: i64) {
        self.pending
            .as_mut()
            .unwrap_or(&mut self.forced)
            .insert(pts);
    }

    /// The input's timestamps reset (a discontinuity cut, told before its
    /// keyframe is fed and before it is forced): pictures of the new
    /// timeline go on being encoded after the old one's (libx264 needs its
    /// timestamps to increase), and come out in the new timeline's time.
    pub fn new_timeline(&mut self) {
        self.pending = Some(BTreeSet::new());
    }

    /// One source video packet (demuxed, Annex B), timestamps in unwrapped
    /// 90 kHz ticks. A packet the decoder refuses is skipped and counted;
    /// errors are the scaler's and the encoders'.
    pub fn send(
        &mut self,
        pts: Option<i64>,
        dts: Option<i64>,
        data: &[u8],
    ) -> Result<(), TranscodeError> {
        if self.finished {
            return Err(TranscodeError::Finished);
        }
        // an empty packet would tell the decoder the input has ended
        if data.is_empty() {
            return Ok(());
        }
        // a copy: libav wants padding after a packet's bytes; dropped here
        let mut packet = Packet::copy(data);
        packet.set_pts(pts);
        packet.set_dts(dts);
        let sent = match self.decoder.send_packet(&packet) {
            Err(ffmpeg::Error::Other { errno }) if errno == libc::EAGAIN => {
                // not expected (frames are drained after every packet):
                // drain, then the decoder takes it
                self.drain_decoder()?;
                self.decoder.send_packet(&packet)
            }
            other => other,
        };
        if let Err(e) = sent {
            self.stats.refused_packets += 1;
            log::debug!("transcode: the decoder refused a packet (pts {pts:?}): {e}");
        }
        self.drain_decoder()
    }

    /// Encoded packets ready since the last call (each rung's in decode
    /// order), timed on the input's timeline. The encoders run beside the
    /// caller: a picture fed comes out in a later call, or from
    /// [`Transcoder::finish`].
    pub fn receive(&mut self) -> Vec<Encoded> {
        let rungs = &mut self.rungs;
        let mut ready: Vec<Encoded> = self
            .out
            .try_iter()
            .filter(|e| rungs.get(e.rung).is_some_and(|r| !r.stopped))
            .collect();
        for e in &mut ready {
            (e.pts, e.dts) = self.epochs.to_input(e.pts, e.dts);
            rungs[e.rung].encoded += 1;
        }
        ready
    }

    /// Leaves rung `index` out from now on, and every rung scaled from its
    /// picture: they get no more pictures, what their encoders still make
    /// is dropped, and their failures are not told again (by
    /// [`Transcoder::finish`] either). Returns the rungs stopped by this
    /// call.
    pub fn stop(&mut self, index: usize) -> Vec<usize> {
        let mut stopped = Vec::new();
        let mut next = vec![index];
        while let Some(i) = next.pop() {
            match self.rungs.get_mut(i) {
                Some(rung) if !rung.stopped => rung.stopped = true,
                _ => continue,
            }
            stopped.push(i);
            next.extend(
                self.order
                    .iter()
                    .filter(|&&(_, from)| from == ScaleFrom::Rung(i))
                    .map(|&(k, _)| k),
            );
        }
        stopped.sort_unstable();
        stopped
    }

    /// The rung whose scaler or encoder an error is from, if it is one's.
    pub fn rung_of(&self, e: &TranscodeError) -> Option<usize> {
        match e {
            TranscodeError::Encode { rung, .. } | TranscodeError::Scale { rung, .. } => {
                self.rungs.iter().position(|r| r.spec == *rung)
            }
            _ => None,
        }
    }

    /// End of input: drains the decoder, then the encoders. What is ready
    /// (including what [`Transcoder::receive`] has not taken) is returned;
    /// further input is refused.
    pub fn finish(&mut self) -> Result<Vec<Encoded>, TranscodeError> {
        if !self.finished {
            self.finished = true;
            if let Err(e) = self.decoder.send_eof() {
                log::debug!("transcode: the decoder refused the end of input: {e}");
            }
            self.drain_decoder()?;
            // every worker drains at once; each is waited for
            let mut first_error = None;
            for rung in &mut self.rungs {
                match rung.worker.finish() {
                    Err(e) if !rung.stopped => {
                        first_error.get_or_insert(e);
                    }
                    _ => {}
                }
            }
            if let Some(e) = first_error {
                return Err(e);
            }
        }
        Ok(self.receive())
    }

    /// (width, height) of each rung's pictures, in the order given.
    pub fn sizes(&self) -> Vec<(u32, u32)> {
        self.rungs.iter().map(|r| (r.width, r.height)).collect()
    }

    /// What was skipped and made so far.
    pub fn stats(&self) -> TranscodeStats {
        let mut stats = self.stats.clone();
        stats.frames_encoded = self.rungs.iter().map(|r| r.encoded).collect();
        stats
    }

    /// Encodes every picture the decoder has ready.
    fn drain_decoder(&mut self) -> Result<(), TranscodeError> {
        loop {
            match self.decoder.receive_frame(&mut self.decoded) {
                Ok(()) => self.encode_decoded()?,
                Err(ffmpeg::Error::Eof) => return Ok(()),
                Err(ffmpeg::Error::Other { errno }) if errno == libc::EAGAIN => return Ok(()),
                Err(e) => {
                    // a damaged picture: the packets that made it are lost
                    self.stats.refused_packets += 1;
                    log::debug!("transcode: the decoder failed on a picture: {e}");
                    return Ok(());
                }
            }
        }
    }

    /// Scales the decoded picture for every rung and encodes it.
    fn encode_decoded(&mut self) -> Result<(), TranscodeError> {
        let Some(pts) = self.decoded.timestamp().or_else(|| self.decoded.pts()) else {
            self.stats.untimed_frames += 1;
            log::debug!("transcode: a decoded picture has no timestamp; dropped");
            return Ok(());
        };
        let mut at = pts + self.epochs.offset();
        let behind = self.last_pts.is_some_and(|last| at <= last);
        if let Some(forced) = self.pending.take_if(|f| behind || f.first() == Some(&pts)) {
            // the new timeline's first picture
            if let Some(last) = self.last_pts.filter(|_| behind) {
                at = last + self.frame_ticks;
                self.epochs.begin(at, at - pts);
            }
            self.forced = forced;
        } else if behind {
            self.stats.out_of_order_frames += 1;
            log::debug!(
                "transcode: a decoded picture at {pts} is not after the last ({:?}); dropped",
                self.last_pts
            );
            return Ok(());
        }
        self.last_pts = Some(at);
        let (idr, missed) = take_forced(&mut self.forced, pts);
        if missed > 0 {
            self.stats.missed_keyframes += missed;
            log::debug!("transcode: {missed} forced keyframe(s) before {pts} matched no picture");
        }
        let kind = if idr {
            picture::Type::I
        } else {
            picture::Type::None
        };
        let Transcoder {
            decoded,
            rungs,
            order,
            ..
        } = self;
        // every rung is scaled first (a rung may be scaled from another's
        // picture), then each picture goes to its encoder
        for &(i, from) in order.iter() {
            // (a rung scaled from a stopped one's picture is stopped too)
            if rungs[i].stopped {
                continue;
            }
            let (input, rung) = match from {
                ScaleFrom::Source => (&*decoded, &mut rungs[i]),
                ScaleFrom::Rung(j) => {
                    let (a, b) = pair(rungs, j, i);
                    (&a.picture, b)
                }
            };
            scale(rung, input, from)?;
            rung.picture.set_pts(Some(at));
            rung.picture.set_kind(kind);
        }
        // a rung whose encoder failed does not hold the others back
        let mut first_error = None;
        for rung in rungs.iter_mut().filter(|r| !r.stopped) {
            let next = rung.worker.picture();
            let picture = std::mem::replace(&mut rung.picture, next);
            if let Err(e) = rung.worker.encode(picture) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// The encoders' timeline against the input's: an offset for each stretch
/// between two timestamp resets, from the encoders' pts where it begins.
#[derive(Debug, Default)]
struct Epochs {
    /// (first pts on the encoders' timeline, offset added to the input's)
    starts: Vec<(i64, i64)>,
}

impl Epochs {
    /// The offset of the current stretch.
    fn offset(&self) -> i64 {
        self.starts.last().map_or(0, |&(_, o)| o)
    }

    /// A stretch begins at `from` on the encoders' timeline, its
    /// pictures' input pts moved by `offset`.
    fn begin(&mut self, from: i64, offset: i64) {
        self.starts.push((from, offset));
    }

    /// An encoded packet's (pts, dts) on the input's timeline: the
    /// stretch is the pts's (a dts runs a few pictures behind it).
    fn to_input(&self, pts: i64, dts: i64) -> (i64, i64) {
        let offset = self
            .starts
            .iter()
            .rev()
            .find(|&&(from, _)| from <= pts)
            .map_or(0, |&(_, o)| o);
        (pts - offset, dts - offset)
    }
}

/// Opens the decoder for the source stream, packets in 90 kHz ticks.
fn open_decoder(params: codec::Parameters) -> Result<decoder::Video, TranscodeError> {
    let medium = params.medium();
    if medium != ffmpeg::media::Type::Video {
        return Err(TranscodeError::NotVideo(medium));
    }
    let id = params.id();
    let name = id.name().to_string();
    let open_err = |e: ffmpeg::Error| match e {
        ffmpeg::Error::DecoderNotFound => TranscodeError::NoDecoder(name.clone()),
        e => TranscodeError::OpenDecoder {
            codec: name.clone(),
            reason: e.to_string(),
        },
    };
    let context = codec::Context::from_parameters(params).map_err(open_err)?;
    let mut decoder = context.decoder();
    decoder.set_packet_time_base(TIME_BASE);
    decoder.video().map_err(open_err)
}

/// A rung libx264 can encode from a source of `source_height` lines.
fn check_rung(spec: RungSpec, source_height: u32) -> Result<(), TranscodeError> {
    if spec.height == 0 || !spec.height.is_multiple_of(2) {
        return Err(TranscodeError::BadHeight { rung: spec });
    }
    if spec.kbps == 0 {
        return Err(TranscodeError::ZeroRate { rung: spec });
    }
    if spec.height > source_height {
        return Err(TranscodeError::Upscale {
            rung: spec,
            source_height,
        });
    }
    Ok(())
}

/// Opens libx264 for one rung: capped VBR ([`max_rate`], [`buffer_size`]),
/// IDRs where pictures of type I are given (`forced-idr`), Annex B with
/// SPS/PPS before every IDR (no global header), the source's colour
/// description.
fn open_encoder(
    spec: RungSpec,
    (width, height): (u32, u32),
    settings: &TranscodeSettings,
    source: &decoder::Video,
) -> Result<encoder::video::Encoder, TranscodeError> {
    let x264 = encoder::find_by_name("libx264").ok_or(TranscodeError::NoX264)?;
    let open_err = |e: ffmpeg::Error| TranscodeError::OpenEncoder {
        rung: spec,
        preset: settings.preset.clone(),
        reason: e.to_string(),
    };
    let mut enc = codec::Context::new_with_codec(x264)
        .encoder()
        .video()
        .map_err(open_err)?;
    enc.set_width(width);
    enc.set_height(height);
    enc.set_format(OUTPUT_FORMAT);
    enc.set_time_base(TIME_BASE);
    let (num, den) = settings.frame_rate;
    enc.set_frame_rate(Some(Rational(num, den)));
    enc.set_gop(GOP_FRAMES);
    enc.set_bit_rate(usize::try_from(bit_rate(spec.kbps)).unwrap_or(usize::MAX));
    enc.set_max_bit_rate(usize::try_from(max_rate(spec.kbps)).unwrap_or(usize::MAX));
    // square pixels: the width keeps the display aspect
    enc.set_aspect_ratio(Rational(1, 1));
    enc.set_colorspace(source.color_space());
    enc.set_color_primaries(source.color_primaries());
    enc.set_color_transfer_characteristic(source.color_transfer_characteristic());
    enc.set_color_range(ffmpeg::color::Range::MPEG);
    let buffer = libc::c_int::try_from(buffer_size(spec.kbps)).unwrap_or(libc::c_int::MAX);
    // SAFETY: ffmpeg-next has no setter for rc_buffer_size; the context is
    // allocated, not yet opened, and owned here.
    unsafe {
        (*enc.as_mut_ptr()).rc_buffer_size = buffer;
    }
    let mut options = Dictionary::new();
    options.set("preset", &settings.preset);
    options.set("forced-idr", "1");
    // one thread: the rungs run beside each other instead (see worker.rs)
    options.set("threads", "1");
    enc.open_as_with(x264, options).map_err(open_err)
}

/// Splits `forced` at `pts`: whether `pts` itself was forced, and how many
/// earlier forced times no picture had (pictures come in presentation
/// order, so none will). Those are all removed.
fn take_forced(forced: &mut BTreeSet<i64>, pts: i64) -> (bool, u64) {
    let later = match pts.checked_add(1) {
        Some(next) => forced.split_off(&next),
        None => BTreeSet::new(),
    };
    let upto = std::mem::replace(forced, later);
    let idr = upto.contains(&pts);
    (idr, upto.len() as u64 - u64::from(idr))
}

/// `(&v[a], &mut v[b])` for `a != b`.
fn pair<T>(v: &mut [T], a: usize, b: usize) -> (&T, &mut T) {
    if a < b {
        let (low, high) = v.split_at_mut(b);
        (&low[a], &mut high[0])
    } else {
        let (low, high) = v.split_at_mut(a);
        (&high[0], &mut low[b])
    }
}

/// Scales `input` into the rung's picture, (re)building its scaler for
/// `input`'s format and size.
fn scale(rung: &mut Rung, input: &frame::Video, from: ScaleFrom) -> Result<(), TranscodeError> {
    let scale_err = |e: String| TranscodeError::Scale {
        rung: rung.spec,
        from: format!("{}x{} {:?}", input.width(), input.height(), input.format()),
        reason: e,
    };
    let fits = rung.scaler.as_ref().is_some_and(|s| {
        let d = s.input();
        (d.format, d.width, d.height) == (input.format(), input.width(), input.height())
    });
    if !fits {
        if rung.scaler.is_some() && from == ScaleFrom::Source {
            log::info!(
                "transcode: the source picture is now {}x{} {:?}; rung {} is rescaled",
                input.width(),
                input.height(),
                input.format(),
                rung.spec
            );
        }
        let scaler = scaling::Context::get(
            input.format(),
            input.width(),
            input.height(),
            OUTPUT_FORMAT,
            rung.width,
            rung.height,
            scaling::Flags::BICUBIC,
        )
        .map_err(|e| scale_err(e.to_string()))?;
        rung.scaler = Some(scaler);
    }
    make_writable(&mut rung.picture).map_err(|e| scale_err(e.to_string()))?;
    match rung.scaler.as_mut() {
        Some(scaler) => scaler
            .run(input, &mut rung.picture)
            .map_err(|e| scale_err(e.to_string())),
        None => Err(scale_err("no scaler".to_string())),
    }
}

/// Makes sure writing the picture changes no buffer libav still holds (an
/// encoder that kept a reference to the last frame sent): a no-op when the
/// picture is the only holder, a fresh buffer otherwise.
fn make_writable(picture: &mut frame::Video) -> Result<(), ffmpeg::Error> {
    // SAFETY: ffmpeg-next has no wrapper for av_frame_make_writable; the
    // frame is owned here and valid; one not allocated yet (no buffer, which
    // the call would refuse) is left for the scaler to allocate.
    let r = unsafe {
        if picture.is_empty() {
            return Ok(());
        }
        ffi::av_frame_make_writable(picture.as_mut_ptr())
    };
    if r < 0 {
        return Err(ffmpeg::Error::from(r));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_encoders_timeline_maps_back_to_the_inputs() {
        let mut e = Epochs::default();
        assert_eq!(e.to_input(500, 400), (500, 400));
        // the input resets from 9000 to 100; the encoders go on at 12000
        e.begin(12_000, 11_900);
        assert_eq!(e.offset(), 11_900);
        assert_eq!(e.to_input(9_000, 8_000), (9_000, 8_000), "before the reset");
        assert_eq!(e.to_input(12_000, 9_000), (100, -2_900), "dts runs behind");
        assert_eq!(e.to_input(15_000, 12_000), (3_100, 100));
    }

    #[test]
    fn a_forced_time_is_taken_once() {
        let mut forced: BTreeSet<i64> = [3000, 9000].into_iter().collect();
        assert_eq!(take_forced(&mut forced, 0), (false, 0));
        assert_eq!(take_forced(&mut forced, 3000), (true, 0));
        assert_eq!(take_forced(&mut forced, 3000), (false, 0));
        assert_eq!(forced.len(), 1);
    }

    #[test]
    fn forced_times_passed_over_are_dropped_and_counted() {
        let mut forced: BTreeSet<i64> = [100, 200, 300, 400].into_iter().collect();
        // 100 and 200 had no picture
        assert_eq!(take_forced(&mut forced, 300), (true, 2));
        assert_eq!(forced.into_iter().collect::<Vec<_>>(), vec![400]);
        let mut forced: BTreeSet<i64> = [100, i64::MAX].into_iter().collect();
        assert_eq!(take_forced(&mut forced, i64::MAX), (true, 1));
        assert!(forced.is_empty());
    }

    #[test]
    fn pair_borrows_two_elements_either_way() {
        let mut v = vec![1, 2, 3];
        let (a, b) = pair(&mut v, 0, 2);
        *b += *a;
        let (a, b) = pair(&mut v, 2, 1);
        *b += *a;
        assert_eq!(v, vec![1, 6, 4]);
    }

    #[test]
    fn bad_rungs_are_named() {
        let up = check_rung(
            RungSpec {
                height: 1080,
                kbps: 5000,
            },
            720,
        )
        .unwrap_err()
        .to_string();
        assert!(up.contains("1080p@5000k") && up.contains("720"), "{up}");
        assert!(matches!(
            check_rung(
                RungSpec {
                    height: 361,
                    kbps: 600
                },
                720
            ),
            Err(TranscodeError::BadHeight { .. })
        ));
        assert!(matches!(
            check_rung(
                RungSpec {
                    height: 360,
                    kbps: 0
                },
                720
            ),
            Err(TranscodeError::ZeroRate { .. })
        ));
        assert!(check_rung(
            RungSpec {
                height: 720,
                kbps: 600
            },
            720
        )
        .is_ok());
    }

    #[test]
    fn settings_default_to_veryfast() {
        let s = TranscodeSettings::new((30000, 1001));
        assert_eq!(s.preset, "veryfast");
        assert_eq!(s.frame_rate, (30000, 1001));
    }
}
