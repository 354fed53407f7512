//! The one-call frame parser the worker runs on every packet.
//!
//! [`parse`] walks Ethernet → (up to two VLAN tags) → IPv4/IPv6 (options, extension
//! headers, fragments) → TCP/UDP/SCTP/ICMP/ICMPv6, decapsulates one level of VXLAN or Geneve,
//! and fills a small `Copy` [`Parsed`]. It never allocates, never panics on any input
//! (fuzzed), and never reads outside `frame`: every length field is checked against the
//! bytes actually present before it is used.
//!
//! # Fragments
//! The first fragment carries the transport header and is parsed like any packet (its
//! [`Parsed::frag`] is [`Fragment::First`]). A first fragment too short to hold the transport
//! header's ports is rejected as [`ParseError::TinyFragment`] (RFC 1858). Later fragments carry
//! no ports. With [`FragmentPolicy::Drop`] (the default) they are rejected as
//! [`ParseError::NonFirstFragment`]; with [`FragmentPolicy::Deliver`] they are returned with
//! [`Fragment::Later`] and ports 0, and the pipeline must not classify them by port (it may
//! only apply address/protocol rules, or give them the first fragment's verdict, which is
//! what `rampart_flow::FragmentCache` remembers).
//!
//! # Tunnels
//! A UDP datagram to the configured VXLAN or Geneve port is decapsulated once: the inner
//! frame is what is parsed and classified, [`Parsed::vni`] holds the VNI and the key's segment
//! is the VNI (a VNI of 0 shares segment 0 with untunnelled traffic). VLAN ids are those of the
//! outer (underlay) frame. A tunnel inside the tunnel is not decapsulated again: it is
//! classified as the plain UDP flow it is.

use crate::ethernet::{ethertype, EthernetFrame, VlanTagView, TAG_LEN};
use crate::icmp::{self, IcmpPacket};
use crate::ipv4::Ipv4Packet;
use crate::ipv6::{self, Ipv6Packet};
use crate::key::{proto, FlowKey};
use crate::tcp::TcpSegment;
use crate::tunnel::{GeneveHeader, TunnelKind, VxlanHeader};
use crate::udp::{self, UdpDatagram};
use crate::ParseError;

/// What to do with ARP frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpPolicy {
    /// Return them as [`FrameKind::Arp`] so the pipeline can forward them (no conntrack).
    Pass,
    /// Reject them as [`ParseError::ArpDropped`].
    Drop,
}

/// What to do with non-first IP fragments (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FragmentPolicy {
    /// Reject as [`ParseError::NonFirstFragment`].
    Drop,
    /// Return with [`Fragment::Later`] and ports 0.
    Deliver,
}

/// Parser settings; set once at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseConfig {
    /// ARP handling.
    pub arp: ArpPolicy,
    /// Non-first fragment handling.
    pub fragments: FragmentPolicy,
    /// UDP port that marks VXLAN (None: never decapsulate VXLAN).
    pub vxlan_port: Option<u16>,
    /// UDP port that marks Geneve (None: never decapsulate Geneve).
    pub geneve_port: Option<u16>,
    /// Verify IPv4 header checksums (off by default: NICs check them).
    pub verify_ipv4_checksum: bool,
    /// Maximum IPv6 extension headers before [`ParseError::Ipv6TooManyExtHeaders`].
    pub max_ipv6_ext_headers: u8,
}

impl Default for ParseConfig {
    fn default() -> Self {
        ParseConfig {
            arp: ArpPolicy::Pass,
            fragments: FragmentPolicy::Drop,
            vxlan_port: Some(crate::tunnel::VXLAN_PORT),
            geneve_port: Some(crate::tunnel::GENEVE_PORT),
            verify_ipv4_checksum: false,
            max_ipv6_ext_headers: 8,
        }
    }
}

/// What kind of frame was parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// IPv4 or IPv6: the key is meaningful.
    Ip,
    /// ARP (only with [`ArpPolicy::Pass`]): the key is all zeros; forward without conntrack.
    Arp,
}

/// Fragment status of the (classified) IP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fragment {
    /// Not a fragment.
    None,
    /// First fragment (offset 0, more fragments): ports are present.
    First {
        /// IP identification (16 bits for IPv4, 32 for IPv6).
        id: u32,
    },
    /// Later fragment: no transport header, key ports are 0 and must not be classified.
    Later {
        /// IP identification.
        id: u32,
        /// Fragment offset in bytes.
        offset: u16,
    },
}

/// TCP header fields the conntrack needs (zero for other protocols).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpMeta {
    /// Flag byte (see [`crate::tcp::flags`]).
    pub flags: u8,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number.
    pub ack: u32,
    /// Window field (unscaled).
    pub window: u16,
    /// Window-scale option, if present (SYN segments).
    pub wscale: Option<u8>,
}

