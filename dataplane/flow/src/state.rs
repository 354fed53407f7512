//! Protocol state machines: TCP (in the spirit of nf_conntrack), UDP, ICMP and generic
//! pseudo-connections.
//!
//! # TCP
//! `New` (inserted, nothing tracked yet) → SYN → `SynSent` → SYN-ACK from the reply side
//! (or a SYN: simultaneous open) → `SynRecv` → ACK from the originator → `Established`
//! (assured). A FIN from one side → `FinWait`; the other side's ACK → `CloseWait`; its FIN →
//! `LastAck`; the final ACK → `TimeWait`. A RST in any state → `Close`. A new SYN from the
//! originator reopens a flow in `TimeWait`/`Close`. A first packet that is not a SYN is
//! refused (`NotOpener`) unless loose pickup is on, in which case it creates an `Established`
//! flow that becomes assured once the other side answers.
//!
//! # Strict mode
//! Strictness is per flow: the rule that admitted it decides ([`crate::Admission`]), and
//! `FlowConfig::strict_tcp` is the default for flows inserted without one. Each direction's
//! right window edge is learned from the other side's ACK + window (scaled when both SYNs
//! carried the option, RFC 7323) on every flow. On a strict flow, a segment (RST included)
//! whose end lies beyond the receiver's advertised right edge, or whose start lies more than
//! two maximum windows below it, is `OutOfWindow`. This blocks blind injection and stale
//! segments without the full Rooij tracking of ACK ranges.
//!
//! # UDP, ICMP, others
//! UDP: `UdpUnreplied` until a reply, then `UdpReplied` (assured, longer stream timeout).
//! ICMP: only an echo/timestamp request opens (`IcmpRequest`); its reply makes it
//! `IcmpReplied`. Other ICMP types allowed by policy and other protocols use `Other` /
//! `OtherReplied` with the ICMP or generic timeout.

use rampart_wire::proto;
use rampart_wire::tcp::flags as tf;

use crate::flow::{flag, Direction, Record};

/// Per-flow protocol state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FlowState {
    /// Slot not in use.
    Free = 0,
    /// Inserted; the first packet has not been tracked yet.
    New,
    /// TCP: SYN seen.
    TcpSynSent,
    /// TCP: SYN-ACK (or simultaneous SYN) seen.
    TcpSynRecv,
    /// TCP: handshake complete (or picked up mid-stream).
    TcpEstablished,
    /// TCP: one side sent FIN.
    TcpFinWait,
    /// TCP: FIN acknowledged, other side still open.
    TcpCloseWait,
    /// TCP: both sides sent FIN.
    TcpLastAck,
    /// TCP: closed by FINs, lingering.
    TcpTimeWait,
    /// TCP: closed by RST.
    TcpClose,
    /// UDP: one direction seen.
    UdpUnreplied,
    /// UDP: both directions seen.
    UdpReplied,
    /// ICMP: request seen.
    IcmpRequest,
    /// ICMP: reply seen.
    IcmpReplied,
    /// Other protocol (or non-echo ICMP): one direction.
    Other,
    /// Other protocol: both directions.
    OtherReplied,
}

impl FlowState {
    /// Number of states (size of the timeout table).
    pub const COUNT: usize = 16;

    /// Stable lower-case name (for `rampartctl flows`).
    pub fn name(self) -> &'static str {
        match self {
            FlowState::Free => "free",
            FlowState::New => "new",
            FlowState::TcpSynSent => "syn_sent",
            FlowState::TcpSynRecv => "syn_recv",
            FlowState::TcpEstablished => "established",
            FlowState::TcpFinWait => "fin_wait",
            FlowState::TcpCloseWait => "close_wait",
            FlowState::TcpLastAck => "last_ack",
            FlowState::TcpTimeWait => "time_wait",
            FlowState::TcpClose => "close",
            FlowState::UdpUnreplied => "udp_unreplied",
            FlowState::UdpReplied => "udp_replied",
            FlowState::IcmpRequest => "icmp_request",
            FlowState::IcmpReplied => "icmp_replied",
            FlowState::Other => "other",
            FlowState::OtherReplied => "other_replied",
        }
    }
}

