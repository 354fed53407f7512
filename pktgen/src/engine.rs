//! The generator loop: one thread sends on the TX port, receives on the RX port (what the
//! appliance forwarded) and on the TX port (what it sent back), answers TCP sessions on both,
//! and keeps per-stream counters. Time is read once per loop iteration, nothing is allocated
//! per packet, and progress is printed once a second.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rampart_dpdk::{rdtsc, Mbuf, MbufBurst, Mempool, Port, PortStats, RxQueue, TxQueue};
use rampart_wire::{parse, proto, tcp::flags, EthernetRepr, FrameKind, ParseConfig, Parsed};

use crate::flows::Tuple;
use crate::rate::TokenBucket;
use crate::session::{self, ClientStep, Segment};
use crate::spec::{Stream, StreamKind};
use crate::stamp::Stamp;
use crate::stats::{
    progress_line, Latency, PortReport, Returned, RunReport, StreamCounters, StreamReport,
    Unmatched,
};

/// Largest TX/RX burst.
pub const MAX_BURST: usize = 64;
/// How often a burst of session answers is offered to a full TX queue before it is dropped.
const REPLY_TX_ATTEMPTS: usize = 1000;

/// The two ports and their queues (one RX and one TX queue each).
pub struct Io {
    /// The port frames leave from (the appliance's inside).
    pub tx_port: Port,
    /// The port forwarded frames arrive on (the appliance's outside).
    pub rx_port: Port,
    /// Receives what comes back on the TX port.
    pub near_rx: RxQueue,
    /// Sends generated frames (and client-side session frames).
    pub near_tx: TxQueue,
    /// Receives forwarded frames.
    pub far_rx: RxQueue,
    /// Sends server-side session frames.
    pub far_tx: TxQueue,
    /// Where frames are built.
    pub pool: Mempool,
    /// Poll the TX port for returned frames (false for net_null, whose RX makes up frames).
    pub poll_near: bool,
    /// Poll the RX port (false for net_null).
    pub poll_far: bool,
}

/// What one run (or search trial) does.
#[derive(Debug, Clone)]
pub struct RunParams {
    /// Packets per second over all streams (0 = as fast as possible).
    pub pps: u64,
    /// Seconds to send.
    pub duration_s: f64,
    /// Stop after this many generated frames (session replies not counted).
    pub count: Option<u64>,
    /// Frames per TX burst.
    pub burst: usize,
    /// Trial number written into stamps.
    pub trial: u8,
    /// Print a progress line every second (stderr).
    pub progress: bool,
    /// Longest wait for in-flight frames after sending stops (ms).
    pub drain_ms: u64,
    /// The wait ends early after this long without receiving anything (ms).
    pub quiet_ms: u64,
}

/// Who sent a frame in an outbox, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Client,
    Server,
}

/// Frames built in reaction to received ones, waiting for a TX burst.
struct Outbox {
    burst: MbufBurst<MAX_BURST>,
    who: [(u8, Role, u16); MAX_BURST],
}

impl Outbox {
    fn new() -> Outbox {
        Outbox {
            burst: MbufBurst::new(),
            who: [(0, Role::Client, 0); MAX_BURST],
        }
    }

    fn flush(&mut self, txq: &mut TxQueue, counters: &mut [StreamCounters]) {
        let n = self.burst.len();
        if n == 0 {
            return;
        }
        // Session answers are few and each one matters (a lost SYN-ACK is a lost session):
        // retry a full queue a little before giving up on them.
        let mut sent = 0;
        for _ in 0..REPLY_TX_ATTEMPTS {
            sent += txq.tx_burst(&mut self.burst);
            if sent == n {
                break;
            }
        }
        for (i, &(s, role, len)) in self.who[..n].iter().enumerate() {
            let c = &mut counters[usize::from(s)];
            if i < sent {
                match role {
                    Role::Client => {
                        c.tx += 1;
                        c.tx_bytes += u64::from(len);
                    }
                    Role::Server => c.sessions.server_tx += 1,
                }
            } else {
                c.tx_full += 1;
            }
        }
        self.burst.clear();
    }
}

