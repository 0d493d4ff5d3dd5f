//! Just enough of MPEG-TS (ISO/IEC 13818-1) to cut a transport stream at
//! packet boundaries: packet headers, the PAT and PMT of one program, and the
//! lengths of PES packets.

pub const PACKET_SIZE: usize = 188;
pub const SYNC_BYTE: u8 = 0x47;
pub const PAT_PID: u16 = 0;
pub const NULL_PID: u16 = 0x1fff;
/// PMT stream type of AAC audio in ADTS frames (ISO/IEC 13818-7).
pub const STREAM_TYPE_ADTS: u8 = 0x0f;

/// The fields of a TS packet header that cutting needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub pid: u16,
    /// payload_unit_start_indicator: a PES packet or PSI section starts here.
    pub pusi: bool,
    pub continuity: u8,
    /// Offset of the payload within the packet, if it has one.
    pub payload_start: Option<usize>,
}

/// Parses a 188-byte packet's header. Returns `None` for a packet without the
/// sync byte or with the transport error indicator set.
pub fn parse_header(pkt: &[u8]) -> Option<Header> {
    if pkt.len() < PACKET_SIZE || pkt[0] != SYNC_BYTE || pkt[1] & 0x80 != 0 {
        return None;
    }
    let pid = (u16::from(pkt[1] & 0x1f) << 8) | u16::from(pkt[2]);
    let pusi = pkt[1] & 0x40 != 0;
    let control = (pkt[3] >> 4) & 0x3;
    let continuity = pkt[3] & 0x0f;
    let payload_start = match control {
        0b01 => Some(4),
        0b11 => {
            let start = 5 + usize::from(pkt[4]);
            (start < PACKET_SIZE).then_some(start)
        }
        _ => None,
    };
    Some(Header {
        pid,
        pusi,
        continuity,
        payload_start,
    })
}

/// Rewrites the continuity counter of a packet.
pub fn set_continuity(pkt: &mut [u8], cc: u8) {
    pkt[3] = (pkt[3] & 0xf0) | (cc & 0x0f);
}

/// Moves a packet's continuity counter on by `by` (modulo 16).
pub fn shift_continuity(pkt: &mut [u8], by: u8) {
    set_continuity(pkt, (pkt[3] & 0x0f).wrapping_add(by));
}

/// Finds the first offset in `buf` from which `needed` consecutive sync bytes
/// stand 188 bytes apart (or as many as `buf` holds, at least one).
pub fn find_sync(buf: &[u8], needed: usize) -> Option<usize> {
    (0..buf.len()).find(|&start| {
        buf[start] == SYNC_BYTE
            && (1..needed)
                .map(|k| start + k * PACKET_SIZE)
                .take_while(|&i| i < buf.len())
                .all(|i| buf[i] == SYNC_BYTE)
    })
}

/// Collects the packets of one PSI table (a PAT or a PMT) until its first
/// section is complete.
#[derive(Debug, Default, Clone)]
pub struct SectionCollector {
    packets: Vec<[u8; PACKET_SIZE]>,
    data: Vec<u8>,
}

impl SectionCollector {
    /// Feeds one packet of the table's PID. Returns the complete section
    /// (starting at table_id) and the packets that carried it, once the
    /// section is complete.
    pub fn push(
        &mut self,
        pkt: &[u8; PACKET_SIZE],
        hdr: &Header,
    ) -> Option<(Vec<u8>, Vec<[u8; PACKET_SIZE]>)> {
        let start = hdr.payload_start?;
        let payload = &pkt[start..];
        if hdr.pusi {
            let pointer = usize::from(*payload.first()?);
            self.packets.clear();
            self.data.clear();
            self.data
                .extend_from_slice(payload.get(1 + pointer..).unwrap_or(&[]));
        } else if self.packets.is_empty() {
            return None;
        } else {
            self.data.extend_from_slice(payload);
        }
        self.packets.push(*pkt);
        if self.data.len() < 3 {
            return None;
        }
        let total = 3 + (usize::from(self.data[1] & 0x0f) << 8 | usize::from(self.data[2]));
        if self.data.len() < total {
            if self.packets.len() > 64 {
                self.packets.clear();
            }
            return None;
        }
        let section = self.data[..total].to_vec();
        let packets = std::mem::take(&mut self.packets);
        self.data.clear();
        Some((section, packets))
    }
}

