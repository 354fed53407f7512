//! Stream specifications (TOML `[[stream]]` tables or command-line flags) and their
//! validation into [`Stream`]s with pre-built frame templates.

use std::net::IpAddr;
use std::path::PathBuf;

use rampart_wire::{
    build_frame, encapsulate, tcp::flags as tcpf, EthernetRepr, IcmpRepr, IpSpec, L4Repr, TcpRepr,
    TunnelKind, TunnelRepr, UdpRepr, VlanTag,
};
use serde::Deserialize;

use crate::flows::{Cursor, FlowSpace, FlowSpaceError};
use crate::rate::FCS_LEN;
use crate::stamp::STAMP_LEN;
use crate::template::{Template, TemplateError};

/// Largest frame we build (FCS excluded): fits one default mbuf data room.
pub const MAX_FRAME: usize = 2048;

/// A run file: optional run settings and one or more streams.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunFile {
    /// Run settings; command-line flags override them.
    #[serde(default)]
    pub run: RunSection,
    /// The streams (`[[stream]]`).
    #[serde(default, rename = "stream")]
    pub streams: Vec<StreamSpec>,
}

/// `[run]`: what the command line can also say.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSection {
    /// Total rate: pps (`"2M"`) or percent of the line rate (`"50%"`).
    pub rate: Option<String>,
    /// Line rate for percentages and the search (`"10G"`).
    pub line_rate: Option<String>,
    /// Seconds to send.
    pub duration: Option<f64>,
    /// Frames to send (stops earlier than `duration` if reached).
    pub count: Option<u64>,
}

/// Transport protocol of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// UDP datagrams.
    #[default]
    Udp,
    /// TCP segments (flags from `tcp_flags`), or whole sessions with `mode = "tcp-session"`.
    Tcp,
    /// ICMP/ICMPv6 echo requests; the echo identifier varies per flow (`sport` range).
    Icmp,
}

/// How a stream's frames come about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Templates cycled over the flows at the stream's rate.
    #[default]
    Stateless,
    /// TCP sessions: SYN, SYN-ACK (answered by pktgen on the far port), ACK + data, FIN,
    /// FIN-ACK, ACK. The rate counts sessions started.
    TcpSession,
}

/// Encapsulation of a stream.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TunnelSpec {
    /// `"vxlan"` or `"geneve"`.
    pub kind: String,
    /// VNI.
    pub vni: u32,
    /// Outer source address (IPv4 or IPv6).
    #[serde(default = "default_tunnel_src")]
    pub src: String,
    /// Outer destination address.
    #[serde(default = "default_tunnel_dst")]
    pub dst: String,
}

fn default_tunnel_src() -> String {
    "192.0.2.1".into()
}
fn default_tunnel_dst() -> String {
    "192.0.2.2".into()
}

/// Frame size: one size, `"imix"` (64:7, 594:4, 1518:1), or `"64:7,594:4,1518:1"`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum SizeSpec {
    /// One frame size in bytes (FCS included, as RFC 2544 counts).
    Fixed(u32),
    /// A mix.
    Mix(String),
}

impl Default for SizeSpec {
    fn default() -> Self {
        SizeSpec::Fixed(64)
    }
}

impl SizeSpec {
    /// `(size, weight)` pairs.
    pub fn sizes(&self) -> Result<Vec<(u32, u32)>, SpecError> {
        match self {
            SizeSpec::Fixed(s) => Ok(vec![(*s, 1)]),
            SizeSpec::Mix(m) if m.eq_ignore_ascii_case("imix") => {
                Ok(vec![(64, 7), (594, 4), (1518, 1)])
            }
            SizeSpec::Mix(m) => m
                .split(',')
                .map(|part| {
                    let (s, w) = part.split_once(':').unwrap_or((part, "1"));
                    match (s.trim().parse::<u32>(), w.trim().parse::<u32>()) {
                        (Ok(s), Ok(w)) if w > 0 => Ok((s, w)),
                        _ => Err(SpecError::Size(m.clone())),
                    }
                })
                .collect(),
        }
    }
}