/// The generator: streams, their counters and the schedule that interleaves them.
pub struct Generator {
    streams: Vec<Stream>,
    counters: Vec<StreamCounters>,
    /// Stream index for each successive generated frame (weighted by share).
    schedule: Vec<u16>,
    sched_pos: usize,
    /// Indices of TCP session streams.
    sessions: Vec<usize>,
    /// Ethernet header of server-side frames (RX port → TX port).
    server_eth: Vec<EthernetRepr>,
    parse_cfg: ParseConfig,
    returned: Returned,
    unmatched: Unmatched,
    hz: u64,
    trial: u8,
    /// Frames not built because the pool was empty.
    pub alloc_failures: u64,
    /// Generated frames the device has not taken yet, and their (stream, length).
    pending: MbufBurst<MAX_BURST>,
    pending_who: [(u16, u16); MAX_BURST],
}

impl Generator {
    /// A generator over `streams` (at most 256) on a TSC of `hz`.
    pub fn new(streams: Vec<Stream>, hz: u64) -> Generator {
        assert!(
            !streams.is_empty() && streams.len() <= 256,
            "1..=256 streams"
        );
        // Shares become integer weights with three significant digits.
        let max = streams.iter().map(|s| s.share).fold(0.0f64, f64::max);
        let weights: Vec<u32> = streams
            .iter()
            .map(|s| ((s.share / max) * 1000.0).round().max(1.0) as u32)
            .collect();
        let g = weights.iter().copied().fold(0, gcd);
        let weights: Vec<u32> = weights.iter().map(|w| w / g).collect();
        let schedule = crate::spec::interleave(&weights);
        let sessions = (0..streams.len())
            .filter(|&i| matches!(streams[i].kind, StreamKind::Session(_)))
            .collect();
        let server_eth = streams
            .iter()
            .map(|s| EthernetRepr {
                src: s.eth.dst,
                dst: s.eth.src,
                ..s.eth
            })
            .collect();
        Generator {
            counters: streams.iter().map(|_| StreamCounters::new(hz)).collect(),
            streams,
            schedule,
            sched_pos: 0,
            sessions,
            server_eth,
            parse_cfg: ParseConfig::default(),
            returned: Returned::default(),
            unmatched: Unmatched::default(),
            hz,
            trial: 0,
            alloc_failures: 0,
            pending: MbufBurst::new(),
            pending_who: [(0, 0); MAX_BURST],
        }
    }

    /// The streams.
    pub fn streams(&self) -> &[Stream] {
        &self.streams
    }

    /// Average frame size (FCS included) over the schedule, for line-rate arithmetic.
    pub fn avg_frame_size(&self) -> f64 {
        let n = self.schedule.len() as f64;
        self.schedule
            .iter()
            .map(|&s| self.streams[usize::from(s)].avg_frame_size)
            .sum::<f64>()
            / n
    }

    fn reset(&mut self) {
        for c in &mut self.counters {
            c.reset();
        }
        self.returned = Returned::default();
        self.unmatched = Unmatched::default();
        self.alloc_failures = 0;
    }