macro_rules! track_errors {
    ($( $(#[doc = $doc:literal])* $name:ident => $text:literal, )*) => {
        /// Why `track` refused a packet; the worker counts these per reason.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum TrackError {
            $( $(#[doc = $doc])* $name, )*
        }

        impl TrackError {
            /// Every variant in index order.
            pub const ALL: &'static [TrackError] = &[$(TrackError::$name,)*];
            /// Number of variants.
            pub const COUNT: usize = Self::ALL.len();
            /// Dense index.
            #[inline]
            pub fn index(self) -> usize {
                self as usize
            }
            /// Counter name.
            pub fn name(self) -> &'static str {
                match self { $( TrackError::$name => $text, )* }
            }
        }
    };
}

track_errors! {
    /// The first packet cannot open a flow (TCP without SYN in strict pickup, ICMP reply).
    /// The flow that `insert` created for it is removed again.
    NotOpener => "not_opener",
    /// TCP flags that make no sense in the flow's state (e.g. SYN on an established flow).
    UnexpectedFlags => "unexpected_flags",
    /// Invalid TCP flag combination (SYN+FIN, SYN+RST, no flags).
    BadFlags => "bad_flags",
    /// TCP segment outside the advertised window (strict mode).
    OutOfWindow => "out_of_window",
    /// The handle no longer names a live flow.
    Stale => "stale_handle",
}

/// The outcome of tracking one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrackVerdict {
    /// The packet belongs to the flow; state and counters were updated.
    Accept,
    /// The packet does not fit the flow's state; drop it (nothing was updated).
    Drop(TrackError),
}

/// The table-wide modes the state machine runs in (strictness is per flow).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Modes {
    pub loose: bool,
}

const NO_SCALE: u8 = 0xf;

#[cfg(test)]
fn wscale_of(f: &Record, d: Direction) -> u8 {
    (f.wscale >> (4 * d.index() as u8)) & 0xf
}

fn set_wscale(f: &mut Record, d: Direction, v: Option<u8>) {
    let v = v.map_or(NO_SCALE, |s| s.min(14));
    let sh = 4 * d.index() as u8;
    f.wscale = (f.wscale & !(0xf << sh)) | (v << sh);
}

/// The scale applying to windows sent by `d` (0 unless both sides offered the option), as
/// [`scale_of`] gives it: one load from [`SCALES`] (decoding the two nibbles took ~10
/// instructions, on every ACK of every flow).
#[inline(always)]
fn scale(f: &Record, d: Direction) -> u8 {
    SCALES[usize::from(f.wscale)][d.index()]
}

/// The scale applying to windows sent by `d` for a record's window-scale byte `wscale`
/// (low nibble original, high nibble reply; 0xF = none): 0 unless both sides offered it.
const fn scale_of(wscale: u8, d: usize) -> u8 {
    let (a, b) = (wscale & 0xf, wscale >> 4);
    if a == NO_SCALE || b == NO_SCALE {
        0
    } else if d == 0 {
        a
    } else {
        b
    }
}

/// [`scale_of`] for every window-scale byte and direction (512 bytes).
static SCALES: [[u8; 2]; 256] = {
    let mut t = [[0u8; 2]; 256];
    let mut w = 0;
    while w < 256 {
        t[w] = [scale_of(w as u8, 0), scale_of(w as u8, 1)];
        w += 1;
    }
    t
};

#[inline(always)]
fn edge_flag(d: Direction) -> u8 {
    // EDGE_REPLY is the next bit up from EDGE_ORIG: a shift, not a select.
    const _: () = assert!(flag::EDGE_REPLY == flag::EDGE_ORIG << 1);
    flag::EDGE_ORIG << d.index()
}

fn fin_flag(d: Direction) -> u8 {
    match d {
        Direction::Original => flag::FIN_ORIG,
        Direction::Reply => flag::FIN_REPLY,
    }
}