/// One stream as written in TOML (`[[stream]]`) or assembled from flags.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamSpec {
    /// Name in reports (default: the protocol and index).
    pub name: Option<String>,
    /// Protocol.
    pub proto: Proto,
    /// Stateless or TCP sessions.
    pub mode: Mode,
    /// Distinct flows to cycle through.
    pub flows: u64,
    /// First source address; its family (IPv4/IPv6) is the stream's.
    pub src: String,
    /// Source addresses (default: as many as `flows` needs after the port ranges).
    pub src_count: Option<u64>,
    /// First destination address.
    pub dst: String,
    /// Destination addresses.
    pub dst_count: u64,
    /// Source port range `"lo-hi"` or one port (ICMP: echo identifiers).
    pub sport: String,
    /// Destination port range (ignored for ICMP).
    pub dport: String,
    /// Frame size(s).
    pub size: SizeSpec,
    /// 802.1Q VLAN id (the C-tag when `qinq` is set too).
    pub vlan: Option<u16>,
    /// 802.1ad outer S-tag VLAN id.
    pub qinq: Option<u16>,
    /// VXLAN/Geneve encapsulation.
    pub tunnel: Option<TunnelSpec>,
    /// Weight of this stream in the total rate.
    pub share: f64,
    /// Stateless TCP flags, e.g. `"S"`, `"A"`, `"PA"`, `"SA"`, `"F"`, `"R"`.
    pub tcp_flags: String,
    /// TCP sessions: data segments per session (each stamped, so latency is measured).
    pub segments: u32,
    /// TCP sessions: payload bytes per data segment (at least 16).
    pub segment_size: u32,
    /// IPv4 TTL / IPv6 hop limit.
    pub ttl: u8,
    /// Replay the headers of a ClassBench trace (IPv4; one frame per line).
    pub trace: Option<PathBuf>,
    /// Replay the frames of a classic pcap file.
    pub pcap: Option<PathBuf>,
    /// Use at most this many trace lines or pcap records.
    pub limit: Option<usize>,
}

impl Default for StreamSpec {
    fn default() -> Self {
        StreamSpec {
            name: None,
            proto: Proto::Udp,
            mode: Mode::Stateless,
            flows: 1,
            src: "10.0.0.1".into(),
            src_count: None,
            dst: "10.1.0.1".into(),
            dst_count: 1,
            sport: "1024-65535".into(),
            dport: "5001".into(),
            size: SizeSpec::default(),
            vlan: None,
            qinq: None,
            tunnel: None,
            share: 1.0,
            tcp_flags: "S".into(),
            segments: 4,
            segment_size: 64,
            ttl: 64,
            trace: None,
            pcap: None,
            limit: None,
        }
    }
}

/// Why a stream spec is invalid. Every message names the stream.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// An address does not parse.
    #[error("bad address {0:?}")]
    Address(String),
    /// A port range does not parse or is reversed.
    #[error("bad port range {0:?} (want \"lo-hi\" or one port)")]
    Ports(String),
    /// A frame-size mix does not parse.
    #[error("bad frame size {0:?} (want a size, \"imix\" or \"64:7,594:4,1518:1\")")]
    Size(String),
    /// A frame size is out of range.
    #[error("frame size {0} is out of range (64..={max})", max = MAX_FRAME as u64 + FCS_LEN)]
    SizeRange(u32),
    /// TCP flags do not parse.
    #[error("bad TCP flags {0:?} (letters from FSRPAUEC)")]
    TcpFlags(String),
    /// The flow ranges are inconsistent.
    #[error(transparent)]
    Flows(#[from] FlowSpaceError),
    /// A frame could not be built.
    #[error("cannot build a frame: {0}")]
    Build(String),
    /// A built frame is not a usable template.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// The combination of settings is not supported.
    #[error("{0}")]
    Unsupported(&'static str),
    /// A trace file could not be read.
    #[error(transparent)]
    Trace(#[from] rampart_classify::classbench::ClassBenchError),
    /// A pcap file could not be read.
    #[error(transparent)]
    Pcap(#[from] crate::pcap::PcapError),
    /// A replay source has no usable frames.
    #[error("the replay source has no frames")]
    EmptyReplay,
    /// The share is not a positive number.
    #[error("share must be a positive number")]
    Share,
}

/// Parses `"lo-hi"` or `"p"`.
pub fn parse_ports(s: &str) -> Result<(u16, u16), SpecError> {
    let bad = || SpecError::Ports(s.into());
    let (lo, hi) = s.split_once('-').unwrap_or((s, s));
    let lo: u16 = lo.trim().parse().map_err(|_| bad())?;
    let hi: u16 = hi.trim().parse().map_err(|_| bad())?;
    if lo > hi {
        return Err(bad());
    }
    Ok((lo, hi))
}

fn parse_addr(s: &str) -> Result<IpAddr, SpecError> {
    s.trim().parse().map_err(|_| SpecError::Address(s.into()))
}

/// Parses TCP flag letters.
pub fn parse_tcp_flags(s: &str) -> Result<u8, SpecError> {
    let mut f = 0u8;
    for c in s.chars() {
        f |= match c.to_ascii_uppercase() {
            'F' => tcpf::FIN,
            'S' => tcpf::SYN,
            'R' => tcpf::RST,
            'P' => tcpf::PSH,
            'A' => tcpf::ACK,
            'U' => 0x20,
            'E' => 0x40,
            'C' => 0x80,
            _ => return Err(SpecError::TcpFlags(s.into())),
        };
    }
    Ok(f)
}

/// The addresses and identities of both pktgen ports, used in the Ethernet headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Macs {
    /// MAC of the port frames leave from (client side).
    pub tx: [u8; 6],
    /// MAC of the port frames arrive on (server side).
    pub rx: [u8; 6],
}

/// TCP session parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionParams {
    /// Data segments per session.
    pub segments: u32,
    /// Payload bytes per data segment.
    pub segment_size: u32,
}

/// What a stream sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// Templates patched per flow.
    Stateless,
    /// TCP sessions (frames built per packet by the session machine).
    Session(SessionParams),
    /// One template per replayed frame, sent in order.
    Replay,
}

