//! IPv6 packets (RFC 8200) and the walk over their extension-header chain.

use crate::key::is_v4_mapped;
use crate::{BuildError, ParseError};

mod field {
    use core::ops::Range;
    pub const VER_TC_FL: Range<usize> = 0..4;
    pub const PAYLOAD_LEN: Range<usize> = 4..6;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: Range<usize> = 8..24;
    pub const DST: Range<usize> = 24..40;
}

/// Fixed header length.
pub const HEADER_LEN: usize = 40;

/// Extension-header and upper-layer numbers used in the chain walk.
pub mod next_header {
    /// Hop-by-hop options.
    pub const HOP_BY_HOP: u8 = 0;
    /// Routing header.
    pub const ROUTING: u8 = 43;
    /// Fragment header.
    pub const FRAGMENT: u8 = 44;
    /// Authentication header (its length is in 4-byte units).
    pub const AH: u8 = 51;
    /// No next header.
    pub const NO_NEXT: u8 = 59;
    /// Destination options.
    pub const DEST_OPTS: u8 = 60;
    /// Mobility header.
    pub const MOBILITY: u8 = 135;
    /// Shim6.
    pub const SHIM6: u8 = 140;
}

/// A read/write view of an IPv6 packet.
#[derive(Debug, Clone)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wraps a buffer without checks.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    /// Wraps a buffer and runs [`Self::check_len`].
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks version and that the payload length fits the buffer. A payload length of 0
    /// with a hop-by-hop header would be a jumbogram, which Ethernet cannot carry: it is
    /// rejected by the parser when it sees the chain.
    pub fn check_len(&self) -> Result<(), ParseError> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(ParseError::Ipv6Truncated);
        }
        if self.version() != 6 {
            return Err(ParseError::Ipv6BadVersion);
        }
        if HEADER_LEN + usize::from(self.payload_len()) > len {
            return Err(ParseError::Ipv6BadPayloadLength);
        }
        Ok(())
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Version field.
    pub fn version(&self) -> u8 {
        self.b()[0] >> 4
    }

    /// Traffic class.
    pub fn traffic_class(&self) -> u8 {
        let b = &self.b()[field::VER_TC_FL];
        (b[0] << 4) | (b[1] >> 4)
    }

    /// Flow label (20 bits).
    pub fn flow_label(&self) -> u32 {
        let b = &self.b()[field::VER_TC_FL];
        u32::from_be_bytes([0, b[1] & 0x0f, b[2], b[3]])
    }

    /// Payload length field.
    pub fn payload_len(&self) -> u16 {
        let b = &self.b()[field::PAYLOAD_LEN];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// First next-header value.
    pub fn next_header(&self) -> u8 {
        self.b()[field::NEXT_HEADER]
    }

    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.b()[field::HOP_LIMIT]
    }

    /// Source address.
    pub fn src(&self) -> [u8; 16] {
        let mut a = [0; 16];
        a.copy_from_slice(&self.b()[field::SRC]);
        a
    }

    /// Destination address.
    pub fn dst(&self) -> [u8; 16] {
        let mut a = [0; 16];
        a.copy_from_slice(&self.b()[field::DST]);
        a
    }

    /// True if either address is IPv4-mapped, which never appears on the wire.
    pub fn has_mapped_address(&self) -> bool {
        is_v4_mapped(&self.src()) || is_v4_mapped(&self.dst())
    }

    /// Payload bounded by the payload length (trailing padding excluded).
    pub fn payload(&self) -> &[u8] {
        &self.b()[HEADER_LEN..HEADER_LEN + usize::from(self.payload_len())]
    }
}

/// What the extension-header walk found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtChain {
    /// Upper-layer protocol after the last extension header.
    pub protocol: u8,
    /// Offset of the upper layer within the IPv6 payload.
    pub offset: usize,
    /// Fragment header, if present: (identification, offset in bytes, more fragments).
    pub fragment: Option<(u32, u16, bool)>,
}

/// Walks the extension-header chain starting with `first` over `payload` (the IPv6 payload).
/// At most `max_headers` extension headers are accepted; every length is checked against the
/// payload so a lying length can never send the walk past the packet.
pub fn walk_extensions(first: u8, payload: &[u8], max_headers: u8) -> Result<ExtChain, ParseError> {
    let mut nh = first;
    let mut off = 0usize;
    let mut count = 0u8;
    let mut fragment = None;
    loop {
        let len = match nh {
            next_header::HOP_BY_HOP
            | next_header::ROUTING
            | next_header::DEST_OPTS
            | next_header::MOBILITY
            | next_header::SHIM6 => {
                if nh == next_header::HOP_BY_HOP && count != 0 {
                    return Err(ParseError::Ipv6MisplacedHopByHop);
                }
                let h = payload
                    .get(off..off + 2)
                    .ok_or(ParseError::Ipv6ExtTruncated)?;
                (usize::from(h[1]) + 1) * 8
            }
            next_header::AH => {
                let h = payload
                    .get(off..off + 2)
                    .ok_or(ParseError::Ipv6ExtTruncated)?;
                (usize::from(h[1]) + 2) * 4
            }
            next_header::FRAGMENT => {
                let h = payload
                    .get(off..off + 8)
                    .ok_or(ParseError::Ipv6ExtTruncated)?;
                let fo = u16::from_be_bytes([h[2], h[3]]);
                let id = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
                let (offset, more) = (fo & 0xfff8, fo & 1 != 0);
                // RFC 8200 §4.5: an "atomic fragment" (offset 0, M=0) is legal and is
                // processed as a whole packet, so it is not reported as a fragment.
                if offset != 0 || more {
                    fragment = Some((id, offset, more));
                }
                8
            }
            _ => {
                return Ok(ExtChain {
                    protocol: nh,
                    offset: off,
                    fragment,
                });
            }
        };
        count += 1;
        if count > max_headers {
            return Err(ParseError::Ipv6TooManyExtHeaders);
        }
        if off + len > payload.len() {
            return Err(ParseError::Ipv6ExtTruncated);
        }
        nh = payload[off];
        off += len;
        if let Some((_, o, _)) = fragment {
            if o != 0 {
                // Later fragments: what follows is not a header.
                return Ok(ExtChain {
                    protocol: nh,
                    offset: off,
                    fragment,
                });
            }
        }
    }
}