/// ICMP/ICMPv6 header fields (zero for other protocols).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IcmpMeta {
    /// Message type.
    pub msg_type: u8,
    /// Message code.
    pub code: u8,
    /// Echo/timestamp identifier, for messages that have one.
    pub echo_id: Option<u16>,
}

/// Where the outer headers of a decapsulated frame are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelInfo {
    /// VXLAN or Geneve.
    pub kind: TunnelKind,
    /// Offset of the outer IP header.
    pub outer_l3_offset: u16,
    /// Offset of the outer UDP header.
    pub outer_l4_offset: u16,
    /// Offset of the encapsulated payload (inner Ethernet, or inner IP for Geneve with an IP
    /// protocol type).
    pub inner_offset: u16,
}

/// Everything the pipeline needs from one frame. Offsets are from the start of the frame and
/// describe the classified (inner, for tunnels) packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    /// IP or ARP.
    pub kind: FrameKind,
    /// The classified flow key (inner packet for tunnels, segment = VNI).
    pub key: FlowKey,
    /// For ICMP errors: the key of the embedded packet that caused it (in that packet's own
    /// direction), so the pipeline can find the flow it relates to.
    pub icmp_inner: Option<FlowKey>,
    /// Outer VLAN id (802.1ad S-tag, or the only 802.1Q tag).
    pub vlan_outer: Option<u16>,
    /// Inner VLAN id (802.1Q C-tag under an outer tag).
    pub vlan_inner: Option<u16>,
    /// VNI of the tunnel the packet came in.
    pub vni: Option<u32>,
    /// Outer header positions for tunnelled frames.
    pub tunnel: Option<TunnelInfo>,
    /// Offset of the Ethernet header of the classified frame (0 unless tunnelled).
    pub l2_offset: u16,
    /// Offset of the IP header.
    pub l3_offset: u16,
    /// Offset of the transport header.
    pub l4_offset: u16,
    /// Bytes of transport payload (after the TCP/UDP/ICMP header); for non-TCP/UDP/ICMP the
    /// bytes after the IP headers.
    pub payload_len: u16,
    /// Length of the IP packet (header + payload, trailing padding excluded).
    pub l3_len: u16,
    /// Total frame length.
    pub frame_len: u16,
    /// Fragment status.
    pub frag: Fragment,
    /// TCP fields.
    pub tcp: TcpMeta,
    /// ICMP fields.
    pub icmp: IcmpMeta,
}

impl Parsed {
    /// A zeroed value, e.g. to initialise scratch arrays for [`parse_into`].
    pub const EMPTY: Parsed = Parsed {
        kind: FrameKind::Ip,
        key: FlowKey {
            src: [0; 16],
            dst: [0; 16],
            src_port: 0,
            dst_port: 0,
            proto: 0,
            segment: [0; 3],
        },
        icmp_inner: None,
        vlan_outer: None,
        vlan_inner: None,
        vni: None,
        tunnel: None,
        l2_offset: 0,
        l3_offset: 0,
        l4_offset: 0,
        payload_len: 0,
        l3_len: 0,
        frame_len: 0,
        frag: Fragment::None,
        tcp: TcpMeta {
            flags: 0,
            seq: 0,
            ack: 0,
            window: 0,
            wscale: None,
        },
        icmp: IcmpMeta {
            msg_type: 0,
            code: 0,
            echo_id: None,
        },
    };

    /// True for IPv6 packets.
    pub fn is_ipv6(&self) -> bool {
        self.key.family() == crate::Family::V6
    }
}

/// Parses one frame. See the module docs for the fragment and tunnel policies.
#[inline]
pub fn parse(frame: &[u8], cfg: &ParseConfig) -> Result<Parsed, ParseError> {
    let mut p = Parsed::EMPTY;
    parse_into(frame, cfg, &mut p)?;
    Ok(p)
}

/// [`parse`] into a caller-owned `Parsed` (e.g. the worker's per-burst scratch array), which
/// saves copying the result out. On error `out` holds partial results and must be ignored.
pub fn parse_into(frame: &[u8], cfg: &ParseConfig, out: &mut Parsed) -> Result<(), ParseError> {
    if let Some(plain) = parse_plain(frame, cfg) {
        plain.write_into(frame.len() as u16, out);
        return Ok(());
    }
    if frame.len() > usize::from(u16::MAX) {
        return Err(ParseError::FrameTooLong);
    }
    reset(out);
    out.frame_len = frame.len() as u16;
    parse_general(frame, cfg, out)
}