/// A validated stream, ready to send.
#[derive(Debug, Clone)]
pub struct Stream {
    /// Name in reports.
    pub name: String,
    /// What it sends.
    pub kind: StreamKind,
    /// The flows (none for replays).
    pub space: Option<FlowSpace>,
    /// The next flow.
    pub cursor: Cursor,
    /// Frame templates: one per size (stateless) or per replayed frame.
    pub frames: Vec<Template>,
    /// Which template each successive packet uses (the size mix; empty = cycle `frames`).
    pub order: Vec<u16>,
    /// Position in `order` (or `frames`).
    pub pos: usize,
    /// Next sequence number.
    pub seq: u32,
    /// Weight in the total rate.
    pub share: f64,
    /// Average frame size on the wire (FCS included) for line-rate arithmetic.
    pub avg_frame_size: f64,
    /// Ethernet header for frames built per packet (client → server direction).
    pub eth: EthernetRepr,
    /// TTL of frames built per packet.
    pub ttl: u8,
    /// Frames keep their own Ethernet addresses (pcap replay).
    pub keep_macs: bool,
}

impl Stream {
    /// Addresses generated frames from `macs.tx` to `macs.rx` (pcap replays keep the
    /// addresses they were captured with).
    pub fn set_macs(&mut self, macs: &Macs) {
        self.eth.src = macs.tx;
        self.eth.dst = macs.rx;
        if !self.keep_macs {
            for t in &mut self.frames {
                t.set_macs(macs.rx, macs.tx);
            }
        }
    }

    /// Index of the template for the next packet, advancing the position.
    #[inline]
    pub fn next_frame(&mut self) -> usize {
        if self.order.is_empty() {
            let i = self.pos;
            self.pos = if i + 1 == self.frames.len() { 0 } else { i + 1 };
            i
        } else {
            let i = usize::from(self.order[self.pos]);
            self.pos = if self.pos + 1 == self.order.len() {
                0
            } else {
                self.pos + 1
            };
            i
        }
    }
}

/// Spreads weighted items evenly (smooth weighted round robin): `[(a,2),(b,1)]` → a b a.
pub fn interleave(weights: &[u32]) -> Vec<u16> {
    let total: i64 = weights.iter().map(|&w| i64::from(w)).sum();
    let mut cur = vec![0i64; weights.len()];
    let mut out = Vec::with_capacity(total as usize);
    for _ in 0..total {
        for (c, &w) in cur.iter_mut().zip(weights) {
            *c += i64::from(w);
        }
        let (best, _) = cur
            .iter()
            .enumerate()
            .max_by_key(|(i, &c)| (c, -(*i as i64)))
            .expect("non-empty");
        cur[best] -= total;
        out.push(best as u16);
    }
    out
}

