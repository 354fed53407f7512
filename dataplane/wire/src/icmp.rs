//! ICMP (RFC 792) and ICMPv6 (RFC 4443) messages.

use crate::checksum;
use crate::{BuildError, ParseError};

/// ICMP header length (type, code, checksum, 4 bytes of "rest of header").
pub const HEADER_LEN: usize = 8;

/// ICMPv4 message types used here.
pub mod v4 {
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 0;
    /// Destination unreachable.
    pub const DEST_UNREACHABLE: u8 = 3;
    /// Source quench (deprecated error).
    pub const SOURCE_QUENCH: u8 = 4;
    /// Redirect.
    pub const REDIRECT: u8 = 5;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 8;
    /// Time exceeded.
    pub const TIME_EXCEEDED: u8 = 11;
    /// Parameter problem.
    pub const PARAM_PROBLEM: u8 = 12;
    /// Timestamp request.
    pub const TIMESTAMP: u8 = 13;
    /// Timestamp reply.
    pub const TIMESTAMP_REPLY: u8 = 14;
    /// Code for "communication administratively prohibited" (RFC 1812).
    pub const CODE_ADMIN_PROHIBITED: u8 = 13;
}

/// ICMPv6 message types used here.
pub mod v6 {
    /// Destination unreachable.
    pub const DEST_UNREACHABLE: u8 = 1;
    /// Packet too big.
    pub const PACKET_TOO_BIG: u8 = 2;
    /// Time exceeded.
    pub const TIME_EXCEEDED: u8 = 3;
    /// Parameter problem.
    pub const PARAM_PROBLEM: u8 = 4;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 128;
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 129;
    /// Code for "administratively prohibited".
    pub const CODE_ADMIN_PROHIBITED: u8 = 1;
}

/// True for ICMP/ICMPv6 error messages, which embed the offending packet's headers.
pub fn is_error(v6: bool, ty: u8) -> bool {
    if v6 {
        (1..=4).contains(&ty)
    } else {
        matches!(
            ty,
            v4::DEST_UNREACHABLE
                | v4::SOURCE_QUENCH
                | v4::REDIRECT
                | v4::TIME_EXCEEDED
                | v4::PARAM_PROBLEM
        )
    }
}

/// True for query/response messages that carry an identifier (echo, timestamp) and so form
/// a pseudo-connection keyed by that identifier.
pub fn has_echo_id(v6: bool, ty: u8) -> bool {
    if v6 {
        matches!(ty, v6::ECHO_REQUEST | v6::ECHO_REPLY)
    } else {
        matches!(
            ty,
            v4::ECHO_REQUEST | v4::ECHO_REPLY | v4::TIMESTAMP | v4::TIMESTAMP_REPLY
        )
    }
}

/// True for the request half of an echo/timestamp exchange (the one that may open a flow).
pub fn is_request(v6: bool, ty: u8) -> bool {
    if v6 {
        ty == v6::ECHO_REQUEST
    } else {
        matches!(ty, v4::ECHO_REQUEST | v4::TIMESTAMP)
    }
}

/// A read/write view of an ICMP or ICMPv6 message.
#[derive(Debug, Clone)]
pub struct IcmpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    /// Wraps a buffer without checks.
    pub const fn new_unchecked(buffer: T) -> Self {
        IcmpPacket { buffer }
    }

    /// Wraps a buffer and runs [`Self::check_len`].
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks the 8-byte header is present.
    pub fn check_len(&self) -> Result<(), ParseError> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(ParseError::IcmpTruncated)
        } else {
            Ok(())
        }
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Message type.
    pub fn msg_type(&self) -> u8 {
        self.b()[0]
    }
    /// Message code.
    pub fn code(&self) -> u8 {
        self.b()[1]
    }
    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        u16::from_be_bytes([self.b()[2], self.b()[3]])
    }
    /// Echo identifier (first half of the rest-of-header).
    pub fn echo_id(&self) -> u16 {
        u16::from_be_bytes([self.b()[4], self.b()[5]])
    }
    /// Echo sequence number.
    pub fn echo_seq(&self) -> u16 {
        u16::from_be_bytes([self.b()[6], self.b()[7]])
    }
    /// Everything after the 8-byte header (for errors: the embedded packet).
    pub fn payload(&self) -> &[u8] {
        &self.b()[HEADER_LEN..]
    }

    /// Verifies an ICMPv4 checksum.
    pub fn verify_checksum_v4(&self) -> bool {
        checksum::checksum(self.b()) == 0
    }

    /// Verifies an ICMPv6 checksum with its pseudo-header.
    pub fn verify_checksum_v6(&self, src: &[u8; 16], dst: &[u8; 16]) -> bool {
        let b = self.b();
        let acc = checksum::pseudo_header(src, dst, crate::proto::ICMPV6, b.len() as u32);
        checksum::finish(checksum::sum(acc, b)) == 0
    }
}