/// Sets every field of `out` to [`Parsed::EMPTY`]'s.
#[inline(always)]
fn reset(out: &mut Parsed) {
    // Field by field: assigning the whole ~170-byte constant compiles to a memcpy call per
    // packet. The pattern names every field (no `..`), so a new field cannot be forgotten here.
    let Parsed {
        kind,
        key,
        icmp_inner,
        vlan_outer,
        vlan_inner,
        vni,
        tunnel,
        l2_offset,
        l3_offset,
        l4_offset,
        payload_len,
        l3_len,
        frame_len,
        frag,
        tcp,
        icmp,
    } = out;
    const E: Parsed = Parsed::EMPTY;
    (*kind, *key, *icmp_inner, *vlan_outer, *vlan_inner) =
        (E.kind, E.key, E.icmp_inner, E.vlan_outer, E.vlan_inner);
    (*vni, *tunnel, *l2_offset, *l3_offset, *l4_offset) =
        (E.vni, E.tunnel, E.l2_offset, E.l3_offset, E.l4_offset);
    (*payload_len, *l3_len, *frag, *tcp, *icmp, *frame_len) =
        (E.payload_len, E.l3_len, E.frag, E.tcp, E.icmp, E.frame_len);
}

/// Every frame the fast path declines; `out` freshly reset.
#[inline(always)]
fn parse_general(frame: &[u8], cfg: &ParseConfig, out: &mut Parsed) -> Result<(), ParseError> {
    let (et, l3) = parse_l2(frame, 0, Some(&mut *out))?;
    parse_after_l2(frame, et, l3, cfg, out, true)
}

/// What [`parse_plain`] reads from the common frame: everything [`Parsed`] holds for it (the
/// rest of a `Parsed` is its empty value), in 32 bytes instead of ~170. The worker looks an
/// established flow up and tracks it from this alone, and writes the full `Parsed` (with
/// [`PlainIpv4::write_into`]) only for packets that go on to classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PlainIpv4 {
    /// Source address.
    pub src: [u8; 4],
    /// Destination address.
    pub dst: [u8; 4],
    /// TCP fields (zero for UDP).
    pub tcp: TcpMeta,
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// IPv4 total length.
    pub l3_len: u16,
    /// Transport payload bytes.
    pub payload_len: u16,
    /// `proto::TCP` or `proto::UDP`.
    pub proto: u8,
}

impl PlainIpv4 {
    /// Writes the `Parsed` that [`parse_into`] gives for this frame (`frame_len` is the
    /// frame's length): every field, so `out` may hold anything before.
    #[inline]
    pub fn write_into(&self, frame_len: u16, out: &mut Parsed) {
        let key = FlowKey::v4(self.src, self.dst, self.proto, self.src_port, self.dst_port);
        Self::write_parts(
            &key,
            self.tcp,
            self.l3_len,
            self.payload_len,
            frame_len,
            out,
        );
    }

    /// [`Self::write_into`] from the fields kept elsewhere: the key `FlowKey::v4(src, dst,
    /// proto, src_port, dst_port)` (as the packet carried it), `tcp`, `l3_len` and
    /// `payload_len`. For a caller that already holds the key (the worker's prepared key).
    #[inline]
    pub fn write_parts(
        key: &FlowKey,
        tcp: TcpMeta,
        l3_len: u16,
        payload_len: u16,
        frame_len: u16,
        out: &mut Parsed,
    ) {
        reset(out);
        out.frame_len = frame_len;
        out.tcp = tcp;
        out.key = *key;
        out.l3_offset = crate::ethernet::HEADER_LEN as u16;
        out.l4_offset = (crate::ethernet::HEADER_LEN + crate::ipv4::HEADER_LEN) as u16;
        out.l3_len = l3_len;
        out.payload_len = payload_len;
    }
}

/// The settings [`parse_plain_with`] reads, resolved once from a [`ParseConfig`] so that no
/// policy costs the fast path a test of its own per frame: the checksum policy is folded into
/// the IPv4 header compare, the tunnel ports into plain port compares. Keep it where the
/// compiler cannot see its value (e.g. in a struct built at start-up): from a constant it
/// turns the folded compares back into separate flag tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlainPolicy {
    /// The bits of frame bytes 14..22 (little-endian) that the fast path tests: version and
    /// IHL, MF and the fragment offset. With checksum verification on, none (and `head` is
    /// a value no masked header has: the fast path verifies no checksum, so it takes no frame).
    mask: u64,
    /// Those bits in a frame the fast path takes: version 4, IHL 5, not a fragment.
    head: u64,
    /// The UDP destination ports that mark a tunnel (the general path decapsulates them);
    /// `NO_PORT` (no u16 equals it) for an unset one.
    tunnel: [u32; 2],
}

/// A [`PlainPolicy::tunnel`] entry that matches no port.
const NO_PORT: u32 = 1 << 16;

