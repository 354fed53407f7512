//! IPv4 packets (RFC 791), options validated, fragments described.

use crate::checksum;
use crate::{BuildError, ParseError};

mod field {
    use core::ops::Range;
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const TOTAL_LEN: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    pub const FLG_OFF: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC: Range<usize> = 12..16;
    pub const DST: Range<usize> = 16..20;
}

/// Minimum header length.
pub const HEADER_LEN: usize = 20;

/// A read/write view of an IPv4 packet.
#[derive(Debug, Clone)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps a buffer without checks.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Wraps a buffer and runs [`Self::check_len`].
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks version, IHL and total length against the buffer (which may carry
    /// trailing Ethernet padding beyond `total_len`).
    pub fn check_len(&self) -> Result<(), ParseError> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(ParseError::Ipv4Truncated);
        }
        if self.version() != 4 {
            return Err(ParseError::Ipv4BadVersion);
        }
        let hl = self.header_len();
        if hl < HEADER_LEN || hl > len {
            return Err(ParseError::Ipv4BadIhl);
        }
        let tl = usize::from(self.total_len());
        if tl < hl || tl > len {
            return Err(ParseError::Ipv4BadTotalLength);
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

    /// Version field.
    pub fn version(&self) -> u8 {
        self.b()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.b()[field::VER_IHL] & 0x0f) * 4
    }

    /// DSCP/ECN byte.
    pub fn tos(&self) -> u8 {
        self.b()[field::TOS]
    }

    /// Total length field.
    pub fn total_len(&self) -> u16 {
        self.u16_at(field::TOTAL_LEN)
    }

    /// Identification field.
    pub fn ident(&self) -> u16 {
        self.u16_at(field::IDENT)
    }

    /// Don't-fragment flag.
    pub fn dont_frag(&self) -> bool {
        self.u16_at(field::FLG_OFF) & 0x4000 != 0
    }

    /// More-fragments flag.
    pub fn more_frags(&self) -> bool {
        self.u16_at(field::FLG_OFF) & 0x2000 != 0
    }

    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (self.u16_at(field::FLG_OFF) & 0x1fff) << 3
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.b()[field::TTL]
    }

    /// Upper-layer protocol.
    pub fn protocol(&self) -> u8 {
        self.b()[field::PROTOCOL]
    }

    /// Header checksum field.
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }

    /// Source address.
    pub fn src(&self) -> [u8; 4] {
        let b = &self.b()[field::SRC];
        [b[0], b[1], b[2], b[3]]
    }

    /// Destination address.
    pub fn dst(&self) -> [u8; 4] {
        let b = &self.b()[field::DST];
        [b[0], b[1], b[2], b[3]]
    }

    /// The options bytes (between the fixed header and IHL × 4).
    pub fn options(&self) -> &[u8] {
        &self.b()[HEADER_LEN..self.header_len()]
    }

    /// Walks the options: EOL ends the list, NOP is one byte, everything else must have a
    /// length ≥ 2 that stays inside the header (a length of 0 or 1 would loop forever).
    pub fn check_options(&self) -> Result<(), ParseError> {
        let opts = self.options();
        let mut i = 0;
        while i < opts.len() {
            match opts[i] {
                0 => return Ok(()),
                1 => i += 1,
                _ => {
                    let l = *opts.get(i + 1).ok_or(ParseError::Ipv4BadOption)? as usize;
                    if l < 2 || i + l > opts.len() {
                        return Err(ParseError::Ipv4BadOption);
                    }
                    i += l;
                }
            }
        }
        Ok(())
    }

    /// True if the header checksum is correct.
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(&self.b()[..self.header_len()]) == 0
    }

    /// The payload, bounded by the total length (trailing padding excluded).
    pub fn payload(&self) -> &[u8] {
        &self.b()[self.header_len()..usize::from(self.total_len())]
    }
}

/// An IPv4 header to emit (no options).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    /// Source address.
    pub src: [u8; 4],
    /// Destination address.
    pub dst: [u8; 4],
    /// Upper-layer protocol.
    pub protocol: u8,
    /// Length of everything after this header.
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
    /// Identification.
    pub ident: u16,
    /// Don't-fragment flag.
    pub dont_frag: bool,
    /// DSCP/ECN byte.
    pub tos: u8,
}

impl Ipv4Repr {
    /// A header with TTL 64, DF set and everything else zero.
    pub fn new(src: [u8; 4], dst: [u8; 4], protocol: u8, payload_len: usize) -> Self {
        Ipv4Repr {
            src,
            dst,
            protocol,
            payload_len,
            ttl: 64,
            ident: 0,
            dont_frag: true,
            tos: 0,
        }
    }

