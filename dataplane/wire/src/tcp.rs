//! TCP segments (RFC 9293): header view, window-scale option, emit with checksum.

use crate::checksum;
use crate::{BuildError, ParseError};

mod field {
    use core::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const SEQ: Range<usize> = 4..8;
    pub const ACK: Range<usize> = 8..12;
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: Range<usize> = 14..16;
    pub const CHECKSUM: Range<usize> = 16..18;
    pub const URGENT: Range<usize> = 18..20;
}

/// Minimum header length.
pub const HEADER_LEN: usize = 20;

/// TCP flag bits (the low byte of the flags field).
pub mod flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
    /// URG.
    pub const URG: u8 = 0x20;
}

/// A read/write view of a TCP segment.
#[derive(Debug, Clone)]
pub struct TcpSegment<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpSegment<T> {
    /// Wraps a buffer without checks.
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpSegment { buffer }
    }

    /// Wraps a buffer and runs [`Self::check_len`].
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let s = Self::new_unchecked(buffer);
        s.check_len()?;
        Ok(s)
    }

    /// Checks the fixed header and the data offset against the buffer.
    pub fn check_len(&self) -> Result<(), ParseError> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(ParseError::TcpTruncated);
        }
        let hl = self.header_len();
        if hl < HEADER_LEN || hl > len {
            return Err(ParseError::TcpBadDataOffset);
        }
        Ok(())
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    fn u16_at(&self, r: core::ops::Range<usize>) -> u16 {
        let b = &self.b()[r];
        u16::from_be_bytes([b[0], b[1]])
    }

    fn u32_at(&self, r: core::ops::Range<usize>) -> u32 {
        let b = &self.b()[r];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        self.u16_at(field::SRC_PORT)
    }
    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        self.u16_at(field::DST_PORT)
    }
    /// Sequence number.
    pub fn seq(&self) -> u32 {
        self.u32_at(field::SEQ)
    }
    /// Acknowledgement number.
    pub fn ack(&self) -> u32 {
        self.u32_at(field::ACK)
    }
    /// Header length in bytes.
    pub fn header_len(&self) -> usize {
        usize::from(self.b()[field::DATA_OFF] >> 4) * 4
    }
    /// Flag byte (see [`flags`]).
    pub fn flags(&self) -> u8 {
        self.b()[field::FLAGS]
    }
    /// Window field (unscaled).
    pub fn window(&self) -> u16 {
        self.u16_at(field::WINDOW)
    }
    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }
    /// Urgent pointer.
    pub fn urgent(&self) -> u16 {
        self.u16_at(field::URGENT)
    }
    /// Option bytes.
    pub fn options(&self) -> &[u8] {
        &self.b()[HEADER_LEN..self.header_len()]
    }
    /// Payload after the header.
    pub fn payload(&self) -> &[u8] {
        &self.b()[self.header_len()..]
    }

    /// Walks the options and returns the window-scale shift if present (clamped to 14,
    /// RFC 7323 §2.3). A bad option length is an error, as for IPv4 options.
    pub fn window_scale(&self) -> Result<Option<u8>, ParseError> {
        let o = self.options();
        let mut i = 0;
        let mut ws = None;
        while i < o.len() {
            match o[i] {
                0 => break,
                1 => i += 1,
                kind => {
                    let l = *o.get(i + 1).ok_or(ParseError::TcpBadOption)? as usize;
                    if l < 2 || i + l > o.len() {
                        return Err(ParseError::TcpBadOption);
                    }
                    if kind == 3 && l == 3 {
                        ws = Some(o[i + 2].min(14));
                    }
                    i += l;
                }
            }
        }
        Ok(ws)
    }

    /// True if the checksum is right for the given pseudo-header addresses.
    pub fn verify_checksum(&self, src: &[u8], dst: &[u8]) -> bool {
        let b = self.b();
        let acc = checksum::pseudo_header(src, dst, crate::proto::TCP, b.len() as u32);
        checksum::finish(checksum::sum(acc, b)) == 0
    }
}

/// A TCP segment to emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpRepr<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number.
    pub ack: u32,
    /// Flags (see [`flags`]).
    pub flags: u8,
    /// Window.
    pub window: u16,
    /// Window-scale option to include (SYN segments).
    pub window_scale: Option<u8>,
    /// Payload.
    pub payload: &'a [u8],
}