impl ParseConfig {
    /// This configuration's settings for [`parse_plain_with`].
    #[inline]
    pub fn plain_policy(&self) -> PlainPolicy {
        let port = |p: Option<u16>| p.map_or(NO_PORT, u32::from);
        let (mask, head) = if self.verify_ipv4_checksum {
            (0, 1)
        } else {
            // Byte 14: version/IHL; byte 20: flags (DF may be set) and offset high bits;
            // byte 21: offset low bits.
            (0xff3f_0000_0000_00ff, 0x45)
        };
        PlainPolicy {
            mask,
            head,
            tunnel: [port(self.vxlan_port), port(self.geneve_port)],
        }
    }
}

/// The common case in one pass: an untagged Ethernet frame with an IPv4 header without
/// options, not a fragment, carrying TCP without options or UDP that is not a tunnel. Returns
/// None for anything else (including every malformed frame, so errors come from the general
/// path only). [`parse_into`] tries it first; its result, written with
/// [`PlainIpv4::write_into`], is exactly what the general path gives (a property test below
/// compares the two on mutated frames; the etherparse differential and the unit tests run
/// through it too). A caller parsing many frames under one configuration resolves it once
/// and calls [`parse_plain_with`].
#[inline(always)]
pub fn parse_plain(frame: &[u8], cfg: &ParseConfig) -> Option<PlainIpv4> {
    parse_plain_with(frame, &cfg.plain_policy())
}

/// [`parse_plain`] with the configuration resolved by [`ParseConfig::plain_policy`].
#[inline(always)]
pub fn parse_plain_with(frame: &[u8], policy: &PlainPolicy) -> Option<PlainIpv4> {
    const L3: usize = crate::ethernet::HEADER_LEN;
    const L4: usize = L3 + crate::ipv4::HEADER_LEN;
    // Both bounds in one compare: the headers are there, and the length fits the u16 that
    // `Parsed::frame_len` is (the general path refuses longer frames).
    if frame.len().wrapping_sub(L4) > usize::from(u16::MAX) - L4 {
        return None;
    }
    let h = frame.first_chunk::<L4>()?;
    // Ethertype IPv4; version 4 with IHL 5, MF clear and offset 0 (the DF bit may be set),
    // and the checksum policy (see `PlainPolicy`) in one wide compare instead of three.
    // From an 8-byte array, not eight bytes: built byte by byte, the compiler reassembled
    // it from narrower loads.
    let ip = u64::from_le_bytes(h[L3..L3 + 8].try_into().unwrap_or([0; 8]));
    if h[12..14] != [0x08, 0x00] || ip & policy.mask != policy.head {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([h[L3 + 2], h[L3 + 3]]));
    if L3 + total > frame.len() {
        return None;
    }
    let protocol = h[L3 + 9];
    // Each protocol checks that the IPv4 length holds its header (which also covers the IPv4
    // header itself), and so that the frame does.
    // The TCP fields leave the match as plain values and are put together after it: with
    // `TcpMeta`s built in each arm, `seq` and `ack` were merged from the two arms separately
    // (and then stored separately, see `seq_ack`).
    let (seq_ack, flags, window, sport, dport, payload) = match protocol {
        proto::TCP => {
            if total < crate::ipv4::HEADER_LEN + crate::tcp::HEADER_LEN {
                return None;
            }
            let t = frame[L4..].first_chunk::<{ crate::tcp::HEADER_LEN }>()?;
            if t[12] >> 4 != 5 {
                return None; // options (e.g. window scale) or a bad offset: general path
            }
            (
                // Sequence and acknowledgement numbers in one load: `PacketInfo` keeps them
                // side by side in the order that lets them be stored in one go too.
                u64::from_be_bytes([t[4], t[5], t[6], t[7], t[8], t[9], t[10], t[11]]),
                t[13],
                u16::from_be_bytes([t[14], t[15]]),
                u16::from_be_bytes([t[0], t[1]]),
                u16::from_be_bytes([t[2], t[3]]),
                total - crate::ipv4::HEADER_LEN - crate::tcp::HEADER_LEN,
            )
        }
        proto::UDP => {
            if total < crate::ipv4::HEADER_LEN + udp::HEADER_LEN {
                return None;
            }
            let u = frame[L4..].first_chunk::<{ udp::HEADER_LEN }>()?;
            let len = usize::from(u16::from_be_bytes([u[4], u[5]]));
            let dport = u16::from_be_bytes([u[2], u[3]]);
            if len < udp::HEADER_LEN
                || len > total - crate::ipv4::HEADER_LEN
                || u32::from(dport) == policy.tunnel[0]
                || u32::from(dport) == policy.tunnel[1]
            {
                return None;
            }
            (
                0,
                0,
                0,
                u16::from_be_bytes([u[0], u[1]]),
                dport,
                len - udp::HEADER_LEN,
            )
        }
        _ => return None,
    };
    let tcp = TcpMeta {
        flags,
        seq: (seq_ack >> 32) as u32,
        ack: seq_ack as u32,
        window,
        wscale: None,
    };
    Some(PlainIpv4 {
        src: [h[L3 + 12], h[L3 + 13], h[L3 + 14], h[L3 + 15]],
        dst: [h[L3 + 16], h[L3 + 17], h[L3 + 18], h[L3 + 19]],
        tcp,
        src_port: sport,
        dst_port: dport,
        l3_len: total as u16,
        payload_len: payload as u16,
        proto: protocol,
    })
}