    /// Writes the 20-byte header with a correct checksum; returns 20.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, BuildError> {
        if buf.len() < HEADER_LEN {
            return Err(BuildError::BufferTooSmall);
        }
        let total =
            u16::try_from(HEADER_LEN + self.payload_len).map_err(|_| BuildError::TooLong)?;
        let b = &mut buf[..HEADER_LEN];
        b[field::VER_IHL] = 0x45;
        b[field::TOS] = self.tos;
        b[field::TOTAL_LEN].copy_from_slice(&total.to_be_bytes());
        b[field::IDENT].copy_from_slice(&self.ident.to_be_bytes());
        let flags: u16 = if self.dont_frag { 0x4000 } else { 0 };
        b[field::FLG_OFF].copy_from_slice(&flags.to_be_bytes());
        b[field::TTL] = self.ttl;
        b[field::PROTOCOL] = self.protocol;
        b[field::CHECKSUM].copy_from_slice(&[0, 0]);
        b[field::SRC].copy_from_slice(&self.src);
        b[field::DST].copy_from_slice(&self.dst);
        let c = checksum::checksum(b);
        b[field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
        Ok(HEADER_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> [u8; 28] {
        let mut b = [0u8; 28];
        Ipv4Repr::new([10, 0, 0, 1], [10, 0, 0, 2], 17, 8)
            .emit(&mut b)
            .unwrap();
        b
    }

    #[test]
    fn construct_and_deconstruct() {
        let b = sample();
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!((p.version(), p.header_len(), p.total_len()), (4, 20, 28));
        assert_eq!(
            (p.src(), p.dst(), p.protocol(), p.ttl()),
            ([10, 0, 0, 1], [10, 0, 0, 2], 17, 64)
        );
        assert!(p.dont_frag() && !p.more_frags() && p.frag_offset() == 0);
        assert!(p.verify_checksum());
        assert_eq!(p.payload().len(), 8);
    }

    #[test]
    fn truncated_overlong_and_lying_lengths() {
        let b = sample();
        assert_eq!(
            Ipv4Packet::new_checked(&b[..19]).err(),
            Some(ParseError::Ipv4Truncated)
        );
        // total_len says 28 but only 27 bytes present
        assert_eq!(
            Ipv4Packet::new_checked(&b[..27]).err(),
            Some(ParseError::Ipv4BadTotalLength)
        );
        // overlong buffer (Ethernet padding) is fine and payload stops at total_len
        let mut long = [0u8; 60];
        long[..28].copy_from_slice(&b);
        assert_eq!(
            Ipv4Packet::new_checked(&long[..]).unwrap().payload().len(),
            8
        );
        let mut bad = b;
        bad[0] = 0x44; // IHL 4
        assert_eq!(
            Ipv4Packet::new_checked(&bad[..]).err(),
            Some(ParseError::Ipv4BadIhl)
        );
        bad[0] = 0x4f; // IHL 15 = 60 bytes > buffer
        assert_eq!(
            Ipv4Packet::new_checked(&bad[..]).err(),
            Some(ParseError::Ipv4BadIhl)
        );
        bad[0] = 0x65;
        assert_eq!(
            Ipv4Packet::new_checked(&bad[..]).err(),
            Some(ParseError::Ipv4BadVersion)
        );
        let mut small_total = b;
        small_total[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(
            Ipv4Packet::new_checked(&small_total[..]).err(),
            Some(ParseError::Ipv4BadTotalLength)
        );
    }

    #[test]
    fn option_walk_rejects_loops() {
        let mut b = [0u8; 28];
        b[0] = 0x47; // IHL 7: 8 option bytes
        b[2..4].copy_from_slice(&28u16.to_be_bytes());
        b[20..28].copy_from_slice(&[1, 1, 7, 3, 0, 0, 0, 0]); // NOP NOP RR(len 3) EOL
        assert!(Ipv4Packet::new_checked(&b[..])
            .unwrap()
            .check_options()
            .is_ok());
        b[22..24].copy_from_slice(&[7, 0]); // zero length would loop
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).unwrap().check_options(),
            Err(ParseError::Ipv4BadOption)
        );
        b[22..24].copy_from_slice(&[7, 9]); // runs past the header
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).unwrap().check_options(),
            Err(ParseError::Ipv4BadOption)
        );
        b[20..28].copy_from_slice(&[1, 1, 1, 1, 1, 1, 1, 68]); // kind with no length byte
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).unwrap().check_options(),
            Err(ParseError::Ipv4BadOption)
        );
    }
}