fn ethernet(spec: &StreamSpec, macs: &Macs) -> EthernetRepr {
    let tag = |vid: u16, tpid: u16| VlanTag { tpid, vid, pcp: 0 };
    let (outer, inner) = match (spec.qinq, spec.vlan) {
        (Some(s), Some(c)) => (Some(tag(s, 0x88a8)), Some(tag(c, 0x8100))),
        (Some(s), None) => (Some(tag(s, 0x88a8)), None),
        (None, Some(c)) => (Some(tag(c, 0x8100)), None),
        (None, None) => (None, None),
    };
    EthernetRepr {
        src: macs.tx,
        dst: macs.rx,
        outer_vlan: outer,
        inner_vlan: inner,
        ethertype: 0,
    }
}

/// Builds one frame of `spec`'s shape with `payload` bytes of zeros after the transport
/// header, addressed from `src` to `dst`, `l4` choosing the transport.
fn build_one(
    spec: &StreamSpec,
    macs: &Macs,
    ip: IpSpec,
    l4: &dyn Fn(&[u8]) -> L4Repr<'_>,
    payload: usize,
) -> Result<Vec<u8>, SpecError> {
    let zeros = vec![0u8; payload];
    let mut buf = vec![0u8; MAX_FRAME + 256];
    let eth = ethernet(spec, macs);
    let n = match &spec.tunnel {
        None => build_frame(&eth, &ip, &l4(&zeros), &mut buf)
            .map_err(|e| SpecError::Build(e.to_string()))?,
        Some(t) => {
            let kind = match t.kind.to_ascii_lowercase().as_str() {
                "vxlan" => TunnelKind::Vxlan,
                "geneve" => TunnelKind::Geneve,
                _ => {
                    return Err(SpecError::Unsupported(
                        "tunnel kind must be \"vxlan\" or \"geneve\"",
                    ))
                }
            };
            let inner_eth = EthernetRepr {
                src: [0x02, 0, 0, 0, 0, 0x11],
                dst: [0x02, 0, 0, 0, 0, 0x22],
                outer_vlan: None,
                inner_vlan: None,
                ethertype: 0,
            };
            let mut inner = vec![0u8; MAX_FRAME];
            let m = build_frame(&inner_eth, &ip, &l4(&zeros), &mut inner)
                .map_err(|e| SpecError::Build(e.to_string()))?;
            let outer = IpSpec {
                src: parse_addr(&t.src)?,
                dst: parse_addr(&t.dst)?,
                ttl: 64,
            };
            let tun = TunnelRepr {
                kind,
                vni: t.vni & 0x00ff_ffff,
                options: &[],
            };
            encapsulate(&eth, &outer, 49152, &tun, &inner[..m], &mut buf)
                .map_err(|e| SpecError::Build(e.to_string()))?
        }
    };
    buf.truncate(n);
    Ok(buf)
}

/// Builds a frame whose size on the wire (FCS included) is `size`, or larger if the headers
/// plus a stamp need more (and at least the 64-byte Ethernet minimum).
fn build_sized(
    spec: &StreamSpec,
    macs: &Macs,
    ip: IpSpec,
    l4: &dyn Fn(&[u8]) -> L4Repr<'_>,
    size: u32,
) -> Result<Vec<u8>, SpecError> {
    if !(64..=MAX_FRAME as u32 + FCS_LEN as u32).contains(&size) {
        return Err(SpecError::SizeRange(size));
    }
    let headers = build_one(spec, macs, ip, l4, 0)?.len();
    let data_len = (size as usize - FCS_LEN as usize)
        .max(headers + STAMP_LEN)
        .max(60);
    // Even lengths keep the stamp 16-bit aligned for the checksum patch (any length works).
    let data_len = (data_len + 1) & !1;
    if data_len > MAX_FRAME {
        return Err(SpecError::SizeRange(size));
    }
    build_one(spec, macs, ip, l4, data_len - headers)
}

/// Pins a closure's signature to the higher-ranked `for<'a> Fn(&'a [u8]) -> L4Repr<'a>`.
fn l4fn<F: Fn(&[u8]) -> L4Repr<'_>>(f: F) -> F {
    f
}

fn l4_for(proto: Proto, v6: bool, flags: u8) -> impl Fn(&[u8]) -> L4Repr<'_> {
    move |p: &[u8]| match proto {
        Proto::Udp => L4Repr::Udp(UdpRepr {
            src_port: 0,
            dst_port: 0,
            payload: p,
        }),
        Proto::Tcp => L4Repr::Tcp(TcpRepr {
            src_port: 0,
            dst_port: 0,
            seq: 1,
            ack: u32::from(flags & tcpf::ACK != 0),
            flags,
            window: 65535,
            window_scale: None,
            payload: p,
        }),
        Proto::Icmp => L4Repr::Icmp(IcmpRepr::echo(if v6 { 128 } else { 8 }, 0, 0, p)),
    }
}