/// Ethernet + up to two tags starting at `off`; returns (ethertype, offset of L3). Records the
/// VLAN ids into `p` when given (outer frame only).
#[inline(always)]
fn parse_l2(frame: &[u8], off: usize, p: Option<&mut Parsed>) -> Result<(u16, usize), ParseError> {
    let eth = EthernetFrame::new_checked(&frame[off..])?;
    let mut et = eth.ethertype();
    let mut l3 = off + crate::ethernet::HEADER_LEN;
    let mut vids = [None, None];
    let mut n = 0;
    while et == ethertype::VLAN || et == ethertype::QINQ {
        if n == 2 {
            return Err(ParseError::VlanTooDeep);
        }
        let tag = VlanTagView::new_checked(&frame[l3..])?;
        vids[n] = Some(tag.vid());
        et = tag.next_ethertype();
        l3 += TAG_LEN;
        n += 1;
    }
    if let Some(p) = p {
        p.vlan_outer = vids[0];
        p.vlan_inner = vids[1];
    }
    Ok((et, l3))
}

#[inline(always)]
fn parse_after_l2(
    frame: &[u8],
    et: u16,
    l3: usize,
    cfg: &ParseConfig,
    p: &mut Parsed,
    outer: bool,
) -> Result<(), ParseError> {
    p.l3_offset = l3 as u16;
    match et {
        ethertype::IPV4 => parse_ipv4(frame, l3, cfg, p, outer),
        ethertype::IPV6 => parse_ipv6(frame, l3, cfg, p, outer),
        ethertype::ARP => match cfg.arp {
            ArpPolicy::Pass => {
                p.kind = FrameKind::Arp;
                p.key = Parsed::EMPTY.key;
                Ok(())
            }
            ArpPolicy::Drop => Err(ParseError::ArpDropped),
        },
        _ => Err(ParseError::UnsupportedEthertype),
    }
}

#[inline(always)]
fn parse_ipv4(
    frame: &[u8],
    l3: usize,
    cfg: &ParseConfig,
    p: &mut Parsed,
    outer: bool,
) -> Result<(), ParseError> {
    let ip = Ipv4Packet::new_checked(&frame[l3..])?;
    if ip.header_len() > crate::ipv4::HEADER_LEN {
        ip.check_options()?;
    }
    if cfg.verify_ipv4_checksum && !ip.verify_checksum() {
        return Err(ParseError::Ipv4BadChecksum);
    }
    let hl = ip.header_len();
    let payload = ip.payload();
    let (id, off, more) = (u32::from(ip.ident()), ip.frag_offset(), ip.more_frags());
    let frag = fragment(id, off, more, payload.len(), cfg)?;
    p.key = FlowKey::v4(ip.src(), ip.dst(), ip.protocol(), 0, 0);
    p.l3_len = ip.total_len();
    parse_l4(frame, l3 + hl, payload, frag, cfg, p, outer)
}

#[inline(always)]
fn parse_ipv6(
    frame: &[u8],
    l3: usize,
    cfg: &ParseConfig,
    p: &mut Parsed,
    outer: bool,
) -> Result<(), ParseError> {
    let ip = Ipv6Packet::new_checked(&frame[l3..])?;
    if ip.has_mapped_address() {
        return Err(ParseError::Ipv6MappedAddress);
    }
    let payload = ip.payload();
    let chain = ipv6::walk_extensions(ip.next_header(), payload, cfg.max_ipv6_ext_headers)?;
    let frag = match chain.fragment {
        Some((id, off, more)) => fragment(id, off, more, payload.len() - chain.offset, cfg)?,
        None => Fragment::None,
    };
    p.key = FlowKey::v6(ip.src(), ip.dst(), chain.protocol, 0, 0);
    p.l3_len = (ipv6::HEADER_LEN + payload.len()) as u16;
    let l4 = l3 + ipv6::HEADER_LEN + chain.offset;
    parse_l4(frame, l4, &payload[chain.offset..], frag, cfg, p, outer)
}

