//! A small MPEG-TS muxer (ISO/IEC 13818-1) for the renditions of an ABR
//! ladder: one program with at most one video stream and any number of
//! audio streams, each sample one PES packet.
//!
//! The input's own transport stream cannot be reused for a rendition whose
//! video was encoded here, or whose video is one stream of several, so each
//! segment is written from elementary-stream samples. The layout follows
//! what HLS players expect of ffmpeg's output: PAT and PMT at the start of
//! every segment, PCR on the video PID 0.7 s before each video DTS, an
//! access unit delimiter at the start of every video access unit, and
//! continuity counters that run on from one segment to the next so that
//! segments played back to back form one clean stream.

use crate::ts::{crc32_mpeg2, PACKET_SIZE, PAT_PID, SYNC_BYTE};

/// The PMT's PID.
pub const PMT_PID: u16 = 0x1000;
/// The video stream's PID.
pub const VIDEO_PID: u16 = 0x100;
/// The first audio stream's PID; audio track `n` is on `FIRST_AUDIO_PID + n`.
pub const FIRST_AUDIO_PID: u16 = 0x101;
/// The one program's number.
pub const PROGRAM_NUMBER: u16 = 1;
/// How far (90 kHz ticks) the PCR runs ahead of the decode time: 0.7 s,
/// ffmpeg's default mux delay, which players' buffers are used to.
pub const PCR_DELAY: i64 = 63_000;

/// PMT stream type of AC-3 (ATSC).
pub const STREAM_TYPE_AC3: u8 = 0x81;
/// PMT stream type of E-AC-3 (ATSC).
pub const STREAM_TYPE_EAC3: u8 = 0x87;
/// PMT stream type of private PES data (DVB carries AC-3 and others so).
pub const STREAM_TYPE_PRIVATE: u8 = 0x06;

/// Timestamps in PES headers and PCRs are 33 bits wide.
const TIMESTAMP_MODULUS: i64 = 1 << 33;
/// Payload bytes of a TS packet without an adaptation field.
const PAYLOAD_SIZE: usize = PACKET_SIZE - 4;
/// The PID of no stream: the PCR PID of a program without streams.
const NO_PCR_PID: u16 = 0x1fff;

/// The codec of a rendition's video stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    H264,
    Hevc,
}

impl VideoCodec {
    /// Its PMT stream type.
    pub fn stream_type(self) -> u8 {
        match self {
            VideoCodec::H264 => 0x1b,
            VideoCodec::Hevc => 0x24,
        }
    }

    /// An access unit delimiter NAL unit with its start code: one that
    /// allows every picture type, so it is right in front of any frame.
    fn access_unit_delimiter(self) -> &'static [u8] {
        match self {
            // nal_unit_type 9, primary_pic_type 7
            VideoCodec::H264 => &[0, 0, 0, 1, 0x09, 0xf0],
            // nal_unit_type 35, nuh_temporal_id_plus1 1, pic_type 2
            VideoCodec::Hevc => &[0, 0, 0, 1, 0x46, 0x01, 0x50],
        }
    }

    /// Whether an Annex B access unit starts with an access unit delimiter.
    fn starts_with_delimiter(self, data: &[u8]) -> bool {
        let header = match data {
            [0, 0, 0, 1, h, ..] | [0, 0, 1, h, ..] => *h,
            _ => return false,
        };
        match self {
            VideoCodec::H264 => header & 0x1f == 9,
            VideoCodec::Hevc => (header >> 1) & 0x3f == 35,
        }
    }
}

/// Which of the rendition's streams a sample belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Track {
    Video,
    /// The audio track of that index, as given to [`TsMuxer::new`].
    Audio(usize),
}

/// One access unit (video) or audio packet to mux.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MuxSample<'a> {
    pub track: Track,
    /// Unwrapped 90 kHz ticks; written modulo 2^33.
    pub pts: i64,
    pub dts: i64,
    /// A random access point: sets the random_access_indicator.
    pub key: bool,
    /// The elementary-stream bytes (Annex B for video).
    pub data: &'a [u8],
}

/// One stream of the program.
#[derive(Debug, Clone)]
struct Stream {
    pid: u16,
    stream_type: u8,
    stream_id: u8,
    continuity: u8,
}

