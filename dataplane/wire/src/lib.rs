//! rampart-wire: zero-copy packet views, the dataplane parser and frame builders.
//!
//! Nothing here needs DPDK: everything works on byte slices, so it is tested and fuzzed in
//! plain `cargo test` / `cargo fuzz`.
//!
//! # What the other crates use
//! - [`parse()`]`(frame, &ParseConfig) -> Result<Parsed, ParseError>`: one call per packet, no
//!   allocation, never panics, never reads past the frame. [`Parsed`] (`Copy`) carries the
//!   classified [`FlowKey`] (the inner frame for VXLAN/Geneve), VLAN ids, VNI, L3/L4 offsets,
//!   payload length, TCP flags/seq/ack/window/window-scale, ICMP type/code/echo id, fragment
//!   status and, for ICMP errors, the embedded packet's key ([`Parsed::icmp_inner`]).
//!   The fragment and tunnel policies are documented in [`mod@parse`].
//! - [`ParseError`]: one `Copy` variant per reason, with [`ParseError::COUNT`],
//!   [`ParseError::index`] and [`ParseError::name`] for counter arrays.
//! - [`FlowKey`]: 40 bytes for both families (IPv4 stored IPv4-mapped), with the VNI as
//!   segment; [`FlowKey::canonical`] gives the direction-normalised form and a [`KeyOrder`].
//! - Frame building without allocation: header `Repr`s ([`EthernetRepr`], [`Ipv4Repr`],
//!   [`Ipv6Repr`], [`TcpRepr`], [`UdpRepr`], [`IcmpRepr`], [`TunnelRepr`]) and the whole-frame
//!   helpers [`build_frame`] and [`encapsulate`]; checksums are always correct.
//! - Reject replies: [`build_tcp_rst`] and [`build_icmp_unreachable`] (IPv4 and IPv6, tunnels
//!   re-encapsulated), addressed back to the sender.
//!
//! # Views
//! Each header has a smoltcp-style view (`new_unchecked`, `new_checked`, `check_len`,
//! accessors over a private `field` module): [`EthernetFrame`], [`Ipv4Packet`],
//! [`Ipv6Packet`], [`TcpSegment`], [`UdpDatagram`], [`IcmpPacket`], [`VxlanHeader`],
//! [`GeneveHeader`]. Bytes from the wire only ever go through `new_checked`.

pub mod build;
pub mod checksum;
mod error;
pub mod ethernet;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
mod key;
pub mod parse;
mod reply;
pub mod tcp;
pub mod tunnel;
pub mod udp;

pub use build::{build_frame, build_ip, encapsulate, BuildError, IpSpec, L4Repr};
pub use error::ParseError;
pub use ethernet::{EthernetFrame, EthernetRepr, VlanTag};
pub use icmp::{IcmpPacket, IcmpRepr};
pub use ipv4::{Ipv4Packet, Ipv4Repr};
pub use ipv6::{Ipv6Packet, Ipv6Repr};
pub use key::{map_v4, proto, Family, FlowKey, KeyOrder};
pub use parse::{
    parse, parse_into, parse_plain, parse_plain_with, ArpPolicy, Fragment, FragmentPolicy,
    FrameKind, IcmpMeta, ParseConfig, Parsed, PlainIpv4, PlainPolicy, TcpMeta, TunnelInfo,
};
pub use reply::{build_icmp_unreachable, build_tcp_rst};
pub use tcp::{TcpRepr, TcpSegment};
pub use tunnel::{GeneveHeader, TunnelKind, TunnelRepr, VxlanHeader};
pub use udp::{UdpDatagram, UdpRepr};

const _: () = assert!(core::mem::size_of::<Parsed>() <= 168);
