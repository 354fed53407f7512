//! VXLAN (RFC 7348) and Geneve (RFC 8926) encapsulation headers.

use crate::{BuildError, ParseError};

/// IANA UDP port for VXLAN.
pub const VXLAN_PORT: u16 = 4789;
/// IANA UDP port for Geneve.
pub const GENEVE_PORT: u16 = 6081;
/// VXLAN header length.
pub const VXLAN_HEADER_LEN: usize = 8;
/// Geneve fixed header length (options follow).
pub const GENEVE_HEADER_LEN: usize = 8;

/// A view of a VXLAN header.
#[derive(Debug, Clone)]
pub struct VxlanHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VxlanHeader<T> {
    /// Wraps a buffer, checking the length and that the I flag (valid VNI) is set.
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let b = buffer.as_ref();
        if b.len() < VXLAN_HEADER_LEN || b[0] & 0x08 == 0 {
            return Err(ParseError::TunnelBadHeader);
        }
        Ok(VxlanHeader { buffer })
    }

    /// The 24-bit VNI.
    pub fn vni(&self) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_be_bytes([0, b[4], b[5], b[6]])
    }

    /// The encapsulated Ethernet frame.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[VXLAN_HEADER_LEN..]
    }
}

/// A view of a Geneve header with its options.
#[derive(Debug, Clone)]
pub struct GeneveHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> GeneveHeader<T> {
    /// Wraps a buffer, checking version 0 and that the options fit.
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let b = buffer.as_ref();
        if b.len() < GENEVE_HEADER_LEN || b[0] >> 6 != 0 {
            return Err(ParseError::TunnelBadHeader);
        }
        let h = GeneveHeader { buffer };
        if h.header_len() > h.buffer.as_ref().len() {
            return Err(ParseError::GeneveBadOptions);
        }
        Ok(h)
    }

    /// Header length including options.
    pub fn header_len(&self) -> usize {
        GENEVE_HEADER_LEN + usize::from(self.buffer.as_ref()[0] & 0x3f) * 4
    }

    /// Protocol type of the payload (an ethertype).
    pub fn protocol(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[2], b[3]])
    }

    /// The 24-bit VNI.
    pub fn vni(&self) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_be_bytes([0, b[4], b[5], b[6]])
    }

    /// The option bytes.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[GENEVE_HEADER_LEN..self.header_len()]
    }

    /// Walks the TLV options checking each length stays within the option area.
    pub fn check_options(&self) -> Result<(), ParseError> {
        let o = self.options();
        let mut i = 0;
        while i < o.len() {
            let h = o.get(i..i + 4).ok_or(ParseError::GeneveBadOptions)?;
            i += 4 + usize::from(h[3] & 0x1f) * 4;
        }
        if i == o.len() {
            Ok(())
        } else {
            Err(ParseError::GeneveBadOptions)
        }
    }

    /// The encapsulated payload.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

/// Which encapsulation to emit or was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TunnelKind {
    /// VXLAN (Ethernet payload).
    Vxlan,
    /// Geneve (payload type from the header).
    Geneve,
}

/// A VXLAN or Geneve header to emit. Geneve `options` must be a multiple of 4 bytes of
/// well-formed TLVs; the payload is always an Ethernet frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelRepr<'a> {
    /// Encapsulation.
    pub kind: TunnelKind,
    /// VNI (24 bits).
    pub vni: u32,
    /// Geneve options (ignored for VXLAN).
    pub options: &'a [u8],
}

impl TunnelRepr<'_> {
    /// Header length.
    pub fn header_len(&self) -> usize {
        match self.kind {
            TunnelKind::Vxlan => VXLAN_HEADER_LEN,
            TunnelKind::Geneve => GENEVE_HEADER_LEN + self.options.len(),
        }
    }

    /// The IANA UDP destination port.
    pub fn udp_port(&self) -> u16 {
        match self.kind {
            TunnelKind::Vxlan => VXLAN_PORT,
            TunnelKind::Geneve => GENEVE_PORT,
        }
    }

    /// Writes the header; returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, BuildError> {
        let len = self.header_len();
        if buf.len() < len {
            return Err(BuildError::BufferTooSmall);
        }
        let v = self.vni.to_be_bytes();
        match self.kind {
            TunnelKind::Vxlan => {
                buf[..8].copy_from_slice(&[0x08, 0, 0, 0, v[1], v[2], v[3], 0]);
            }
            TunnelKind::Geneve => {
                if !self.options.len().is_multiple_of(4) || self.options.len() > 63 * 4 {
                    return Err(BuildError::Unsupported);
                }
                let et = crate::ethernet::ethertype::TEB.to_be_bytes();
                let optlen = (self.options.len() / 4) as u8;
                buf[..8].copy_from_slice(&[optlen, 0, et[0], et[1], v[1], v[2], v[3], 0]);
                buf[8..len].copy_from_slice(self.options);
            }
        }
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vxlan() {
        let mut b = [0u8; 8];
        TunnelRepr {
            kind: TunnelKind::Vxlan,
            vni: 0xabcdef,
            options: &[],
        }
        .emit(&mut b)
        .unwrap();
        assert_eq!(VxlanHeader::new_checked(&b[..]).unwrap().vni(), 0xabcdef);
        b[0] = 0;
        assert_eq!(
            VxlanHeader::new_checked(&b[..]).err(),
            Some(ParseError::TunnelBadHeader)
        );
        assert!(VxlanHeader::new_checked(&b[..7]).is_err());
    }

    #[test]
    fn geneve_options() {
        let opts = [0x01, 0x02, 0x03, 0x01, 9, 9, 9, 9]; // one option with 4 bytes of data
        let mut b = [0u8; 16];
        TunnelRepr {
            kind: TunnelKind::Geneve,
            vni: 42,
            options: &opts,
        }
        .emit(&mut b)
        .unwrap();
        let g = GeneveHeader::new_checked(&b[..]).unwrap();
        assert_eq!((g.vni(), g.header_len(), g.protocol()), (42, 16, 0x6558));
        assert!(g.check_options().is_ok());
        b[11] = 0x02; // option claims 8 data bytes: overruns
        assert_eq!(
            GeneveHeader::new_checked(&b[..]).unwrap().check_options(),
            Err(ParseError::GeneveBadOptions)
        );
        assert_eq!(
            GeneveHeader::new_checked(&b[..12]).err(),
            Some(ParseError::GeneveBadOptions)
        );
        b[0] |= 0x40; // version 1
        assert_eq!(
            GeneveHeader::new_checked(&b[..]).err(),
            Some(ParseError::TunnelBadHeader)
        );
    }
}