/// Makes HLS segments in MPEG-TS form; see the module documentation.
#[derive(Debug, Clone)]
pub struct TsMuxer {
    video: Option<(VideoCodec, Stream)>,
    audio: Vec<Stream>,
    pcr_pid: u16,
    pat_continuity: u8,
    pmt_continuity: u8,
    /// The PAT and PMT sections, the same for every segment.
    pat: Vec<u8>,
    pmt: Vec<u8>,
}

impl TsMuxer {
    /// `audio`: the PMT stream_type of each audio track (0x0F ADTS AAC,
    /// 0x03/0x04 MPEG audio, 0x81 AC-3, 0x87 E-AC-3 ...).
    /// PIDs: PMT 0x1000, video 0x100, audio 0x101, 0x102 ...; program
    /// number 1; PCR on the video PID (the first audio PID when there is no
    /// video).
    pub fn new(video: Option<VideoCodec>, audio: &[u8]) -> TsMuxer {
        let video = video.map(|codec| {
            let stream = Stream {
                pid: VIDEO_PID,
                stream_type: codec.stream_type(),
                stream_id: 0xe0,
                continuity: 0,
            };
            (codec, stream)
        });
        let audio: Vec<Stream> = audio
            .iter()
            .enumerate()
            .map(|(n, &stream_type)| Stream {
                // more audio tracks than PIDs below the PMT's are not
                // realistic; wrapping keeps the PIDs valid
                pid: FIRST_AUDIO_PID + (n as u16 % (PMT_PID - FIRST_AUDIO_PID)),
                stream_type,
                stream_id: audio_stream_id(stream_type, n),
                continuity: 0,
            })
            .collect();
        let pcr_pid = video
            .as_ref()
            .map(|(_, s)| s.pid)
            .or_else(|| audio.first().map(|s| s.pid))
            .unwrap_or(NO_PCR_PID);
        let streams: Vec<(u8, u16)> = video
            .iter()
            .map(|(_, s)| s)
            .chain(audio.iter())
            .map(|s| (s.stream_type, s.pid))
            .collect();
        TsMuxer {
            pat: pat_section(PROGRAM_NUMBER, PMT_PID),
            pmt: pmt_section(PROGRAM_NUMBER, pcr_pid, &streams),
            video,
            audio,
            pcr_pid,
            pat_continuity: 0,
            pmt_continuity: 0,
        }
    }