    /// Runs once with `p` and reports. `stop` ends sending early (SIGINT).
    pub fn run(&mut self, io: &mut Io, p: &RunParams, stop: &Arc<AtomicBool>) -> RunReport {
        self.reset();
        self.trial = p.trial;
        let burst = p.burst.clamp(1, MAX_BURST);
        let (tx0, rx0) = (io.tx_port.stats(), io.rx_port.stats());
        let hz = self.hz;
        let start = rdtsc();
        let end = start.saturating_add((p.duration_s * hz as f64) as u64);
        let mut bucket = TokenBucket::new(p.pps, hz, burst as u32, start);
        let mut next_report = start + hz;
        let (mut last_tx, mut last_rx, mut last_report) = (0u64, 0u64, start);
        let mut generated = 0u64;
        let mut sending = true;
        let mut tx_end = end;
        let mut drain_deadline = u64::MAX;
        let mut last_rx_tsc = start;
        let quiet = p.quiet_ms * hz / 1000;
        let mut near_out = Outbox::new();
        let mut far_out = Outbox::new();
        let mut rxb: MbufBurst<MAX_BURST> = MbufBurst::new();
        loop {
            let now = rdtsc();
            if sending {
                let done = p.count.is_some_and(|c| generated >= c);
                if now >= end || done || stop.load(Ordering::Relaxed) {
                    sending = false;
                    tx_end = now;
                    drain_deadline = now + p.drain_ms * hz / 1000;
                } else {
                    let want = p
                        .count
                        .map_or(burst as u64, |c| (c - generated).min(burst as u64))
                        as u32;
                    let n = bucket.take(now, want) as usize;
                    if n > 0 {
                        let built = self.send_burst(io, n, now);
                        generated += built as u64;
                        bucket.refund((n - built) as u32);
                    } else {
                        self.flush_pending(io);
                    }
                }
            } else if !self.flush_pending(io) && now < drain_deadline {
                // Frames built before the end still go out before draining counts.
            } else if now >= drain_deadline
                || now.saturating_sub(last_rx_tsc.max(tx_end)) > quiet
                || self.all_accounted()
                || stop.load(Ordering::Relaxed) && now.saturating_sub(tx_end) > hz / 10
            {
                break;
            }
            let got = self.receive_far(io, &mut rxb, &mut far_out, now)
                + self.receive_near(io, &mut rxb, &mut near_out, now);
            if got > 0 {
                last_rx_tsc = now;
            }
            far_out.flush(&mut io.far_tx, &mut self.counters);
            near_out.flush(&mut io.near_tx, &mut self.counters);
            if p.progress && now >= next_report {
                let (tx, rx) = self.totals();
                let mut lat = Latency::new(hz);
                for c in &self.counters {
                    lat.merge(&c.latency);
                }
                let dt = (now - last_report) as f64 / hz as f64;
                eprintln!(
                    "{}",
                    progress_line(
                        (now - start) as f64 / hz as f64,
                        tx - last_tx,
                        rx - last_rx,
                        dt,
                        tx,
                        rx,
                        &lat,
                        self.returned.total
                    )
                );
                (last_tx, last_rx, last_report) = (tx, rx, now);
                next_report += hz;
            }
        }
        self.drop_pending();
        let secs = (tx_end.saturating_sub(start)) as f64 / hz as f64;
        self.report(
            secs,
            p.pps,
            diff(io.tx_port.stats(), tx0),
            diff(io.rx_port.stats(), rx0),
        )
    }

    fn totals(&self) -> (u64, u64) {
        self.counters.iter().fold((0, 0), |(t, r), c| {
            let (a, b) = c.sent_and_received();
            (t + a, r + b)
        })
    }

    /// Everything sent has arrived and every session started has closed.
    fn all_accounted(&self) -> bool {
        self.streams.iter().zip(&self.counters).all(|(s, c)| {
            let (tx, rx) = c.sent_and_received();
            tx == rx
                && (!matches!(s.kind, StreamKind::Session(_))
                    || c.sessions.closed == c.sessions.started)
        })
    }

    /// Sends what is pending; returns true when nothing is left (the device took it all).
    /// Frames the device refuses stay pending and are retried first on the next call, so a
    /// momentarily full queue delays frames instead of dropping them or skipping streams.
    fn flush_pending(&mut self, io: &mut Io) -> bool {
        let n = self.pending.len();
        if n == 0 {
            return true;
        }
        let sent = io.near_tx.tx_burst(&mut self.pending);
        for &(si, len) in &self.pending_who[..sent] {
            let c = &mut self.counters[usize::from(si)];
            c.tx += 1;
            c.tx_bytes += u64::from(len);
            if matches!(self.streams[usize::from(si)].kind, StreamKind::Session(_)) {
                c.sessions.started += 1;
            }
        }
        self.pending_who.copy_within(sent..n, 0);
        sent == n
    }