/// An ICMP or ICMPv6 message to emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpRepr<'a> {
    /// Message type.
    pub msg_type: u8,
    /// Message code.
    pub code: u8,
    /// The 4 "rest of header" bytes (echo id + seq, unused, MTU, pointer…).
    pub rest: [u8; 4],
    /// Payload (echo data, or the embedded packet for errors).
    pub payload: &'a [u8],
}

impl<'a> IcmpRepr<'a> {
    /// An echo request/reply with the given id and sequence.
    pub fn echo(msg_type: u8, id: u16, seq: u16, payload: &'a [u8]) -> Self {
        let (i, s) = (id.to_be_bytes(), seq.to_be_bytes());
        IcmpRepr {
            msg_type,
            code: 0,
            rest: [i[0], i[1], s[0], s[1]],
            payload,
        }
    }

    /// Header plus payload length.
    pub fn len(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }

    /// Always false.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes the message. With 16-byte `src`/`dst` it is ICMPv6 (pseudo-header checksum);
    /// with 4-byte addresses ICMPv4 (checksum over the message only).
    pub fn emit(&self, src: &[u8], dst: &[u8], buf: &mut [u8]) -> Result<usize, BuildError> {
        let len = self.len();
        if buf.len() < len {
            return Err(BuildError::BufferTooSmall);
        }
        let b = &mut buf[..len];
        b[0] = self.msg_type;
        b[1] = self.code;
        b[2..4].copy_from_slice(&[0, 0]);
        b[4..8].copy_from_slice(&self.rest);
        b[8..].copy_from_slice(self.payload);
        let acc = if src.len() == 16 {
            checksum::pseudo_header(src, dst, crate::proto::ICMPV6, len as u32)
        } else {
            0
        };
        let c = checksum::finish(checksum::sum(acc, b));
        b[2..4].copy_from_slice(&c.to_be_bytes());
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_roundtrip_v4_and_v6() {
        let mut b = [0u8; 12];
        IcmpRepr::echo(v4::ECHO_REQUEST, 0x1234, 7, b"ping")
            .emit(&[1; 4], &[2; 4], &mut b)
            .unwrap();
        let p = IcmpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(
            (p.msg_type(), p.code(), p.echo_id(), p.echo_seq()),
            (8, 0, 0x1234, 7)
        );
        assert!(p.verify_checksum_v4());
        IcmpRepr::echo(v6::ECHO_REQUEST, 1, 2, b"ping")
            .emit(&[1; 16], &[2; 16], &mut b)
            .unwrap();
        let p = IcmpPacket::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum_v6(&[1; 16], &[2; 16]));
        assert!(!p.verify_checksum_v6(&[1; 16], &[3; 16]));
        assert_eq!(
            IcmpPacket::new_checked(&b[..7]).err(),
            Some(ParseError::IcmpTruncated)
        );
    }

    #[test]
    fn classes() {
        assert!(is_error(false, 3) && is_error(false, 11) && !is_error(false, 8));
        assert!(is_error(true, 1) && is_error(true, 2) && !is_error(true, 128));
        assert!(has_echo_id(true, 129) && !has_echo_id(true, 135));
        assert!(is_request(false, 8) && !is_request(false, 0));
    }
}
