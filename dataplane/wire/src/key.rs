//! The fixed-size flow key shared by the parser, the flow table and the classifier.
//!
//! Layout (40 bytes, `repr(C)`, no padding): IPv4 addresses are stored as IPv4-mapped IPv6
//! addresses (`::ffff:a.b.c.d`), so one layout holds both families and the family is implied
//! by the address. The parser rejects IPv6 packets that carry IPv4-mapped addresses (RFC 4291
//! §2.5.5.2 says they do not appear on the wire), so the two families can never collide.
//! The segment (VXLAN/Geneve VNI) is part of the key so that tenants with overlapping address
//! space never share flow state. Segment 0 is the underlay (untunnelled traffic); a tunnel whose
//! VNI is 0 shares it (see [`crate::parse`]).

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IP protocol numbers the dataplane treats specially.
pub mod proto {
    /// ICMP (IPv4).
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
    /// SCTP.
    pub const SCTP: u8 = 132;
}

const V4_MAPPED_PREFIX: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

/// Address family of a [`FlowKey`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4 (stored IPv4-mapped).
    V4,
    /// IPv6.
    V6,
}

/// Which way round a packet's key was relative to its canonical form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyOrder {
    /// The packet's source is the canonical "first" endpoint.
    AsIs,
    /// Source and destination were swapped to make the canonical form.
    Swapped,
}

/// A 5-tuple plus segment, fixed size for both address families.
///
/// For TCP/UDP/SCTP the ports are the L4 ports. For ICMP/ICMPv6 echo request/reply both ports
/// hold the echo identifier (so that the reversed key of a request is the key of its reply);
/// other ICMP messages carry ports 0 and the classifier reads type/code from
/// [`crate::Parsed::icmp`]. Protocols without ports (GRE, ESP, …) and non-first fragments carry
/// ports 0: see [`crate::Fragment`] for why those are never classified by port.
#[derive(Clone, Copy, Debug, Eq, Default, PartialOrd, Ord)]
#[repr(C)]
pub struct FlowKey {
    /// Source address (IPv4-mapped for IPv4).
    pub src: [u8; 16],
    /// Destination address (IPv4-mapped for IPv4).
    pub dst: [u8; 16],
    /// Source port (or echo id), host order.
    pub src_port: u16,
    /// Destination port (or echo id), host order.
    pub dst_port: u16,
    /// IP protocol number of the upper layer.
    pub proto: u8,
    /// Segment (VNI) big-endian 24 bits; 0 = underlay.
    pub segment: [u8; 3],
}

const _: () = assert!(core::mem::size_of::<FlowKey>() == 40);

/// Field-wise equality, written as five wide compares (the derived one compares the address
/// arrays byte-slice-wise); the flow table runs it on every lookup.
impl PartialEq for FlowKey {
    #[inline]
    fn eq(&self, o: &Self) -> bool {
        let tail = |k: &FlowKey| {
            u64::from(k.src_port)
                | u64::from(k.dst_port) << 16
                | u64::from(k.proto) << 32
                | u64::from(k.segment[0]) << 40
                | u64::from(k.segment[1]) << 48
                | u64::from(k.segment[2]) << 56
        };
        (u128::from_ne_bytes(self.src) ^ u128::from_ne_bytes(o.src))
            | (u128::from_ne_bytes(self.dst) ^ u128::from_ne_bytes(o.dst))
            | u128::from(tail(self) ^ tail(o))
            == 0
    }
}

/// Hashes exactly the fields `eq` compares (needed since `PartialEq` is hand-written).
impl core::hash::Hash for FlowKey {
    fn hash<H: core::hash::Hasher>(&self, h: &mut H) {
        self.src.hash(h);
        self.dst.hash(h);
        self.src_port.hash(h);
        self.dst_port.hash(h);
        self.proto.hash(h);
        self.segment.hash(h);
    }
}
const _: () = assert!(core::mem::align_of::<FlowKey>() == 2);

impl FlowKey {
    /// Size in bytes; asserted at compile time.
    pub const SIZE: usize = 40;

    /// Builds an IPv4 key.
    pub fn v4(src: [u8; 4], dst: [u8; 4], proto: u8, src_port: u16, dst_port: u16) -> Self {
        FlowKey {
            src: map_v4(src),
            dst: map_v4(dst),
            src_port,
            dst_port,
            proto,
            segment: [0; 3],
        }
    }

    /// Builds an IPv6 key.
    pub fn v6(src: [u8; 16], dst: [u8; 16], proto: u8, src_port: u16, dst_port: u16) -> Self {
        FlowKey {
            src,
            dst,
            src_port,
            dst_port,
            proto,
            segment: [0; 3],
        }
    }

    /// Builds a key from std addresses (both must be the same family).
    pub fn from_ips(src: IpAddr, dst: IpAddr, proto: u8, src_port: u16, dst_port: u16) -> Self {
        let a = |ip: IpAddr| match ip {
            IpAddr::V4(v) => map_v4(v.octets()),
            IpAddr::V6(v) => v.octets(),
        };
        FlowKey {
            src: a(src),
            dst: a(dst),
            src_port,
            dst_port,
            proto,
            segment: [0; 3],
        }
    }

    /// Returns the key with its segment set to `vni` (low 24 bits).
    pub fn with_segment(mut self, vni: u32) -> Self {
        self.set_segment(vni);
        self
    }

    /// Sets the segment (low 24 bits of `vni`).
    #[inline]
    pub fn set_segment(&mut self, vni: u32) {
        let b = vni.to_be_bytes();
        self.segment = [b[1], b[2], b[3]];
    }

