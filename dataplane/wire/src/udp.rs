//! UDP datagrams (RFC 768) and the SCTP common header (RFC 9260), which carries ports too.

use crate::checksum;
use crate::{BuildError, ParseError};

mod field {
    use core::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const CHECKSUM: Range<usize> = 6..8;
}

/// UDP header length.
pub const HEADER_LEN: usize = 8;
/// SCTP common header length.
pub const SCTP_HEADER_LEN: usize = 12;

/// A read/write view of a UDP datagram.
#[derive(Debug, Clone)]
pub struct UdpDatagram<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpDatagram<T> {
    /// Wraps a buffer without checks.
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpDatagram { buffer }
    }

    /// Wraps a buffer and runs [`Self::check_len`].
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let d = Self::new_unchecked(buffer);
        d.check_len()?;
        Ok(d)
    }

    /// Checks the header is present and the length field neither undershoots the header
    /// nor overshoots the buffer (the IP payload).
    pub fn check_len(&self) -> Result<(), ParseError> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(ParseError::UdpTruncated);
        }
        let l = usize::from(self.len());
        if l < HEADER_LEN || l > len {
            return Err(ParseError::UdpBadLength);
        }
        Ok(())
    }

    fn u16_at(&self, r: core::ops::Range<usize>) -> u16 {
        let b = &self.buffer.as_ref()[r];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        self.u16_at(field::SRC_PORT)
    }
    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        self.u16_at(field::DST_PORT)
    }
    /// Length field (header + payload).
    pub fn len(&self) -> u16 {
        self.u16_at(field::LENGTH)
    }
    /// True if the length field says there is no payload.
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }
    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }
    /// Payload bounded by the length field.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.len())]
    }

    /// True if the checksum is right (or absent, which IPv4 allows).
    pub fn verify_checksum(&self, src: &[u8], dst: &[u8]) -> bool {
        if self.checksum() == 0 && src.len() == 4 {
            return true;
        }
        let b = &self.buffer.as_ref()[..usize::from(self.len())];
        let acc = checksum::pseudo_header(src, dst, crate::proto::UDP, b.len() as u32);
        checksum::finish(checksum::sum(acc, b)) == 0
    }
}

/// A UDP datagram to emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpRepr<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Payload.
    pub payload: &'a [u8],
}

impl UdpRepr<'_> {
    /// Header plus payload length.
    pub fn len(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }

    /// Always false: a datagram has a header.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes the header (and payload) with a checksum over the pseudo-header.
    pub fn emit(&self, src: &[u8], dst: &[u8], buf: &mut [u8]) -> Result<usize, BuildError> {
        let len = self.len();
        self.emit_header(src, dst, len, buf)?;
        buf[HEADER_LEN..len].copy_from_slice(self.payload);
        finish_checksum(src, dst, &mut buf[..len]);
        Ok(len)
    }

    /// Writes only the 8-byte header for a datagram of `len` bytes whose payload is already
    /// in place after it (used for encapsulation); the checksum is computed over it.
    pub fn emit_header(
        &self,
        _src: &[u8],
        _dst: &[u8],
        len: usize,
        buf: &mut [u8],
    ) -> Result<usize, BuildError> {
        if buf.len() < len || len < HEADER_LEN {
            return Err(BuildError::BufferTooSmall);
        }
        let l = u16::try_from(len).map_err(|_| BuildError::TooLong)?;
        buf[field::SRC_PORT].copy_from_slice(&self.src_port.to_be_bytes());
        buf[field::DST_PORT].copy_from_slice(&self.dst_port.to_be_bytes());
        buf[field::LENGTH].copy_from_slice(&l.to_be_bytes());
        buf[field::CHECKSUM].copy_from_slice(&[0, 0]);
        Ok(HEADER_LEN)
    }
}

/// Computes and stores the UDP checksum over a complete datagram.
pub fn finish_checksum(src: &[u8], dst: &[u8], dgram: &mut [u8]) {
    dgram[field::CHECKSUM].copy_from_slice(&[0, 0]);
    let acc = checksum::pseudo_header(src, dst, crate::proto::UDP, dgram.len() as u32);
    let mut c = checksum::finish(checksum::sum(acc, dgram));
    if c == 0 {
        c = 0xffff; // 0 means "no checksum" in UDP
    }
    dgram[field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
}

/// Reads the ports of an SCTP common header.
pub fn sctp_ports(b: &[u8]) -> Result<(u16, u16), ParseError> {
    if b.len() < SCTP_HEADER_LEN {
        return Err(ParseError::SctpTruncated);
    }
    Ok((
        u16::from_be_bytes([b[0], b[1]]),
        u16::from_be_bytes([b[2], b[3]]),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn construct_deconstruct_and_lies() {
        let mut b = [0u8; 12];
        let r = UdpRepr {
            src_port: 53,
            dst_port: 4000,
            payload: b"abcd",
        };
        assert_eq!(r.emit(&[1, 1, 1, 1], &[2, 2, 2, 2], &mut b), Ok(12));
        let d = UdpDatagram::new_checked(&b[..]).unwrap();
        assert_eq!((d.src_port(), d.dst_port(), d.len()), (53, 4000, 12));
        assert_eq!(d.payload(), b"abcd");
        assert!(d.verify_checksum(&[1, 1, 1, 1], &[2, 2, 2, 2]));
        assert_eq!(
            UdpDatagram::new_checked(&b[..7]).err(),
            Some(ParseError::UdpTruncated)
        );
        assert_eq!(
            UdpDatagram::new_checked(&b[..11]).err(),
            Some(ParseError::UdpBadLength)
        );
        let mut lie = b;
        lie[4..6].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(
            UdpDatagram::new_checked(&lie[..]).err(),
            Some(ParseError::UdpBadLength)
        );
        assert_eq!(
            sctp_ports(&[0, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0]),
            Ok((1, 2))
        );
        assert_eq!(sctp_ports(&[0; 11]), Err(ParseError::SctpTruncated));
    }
}