/// An IPv6 header to emit (no extension headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Repr {
    /// Source address.
    pub src: [u8; 16],
    /// Destination address.
    pub dst: [u8; 16],
    /// Next header (upper-layer protocol).
    pub next_header: u8,
    /// Payload length.
    pub payload_len: usize,
    /// Hop limit.
    pub hop_limit: u8,
    /// Traffic class.
    pub traffic_class: u8,
    /// Flow label (20 bits).
    pub flow_label: u32,
}

impl Ipv6Repr {
    /// A header with hop limit 64 and everything else zero.
    pub fn new(src: [u8; 16], dst: [u8; 16], next_header: u8, payload_len: usize) -> Self {
        Ipv6Repr {
            src,
            dst,
            next_header,
            payload_len,
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0,
        }
    }

    /// Writes the 40-byte header; returns 40.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, BuildError> {
        if buf.len() < HEADER_LEN {
            return Err(BuildError::BufferTooSmall);
        }
        let pl = u16::try_from(self.payload_len).map_err(|_| BuildError::TooLong)?;
        let vtf =
            (6u32 << 28) | (u32::from(self.traffic_class) << 20) | (self.flow_label & 0xfffff);
        buf[field::VER_TC_FL].copy_from_slice(&vtf.to_be_bytes());
        buf[field::PAYLOAD_LEN].copy_from_slice(&pl.to_be_bytes());
        buf[field::NEXT_HEADER] = self.next_header;
        buf[field::HOP_LIMIT] = self.hop_limit;
        buf[field::SRC].copy_from_slice(&self.src);
        buf[field::DST].copy_from_slice(&self.dst);
        Ok(HEADER_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn construct_and_deconstruct() {
        let mut b = [0u8; 48];
        let mut r = Ipv6Repr::new([0x20; 16], [0x30; 16], 17, 8);
        r.traffic_class = 0xab;
        r.flow_label = 0x12345;
        r.emit(&mut b).unwrap();
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(
            (p.version(), p.traffic_class(), p.flow_label()),
            (6, 0xab, 0x12345)
        );
        assert_eq!(
            (p.payload_len(), p.next_header(), p.hop_limit()),
            (8, 17, 64)
        );
        assert_eq!((p.src(), p.dst()), ([0x20; 16], [0x30; 16]));
        assert_eq!(
            Ipv6Packet::new_checked(&b[..39]).err(),
            Some(ParseError::Ipv6Truncated)
        );
        assert_eq!(
            Ipv6Packet::new_checked(&b[..47]).err(),
            Some(ParseError::Ipv6BadPayloadLength)
        );
    }

    #[test]
    fn chain_walk() {
        // HBH(8) -> DST(16) -> FRAG(8, first, M=1) -> AH(12) -> TCP
        let mut p = [0u8; 64];
        p[0] = next_header::DEST_OPTS; // HBH: next
        p[1] = 0;
        p[8] = next_header::FRAGMENT; // DST: next
        p[9] = 1; // 16 bytes
        p[24] = next_header::AH; // FRAG: next
        p[26..28].copy_from_slice(&1u16.to_be_bytes()); // offset 0, M=1
        p[28..32].copy_from_slice(&7u32.to_be_bytes());
        p[32] = 6; // AH: next = TCP
        p[33] = 1; // (1+2)*4 = 12
        let c = walk_extensions(next_header::HOP_BY_HOP, &p, 8).unwrap();
        assert_eq!(
            c,
            ExtChain {
                protocol: 6,
                offset: 44,
                fragment: Some((7, 0, true))
            }
        );
        assert_eq!(
            walk_extensions(next_header::HOP_BY_HOP, &p, 3),
            Err(ParseError::Ipv6TooManyExtHeaders)
        );
        assert_eq!(
            walk_extensions(next_header::HOP_BY_HOP, &p[..40], 8),
            Err(ParseError::Ipv6ExtTruncated)
        );
        // HBH after another header is invalid
        p[0] = next_header::HOP_BY_HOP;
        assert_eq!(
            walk_extensions(next_header::HOP_BY_HOP, &p, 8),
            Err(ParseError::Ipv6MisplacedHopByHop)
        );
    }

    #[test]
    fn lying_ext_length() {
        let p = [6u8, 255, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            walk_extensions(next_header::DEST_OPTS, &p, 8),
            Err(ParseError::Ipv6ExtTruncated)
        );
    }
}