#[inline(always)]
fn fragment(
    id: u32,
    off: u16,
    more: bool,
    len: usize,
    cfg: &ParseConfig,
) -> Result<Fragment, ParseError> {
    if usize::from(off) + len > usize::from(u16::MAX) {
        return Err(ParseError::BadFragment);
    }
    Ok(match (off, more) {
        (0, false) => Fragment::None,
        (0, true) => Fragment::First { id },
        (offset, _) => match cfg.fragments {
            FragmentPolicy::Drop => return Err(ParseError::NonFirstFragment),
            FragmentPolicy::Deliver => Fragment::Later { id, offset },
        },
    })
}

/// Maps "transport header cut short" to TinyFragment when the packet is a first fragment.
fn tiny(frag: Fragment, e: ParseError) -> ParseError {
    if matches!(frag, Fragment::First { .. }) {
        ParseError::TinyFragment
    } else {
        e
    }
}

#[inline(always)]
fn parse_l4(
    frame: &[u8],
    l4: usize,
    seg: &[u8],
    frag: Fragment,
    cfg: &ParseConfig,
    p: &mut Parsed,
    outer: bool,
) -> Result<(), ParseError> {
    p.l4_offset = l4 as u16;
    p.frag = frag;
    p.payload_len = seg.len() as u16;
    if let Fragment::Later { .. } = frag {
        return Ok(());
    }
    let v6 = p.is_ipv6();
    match p.key.proto {
        proto::TCP => {
            let t = TcpSegment::new_checked(seg).map_err(|e| tiny(frag, e))?;
            p.key.src_port = t.src_port();
            p.key.dst_port = t.dst_port();
            p.tcp = TcpMeta {
                flags: t.flags(),
                seq: t.seq(),
                ack: t.ack(),
                window: t.window(),
                wscale: if t.header_len() > crate::tcp::HEADER_LEN {
                    t.window_scale()?
                } else {
                    None
                },
            };
            p.payload_len = (seg.len() - t.header_len()) as u16;
        }
        proto::UDP => {
            let (sp, dp, plen) = if let Fragment::First { .. } = frag {
                // The length field covers the whole datagram, not this fragment.
                if seg.len() < udp::HEADER_LEN {
                    return Err(ParseError::TinyFragment);
                }
                let d = UdpDatagram::new_unchecked(seg);
                (d.src_port(), d.dst_port(), seg.len() - udp::HEADER_LEN)
            } else {
                let d = UdpDatagram::new_checked(seg)?;
                (
                    d.src_port(),
                    d.dst_port(),
                    usize::from(d.len()) - udp::HEADER_LEN,
                )
            };
            p.key.src_port = sp;
            p.key.dst_port = dp;
            p.payload_len = plen as u16;
            if outer && frag == Fragment::None {
                let inner = &seg[udp::HEADER_LEN..udp::HEADER_LEN + plen];
                if cfg.vxlan_port == Some(dp) {
                    return decap(
                        frame,
                        l4 + udp::HEADER_LEN,
                        inner,
                        TunnelKind::Vxlan,
                        cfg,
                        p,
                    );
                }
                if cfg.geneve_port == Some(dp) {
                    return decap(
                        frame,
                        l4 + udp::HEADER_LEN,
                        inner,
                        TunnelKind::Geneve,
                        cfg,
                        p,
                    );
                }
            }
        }
        proto::SCTP => {
            let (sp, dp) = udp::sctp_ports(seg).map_err(|e| tiny(frag, e))?;
            p.key.src_port = sp;
            p.key.dst_port = dp;
            p.payload_len = (seg.len() - udp::SCTP_HEADER_LEN) as u16;
        }
        proto::ICMP | proto::ICMPV6 if (p.key.proto == proto::ICMPV6) == v6 => {
            let m = IcmpPacket::new_checked(seg).map_err(|e| tiny(frag, e))?;
            let ty = m.msg_type();
            p.icmp = IcmpMeta {
                msg_type: ty,
                code: m.code(),
                echo_id: None,
            };
            if icmp::has_echo_id(v6, ty) {
                let id = m.echo_id();
                p.icmp.echo_id = Some(id);
                p.key.src_port = id;
                p.key.dst_port = id;
            } else if icmp::is_error(v6, ty) && frag == Fragment::None {
                p.icmp_inner = Some(icmp_inner_key(m.payload(), v6, cfg)?);
            }
            p.payload_len = (seg.len() - icmp::HEADER_LEN) as u16;
        }
        _ => {}
    }
    Ok(())
}