    /// Frames still pending when a run ends: freed and counted as never sent.
    fn drop_pending(&mut self) {
        let n = self.pending.len();
        for &(si, _) in &self.pending_who[..n] {
            self.counters[usize::from(si)].tx_full += 1;
        }
        self.pending.clear();
    }

    /// Builds up to `n` frames and sends them; returns how many were built (0 while the
    /// device is still refusing earlier frames).
    fn send_burst(&mut self, io: &mut Io, n: usize, now: u64) -> usize {
        if !self.flush_pending(io) {
            return 0;
        }
        if !io.pool.alloc_bulk(&mut self.pending, n) {
            self.alloc_failures += 1;
            return 0;
        }
        for (i, m) in self.pending.as_mut_slice().iter_mut().enumerate() {
            let si = self.schedule[self.sched_pos];
            self.sched_pos = if self.sched_pos + 1 == self.schedule.len() {
                0
            } else {
                self.sched_pos + 1
            };
            let s = &mut self.streams[usize::from(si)];
            let stamp = Stamp {
                stream: si as u8,
                trial: self.trial,
                seq: s.seq,
                tsc: now,
            };
            s.seq = s.seq.wrapping_add(1);
            let len = match s.kind {
                StreamKind::Stateless | StreamKind::Replay => {
                    let fi = s.next_frame();
                    let tpl = &s.frames[fi];
                    let tuple = s
                        .space
                        .as_ref()
                        .map_or(Tuple::default(), |sp| s.cursor.tuple(sp));
                    if let Some(sp) = &s.space {
                        s.cursor.advance(sp);
                    }
                    match m.append(tpl.len()) {
                        Some(buf) => {
                            tpl.write(buf, &tuple, &stamp);
                            tpl.len()
                        }
                        None => 0,
                    }
                }
                StreamKind::Session(_) => {
                    let sp = s.space.as_ref().expect("session streams have flows");
                    let seg = session::syn(&s.cursor.tuple(sp), sp.v6, s.cursor.flow());
                    s.cursor.advance(sp);
                    write_segment(m, &s.eth, s.ttl, &seg, &stamp)
                }
            };
            self.pending_who[i] = (si, len as u16);
        }
        self.flush_pending(io);
        n
    }

    /// The session stream a TCP segment belongs to: `forward` = client → server.
    fn session_of(&self, p: &Parsed, forward: bool) -> Option<usize> {
        let k = &p.key;
        let v4 = |a: &[u8; 16]| -> [u8; 16] {
            let mut o = [0u8; 16];
            if rampart_wire::Family::V4 == k.family() {
                o[..4].copy_from_slice(&a[12..16]);
            } else {
                o = *a;
            }
            o
        };
        let (src, dst, sport, dport) = if forward {
            (v4(&k.src), v4(&k.dst), k.src_port, k.dst_port)
        } else {
            (v4(&k.dst), v4(&k.src), k.dst_port, k.src_port)
        };
        self.sessions.iter().copied().find(|&i| {
            self.streams[i].space.as_ref().is_some_and(|sp| {
                sp.v6 == (k.family() == rampart_wire::Family::V6)
                    && sp.index_of(&src, &dst, sport, dport).is_some()
            })
        })
    }