impl StreamSpec {
    /// Validates the spec and builds its stream. `index` names unnamed streams.
    pub fn build(&self, index: usize, macs: &Macs) -> Result<Stream, SpecError> {
        if !(self.share > 0.0 && self.share.is_finite()) {
            return Err(SpecError::Share);
        }
        let sizes = self.size.sizes()?;
        let default_name = match (self.mode, &self.trace, &self.pcap) {
            (_, Some(_), _) => "trace",
            (_, _, Some(_)) => "pcap",
            (Mode::TcpSession, _, _) => "tcp-session",
            _ => match self.proto {
                Proto::Udp => "udp",
                Proto::Tcp => "tcp",
                Proto::Icmp => "icmp",
            },
        };
        let name = self
            .name
            .clone()
            .unwrap_or_else(|| format!("{default_name}{index}"));
        let eth = ethernet(self, macs);
        if self.trace.is_some() || self.pcap.is_some() {
            return self.build_replay(name, macs, &sizes, eth);
        }
        let src = parse_addr(&self.src)?;
        let dst = parse_addr(&self.dst)?;
        let v6 = src.is_ipv6();
        let sports = parse_ports(&self.sport)?;
        let dports = if self.proto == Proto::Icmp {
            (0, 0)
        } else {
            parse_ports(&self.dport)?
        };
        let per_addr = (u64::from(sports.1 - sports.0) + 1)
            * (u64::from(dports.1 - dports.0) + 1)
            * self.dst_count.max(1);
        let src_count = self
            .src_count
            .unwrap_or_else(|| self.flows.div_ceil(per_addr).max(1));
        let space = FlowSpace::new(
            (src, u128::from(src_count)),
            (dst, u128::from(self.dst_count)),
            sports,
            dports,
            self.flows,
        )?;
        let cursor = Cursor::new(&space);
        let ip = IpSpec {
            src,
            dst,
            ttl: self.ttl,
        };
        let flags = parse_tcp_flags(&self.tcp_flags)?;
        let avg = |sizes: &[(u32, u32)], frames: &[Template]| {
            let w: f64 = sizes.iter().map(|s| f64::from(s.1)).sum();
            sizes
                .iter()
                .zip(frames)
                .map(|(s, t)| f64::from(s.1) * (t.len() as f64 + FCS_LEN as f64))
                .sum::<f64>()
                / w
        };
        match self.mode {
            Mode::TcpSession => {
                if self.proto != Proto::Tcp {
                    return Err(SpecError::Unsupported(
                        "mode = \"tcp-session\" needs proto = \"tcp\"",
                    ));
                }
                if self.tunnel.is_some() {
                    return Err(SpecError::Unsupported(
                        "TCP sessions are not supported inside tunnels",
                    ));
                }
                if self.segment_size < STAMP_LEN as u32 || self.segment_size > 1400 {
                    return Err(SpecError::Unsupported("segment_size must be in 16..=1400"));
                }
                let params = SessionParams {
                    segments: self.segments,
                    segment_size: self.segment_size,
                };
                let hdr = if v6 { 14 + 40 + 20 } else { 14 + 20 + 20 } + eth.header_len() - 14;
                let per_session = f64::from(self.segments)
                    * (hdr as f64 + f64::from(self.segment_size))
                    + 5.0 * hdr as f64;
                Ok(Stream {
                    name,
                    kind: StreamKind::Session(params),
                    space: Some(space),
                    cursor,
                    frames: Vec::new(),
                    order: Vec::new(),
                    pos: 0,
                    seq: 0,
                    share: self.share,
                    avg_frame_size: (per_session / (f64::from(self.segments) + 5.0)).max(60.0)
                        + FCS_LEN as f64,
                    eth,
                    ttl: self.ttl,
                    keep_macs: false,
                })
            }
            Mode::Stateless => {
                let l4 = l4_for(self.proto, v6, flags);
                let mut frames = Vec::new();
                for &(size, _) in &sizes {
                    let f = build_sized(self, macs, ip, &l4, size)?;
                    frames.push(Template::new(f, true, true)?);
                }
                let weights: Vec<u32> = sizes.iter().map(|s| s.1).collect();
                let order = if frames.len() > 1 {
                    interleave(&weights)
                } else {
                    Vec::new()
                };
                let avg_frame_size = avg(&sizes, &frames);
                Ok(Stream {
                    name,
                    kind: StreamKind::Stateless,
                    space: Some(space),
                    cursor,
                    frames,
                    order,
                    pos: 0,
                    seq: 0,
                    share: self.share,
                    avg_frame_size,
                    eth,
                    ttl: self.ttl,
                    keep_macs: false,
                })
            }
        }
    }