fn decap(
    frame: &[u8],
    hdr_off: usize,
    body: &[u8],
    kind: TunnelKind,
    cfg: &ParseConfig,
    p: &mut Parsed,
) -> Result<(), ParseError> {
    let (vni, inner_off, inner_et) = match kind {
        TunnelKind::Vxlan => {
            let h = VxlanHeader::new_checked(body)?;
            (h.vni(), hdr_off + crate::tunnel::VXLAN_HEADER_LEN, None)
        }
        TunnelKind::Geneve => {
            let h = GeneveHeader::new_checked(body)?;
            h.check_options()?;
            let et = match h.protocol() {
                ethertype::TEB => None,
                e @ (ethertype::IPV4 | ethertype::IPV6) => Some(e),
                _ => return Err(ParseError::TunnelUnsupportedPayload),
            };
            (h.vni(), hdr_off + h.header_len(), et)
        }
    };
    let tunnel = TunnelInfo {
        kind,
        outer_l3_offset: p.l3_offset,
        outer_l4_offset: p.l4_offset,
        inner_offset: inner_off as u16,
    };
    // The inner frame ends where the UDP payload ends, not at the end of the buffer.
    let end = hdr_off + body.len();
    let inner_frame = &frame[..end];
    let (et, l3) = match inner_et {
        None => parse_l2(inner_frame, inner_off, None)?,
        Some(e) => (e, inner_off),
    };
    p.l2_offset = inner_off as u16;
    p.tunnel = Some(tunnel);
    p.vni = Some(vni);
    parse_after_l2(inner_frame, et, l3, cfg, p, false)?;
    p.key.set_segment(vni);
    if let Some(k) = p.icmp_inner.as_mut() {
        k.set_segment(vni);
    }
    Ok(())
}