    /// Frames the appliance forwarded (RX port): count, time, answer as the server.
    fn receive_far(
        &mut self,
        io: &mut Io,
        rxb: &mut MbufBurst<MAX_BURST>,
        out: &mut Outbox,
        now: u64,
    ) -> usize {
        if !io.poll_far {
            return 0;
        }
        let n = io.far_rx.rx_burst(rxb);
        if n == 0 {
            return 0;
        }
        // Arrival time: one clock read per received burst.
        let now = now.max(rdtsc());
        for m in rxb.as_slice() {
            let d = m.data();
            if let Some(st) = Stamp::read(d).filter(|s| usize::from(s.stream) < self.streams.len())
            {
                if st.trial != self.trial {
                    self.unmatched.late += 1;
                    continue;
                }
                let c = &mut self.counters[usize::from(st.stream)];
                c.rx += 1;
                c.rx_bytes += d.len() as u64;
                c.latency.record_ticks(now.saturating_sub(st.tsc));
                continue;
            }
            if self.sessions.is_empty() {
                self.unmatched.foreign += 1;
                continue;
            }
            let Some(p) = parse(d, &self.parse_cfg)
                .ok()
                .filter(|p| p.kind == FrameKind::Ip && p.key.proto == proto::TCP)
            else {
                self.unmatched.foreign += 1;
                continue;
            };
            let Some(si) = self.session_of(&p, true) else {
                self.unmatched.foreign += 1;
                continue;
            };
            let c = &mut self.counters[si];
            c.rx += 1;
            c.rx_bytes += d.len() as u64;
            if p.tcp.flags & flags::RST != 0 {
                c.sessions.resets += 1;
            }
            if let Some(seg) = session::server_answer(&p) {
                let stamp = Stamp {
                    stream: si as u8,
                    trial: self.trial,
                    seq: 0,
                    tsc: now,
                };
                self.push(io, out, si, Role::Server, &seg, &stamp, true);
            }
        }
        rxb.clear();
        n
    }

    /// Frames that came back on the TX port: session answers, rejects, anything else.
    fn receive_near(
        &mut self,
        io: &mut Io,
        rxb: &mut MbufBurst<MAX_BURST>,
        out: &mut Outbox,
        now: u64,
    ) -> usize {
        if !io.poll_near {
            return 0;
        }
        let n = io.near_rx.rx_burst(rxb);
        if n == 0 {
            return 0;
        }
        for m in rxb.as_slice() {
            let d = m.data();
            if Stamp::read(d).is_some_and(|s| {
                s.trial == self.trial && usize::from(s.stream) < self.streams.len()
            }) {
                self.returned.total += 1;
                self.returned.stamped += 1;
                continue;
            }
            let Ok(p) = parse(d, &self.parse_cfg) else {
                self.returned.total += 1;
                continue;
            };
            if p.kind == FrameKind::Ip && p.key.proto == proto::TCP {
                if p.tcp.flags & flags::RST != 0 {
                    self.returned.tcp_rst += 1;
                }
                if let Some(si) = self.session_of(&p, false) {
                    let StreamKind::Session(sp) = self.streams[si].kind else {
                        unreachable!()
                    };
                    self.counters[si].sessions.client_rx += 1;
                    match session::client_step(&p, sp.segments, sp.segment_size) {
                        ClientStep::Established { first, segments } => {
                            self.counters[si].sessions.established += 1;
                            for i in 0..=segments {
                                let seg =
                                    session::data_segment(&first, i, segments, sp.segment_size);
                                let s = &mut self.streams[si];
                                let stamp = Stamp {
                                    stream: si as u8,
                                    trial: self.trial,
                                    seq: s.seq,
                                    tsc: now,
                                };
                                s.seq = s.seq.wrapping_add(1);
                                self.push(io, out, si, Role::Client, &seg, &stamp, false);
                            }
                        }
                        ClientStep::Close(seg) => {
                            self.counters[si].sessions.closed += 1;
                            let stamp = Stamp {
                                stream: si as u8,
                                trial: self.trial,
                                seq: 0,
                                tsc: now,
                            };
                            self.push(io, out, si, Role::Client, &seg, &stamp, false);
                        }
                        ClientStep::Reset => self.counters[si].sessions.resets += 1,
                        ClientStep::None => {}
                    }
                    continue;
                }
            }
            self.returned.total += 1;
            let unreachable = match p.key.proto {
                proto::ICMP => p.icmp.msg_type == 3,
                proto::ICMPV6 => p.icmp.msg_type == 1,
                _ => false,
            };
            if unreachable {
                self.returned.icmp_unreachable += 1;
            }
        }
        rxb.clear();
        n
    }