/// CRC-32/MPEG-2 of a PSI section (polynomial 0x04C11DB7, no reflection).
pub fn crc32_mpeg2(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &byte in data {
        crc ^= u32::from(byte) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04c1_1db7
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// A PAT that lists one program, built from an original PAT section (whose
/// transport_stream_id and version it keeps), as one TS packet.
pub fn single_program_pat(original: &[u8], program_number: u16, pmt_pid: u16) -> [u8; PACKET_SIZE] {
    let mut section = vec![0x00, 0xb0, 13];
    section.extend_from_slice(&original[3..6]); // transport_stream_id, version, current_next
    section.extend_from_slice(&[0, 0]); // section_number, last_section_number
    section.extend_from_slice(&program_number.to_be_bytes());
    section.extend_from_slice(&(0xe000 | pmt_pid).to_be_bytes());
    let crc = crc32_mpeg2(&section);
    section.extend_from_slice(&crc.to_be_bytes());
    let mut pkt = [0xffu8; PACKET_SIZE];
    pkt[..5].copy_from_slice(&[SYNC_BYTE, 0x40, 0x00, 0x10, 0x00]);
    pkt[5..5 + section.len()].copy_from_slice(&section);
    pkt
}

/// One program listed in a PAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatEntry {
    pub program_number: u16,
    pub pmt_pid: u16,
}

/// Parses a PAT section into its programs (the network PID entry, program 0,
/// is left out).
pub fn parse_pat(section: &[u8]) -> Option<Vec<PatEntry>> {
    if section.first() != Some(&0x00) || section.len() < 12 {
        return None;
    }
    let body = &section[8..section.len() - 4];
    Some(
        body.chunks_exact(4)
            .map(|c| PatEntry {
                program_number: u16::from_be_bytes([c[0], c[1]]),
                pmt_pid: (u16::from(c[2] & 0x1f) << 8) | u16::from(c[3]),
            })
            .filter(|e| e.program_number != 0)
            .collect(),
    )
}

/// The parts of a PMT that cutting needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pmt {
    pub program_number: u16,
    pub pcr_pid: u16,
    /// (stream_type, elementary PID) for every stream of the program.
    pub streams: Vec<(u8, u16)>,
}

pub fn parse_pmt(section: &[u8]) -> Option<Pmt> {
    if section.first() != Some(&0x02) || section.len() < 16 {
        return None;
    }
    let program_number = u16::from_be_bytes([section[3], section[4]]);
    let pcr_pid = (u16::from(section[8] & 0x1f) << 8) | u16::from(section[9]);
    let info_len = (usize::from(section[10] & 0x0f) << 8) | usize::from(section[11]);
    let end = section.len() - 4;
    let mut i = 12 + info_len;
    let mut streams = Vec::new();
    while i + 5 <= end {
        let stream_type = section[i];
        let pid = (u16::from(section[i + 1] & 0x1f) << 8) | u16::from(section[i + 2]);
        let es_info = (usize::from(section[i + 3] & 0x0f) << 8) | usize::from(section[i + 4]);
        streams.push((stream_type, pid));
        i += 5 + es_info;
    }
    Some(Pmt {
        program_number,
        pcr_pid,
        streams,
    })
}