impl TcpRepr<'_> {
    /// Header plus payload length.
    pub fn len(&self) -> usize {
        self.header_len() + self.payload.len()
    }

    /// Always false: a segment has a header.
    pub fn is_empty(&self) -> bool {
        false
    }

    fn header_len(&self) -> usize {
        HEADER_LEN + if self.window_scale.is_some() { 4 } else { 0 }
    }

    /// Writes the segment with a checksum over the pseudo-header of `src`/`dst` (4 or 16
    /// bytes each); returns its length.
    pub fn emit(&self, src: &[u8], dst: &[u8], buf: &mut [u8]) -> Result<usize, BuildError> {
        let len = self.len();
        if buf.len() < len {
            return Err(BuildError::BufferTooSmall);
        }
        let hl = self.header_len();
        let b = &mut buf[..len];
        b[field::SRC_PORT].copy_from_slice(&self.src_port.to_be_bytes());
        b[field::DST_PORT].copy_from_slice(&self.dst_port.to_be_bytes());
        b[field::SEQ].copy_from_slice(&self.seq.to_be_bytes());
        b[field::ACK].copy_from_slice(&self.ack.to_be_bytes());
        b[field::DATA_OFF] = ((hl / 4) as u8) << 4;
        b[field::FLAGS] = self.flags;
        b[field::WINDOW].copy_from_slice(&self.window.to_be_bytes());
        b[field::CHECKSUM].copy_from_slice(&[0, 0]);
        b[field::URGENT].copy_from_slice(&[0, 0]);
        if let Some(ws) = self.window_scale {
            b[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&[1, 3, 3, ws]);
        }
        b[hl..].copy_from_slice(self.payload);
        let acc = checksum::pseudo_header(src, dst, crate::proto::TCP, len as u32);
        let c = checksum::finish(checksum::sum(acc, b));
        b[field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn construct_and_deconstruct() {
        let r = TcpRepr {
            src_port: 1234,
            dst_port: 80,
            seq: 7,
            ack: 9,
            flags: flags::SYN | flags::ACK,
            window: 1000,
            window_scale: Some(7),
            payload: b"hi",
        };
        let mut b = [0u8; 26];
        assert_eq!(r.emit(&[1, 2, 3, 4], &[5, 6, 7, 8], &mut b), Ok(26));
        let s = TcpSegment::new_checked(&b[..]).unwrap();
        assert_eq!(
            (s.src_port(), s.dst_port(), s.seq(), s.ack()),
            (1234, 80, 7, 9)
        );
        assert_eq!((s.flags(), s.window(), s.header_len()), (0x12, 1000, 24));
        assert_eq!(s.window_scale(), Ok(Some(7)));
        assert_eq!(s.payload(), b"hi");
        assert!(s.verify_checksum(&[1, 2, 3, 4], &[5, 6, 7, 8]));
        assert!(!s.verify_checksum(&[1, 2, 3, 5], &[5, 6, 7, 8]));
    }

    #[test]
    fn truncated_and_bad_offsets() {
        let mut b = [0u8; 20];
        b[12] = 5 << 4;
        assert!(TcpSegment::new_checked(&b[..]).is_ok());
        assert_eq!(
            TcpSegment::new_checked(&b[..19]).err(),
            Some(ParseError::TcpTruncated)
        );
        b[12] = 4 << 4;
        assert_eq!(
            TcpSegment::new_checked(&b[..]).err(),
            Some(ParseError::TcpBadDataOffset)
        );
        b[12] = 6 << 4;
        assert_eq!(
            TcpSegment::new_checked(&b[..]).err(),
            Some(ParseError::TcpBadDataOffset)
        );
    }

    #[test]
    fn option_lengths() {
        let mut b = [0u8; 28];
        b[12] = 7 << 4;
        b[20..28].copy_from_slice(&[2, 4, 5, 0xb4, 3, 3, 20, 0]);
        assert_eq!(
            TcpSegment::new_checked(&b[..]).unwrap().window_scale(),
            Ok(Some(14))
        );
        b[20..22].copy_from_slice(&[2, 0]);
        assert_eq!(
            TcpSegment::new_checked(&b[..]).unwrap().window_scale(),
            Err(ParseError::TcpBadOption)
        );
    }
}