/// Applies one packet to the flow's state. On error nothing is changed (the table updates
/// records in place and relies on it: every `Err` below returns before the first write).
///
/// The two cases almost every packet of an established flow hits are decided here, inline in
/// the caller's loop: a plain ACK (no SYN/FIN/RST) on an established TCP connection, and
/// UDP. Everything else goes to the full state machine out of line.
#[inline(always)]
pub(crate) fn advance(
    f: &mut Record,
    d: Direction,
    p: &crate::PacketInfo,
    m: Modes,
) -> Result<(), TrackError> {
    // Only a TCP flow is ever `TcpEstablished` (only `tcp` and `open`'s TCP arm set it), so
    // the state alone stands for "TCP and established": no look at the key's protocol.
    if f.state == FlowState::TcpEstablished
        && p.tcp_flags & (tf::SYN | tf::ACK | tf::FIN | tf::RST) == tf::ACK
    {
        // Exactly what `tcp` does for such a segment, with its branches decided.
        if f.flags & flag::STRICT != 0 {
            check_window(f, d, p)?;
        }
        if d == Direction::Reply && f.flags & flag::PICKED_UP != 0 {
            f.flags |= flag::ASSURED;
        }
        learn_edge(f, d, p, false);
        return Ok(());
    }
    match f.key.proto() {
        proto::UDP => {
            f.state = match (f.state, d) {
                (FlowState::New, _) => FlowState::UdpUnreplied,
                (_, Direction::Reply) => {
                    f.flags |= flag::ASSURED;
                    FlowState::UdpReplied
                }
                (s, _) => s,
            };
            Ok(())
        }
        _ => advance_slow(f, d, p, m),
    }
}

/// [`advance`] for a flow's first packet: a record just created by the table's insert (state
/// `New`, no flags but its admission's, no window edges or scales) and a packet of the
/// original direction. The first packets of almost every new flow are decided inline: a
/// SYN, UDP, and in loose mode a bare ACK (a connection picked up mid-stream); the rest as
/// [`advance`] decides them. Gives exactly what `advance(f, Direction::Original, p, m)` gives
/// on such a record (a test compares the two over every flag byte).
#[inline(always)]
pub(crate) fn open(f: &mut Record, p: &crate::PacketInfo, m: Modes) -> Result<(), TrackError> {
    debug_assert!(f.state == FlowState::New && f.wscale == 0xff && f.edge == [0; 2]);
    let d = Direction::Original;
    match f.key.proto() {
        proto::TCP => match p.tcp_flags & (tf::SYN | tf::ACK | tf::FIN | tf::RST) {
            tf::SYN => {
                // As `tcp`: the originator's window scale offer is recorded and the reply
                // side's marked unknown; without an ACK no window edge is learned.
                set_wscale(f, d, p.wscale);
                set_wscale(f, Direction::Reply, None);
                f.state = FlowState::TcpSynSent;
                Ok(())
            }
            tf::ACK if m.loose => {
                f.flags |= flag::PICKED_UP;
                learn_edge(f, d, p, false);
                f.state = FlowState::TcpEstablished;
                Ok(())
            }
            _ => advance_slow(f, d, p, m),
        },
        proto::UDP => {
            f.state = FlowState::UdpUnreplied;
            Ok(())
        }
        _ => advance_slow(f, d, p, m),
    }
}

/// [`advance`] for everything but its two inline cases.
#[inline(never)]
fn advance_slow(
    f: &mut Record,
    d: Direction,
    p: &crate::PacketInfo,
    m: Modes,
) -> Result<(), TrackError> {
    match f.key.proto() {
        proto::TCP => tcp(f, d, p, m),
        proto::ICMP | proto::ICMPV6 if f.state == FlowState::New => {
            if p.icmp_request {
                f.state = FlowState::IcmpRequest;
            } else if p.icmp_reply && !m.loose {
                return Err(TrackError::NotOpener);
            } else {
                f.state = FlowState::Other;
            }
            Ok(())
        }
        _ => {
            f.state = match (f.state, d) {
                (FlowState::New, _) => FlowState::Other,
                (FlowState::IcmpRequest, Direction::Reply) => {
                    f.flags |= flag::ASSURED;
                    FlowState::IcmpReplied
                }
                (FlowState::Other, Direction::Reply) => {
                    f.flags |= flag::ASSURED;
                    FlowState::OtherReplied
                }
                (s, _) => s,
            };
            Ok(())
        }
    }
}