/// The key of the packet quoted in an ICMP error: its IP header and at least the first 8
/// bytes of its transport header (RFC 792/4443). The quoted IP header's own length fields
/// describe the original packet and are not checked against the quote, which is usually
/// truncated; only the bytes we read are.
fn icmp_inner_key(q: &[u8], v6: bool, cfg: &ParseConfig) -> Result<FlowKey, ParseError> {
    let bad = |_| ParseError::IcmpBadInner;
    let (mut key, l4) = if v6 {
        if q.len() < ipv6::HEADER_LEN || q[0] >> 4 != 6 {
            return Err(ParseError::IcmpBadInner);
        }
        let ip = Ipv6Packet::new_unchecked(q);
        let rest = &q[ipv6::HEADER_LEN..];
        let chain =
            ipv6::walk_extensions(ip.next_header(), rest, cfg.max_ipv6_ext_headers).map_err(bad)?;
        if chain.fragment.is_some_and(|(_, off, _)| off != 0) {
            // A later fragment: no ports to relate by.
            return Ok(FlowKey::v6(ip.src(), ip.dst(), chain.protocol, 0, 0));
        }
        (
            FlowKey::v6(ip.src(), ip.dst(), chain.protocol, 0, 0),
            &rest[chain.offset..],
        )
    } else {
        if q.len() < crate::ipv4::HEADER_LEN || q[0] >> 4 != 4 {
            return Err(ParseError::IcmpBadInner);
        }
        let ip = Ipv4Packet::new_unchecked(q);
        let hl = ip.header_len();
        if hl < crate::ipv4::HEADER_LEN || hl > q.len() {
            return Err(ParseError::IcmpBadInner);
        }
        let key = FlowKey::v4(ip.src(), ip.dst(), ip.protocol(), 0, 0);
        if ip.frag_offset() != 0 {
            return Ok(key);
        }
        (key, &q[hl..])
    };
    match key.proto {
        proto::TCP | proto::UDP | proto::SCTP => {
            if l4.len() < 4 {
                return Err(ParseError::IcmpBadInner);
            }
            key.src_port = u16::from_be_bytes([l4[0], l4[1]]);
            key.dst_port = u16::from_be_bytes([l4[2], l4[3]]);
        }
        // Same family rule as the outer parse: ICMPv4 inside IPv6 (or the reverse) is just
        // an unknown protocol there, so it is here.
        proto::ICMP | proto::ICMPV6 if (key.proto == proto::ICMPV6) == v6 => {
            if l4.len() < 8 {
                return Err(ParseError::IcmpBadInner);
            }
            if icmp::has_echo_id(v6, l4[0]) {
                let id = u16::from_be_bytes([l4[4], l4[5]]);
                key.src_port = id;
                key.dst_port = id;
            }
        }
        _ => {}
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{build_frame, EthernetRepr, IpSpec, L4Repr, TcpRepr, UdpRepr};
    use proptest::prelude::*;

    /// The general path alone, as `parse` would run it without the fast path.
    fn general(frame: &[u8], cfg: &ParseConfig) -> Result<Parsed, ParseError> {
        let mut p = Parsed::EMPTY;
        p.frame_len = frame.len() as u16;
        parse_general(frame, cfg, &mut p).map(|()| p)
    }

    fn base(tcp: bool, payload: usize) -> Vec<u8> {
        let mut buf = vec![0u8; 256];
        let eth = EthernetRepr {
            src: [2, 0, 0, 0, 0, 1],
            dst: [2, 0, 0, 0, 0, 2],
            outer_vlan: None,
            inner_vlan: None,
            ethertype: 0,
        };
        let ip = IpSpec {
            src: "10.1.2.3".parse().unwrap(),
            dst: "192.0.2.9".parse().unwrap(),
            ttl: 64,
        };
        let data = vec![0x5au8; payload];
        let l4 = if tcp {
            L4Repr::Tcp(TcpRepr {
                src_port: 40000,
                dst_port: 443,
                seq: 7,
                ack: 9,
                flags: crate::tcp::flags::ACK,
                window: 1000,
                window_scale: None,
                payload: &data,
            })
        } else {
            L4Repr::Udp(UdpRepr {
                src_port: 5353,
                dst_port: 53,
                payload: &data,
            })
        };
        let n = build_frame(&eth, &ip, &l4, &mut buf).unwrap();
        buf.truncate(n);
        buf
    }

    proptest! {
        /// Whenever the fast path takes a frame it gives exactly what the general path
        /// gives; frames are plain TCP/UDP ones with random bytes of the first 60 changed
        /// (ethertype, IHL, lengths, fragment bits, data offset, ports, …), random trailing
        /// padding, and random truncation, under random tunnel ports (either slot) and
        /// checksum policy.
        #[test]
        fn fast_path_agrees_with_the_general_path(
            tcp in any::<bool>(),
            payload in 0usize..40,
            edits in proptest::collection::vec((0usize..60, any::<u8>()), 0..4),
            pad in 0usize..8,
            cut in 0usize..100,
            tunnel_port in prop_oneof![Just(None), Just(Some(53u16)), Just(Some(4789u16))],
            geneve_port in prop_oneof![Just(None), Just(Some(53u16)), Just(Some(6081u16))],
            verify in any::<bool>(),
        ) {
            let mut f = base(tcp, payload);
            f.extend(std::iter::repeat_n(0u8, pad));
            for (i, v) in edits {
                if i < f.len() {
                    f[i] = v;
                }
            }
            f.truncate(f.len().saturating_sub(cut % 30));
            let cfg = ParseConfig {
                vxlan_port: tunnel_port,
                geneve_port,
                verify_ipv4_checksum: verify,
                ..ParseConfig::default()
            };
            if let Some(plain) = parse_plain(&f, &cfg) {
                // Written over a Parsed full of another frame's fields.
                let mut fast = general(&base(!tcp, 3), &ParseConfig::default()).unwrap();
                fast.vni = Some(7);
                plain.write_into(f.len() as u16, &mut fast);
                prop_assert_eq!(Ok(fast), general(&f, &cfg));
            } else {
                // Declined: parse_into must still agree with the general path exactly.
                let mut p = Parsed::EMPTY;
                let r = parse_into(&f, &cfg, &mut p).map(|()| p);
                prop_assert_eq!(r, general(&f, &cfg));
            }
        }
    }

    /// Every single-bit change of the headers, under each policy that the fast path folds
    /// into its compares: the random edits above rarely hit one exact bit (MF, a fragment
    /// offset bit, a version bit).
    #[test]
    fn fast_path_agrees_on_every_header_bit() {
        let cfgs = [
            ParseConfig::default(),
            ParseConfig {
                verify_ipv4_checksum: true,
                ..ParseConfig::default()
            },
            ParseConfig {
                vxlan_port: None,
                geneve_port: Some(53),
                ..ParseConfig::default()
            },
        ];
        for cfg in &cfgs {
            for tcp in [true, false] {
                let f = base(tcp, 5);
                for byte in 0..54.min(f.len()) {
                    for bit in 0..8 {
                        let mut g = f.clone();
                        g[byte] ^= 1 << bit;
                        let mut p = Parsed::EMPTY;
                        let r = parse_into(&g, cfg, &mut p).map(|()| p);
                        assert_eq!(r, general(&g, cfg), "byte {byte} bit {bit} tcp {tcp}");
                    }
                }
            }
        }
    }

    #[test]
    fn fast_path_takes_plain_frames() {
        let cfg = ParseConfig::default();
        for tcp in [true, false] {
            let f = base(tcp, 10);
            let mut p = Parsed::EMPTY;
            parse_plain(&f, &cfg)
                .expect("plain frame")
                .write_into(f.len() as u16, &mut p);
            assert_eq!(Ok(p), general(&f, &cfg));
        }
    }

    #[test]
    fn parsed_is_small() {
        // Copy-able in a few cache lines; printed so size regressions are visible.
        let n = core::mem::size_of::<super::Parsed>();
        assert!(n <= 168, "Parsed is {n} bytes");
    }
}
