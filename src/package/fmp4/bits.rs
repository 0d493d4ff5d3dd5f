//! A big-endian bit reader over an RBSP (emulation prevention already
//! removed), with the exp-Golomb codes of H.264 / HEVC syntax.

use super::Error;

pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    /// Position in bits.
    pos: usize,
    /// What is being read, for error messages.
    what: &'static str,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(data: &'a [u8], what: &'static str) -> Self {
        BitReader { data, pos: 0, what }
    }

    fn short(&self) -> Error {
        Error::malformed(self.what, "ends early")
    }

    pub(crate) fn flag(&mut self) -> Result<bool, Error> {
        let byte = *self.data.get(self.pos / 8).ok_or_else(|| self.short())?;
        let bit = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Ok(bit == 1)
    }

    /// Reads `n` ≤ 32 bits as an unsigned number.
    pub(crate) fn bits(&mut self, n: u32) -> Result<u32, Error> {
        debug_assert!(n <= 32);
        let mut value = 0u64;
        for _ in 0..n {
            value = (value << 1) | u64::from(self.flag()?);
        }
        Ok(value as u32)
    }

    pub(crate) fn skip(&mut self, n: usize) -> Result<(), Error> {
        if self.pos + n > self.data.len() * 8 {
            return Err(self.short());
        }
        self.pos += n;
        Ok(())
    }

    /// ue(v): unsigned exp-Golomb.
    pub(crate) fn ue(&mut self) -> Result<u32, Error> {
        let mut zeros = 0;
        while !self.flag()? {
            zeros += 1;
            if zeros > 31 {
                return Err(Error::malformed(self.what, "exp-Golomb code too long"));
            }
        }
        let rest = self.bits(zeros)?;
        Ok(((1u64 << zeros) - 1 + u64::from(rest)) as u32)
    }

    /// se(v): signed exp-Golomb.
    pub(crate) fn se(&mut self) -> Result<i32, Error> {
        let k = i64::from(self.ue()?);
        Ok(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) } as i32)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Writes syntax elements, to build test bitstreams.
    #[derive(Default)]
    pub(crate) struct BitWriter {
        bytes: Vec<u8>,
        bits: usize,
    }

    impl BitWriter {
        pub(crate) fn bits(&mut self, n: u32, value: u32) -> &mut Self {
            for i in (0..n).rev() {
                if self.bits.is_multiple_of(8) {
                    self.bytes.push(0);
                }
                let bit = ((value >> i) & 1) as u8;
                *self.bytes.last_mut().unwrap() |= bit << (7 - self.bits % 8);
                self.bits += 1;
            }
            self
        }
        pub(crate) fn ue(&mut self, value: u32) -> &mut Self {
            let v = u64::from(value) + 1;
            let len = 64 - v.leading_zeros();
            self.bits(len - 1, 0);
            for i in (0..len).rev() {
                self.bits(1, ((v >> i) & 1) as u32);
            }
            self
        }
        pub(crate) fn se(&mut self, value: i32) -> &mut Self {
            let k = if value > 0 { 2 * value - 1 } else { -2 * value };
            self.ue(k as u32)
        }
        /// Adds the RBSP stop bit and pads to a byte.
        pub(crate) fn finish(&mut self) -> Vec<u8> {
            self.bits(1, 1);
            while !self.bits.is_multiple_of(8) {
                self.bits(1, 0);
            }
            self.bytes.clone()
        }
    }

    #[test]
    fn exp_golomb_round_trip() {
        let mut w = BitWriter::default();
        w.ue(0).ue(1).ue(2).ue(254).se(-3).se(4).bits(5, 0x15);
        let bytes = w.finish();
        let mut r = BitReader::new(&bytes, "test");
        assert_eq!(r.ue().unwrap(), 0);
        assert_eq!(r.ue().unwrap(), 1);
        assert_eq!(r.ue().unwrap(), 2);
        assert_eq!(r.ue().unwrap(), 254);
        assert_eq!(r.se().unwrap(), -3);
        assert_eq!(r.se().unwrap(), 4);
        assert_eq!(r.bits(5).unwrap(), 0x15);
        assert!(r.flag().unwrap(), "stop bit");
        assert_eq!(r.skip(64), Err(Error::malformed("test", "ends early")));
    }

    #[test]
    fn too_long_codes_and_short_input_are_errors() {
        let zeros = [0u8; 8];
        let mut r = BitReader::new(&zeros, "x");
        assert_eq!(
            r.ue(),
            Err(Error::malformed("x", "exp-Golomb code too long"))
        );
        let mut r = BitReader::new(&[0x00], "x");
        assert_eq!(r.ue(), Err(Error::malformed("x", "ends early")));
    }
}