fn tcp(f: &mut Record, d: Direction, p: &crate::PacketInfo, m: Modes) -> Result<(), TrackError> {
    use FlowState::*;
    let fl = p.tcp_flags;
    let (syn, ack, fin, rst) = (
        fl & tf::SYN != 0,
        fl & tf::ACK != 0,
        fl & tf::FIN != 0,
        fl & tf::RST != 0,
    );
    if (syn && (fin || rst)) || fl & (tf::SYN | tf::ACK | tf::FIN | tf::RST) == 0 {
        return Err(TrackError::BadFlags);
    }
    let orig = d == Direction::Original;
    if f.flags & flag::STRICT != 0 && !syn && !matches!(f.state, New | TcpSynSent) {
        check_window(f, d, p)?;
    }
    let next = match f.state {
        New => {
            if syn && !ack {
                TcpSynSent
            } else if m.loose && !syn && !rst {
                f.flags |= flag::PICKED_UP;
                TcpEstablished
            } else {
                return Err(TrackError::NotOpener);
            }
        }
        _ if rst => TcpClose,
        TcpSynSent => match (orig, syn, ack) {
            (true, true, false) => TcpSynSent,
            (false, true, _) => TcpSynRecv,
            _ => return Err(TrackError::UnexpectedFlags),
        },
        TcpSynRecv => match (orig, syn, ack) {
            (_, true, _) => TcpSynRecv,
            (_, false, true) => {
                f.flags |= flag::ASSURED;
                if fin {
                    f.flags |= fin_flag(d);
                    TcpFinWait
                } else {
                    TcpEstablished
                }
            }
            _ => return Err(TrackError::UnexpectedFlags),
        },
        TcpEstablished | TcpFinWait | TcpCloseWait | TcpLastAck if syn => {
            return Err(TrackError::UnexpectedFlags);
        }
        TcpEstablished => {
            if !orig && f.flags & flag::PICKED_UP != 0 {
                f.flags |= flag::ASSURED;
            }
            if fin {
                f.flags |= fin_flag(d);
                TcpFinWait
            } else {
                TcpEstablished
            }
        }
        TcpFinWait | TcpCloseWait => {
            let first_fin_by_me = f.flags & fin_flag(d) != 0;
            if fin && !first_fin_by_me {
                f.flags |= fin_flag(d);
                TcpLastAck
            } else if !first_fin_by_me && ack {
                TcpCloseWait
            } else {
                f.state
            }
        }
        TcpLastAck => {
            if ack && !fin {
                TcpTimeWait
            } else {
                TcpLastAck
            }
        }
        TcpTimeWait | TcpClose => {
            if syn && !ack && orig {
                // Port reuse: a fresh connection on the same 5-tuple.
                f.flags &= !(flag::FIN_ORIG
                    | flag::FIN_REPLY
                    | flag::EDGE_ORIG
                    | flag::EDGE_REPLY
                    | flag::ASSURED);
                TcpSynSent
            } else if syn {
                return Err(TrackError::UnexpectedFlags);
            } else {
                f.state
            }
        }
        Free | UdpUnreplied | UdpReplied | IcmpRequest | IcmpReplied | Other | OtherReplied => {
            return Err(TrackError::Stale);
        }
    };
    if syn {
        set_wscale(f, d, p.wscale);
        if next == TcpSynSent {
            // Fresh handshake: the reply side has not spoken yet.
            set_wscale(f, Direction::Reply, None);
        }
    }
    if ack {
        learn_edge(f, d, p, syn);
    }
    f.state = next;
    Ok(())
}

