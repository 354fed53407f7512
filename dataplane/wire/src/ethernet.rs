//! Ethernet II frames and 802.1Q / 802.1ad tags.

use crate::{BuildError, ParseError};

/// Ethertype values the parser knows.
pub mod ethertype {
    /// IPv4.
    pub const IPV4: u16 = 0x0800;
    /// ARP.
    pub const ARP: u16 = 0x0806;
    /// 802.1Q customer VLAN tag.
    pub const VLAN: u16 = 0x8100;
    /// IPv6.
    pub const IPV6: u16 = 0x86DD;
    /// 802.1ad service VLAN tag (QinQ outer).
    pub const QINQ: u16 = 0x88A8;
    /// Transparent Ethernet bridging (Geneve payload type for an Ethernet frame).
    pub const TEB: u16 = 0x6558;
}

mod field {
    use core::ops::Range;
    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const ETHERTYPE: Range<usize> = 12..14;
    pub const PAYLOAD: usize = 14;
    /// Within a 4-byte tag that follows a TPID: TCI then the next ethertype.
    pub const TAG_TCI: Range<usize> = 0..2;
    pub const TAG_NEXT: Range<usize> = 2..4;
}

/// Length of an untagged Ethernet header.
pub const HEADER_LEN: usize = field::PAYLOAD;
/// Length of one VLAN tag.
pub const TAG_LEN: usize = 4;

/// A read/write view of an Ethernet II frame.
#[derive(Debug, Clone)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps a buffer without checking its length.
    pub const fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }

    /// Wraps a buffer, checking it holds a full header.
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let f = Self::new_unchecked(buffer);
        f.check_len()?;
        Ok(f)
    }

    /// Checks the buffer holds a full untagged header.
    pub fn check_len(&self) -> Result<(), ParseError> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(ParseError::EthernetTruncated)
        } else {
            Ok(())
        }
    }

    /// Destination MAC.
    pub fn dst(&self) -> [u8; 6] {
        let mut m = [0; 6];
        m.copy_from_slice(&self.buffer.as_ref()[field::DST]);
        m
    }

    /// Source MAC.
    pub fn src(&self) -> [u8; 6] {
        let mut m = [0; 6];
        m.copy_from_slice(&self.buffer.as_ref()[field::SRC]);
        m
    }

    /// The ethertype (or TPID when tagged).
    pub fn ethertype(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::ETHERTYPE];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Everything after the first ethertype field.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

/// A view of one 4-byte VLAN tag body (TCI + next ethertype), i.e. the bytes after a TPID.
#[derive(Debug, Clone)]
pub struct VlanTagView<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VlanTagView<T> {
    /// Wraps a buffer, checking it holds a full tag.
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        if buffer.as_ref().len() < TAG_LEN {
            return Err(ParseError::VlanTruncated);
        }
        Ok(VlanTagView { buffer })
    }

    /// The 12-bit VLAN id.
    pub fn vid(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::TAG_TCI];
        u16::from_be_bytes([b[0], b[1]]) & 0x0fff
    }

    /// The 3-bit priority code point.
    pub fn pcp(&self) -> u8 {
        self.buffer.as_ref()[0] >> 5
    }

    /// The ethertype that follows the tag.
    pub fn next_ethertype(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::TAG_NEXT];
        u16::from_be_bytes([b[0], b[1]])
    }
}

/// One VLAN tag to emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VlanTag {
    /// TPID: [`ethertype::VLAN`] or [`ethertype::QINQ`].
    pub tpid: u16,
    /// VLAN id (12 bits).
    pub vid: u16,
    /// Priority (3 bits).
    pub pcp: u8,
}

/// An Ethernet header with up to two VLAN tags, for building frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetRepr {
    /// Source MAC.
    pub src: [u8; 6],
    /// Destination MAC.
    pub dst: [u8; 6],
    /// Outer tag (802.1ad or 802.1Q).
    pub outer_vlan: Option<VlanTag>,
    /// Inner tag (802.1Q), only with an outer tag.
    pub inner_vlan: Option<VlanTag>,
    /// Ethertype of the payload.
    pub ethertype: u16,
}

impl EthernetRepr {
    /// Header length including tags.
    pub fn header_len(&self) -> usize {
        HEADER_LEN
            + TAG_LEN
                * (usize::from(self.outer_vlan.is_some()) + usize::from(self.inner_vlan.is_some()))
    }

    /// Writes the header at the start of `buf`; returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, BuildError> {
        let len = self.header_len();
        if buf.len() < len {
            return Err(BuildError::BufferTooSmall);
        }
        buf[field::DST].copy_from_slice(&self.dst);
        buf[field::SRC].copy_from_slice(&self.src);
        let mut off = 12;
        for tag in [self.outer_vlan, self.inner_vlan].into_iter().flatten() {
            buf[off..off + 2].copy_from_slice(&tag.tpid.to_be_bytes());
            let tci = (u16::from(tag.pcp & 7) << 13) | (tag.vid & 0x0fff);
            buf[off + 2..off + 4].copy_from_slice(&tci.to_be_bytes());
            off += TAG_LEN;
        }
        buf[off..off + 2].copy_from_slice(&self.ethertype.to_be_bytes());
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emit_and_view_with_qinq() {
        let r = EthernetRepr {
            src: [2, 0, 0, 0, 0, 1],
            dst: [2, 0, 0, 0, 0, 2],
            outer_vlan: Some(VlanTag {
                tpid: ethertype::QINQ,
                vid: 100,
                pcp: 3,
            }),
            inner_vlan: Some(VlanTag {
                tpid: ethertype::VLAN,
                vid: 200,
                pcp: 0,
            }),
            ethertype: ethertype::IPV4,
        };
        let mut buf = [0u8; 22];
        assert_eq!(r.emit(&mut buf), Ok(22));
        let f = EthernetFrame::new_checked(&buf[..]).unwrap();
        assert_eq!(f.ethertype(), ethertype::QINQ);
        assert_eq!(f.src(), r.src);
        let t = VlanTagView::new_checked(f.payload()).unwrap();
        assert_eq!(
            (t.vid(), t.pcp(), t.next_ethertype()),
            (100, 3, ethertype::VLAN)
        );
        assert_eq!(r.emit(&mut [0u8; 21]), Err(BuildError::BufferTooSmall));
    }

    #[test]
    fn truncated() {
        assert_eq!(
            EthernetFrame::new_checked(&[0u8; 13][..]).err(),
            Some(ParseError::EthernetTruncated)
        );
        assert!(VlanTagView::new_checked(&[0u8; 3][..]).is_err());
    }
}