    /// One HLS segment's bytes: PAT and PMT first, then each sample as one
    /// PES packet, in the order given.
    /// Continuity counters continue from the previous call (segments
    /// concatenate cleanly). A sample of a track the muxer was not made
    /// with is left out.
    pub fn segment(&mut self, samples: &[MuxSample<'_>]) -> Vec<u8> {
        let payload: usize = samples.iter().map(|s| s.data.len() + 32).sum();
        let mut out = Vec::with_capacity((payload / PAYLOAD_SIZE + 4) * PACKET_SIZE);
        write_section(&mut out, PAT_PID, &mut self.pat_continuity, &self.pat);
        write_section(&mut out, PMT_PID, &mut self.pmt_continuity, &self.pmt);
        let mut pes = Vec::new();
        for sample in samples {
            let (stream, delimiter) = match sample.track {
                Track::Video => match self.video.as_mut() {
                    Some((codec, stream)) => {
                        let aud = (!codec.starts_with_delimiter(sample.data))
                            .then(|| codec.access_unit_delimiter());
                        (stream, aud)
                    }
                    None => continue,
                },
                Track::Audio(n) => match self.audio.get_mut(n) {
                    Some(stream) => (stream, None),
                    None => continue,
                },
            };
            pes.clear();
            pes_header(
                &mut pes,
                stream.stream_id,
                sample,
                delimiter.map_or(0, <[u8]>::len) + sample.data.len(),
            );
            if let Some(aud) = delimiter {
                pes.extend_from_slice(aud);
            }
            pes.extend_from_slice(sample.data);
            let first = FirstPacket {
                pcr: (stream.pid == self.pcr_pid).then(|| pcr_of(sample.dts)),
                random_access: sample.key,
            };
            write_pes(&mut out, stream.pid, &mut stream.continuity, &pes, first);
        }
        out
    }
}

/// The PES stream_id of audio track `n` of `stream_type`: private stream 1
/// for the AC-3 family (and other private data), an MPEG audio stream id
/// otherwise.
fn audio_stream_id(stream_type: u8, n: usize) -> u8 {
    match stream_type {
        STREAM_TYPE_AC3 | STREAM_TYPE_EAC3 | STREAM_TYPE_PRIVATE => 0xbd,
        // 32 audio stream ids; the PID tells streams apart anyway
        _ => 0xc0 + (n % 32) as u8,
    }
}

/// The PCR of a sample decoded at `dts`: [`PCR_DELAY`] before it, never
/// negative, modulo 2^33.
fn pcr_of(dts: i64) -> i64 {
    (dts - PCR_DELAY).max(0).rem_euclid(TIMESTAMP_MODULUS)
}

/// The 5 bytes of a PES timestamp with its 4-bit `prefix`.
fn timestamp_bytes(prefix: u8, ticks: i64) -> [u8; 5] {
    let t = ticks.rem_euclid(TIMESTAMP_MODULUS) as u64;
    [
        (prefix << 4) | (((t >> 30) as u8 & 0x07) << 1) | 1,
        (t >> 22) as u8,
        (((t >> 15) as u8) << 1) | 1,
        (t >> 7) as u8,
        ((t as u8) << 1) | 1,
    ]
}

/// Appends the PES header of `sample` whose payload is `payload_len`
/// bytes. PES_packet_length is 0 for video too long for the field (which
/// the standard allows for video only); audio that does not fit, which no
/// real audio packet does, gets 0 too rather than a wrong length.
fn pes_header(out: &mut Vec<u8>, stream_id: u8, sample: &MuxSample<'_>, payload_len: usize) {
    let with_dts = sample.dts != sample.pts;
    let header_data = if with_dts { 10 } else { 5 };
    let length = 3 + header_data + payload_len;
    let length_field = u16::try_from(length).unwrap_or(0);
    out.extend_from_slice(&[0, 0, 1, stream_id]);
    out.extend_from_slice(&length_field.to_be_bytes());
    // marker bits '10', data_alignment_indicator: each PES starts an access unit
    out.push(0x84);
    out.push(if with_dts { 0xc0 } else { 0x80 });
    out.push(header_data as u8);
    if with_dts {
        out.extend_from_slice(&timestamp_bytes(0b0011, sample.pts));
        out.extend_from_slice(&timestamp_bytes(0b0001, sample.dts));
    } else {
        out.extend_from_slice(&timestamp_bytes(0b0010, sample.pts));
    }
}

/// What the adaptation field of a PES packet's first TS packet carries.
#[derive(Debug, Clone, Copy)]
struct FirstPacket {
    pcr: Option<i64>,
    random_access: bool,
}

/// The adaptation field (length byte included) of a packet: its flags and
/// PCR if it has any, then `stuffing` bytes of 0xff. `None` when the packet
/// needs no adaptation field at all.
fn adaptation_field(first: Option<FirstPacket>, stuffing: usize) -> Option<Vec<u8>> {
    let (pcr, random_access) = first.map_or((None, false), |f| (f.pcr, f.random_access));
    if pcr.is_none() && !random_access && stuffing == 0 {
        return None;
    }
    if pcr.is_none() && !random_access && stuffing == 1 {
        // a one-byte adaptation field: its length, 0
        return Some(vec![0]);
    }
    let mut af = vec![0u8, 0];
    if random_access {
        af[1] |= 0x40;
    }
    if let Some(pcr) = pcr {
        af[1] |= 0x10;
        let base = pcr as u64;
        af.extend_from_slice(&[
            (base >> 25) as u8,
            (base >> 17) as u8,
            (base >> 9) as u8,
            (base >> 1) as u8,
            // the base's last bit, 6 reserved bits, extension 0
            ((base as u8 & 1) << 7) | 0x7e,
            0,
        ]);
    }
    // a field without flags counted one byte of the stuffing already
    let flagged = pcr.is_some() || random_access;
    let fill = if flagged { stuffing } else { stuffing - 2 };
    af.resize(af.len() + fill, 0xff);
    af[0] = (af.len() - 1) as u8;
    Some(af)
}

/// The bytes of a packet's adaptation field (length byte included) before
/// any stuffing.
fn adaptation_len(first: Option<FirstPacket>) -> usize {
    adaptation_field(first, 0).map_or(0, |af| af.len())
}

/// Appends one TS packet: header, adaptation field if any, payload.
fn write_packet(
    out: &mut Vec<u8>,
    pid: u16,
    pusi: bool,
    cc: u8,
    af: Option<&[u8]>,
    payload: &[u8],
) {
    let start = out.len();
    out.push(SYNC_BYTE);
    out.push(((pid >> 8) as u8 & 0x1f) | if pusi { 0x40 } else { 0 });
    out.push(pid as u8);
    let control = if af.is_some() { 0x30 } else { 0x10 };
    out.push(control | (cc & 0x0f));
    if let Some(af) = af {
        out.extend_from_slice(af);
    }
    out.extend_from_slice(payload);
    debug_assert_eq!(out.len() - start, PACKET_SIZE);
}

/// Splits one PES packet into TS packets on `pid`: the first carries the
/// adaptation field `first` asks for, the last is filled to 188 bytes by
/// stuffing in its adaptation field.
fn write_pes(out: &mut Vec<u8>, pid: u16, cc: &mut u8, pes: &[u8], first: FirstPacket) {
    let mut rest = pes;
    let mut head = Some(first);
    while !rest.is_empty() {
        let room = PAYLOAD_SIZE - adaptation_len(head);
        let take = rest.len().min(room);
        let af = adaptation_field(head, room - take);
        write_packet(out, pid, head.is_some(), *cc, af.as_deref(), &rest[..take]);
        *cc = (*cc + 1) & 0x0f;
        rest = &rest[take..];
        head = None;
    }
}

/// Writes a PSI section on `pid`, after a pointer field of 0, filling the
/// last packet with 0xff as PSI does (no adaptation field).
fn write_section(out: &mut Vec<u8>, pid: u16, cc: &mut u8, section: &[u8]) {
    let mut payload = Vec::with_capacity(section.len() + 1);
    payload.push(0);
    payload.extend_from_slice(section);
    for (i, chunk) in payload.chunks(PAYLOAD_SIZE).enumerate() {
        let mut padded = chunk.to_vec();
        padded.resize(PAYLOAD_SIZE, 0xff);
        write_packet(out, pid, i == 0, *cc, None, &padded);
        *cc = (*cc + 1) & 0x0f;
    }
}

/// Appends the CRC and fills in section_length of a section whose first 3
/// bytes are table_id and a placeholder length.
fn finish_section(mut section: Vec<u8>) -> Vec<u8> {
    let length = section.len() - 3 + 4;
    section[1] = 0xb0 | ((length >> 8) as u8 & 0x0f);
    section[2] = length as u8;
    let crc = crc32_mpeg2(&section);
    section.extend_from_slice(&crc.to_be_bytes());
    section
}

/// A PAT listing one program (transport_stream_id 1, version 0).
fn pat_section(program_number: u16, pmt_pid: u16) -> Vec<u8> {
    let mut s = vec![0x00, 0, 0, 0x00, 0x01, 0xc1, 0, 0];
    s.extend_from_slice(&program_number.to_be_bytes());
    s.extend_from_slice(&(0xe000 | pmt_pid).to_be_bytes());
    finish_section(s)
}

/// A PMT (version 0) with (stream_type, PID) streams and no descriptors.
fn pmt_section(program_number: u16, pcr_pid: u16, streams: &[(u8, u16)]) -> Vec<u8> {
    let mut s = vec![0x02, 0, 0];
    s.extend_from_slice(&program_number.to_be_bytes());
    s.extend_from_slice(&[0xc1, 0, 0]);
    s.extend_from_slice(&(0xe000 | pcr_pid).to_be_bytes());
    s.extend_from_slice(&[0xf0, 0x00]);
    for &(stream_type, pid) in streams {
        s.push(stream_type);
        s.extend_from_slice(&(0xe000 | pid).to_be_bytes());
        s.extend_from_slice(&[0xf0, 0x00]);
    }
    finish_section(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ts::{parse_header, parse_pat, parse_pmt, PatEntry, SectionCollector};
    use std::collections::BTreeMap;

    /// One PES packet read back from the muxer's output.
    #[derive(Debug, Default)]
    struct Pes {
        stream_id: u8,
        length_field: u16,
        pts: i64,
        dts: Option<i64>,
        data: Vec<u8>,
        random_access: bool,
        pcr: Option<i64>,
        /// The whole PES packet, header included.
        raw: Vec<u8>,
    }

    #[derive(Debug, Default)]
    struct Parsed {
        pat: Vec<Vec<u8>>,
        pmt: Vec<Vec<u8>>,
        continuity: BTreeMap<u16, Vec<u8>>,
        pes: BTreeMap<u16, Vec<Pes>>,
    }

    fn timestamp(b: &[u8]) -> i64 {
        (i64::from(b[0] >> 1 & 0x07) << 30)
            | (i64::from(b[1]) << 22)
            | (i64::from(b[2] >> 1) << 15)
            | (i64::from(b[3]) << 7)
            | i64::from(b[4] >> 1)
    }

    fn decode_pes(p: &mut Pes) {
        let raw = &p.raw;
        assert_eq!(raw[..3], [0, 0, 1], "start code prefix");
        p.stream_id = raw[3];
        p.length_field = u16::from_be_bytes([raw[4], raw[5]]);
        assert_eq!(raw[6] & 0xc0, 0x80, "marker bits");
        let flags = raw[7] >> 6;
        let header_len = usize::from(raw[8]);
        assert!(flags == 0b10 || flags == 0b11, "a PTS always");
        p.pts = timestamp(&raw[9..14]);
        if flags == 0b11 {
            assert_eq!(raw[9] >> 4, 0b0011);
            assert_eq!(raw[14] >> 4, 0b0001);
            p.dts = Some(timestamp(&raw[14..19]));
        } else {
            assert_eq!(raw[9] >> 4, 0b0010);
        }
        p.data = raw[9 + header_len..].to_vec();
    }

    /// Reads a muxer's output back: every packet 188 bytes with its sync
    /// byte, PSI sections, continuity counters and PES packets by PID.
    fn parse(bytes: &[u8]) -> Parsed {
        assert_eq!(bytes.len() % PACKET_SIZE, 0, "whole packets");
        let mut out = Parsed::default();
        let mut collectors: BTreeMap<u16, SectionCollector> = BTreeMap::new();
        for chunk in bytes.chunks_exact(PACKET_SIZE) {
            assert_eq!(chunk[0], SYNC_BYTE);
            let pkt: [u8; PACKET_SIZE] = chunk.try_into().unwrap();
            let hdr = parse_header(&pkt).unwrap();
            out.continuity
                .entry(hdr.pid)
                .or_default()
                .push(hdr.continuity);
            if hdr.pid == PAT_PID || hdr.pid == PMT_PID {
                if let Some((section, _)) = collectors.entry(hdr.pid).or_default().push(&pkt, &hdr)
                {
                    let list = if hdr.pid == PAT_PID {
                        &mut out.pat
                    } else {
                        &mut out.pmt
                    };
                    list.push(section);
                }
                continue;
            }
            let start = hdr.payload_start.expect("every packet has a payload");
            let list = out.pes.entry(hdr.pid).or_default();
            if hdr.pusi {
                let mut pes = Pes::default();
                if pkt[3] & 0x20 != 0 && pkt[4] > 0 {
                    let flags = pkt[5];
                    pes.random_access = flags & 0x40 != 0;
                    if flags & 0x10 != 0 {
                        let b = &pkt[6..12];
                        let base = (i64::from(b[0]) << 25)
                            | (i64::from(b[1]) << 17)
                            | (i64::from(b[2]) << 9)
                            | (i64::from(b[3]) << 1)
                            | i64::from(b[4] >> 7);
                        let ext = (i64::from(b[4] & 1) << 8) | i64::from(b[5]);
                        assert_eq!(b[4] & 0x7e, 0x7e, "reserved bits");
                        assert_eq!(ext, 0);
                        pes.pcr = Some(base);
                    }
                }
                list.push(pes);
            } else if pkt[3] & 0x20 != 0 && pkt[4] > 0 {
                assert_eq!(
                    pkt[5] & 0x50,
                    0,
                    "no PCR or random access after the first packet"
                );
            }
            list.last_mut()
                .expect("a PES starts on its PID first")
                .raw
                .extend_from_slice(&pkt[start..]);
        }
        for list in out.pes.values_mut() {
            list.iter_mut().for_each(decode_pes);
        }
        out
    }

    fn sample(track: Track, pts: i64, dts: i64, key: bool, data: &[u8]) -> MuxSample<'_> {
        MuxSample {
            track,
            pts,
            dts,
            key,
            data,
        }
    }

    const AUD: [u8; 6] = [0, 0, 0, 1, 0x09, 0xf0];

    #[test]
    fn pat_and_pmt_round_trip() {
        let mut mux = TsMuxer::new(Some(VideoCodec::H264), &[0x0f, STREAM_TYPE_AC3]);
        let parsed = parse(&mux.segment(&[]));
        assert_eq!(parsed.pat.len(), 1);
        assert_eq!(parsed.pmt.len(), 1);
        assert_eq!(crc32_mpeg2(&parsed.pat[0]), 0, "the PAT's CRC checks");
        assert_eq!(crc32_mpeg2(&parsed.pmt[0]), 0, "the PMT's CRC checks");
        assert_eq!(
            parse_pat(&parsed.pat[0]).unwrap(),
            vec![PatEntry {
                program_number: 1,
                pmt_pid: 0x1000
            }]
        );
        let pmt = parse_pmt(&parsed.pmt[0]).unwrap();
        assert_eq!(pmt.program_number, 1);
        assert_eq!(pmt.pcr_pid, 0x100);
        assert_eq!(
            pmt.streams,
            vec![(0x1b, 0x100), (0x0f, 0x101), (0x81, 0x102)]
        );

        let audio_only = TsMuxer::new(None, &[0x03]).segment(&[]);
        let pmt = parse_pmt(&parse(&audio_only).pmt[0]).unwrap();
        assert_eq!(pmt.pcr_pid, 0x101, "PCR on the first audio PID");
        assert_eq!(pmt.streams, vec![(0x03, 0x101)]);

        let hevc = TsMuxer::new(Some(VideoCodec::Hevc), &[]).segment(&[]);
        let pmt = parse_pmt(&parse(&hevc).pmt[0]).unwrap();
        assert_eq!(pmt.streams, vec![(0x24, 0x100)]);
    }

    #[test]
    fn a_pmt_longer_than_a_packet() {
        let audio = vec![0x0f; 40];
        let mut mux = TsMuxer::new(Some(VideoCodec::H264), &audio);
        let bytes = mux.segment(&[]);
        assert!(bytes.len() > 2 * PACKET_SIZE);
        let parsed = parse(&bytes);
        assert_eq!(crc32_mpeg2(&parsed.pmt[0]), 0);
        assert_eq!(parse_pmt(&parsed.pmt[0]).unwrap().streams.len(), 41);
        assert_eq!(parsed.continuity[&PMT_PID], vec![0, 1]);
    }

    #[test]
    fn continuity_runs_on_across_segments() {
        let mut mux = TsMuxer::new(Some(VideoCodec::H264), &[0x0f, 0x0f]);
        let big = vec![7u8; 3000];
        let small = vec![9u8; 300];
        let samples = [
            sample(Track::Video, 9000, 6000, true, &big),
            sample(Track::Audio(0), 9000, 9000, true, &small),
            sample(Track::Audio(1), 9000, 9000, true, &small),
            sample(Track::Video, 12000, 9000, false, &small),
        ];
        let mut bytes = mux.segment(&samples);
        bytes.extend(mux.segment(&samples));
        let parsed = parse(&bytes);
        assert_eq!(parsed.pat.len(), 2);
        assert_eq!(parsed.pmt.len(), 2);
        for (pid, counters) in &parsed.continuity {
            assert!(counters.len() >= 2, "PID {pid:#x}");
            for pair in counters.windows(2) {
                assert_eq!(pair[1], (pair[0] + 1) & 0x0f, "PID {pid:#x}: {counters:?}");
            }
        }
        // 3006 + 19 bytes of video PES need 17 packets; twice with the small one
        assert!(parsed.continuity[&VIDEO_PID].len() > 16, "counters wrapped");
    }

    #[test]
    fn pes_headers_and_payloads_decode() {
        let mut mux = TsMuxer::new(Some(VideoCodec::H264), &[0x0f, STREAM_TYPE_AC3]);
        let with_aud = [0, 0, 1, 0x09, 0x10, 0, 0, 1, 0x65, 1, 2, 3];
        let without = [0, 0, 0, 1, 0x41, 5, 6, 7];
        let aac = [0xffu8, 0xf1, 1, 2, 3];
        let ac3 = [0x0bu8, 0x77, 4, 5];
        let late = (1i64 << 33) + 4500; // past the 33-bit wrap
        let samples = [
            sample(Track::Video, 12_000, 6_000, true, &with_aud),
            sample(Track::Audio(0), 10_000, 10_000, true, &aac),
            sample(Track::Audio(1), 10_500, 10_500, true, &ac3),
            sample(Track::Video, late, late, false, &without),
            sample(Track::Audio(5), 1, 1, true, &aac), // no such track
        ];
        let parsed = parse(&mux.segment(&samples));
        let video = &parsed.pes[&VIDEO_PID];
        assert_eq!(video.len(), 2);
        assert_eq!(video[0].stream_id, 0xe0);
        assert_eq!((video[0].pts, video[0].dts), (12_000, Some(6_000)));
        assert_eq!(
            video[0].data, with_aud,
            "an AUD already there is kept alone"
        );
        assert!(video[0].random_access);
        assert_eq!(video[0].pcr, Some(0), "6000 - 63000 clamps to 0");
        assert_eq!(
            (video[1].pts, video[1].dts),
            (4500, None),
            "modulo 2^33, no DTS when equal"
        );
        let mut expected = AUD.to_vec();
        expected.extend_from_slice(&without);
        assert_eq!(video[1].data, expected, "an AUD inserted");
        assert!(!video[1].random_access);
        assert_eq!(
            video[1].pcr,
            Some((1 << 33) + 4500 - PCR_DELAY),
            "wraps, not clamped"
        );

        let a0 = &parsed.pes[&FIRST_AUDIO_PID];
        assert_eq!(a0.len(), 1);
        assert_eq!(a0[0].stream_id, 0xc0);
        assert_eq!((a0[0].pts, a0[0].dts), (10_000, None));
        assert_eq!(a0[0].data, aac);
        assert_eq!(a0[0].pcr, None, "no PCR off the PCR PID");
        assert!(a0[0].random_access);
        assert_eq!(
            usize::from(a0[0].length_field),
            a0[0].raw.len() - 6,
            "real length"
        );
        let a1 = &parsed.pes[&(FIRST_AUDIO_PID + 1)];
        assert_eq!(a1[0].stream_id, 0xbd, "AC-3 in private stream 1");
        assert_eq!(a1[0].data, ac3);
        assert_eq!(parsed.pes.len(), 3, "the unknown track is left out");
    }

    #[test]
    fn hevc_gets_its_own_delimiter() {
        let mut mux = TsMuxer::new(Some(VideoCodec::Hevc), &[]);
        let idr = [0, 0, 0, 1, 0x26, 0x01, 0xaf];
        let with_aud = [0, 0, 0, 1, 0x46, 0x01, 0x10, 0, 0, 0, 1, 0x26, 0x01];
        let parsed = parse(&mux.segment(&[
            sample(Track::Video, 3000, 3000, true, &idr),
            sample(Track::Video, 6000, 6000, false, &with_aud),
        ]));
        let video = &parsed.pes[&VIDEO_PID];
        let mut expected = vec![0, 0, 0, 1, 0x46, 0x01, 0x50];
        expected.extend_from_slice(&idr);
        assert_eq!(video[0].data, expected);
        assert_eq!(video[1].data, with_aud);
    }

    #[test]
    fn every_payload_size_packs_and_stuffs_exactly() {
        // sizes around each packet boundary, with and without PCR and
        // random access, and the one-byte stuffing case
        for size in 0..600usize {
            let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let mut mux = TsMuxer::new(Some(VideoCodec::H264), &[0x0f]);
            let mut video = AUD.to_vec();
            video.extend_from_slice(&data);
            let parsed = parse(&mux.segment(&[
                sample(Track::Video, 90_000, 87_000, size % 2 == 0, &video),
                sample(Track::Audio(0), 90_000, 90_000, false, &data),
            ]));
            assert_eq!(parsed.pes[&VIDEO_PID][0].data, video, "video of {size}");
            assert_eq!(parsed.pes[&VIDEO_PID][0].pcr, Some(24_000));
            let audio = &parsed.pes[&FIRST_AUDIO_PID][0];
            assert_eq!(audio.data, data, "audio of {size}");
            assert_eq!(usize::from(audio.length_field), audio.raw.len() - 6);
        }
    }

    #[test]
    fn large_video_has_length_zero() {
        let mut mux = TsMuxer::new(Some(VideoCodec::H264), &[]);
        let mut frame = AUD.to_vec();
        frame.resize(100_000, 0x42);
        let parsed = parse(&mux.segment(&[sample(Track::Video, 0, 0, true, &frame)]));
        let pes = &parsed.pes[&VIDEO_PID][0];
        assert_eq!(pes.length_field, 0);
        assert_eq!(pes.data, frame);
        let small = [0, 0, 0, 1, 0x09, 0xf0, 1];
        let parsed = parse(&mux.segment(&[sample(Track::Video, 0, 0, true, &small)]));
        let pes = &parsed.pes[&VIDEO_PID][0];
        assert_eq!(usize::from(pes.length_field), pes.raw.len() - 6);
    }

    /// ffprobe (when installed) reads the program's streams from a segment.
    #[test]
    fn ffprobe_lists_the_streams() {
        let ffprobe = std::path::Path::new("/usr/bin/ffprobe");
        if !ffprobe.exists() {
            return;
        }
        let mut mux = TsMuxer::new(Some(VideoCodec::H264), &[0x0f, STREAM_TYPE_AC3]);
        let idr = [0, 0, 0, 1, 0x65, 0x88, 0x84, 0x00];
        let aac = [0xff, 0xf1, 0x4c, 0x80, 0x01, 0x7f, 0xfc, 1, 2, 3, 4];
        let ac3 = [0x0b, 0x77, 0, 0, 0, 0];
        let mut samples = Vec::new();
        for i in 0..30i64 {
            let at = 126_000 + i * 3000;
            samples.push(sample(Track::Video, at, at, i == 0, &idr));
            samples.push(sample(Track::Audio(0), at, at, true, &aac));
            samples.push(sample(Track::Audio(1), at, at, true, &ac3));
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("segment.ts");
        std::fs::write(&path, mux.segment(&samples)).unwrap();
        let out = std::process::Command::new(ffprobe)
            .args([
                "-v",
                "quiet",
                "-show_entries",
                "stream=codec_name,id",
                "-of",
                "csv=p=0",
            ])
            .arg(&path)
            .output()
            .unwrap();
        let listed = String::from_utf8_lossy(&out.stdout);
        // the program's streams, then the file's
        let lines: Vec<&str> = listed
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let expected = ["h264,0x100", "aac,0x101", "ac3,0x102"];
        assert!(lines.ends_with(&expected), "{listed}");
    }

    #[test]
    fn timestamps_encode_bit_for_bit() {
        for t in [0i64, 1, 0x1_0000_0000, (1 << 33) - 1, 123_456_789] {
            let b = timestamp_bytes(0b0010, t);
            assert_eq!(timestamp(&b), t);
            assert_eq!(b[0] & 1, 1);
            assert_eq!(b[2] & 1, 1);
            assert_eq!(b[4] & 1, 1);
        }
        assert_eq!(pcr_of(-5), 0);
        assert_eq!(pcr_of((1 << 33) + PCR_DELAY + 7), 7);
    }
}