    /// Builds `seg` into a fresh mbuf and queues it (flushing the outbox when full).
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        io: &mut Io,
        out: &mut Outbox,
        si: usize,
        role: Role,
        seg: &Segment,
        stamp: &Stamp,
        far: bool,
    ) {
        if out.burst.spare() == 0 {
            let q = if far { &mut io.far_tx } else { &mut io.near_tx };
            out.flush(q, &mut self.counters);
        }
        let Some(mut m) = io.pool.alloc() else {
            self.alloc_failures += 1;
            return;
        };
        let eth = match role {
            Role::Client => self.streams[si].eth,
            Role::Server => self.server_eth[si],
        };
        let len = write_segment(&mut m, &eth, self.streams[si].ttl, seg, stamp);
        let i = out.burst.len();
        out.who[i] = (si as u8, role, len as u16);
        // The outbox has room (flushed above).
        let _ = out.burst.push(m);
    }

    fn report(&self, secs: f64, pps: u64, txp: PortStats, rxp: PortStats) -> RunReport {
        let streams: Vec<StreamReport> = self
            .streams
            .iter()
            .zip(&self.counters)
            .map(|(s, c)| c.report(&s.name, secs))
            .collect();
        let mut sum = StreamCounters::new(self.hz);
        for c in &self.counters {
            sum.tx += c.tx;
            sum.tx_bytes += c.tx_bytes;
            sum.tx_full += c.tx_full;
            sum.rx += c.rx;
            sum.rx_bytes += c.rx_bytes;
            sum.sessions.server_tx += c.sessions.server_tx;
            sum.sessions.client_rx += c.sessions.client_rx;
            sum.latency.merge(&c.latency);
        }
        let mut total = sum.report("total", secs);
        total.sessions = None;
        RunReport {
            duration_s: secs,
            offered_pps: pps,
            streams,
            total,
            returned: self.returned,
            unmatched: self.unmatched,
            tx_port: port_report(txp),
            rx_port: port_report(rxp),
        }
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Writes a TCP segment into an empty mbuf; returns its length.
fn write_segment(m: &mut Mbuf, eth: &EthernetRepr, ttl: u8, seg: &Segment, stamp: &Stamp) -> usize {
    let mut buf = [0u8; 1600];
    let n = session::write(eth, ttl, seg, stamp, &mut buf);
    if let Some(d) = m.append(n) {
        d.copy_from_slice(&buf[..n]);
    }
    n
}

fn diff(a: PortStats, b: PortStats) -> PortStats {
    PortStats {
        ipackets: a.ipackets.saturating_sub(b.ipackets),
        opackets: a.opackets.saturating_sub(b.opackets),
        ibytes: a.ibytes.saturating_sub(b.ibytes),
        obytes: a.obytes.saturating_sub(b.obytes),
        imissed: a.imissed.saturating_sub(b.imissed),
        ierrors: a.ierrors.saturating_sub(b.ierrors),
        oerrors: a.oerrors.saturating_sub(b.oerrors),
        rx_nombuf: a.rx_nombuf.saturating_sub(b.rx_nombuf),
    }
}

fn port_report(s: PortStats) -> PortReport {
    PortReport {
        ipackets: s.ipackets,
        opackets: s.opackets,
        imissed: s.imissed,
        ierrors: s.ierrors,
        oerrors: s.oerrors,
        rx_nombuf: s.rx_nombuf,
    }
}