/// Bytes of a PES packet still to come after this packet, given the payload
/// of the packet where the PES starts. `None` when the PES header does not
/// give a length (PES_packet_length 0, allowed for video).
pub fn pes_remaining_after_start(payload: &[u8]) -> Option<usize> {
    if payload.len() < 6 || payload[..3] != [0, 0, 1] {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([payload[4], payload[5]]));
    if len == 0 {
        return None;
    }
    Some((len + 6).saturating_sub(payload.len()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a packet with a payload (no adaptation field) padded with 0xff.
    pub fn packet(pid: u16, pusi: bool, cc: u8, payload: &[u8]) -> [u8; PACKET_SIZE] {
        let mut p = [0xffu8; PACKET_SIZE];
        p[0] = SYNC_BYTE;
        p[1] = ((pid >> 8) as u8 & 0x1f) | if pusi { 0x40 } else { 0 };
        p[2] = pid as u8;
        p[3] = 0x10 | (cc & 0x0f);
        p[4..4 + payload.len()].copy_from_slice(payload);
        p
    }

    /// A PSI section with a dummy CRC (nothing here checks it).
    pub fn section(table_id: u8, ext: u16, body: &[u8]) -> Vec<u8> {
        let len = 5 + body.len() + 4;
        let mut s = vec![table_id, 0xb0 | (len >> 8) as u8, len as u8];
        s.extend_from_slice(&ext.to_be_bytes());
        s.extend_from_slice(&[0xc1, 0, 0]);
        s.extend_from_slice(body);
        s.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        s
    }

    pub fn pat(programs: &[(u16, u16)]) -> Vec<u8> {
        let mut body = Vec::new();
        for &(n, pid) in programs {
            body.extend_from_slice(&n.to_be_bytes());
            body.extend_from_slice(&(0xe000 | pid).to_be_bytes());
        }
        section(0x00, 1, &body)
    }

    pub fn pmt(program: u16, pcr: u16, streams: &[(u8, u16)]) -> Vec<u8> {
        let mut body = (0xe000 | pcr).to_be_bytes().to_vec();
        body.extend_from_slice(&[0xf0, 0x00]);
        for &(t, pid) in streams {
            body.push(t);
            body.extend_from_slice(&(0xe000 | pid).to_be_bytes());
            body.extend_from_slice(&[0xf0, 0x00]);
        }
        section(0x02, program, &body)
    }

    pub fn psi_packet(pid: u16, cc: u8, section: &[u8]) -> [u8; PACKET_SIZE] {
        let mut payload = vec![0u8];
        payload.extend_from_slice(section);
        packet(pid, true, cc, &payload)
    }

    #[test]
    fn header_fields() {
        let p = packet(0x101, true, 7, &[0, 0, 1, 0xe0]);
        let h = parse_header(&p).unwrap();
        assert_eq!(h.pid, 0x101);
        assert!(h.pusi);
        assert_eq!(h.continuity, 7);
        assert_eq!(h.payload_start, Some(4));
        let mut q = p;
        q[3] = 0x30; // adaptation field + payload
        q[4] = 7;
        assert_eq!(parse_header(&q).unwrap().payload_start, Some(12));
        q[3] = 0x20; // adaptation only
        assert_eq!(parse_header(&q).unwrap().payload_start, None);
        let mut bad = p;
        bad[0] = 0;
        assert!(parse_header(&bad).is_none());
        set_continuity(&mut q, 9);
        assert_eq!(parse_header(&q).unwrap().continuity, 9);
    }

    #[test]
    fn pat_and_pmt_round_trip() {
        let pat_s = pat(&[(0, 0x10), (1, 0x1000), (2, 0x1100)]);
        let mut c = SectionCollector::default();
        let pkt = psi_packet(0, 0, &pat_s);
        let (sec, pkts) = c.push(&pkt, &parse_header(&pkt).unwrap()).unwrap();
        assert_eq!(pkts.len(), 1);
        assert_eq!(
            parse_pat(&sec).unwrap(),
            vec![
                PatEntry {
                    program_number: 1,
                    pmt_pid: 0x1000
                },
                PatEntry {
                    program_number: 2,
                    pmt_pid: 0x1100
                }
            ]
        );
        let pmt_s = pmt(1, 0x100, &[(0x1b, 0x100), (0x0f, 0x101)]);
        let parsed = parse_pmt(&pmt_s).unwrap();
        assert_eq!(parsed.pcr_pid, 0x100);
        assert_eq!(parsed.program_number, 1);
        assert_eq!(parsed.streams, vec![(0x1b, 0x100), (0x0f, 0x101)]);
    }

    #[test]
    fn crc_and_a_rewritten_pat() {
        // the PAT that ffmpeg writes for one program (PMT on PID 0x1000)
        let ffmpeg_pat = [
            0x00, 0xb0, 0x0d, 0x00, 0x01, 0xc1, 0x00, 0x00, 0x00, 0x01, 0xf0, 0x00,
        ];
        assert_eq!(crc32_mpeg2(&ffmpeg_pat), 0x2ab1_04b2, "the CRC in the file");
        let two = pat(&[(1, 0x1000), (2, 0x1100)]);
        let pkt = single_program_pat(&two, 2, 0x1100);
        let hdr = parse_header(&pkt).unwrap();
        assert!(hdr.pusi);
        let (section, _) = SectionCollector::default().push(&pkt, &hdr).unwrap();
        assert_eq!(
            parse_pat(&section).unwrap(),
            vec![PatEntry {
                program_number: 2,
                pmt_pid: 0x1100
            }]
        );
        assert_eq!(
            crc32_mpeg2(&section),
            0,
            "a section with its CRC checks to zero"
        );
    }

    #[test]
    fn section_spanning_two_packets() {
        let streams: Vec<(u8, u16)> = (0..40).map(|i| (0x06, 0x200 + i)).collect();
        let s = pmt(1, 0x200, &streams);
        assert!(s.len() > 183);
        let mut payload = vec![0u8];
        payload.extend_from_slice(&s);
        let first = packet(0x1000, true, 0, &payload[..184]);
        let second = packet(0x1000, false, 1, &payload[184..]);
        let mut c = SectionCollector::default();
        assert!(c.push(&first, &parse_header(&first).unwrap()).is_none());
        let (sec, pkts) = c.push(&second, &parse_header(&second).unwrap()).unwrap();
        assert_eq!(pkts.len(), 2);
        assert_eq!(parse_pmt(&sec).unwrap().streams.len(), 40);
    }

    #[test]
    fn pes_lengths() {
        let mut audio = vec![0, 0, 1, 0xc0, 0x01, 0x00]; // 256 bytes follow the length field
        audio.resize(184, 0);
        assert_eq!(pes_remaining_after_start(&audio), Some(256 + 6 - 184));
        let video = [0, 0, 1, 0xe0, 0, 0, 0x80];
        assert_eq!(pes_remaining_after_start(&video), None);
        assert_eq!(pes_remaining_after_start(&[1, 2, 3]), None);
    }

    #[test]
    fn sync_search_skips_garbage() {
        let mut buf = vec![0x47, 1, 2, 3];
        for _ in 0..3 {
            buf.extend_from_slice(&packet(0x100, false, 0, &[]));
        }
        assert_eq!(find_sync(&buf, 3), Some(4));
        assert_eq!(find_sync(&[1, 2, 3], 3), None);
    }
}