    fn build_replay(
        &self,
        name: String,
        macs: &Macs,
        sizes: &[(u32, u32)],
        eth: EthernetRepr,
    ) -> Result<Stream, SpecError> {
        let limit = self.limit.unwrap_or(usize::MAX);
        let mut frames = Vec::new();
        if let Some(path) = &self.trace {
            if sizes.len() != 1 {
                return Err(SpecError::Unsupported("trace replay uses one frame size"));
            }
            let flags = parse_tcp_flags(&self.tcp_flags)?;
            for p in rampart_classify::classbench::load_trace(path)?
                .iter()
                .take(limit)
            {
                let ip = IpSpec {
                    src: IpAddr::from(p.src.to_be_bytes()),
                    dst: IpAddr::from(p.dst.to_be_bytes()),
                    ttl: self.ttl,
                };
                let (sport, dport) = (p.sport, p.dport);
                let protocol = p.proto;
                let l4 = l4fn(move |pl: &[u8]| match protocol {
                    6 => L4Repr::Tcp(TcpRepr {
                        src_port: sport,
                        dst_port: dport,
                        seq: 1,
                        ack: u32::from(flags & tcpf::ACK != 0),
                        flags,
                        window: 65535,
                        window_scale: None,
                        payload: pl,
                    }),
                    17 => L4Repr::Udp(UdpRepr {
                        src_port: sport,
                        dst_port: dport,
                        payload: pl,
                    }),
                    1 => L4Repr::Icmp(IcmpRepr::echo(8, sport, 0, pl)),
                    other => L4Repr::Raw {
                        protocol: other,
                        payload: pl,
                    },
                });
                let f = build_sized(self, macs, ip, &l4, sizes[0].0)?;
                frames.push(Template::new(f, false, true)?);
            }
        } else if let Some(path) = &self.pcap {
            for r in crate::pcap::load(path)?.records.into_iter().take(limit) {
                if r.data.len() < 14 || r.data.len() > MAX_FRAME {
                    continue;
                }
                // Frames that are not plain IP (ARP, fragments…) are replayed byte for byte.
                let t = Template::new(r.data.clone(), false, true)
                    .unwrap_or_else(|_| Template::raw(r.data));
                frames.push(t);
            }
        }
        if frames.is_empty() {
            return Err(SpecError::EmptyReplay);
        }
        let avg_frame_size = frames
            .iter()
            .map(|t| t.len() as f64 + FCS_LEN as f64)
            .sum::<f64>()
            / frames.len() as f64;
        Ok(Stream {
            name,
            kind: StreamKind::Replay,
            space: None,
            cursor: Cursor::default(),
            frames,
            order: Vec::new(),
            pos: 0,
            seq: 0,
            share: self.share,
            avg_frame_size,
            eth,
            ttl: self.ttl,
            keep_macs: self.pcap.is_some(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::Tuple;
    use crate::stamp::Stamp;
    use rampart_wire::{parse, ParseConfig};

    const MACS: Macs = Macs {
        tx: [2, 0, 0, 0, 0, 1],
        rx: [2, 0, 0, 0, 0, 2],
    };

    fn frame_of(s: &mut Stream, t: &Tuple) -> Vec<u8> {
        let i = s.next_frame();
        let tpl = &s.frames[i];
        let mut out = vec![0u8; tpl.len()];
        tpl.write(
            &mut out,
            t,
            &Stamp {
                stream: 0,
                trial: 0,
                seq: 0,
                tsc: 1,
            },
        );
        out
    }

    #[test]
    fn toml_streams_parse_and_build() {
        let f: RunFile = toml::from_str(
            r#"
            [run]
            rate = "1M"
            duration = 2.5
            [[stream]]
            name = "web"
            proto = "tcp"
            flows = 1000
            dport = "443"
            size = "imix"
            vlan = 10
            share = 3
            [[stream]]
            proto = "udp"
            src = "2001:db8::1"
            dst = "2001:db8:1::1"
            sport = "1000-1009"
            flows = 100
            size = 128
            tunnel = { kind = "vxlan", vni = 7 }
            "#,
        )
        .unwrap();
        assert_eq!(f.run.rate.as_deref(), Some("1M"));
        let mut web = f.streams[0].build(0, &MACS).unwrap();
        assert_eq!(web.name, "web");
        assert_eq!(web.frames.len(), 3);
        assert_eq!(web.order.len(), 12);
        // imix with 64 grown to 78: 14 + 4 (tag) + 20 + 20 + 16 (stamp) + 4 (FCS).
        assert!(
            (web.avg_frame_size - (7.0 * 78.0 + 4.0 * 594.0 + 1518.0) / 12.0).abs() < 1e-9,
            "{}",
            web.avg_frame_size
        );
        let space = web.space.clone().unwrap();
        assert_eq!(
            space.src_count, 1,
            "1000 flows fit in the source ports of one address"
        );
        let t = space.tuple(999);
        let out = frame_of(&mut web, &t);
        let p = parse(&out, &ParseConfig::default()).unwrap();
        assert_eq!(
            (p.key.src_port, p.key.dst_port, p.vlan_outer),
            (1024 + 999, 443, Some(10))
        );
        assert_eq!(p.tcp.flags, tcpf::SYN);
        assert_eq!(out.len(), 74);

        let mut v6 = f.streams[1].build(1, &MACS).unwrap();
        assert_eq!(v6.name, "udp1");
        let sp = v6.space.clone().unwrap();
        assert_eq!(sp.src_count, 10);
        let t = sp.tuple(57);
        let out = frame_of(&mut v6, &t);
        // outer 14 + 20 + 8 + 8, inner 14 + 40 + 8, stamp 16: 128 > 124, so the frame grows.
        assert_eq!(out.len(), 128);
        let p = parse(&out, &ParseConfig::default()).unwrap();
        assert_eq!(p.vni, Some(7));
        assert_eq!(p.key.src_ip(), "2001:db8::6".parse::<IpAddr>().unwrap());
        assert_eq!(p.key.src_port, 1007);
    }

    #[test]
    fn macs_are_set_after_building_except_for_pcap_frames() {
        let mut s = StreamSpec {
            vlan: Some(3),
            ..StreamSpec::default()
        }
        .build(0, &MACS)
        .unwrap();
        let real = Macs {
            tx: [0xaa; 6],
            rx: [0xbb; 6],
        };
        s.set_macs(&real);
        let t = s.space.clone().unwrap().tuple(0);
        let f = frame_of(&mut s, &t);
        assert_eq!((&f[..6], &f[6..12]), (&[0xbb; 6][..], &[0xaa; 6][..]));
        assert_eq!((s.eth.src, s.eth.dst), ([0xaa; 6], [0xbb; 6]));
        assert!(parse(&f, &ParseConfig::default()).is_ok());
    }

    #[test]
    fn sizes_grow_to_fit_headers_and_stamp() {
        let spec = StreamSpec {
            src: "2001:db8::1".into(),
            dst: "2001:db8::2".into(),
            ..StreamSpec::default()
        };
        let s = spec.build(0, &MACS).unwrap();
        // 14 + 40 + 8 + 16 = 78 bytes; 64 asked for.
        assert_eq!(s.frames[0].len(), 78);
        let s = StreamSpec::default().build(0, &MACS).unwrap();
        assert_eq!(s.frames[0].len(), 60);
        assert_eq!(s.avg_frame_size, 64.0);
    }

    #[test]
    fn bad_specs_are_named() {
        let e = |s: StreamSpec| s.build(0, &MACS).unwrap_err().to_string();
        assert!(e(StreamSpec {
            sport: "9-1".into(),
            ..Default::default()
        })
        .contains("port range"));
        assert!(e(StreamSpec {
            size: SizeSpec::Fixed(9000),
            ..Default::default()
        })
        .contains("out of range"));
        assert!(e(StreamSpec {
            size: SizeSpec::Mix("64:x".into()),
            ..Default::default()
        })
        .contains("frame size"));
        assert!(e(StreamSpec {
            dst: "::1".into(),
            ..Default::default()
        })
        .contains("families"));
        assert!(e(StreamSpec {
            flows: 10,
            sport: "1".into(),
            src_count: Some(2),
            ..Default::default()
        })
        .contains("10 flows"));
        assert!(e(StreamSpec {
            mode: Mode::TcpSession,
            ..Default::default()
        })
        .contains("tcp-session"));
        assert!(e(StreamSpec {
            tcp_flags: "SX".into(),
            ..Default::default()
        })
        .contains("TCP flags"));
        assert!(toml::from_str::<RunFile>("[[stream]]\nprot = \"udp\"").is_err());
    }

    /// Every example run file in pktgen/ parses and builds (paths relative to the workspace).
    #[test]
    fn example_run_files_build() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let root = dir.parent().unwrap();
        let mut n = 0;
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") && p.file_name().unwrap() != "Cargo.toml"
            {
                let f: RunFile = toml::from_str(&std::fs::read_to_string(&p).unwrap())
                    .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                assert!(!f.streams.is_empty(), "{}", p.display());
                for (i, mut spec) in f.streams.into_iter().enumerate() {
                    spec.trace = spec.trace.map(|t| root.join(t));
                    spec.limit = Some(100);
                    spec.build(i, &MACS)
                        .unwrap_or_else(|e| panic!("{} stream {i}: {e}", p.display()));
                }
                n += 1;
            }
        }
        assert!(n >= 4, "examples found: {n}");
    }

    #[test]
    fn interleave_spreads_weights() {
        assert_eq!(interleave(&[2, 1]), vec![0, 1, 0]);
        let v = interleave(&[7, 4, 1]);
        assert_eq!(v.len(), 12);
        assert_eq!(v.iter().filter(|&&i| i == 0).count(), 7);
        assert_eq!(v.iter().filter(|&&i| i == 2).count(), 1);
        assert!(!v.windows(3).any(|w| w == [1, 1, 1]));
    }

    #[test]
    fn trace_and_pcap_replay() {
        let dir = std::env::temp_dir().join(format!("pktgen-spec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let trace = dir.join("t.trace");
        // ClassBench trace lines: src dst sport dport proto (decimal) and the matching rule id.
        std::fs::write(&trace, "167772161\t167772162\t1000\t80\t6\t0\n167772163\t167772164\t53\t53\t17\t1\n167772165\t167772166\t0\t0\t47\t2\n").unwrap();
        let spec = StreamSpec {
            trace: Some(trace),
            ..Default::default()
        };
        let mut s = spec.build(0, &MACS).unwrap();
        assert_eq!(s.kind, StreamKind::Replay);
        assert_eq!(s.frames.len(), 3);
        let mut keys = Vec::new();
        for _ in 0..3 {
            let f = frame_of(&mut s, &Tuple::default());
            let p = parse(&f, &ParseConfig::default()).unwrap();
            assert_eq!(Stamp::read(&f).map(|s| s.tsc), Some(1));
            keys.push((
                p.key.src_v4().unwrap(),
                p.key.src_port,
                p.key.dst_port,
                p.key.proto,
            ));
        }
        assert_eq!(keys[0], ([10, 0, 0, 1], 1000, 80, 6));
        assert_eq!(keys[1], ([10, 0, 0, 3], 53, 53, 17));
        assert_eq!(keys[2].3, 47);
        assert_eq!(s.next_frame(), 0, "replay wraps");

        // pcap: one UDP frame (stamped), one ARP frame (sent as is).
        let udp = {
            let mut sp = StreamSpec::default().build(0, &MACS).unwrap();
            let t = sp.space.clone().unwrap().tuple(0);
            frame_of(&mut sp, &t)
        };
        let arp = vec![0xffu8; 42];
        let mut arp = arp;
        arp[12] = 0x08;
        arp[13] = 0x06;
        let recs = [udp.clone(), arp.clone()].map(|d| crate::pcap::PcapRecord {
            ts_ns: 0,
            orig_len: d.len() as u32,
            data: d,
        });
        let pcap = dir.join("x.pcap");
        std::fs::write(&pcap, crate::pcap::write(1, &recs)).unwrap();
        let mut s = StreamSpec {
            pcap: Some(pcap),
            ..Default::default()
        }
        .build(0, &MACS)
        .unwrap();
        let a = frame_of(&mut s, &Tuple::default());
        assert_eq!(&a[..a.len() - 16], &udp[..udp.len() - 16]);
        assert_eq!(frame_of(&mut s, &Tuple::default()), arp);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