    /// The segment (VNI) this key lives in; 0 = underlay.
    #[inline]
    pub fn segment(&self) -> u32 {
        u32::from_be_bytes([0, self.segment[0], self.segment[1], self.segment[2]])
    }

    /// Address family, implied by the source address.
    #[inline]
    pub fn family(&self) -> Family {
        if self.src[..12] == V4_MAPPED_PREFIX {
            Family::V4
        } else {
            Family::V6
        }
    }

    /// The source address as a std type.
    pub fn src_ip(&self) -> IpAddr {
        to_ip(&self.src)
    }

    /// The destination address as a std type.
    pub fn dst_ip(&self) -> IpAddr {
        to_ip(&self.dst)
    }

    /// The IPv4 source address, if this is an IPv4 key.
    #[inline]
    pub fn src_v4(&self) -> Option<[u8; 4]> {
        v4_of(&self.src)
    }

    /// The IPv4 destination address, if this is an IPv4 key.
    #[inline]
    pub fn dst_v4(&self) -> Option<[u8; 4]> {
        v4_of(&self.dst)
    }

    /// The key of the opposite direction (addresses and ports swapped).
    #[inline]
    pub fn reversed(&self) -> Self {
        FlowKey {
            src: self.dst,
            dst: self.src,
            src_port: self.dst_port,
            dst_port: self.src_port,
            proto: self.proto,
            segment: self.segment,
        }
    }

    /// Direction-normalised form: both directions of a flow give the same canonical key.
    /// The endpoint (address, port) that compares lower becomes the source; the returned
    /// [`KeyOrder`] says whether this packet was swapped to get there.
    #[inline]
    pub fn canonical(&self) -> (FlowKey, KeyOrder) {
        // Compare as big-endian integers: the same order as the byte arrays, without a
        // memcmp call.
        let (s, d) = (u128::from_be_bytes(self.src), u128::from_be_bytes(self.dst));
        let swap = s > d || (s == d && self.src_port > self.dst_port);
        if swap {
            (self.reversed(), KeyOrder::Swapped)
        } else {
            (*self, KeyOrder::AsIs)
        }
    }

    /// The key as five little-endian u64 words (for hashing).
    #[inline]
    pub fn words(&self) -> [u64; 5] {
        let w = |b: &[u8]| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            u64::from_le_bytes(a)
        };
        let mut tail = [0u8; 8];
        tail[0..2].copy_from_slice(&self.src_port.to_le_bytes());
        tail[2..4].copy_from_slice(&self.dst_port.to_le_bytes());
        tail[4] = self.proto;
        tail[5..8].copy_from_slice(&self.segment);
        [
            w(&self.src[0..8]),
            w(&self.src[8..16]),
            w(&self.dst[0..8]),
            w(&self.dst[8..16]),
            u64::from_le_bytes(tail),
        ]
    }
}

/// IPv4-mapped IPv6 form of an IPv4 address.
#[inline]
pub fn map_v4(a: [u8; 4]) -> [u8; 16] {
    let mut m = [0u8; 16];
    m[10] = 0xff;
    m[11] = 0xff;
    m[12..16].copy_from_slice(&a);
    m
}

/// True if a 16-byte address is IPv4-mapped.
#[inline]
pub fn is_v4_mapped(a: &[u8; 16]) -> bool {
    a[..12] == V4_MAPPED_PREFIX
}

fn v4_of(a: &[u8; 16]) -> Option<[u8; 4]> {
    if is_v4_mapped(a) {
        Some([a[12], a[13], a[14], a[15]])
    } else {
        None
    }
}

fn to_ip(a: &[u8; 16]) -> IpAddr {
    match v4_of(a) {
        Some(v) => IpAddr::V4(Ipv4Addr::from(v)),
        None => IpAddr::V6(Ipv6Addr::from(*a)),
    }
}

impl core::fmt::Display for FlowKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let (s, d) = (self.src_ip(), self.dst_ip());
        let ep = |f: &mut core::fmt::Formatter<'_>, ip: IpAddr, p: u16| match ip {
            IpAddr::V4(v) => write!(f, "{v}:{p}"),
            IpAddr::V6(v) => write!(f, "[{v}]:{p}"),
        };
        write!(f, "proto {} ", self.proto)?;
        ep(f, s, self.src_port)?;
        f.write_str(" -> ")?;
        ep(f, d, self.dst_port)?;
        if self.segment() != 0 {
            write!(f, " vni {}", self.segment())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_is_direction_independent() {
        let k = FlowKey::v4([10, 0, 0, 2], [10, 0, 0, 1], proto::TCP, 1234, 80);
        let (c1, o1) = k.canonical();
        let (c2, o2) = k.reversed().canonical();
        assert_eq!(c1, c2);
        assert_ne!(o1, o2);
        assert_eq!(c1.src_v4(), Some([10, 0, 0, 1]));
    }

    #[test]
    fn same_address_orders_by_port() {
        let k = FlowKey::v4([1, 1, 1, 1], [1, 1, 1, 1], proto::UDP, 9, 5);
        let (c, o) = k.canonical();
        assert_eq!(o, KeyOrder::Swapped);
        assert_eq!((c.src_port, c.dst_port), (5, 9));
    }

    #[test]
    fn family_and_segment() {
        let k = FlowKey::v4([1, 2, 3, 4], [5, 6, 7, 8], 6, 1, 2).with_segment(0xABCDEF);
        assert_eq!(k.family(), Family::V4);
        assert_eq!(k.segment(), 0xABCDEF);
        let k6 = FlowKey::v6([0x20; 16], [0x30; 16], 17, 1, 2);
        assert_eq!(k6.family(), Family::V6);
        assert_eq!(k.to_string(), "proto 6 1.2.3.4:1 -> 5.6.7.8:2 vni 11259375");
    }
}