/// An ACK sent by `d`: the receiver tells the other side how far it may send (SYN windows
/// are never scaled).
#[inline(always)]
fn learn_edge(f: &mut Record, d: Direction, p: &crate::PacketInfo, syn: bool) {
    let other = d.flip();
    let win = u32::from(p.window) << if syn { 0 } else { scale(f, d) };
    let edge = p.ack.wrapping_add(win);
    let i = other.index();
    if f.flags & edge_flag(other) == 0 || (edge.wrapping_sub(f.edge[i]) as i32) > 0 {
        f.edge[i] = edge;
        f.flags |= edge_flag(other);
    }
}

#[inline(always)]
fn check_window(f: &Record, d: Direction, p: &crate::PacketInfo) -> Result<(), TrackError> {
    if f.flags & edge_flag(d) == 0 {
        return Ok(());
    }
    let edge = f.edge[d.index()];
    let fin = u32::from(p.tcp_flags & tf::FIN != 0);
    let end = p
        .seq
        .wrapping_add(u32::from(p.payload_len))
        .wrapping_add(fin);
    if (end.wrapping_sub(edge) as i32) > 0 {
        return Err(TrackError::OutOfWindow);
    }
    let max_win = 65535u64 << scale(f, d.flip());
    let below = u64::from(edge.wrapping_sub(p.seq));
    if below > 2 * max_win {
        return Err(TrackError::OutOfWindow);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::SlotKey;
    use crate::PacketInfo;

    /// The table gives what decoding the nibbles gives, for every byte and direction.
    #[test]
    fn scale_table_agrees_with_decoding() {
        for w in 0..=255u8 {
            let mut f = Record::FREE;
            f.wscale = w;
            for d in [Direction::Original, Direction::Reply] {
                let (a, b) = (
                    wscale_of(&f, Direction::Original),
                    wscale_of(&f, Direction::Reply),
                );
                let want = if a == NO_SCALE || b == NO_SCALE {
                    0
                } else {
                    wscale_of(&f, d)
                };
                assert_eq!(scale(&f, d), want, "{w:#x} {d:?}");
            }
        }
    }

    /// `open` agrees with `advance` on a freshly inserted record for every TCP flag byte,
    /// window scale offer, mode and admission flags, and for UDP, ICMP and other protocols.
    #[test]
    fn open_agrees_with_advance_on_a_new_record() {
        let mut checked = 0;
        for proto_no in [proto::TCP, proto::UDP, proto::ICMP, proto::ICMPV6, 47] {
            for flags in [
                0,
                flag::ORIG_SWAPPED,
                flag::STRICT,
                flag::ORIG_SWAPPED | flag::STRICT,
            ] {
                for loose in [false, true] {
                    for tcp_flags in 0..=255u8 {
                        for wscale in [None, Some(0), Some(7), Some(14), Some(15), Some(200)] {
                            for (request, reply) in [(false, false), (true, false), (false, true)] {
                                let mut f = Record::FREE;
                                f.key = SlotKey::v4([10, 0, 0, 1], [10, 0, 0, 2], proto_no, 1, 2);
                                f.state = FlowState::New;
                                f.flags = flags;
                                f.rule = 7;
                                f.generation = 3;
                                f.last_seen = 99;
                                let p = PacketInfo {
                                    proto: proto_no,
                                    tcp_flags,
                                    seq: 0x8000_0001,
                                    ack: 0xffff_fff0,
                                    window: 4000,
                                    wscale,
                                    payload_len: 10,
                                    frame_len: 64,
                                    icmp_request: request,
                                    icmp_reply: reply,
                                };
                                let m = Modes { loose };
                                let (mut a, mut b) = (f, f);
                                let ra = open(&mut a, &p, m);
                                let rb = advance(&mut b, Direction::Original, &p, m);
                                assert_eq!(ra, rb, "{p:?} {flags:#x} {loose}");
                                assert_eq!(format!("{a:?}"), format!("{b:?}"), "{p:?}");
                                checked += 1;
                            }
                        }
                    }
                }
            }
        }
        assert!(checked > 100_000);
    }
}
