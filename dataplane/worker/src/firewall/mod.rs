//! The firewall stage: parse → connection tracking → classification → verdict, over a burst.
//!
//! Stages follow STYLE.md §4: each reads only what the previous one wrote into per-worker
//! scratch arrays, so nothing calls backwards and nothing allocates.
//!
//! 1. **Parse** every frame into `parsed[i]`. A malformed frame is dropped and counted by
//!    parse error; ARP (with the pass policy) is forwarded without state; non-first fragments
//!    are dropped (the parser's default policy already refuses them — see `rampart_wire::parse`).
//! 2. **Track.** Each IP packet's key is prepared (hashed, its bucket prefetched) as soon as it
//!    is parsed; then one `lookup_track_burst` over them: a hit whose flow was
//!    admitted under the current ruleset (its publish number) is tracked and forwarded in
//!    the same pass. A hit
//!    from an older ruleset is queued for revalidation (when enabled). A miss that is an ICMP error
//!    relating to a tracked flow is forwarded with it. Any other miss that may open a flow is
//!    queued for classification; one that may not (a mid-stream TCP segment without loose
//!    pickup) is dropped as `no_flow`.
//! 3. **Classify** the queue with one `classify_bulk` against the ruleset loaded once for the
//!    burst. Allow: create (or re-stamp) the flow with rule id + generation, then track.
//!    Drop: count, and cut the flow if it was being revalidated. Reject: build a TCP RST or
//!    ICMP unreachable in the worker's reply scratch, which the poll loop sends back out of the
//!    ingress port.
//! 4. **End of poll:** report an RCU quiescent state, expire a bounded number of flows, and
//!    refresh the flow gauges.

mod counters;
mod inspect;
mod log;
mod revalidate;

pub use counters::{FirewallCounters, FirewallSnapshot};
pub use inspect::{AskError, FlowRow, Inspector, Question};
pub use log::{log_queue, LogQueue, RuleLog};

use crate::stage::{BurstCtx, BurstStage, DropReason, Verdict};
use crate::MAX_PORTS;
use log::RateLimit;
use rampart_classify::{
    Action, Family, Match, PacketDirection, PacketFields, RuleCheck, Ruleset, TableReader,
    TcpStrictness,
};
use rampart_dpdk::MbufBurst;
use rampart_flow::{
    Admission, FlowConfig, FlowConfigError, FlowTable, Hit, Left, Outcome, PacketInfo, PreparedKey,
    RuleId, TrackVerdict,
};
use rampart_wire::{
    build_icmp_unreachable, build_tcp_rst, parse_into, parse_plain_with, proto, Fragment,
    FrameKind, ParseConfig, Parsed, PlainIpv4, PlainPolicy, TcpMeta,
};
use std::sync::Arc;

/// Most packets the stage handles per call (the worker's RX burst is at most this).
pub const STAGE_BURST: usize = 64;
/// Largest reply frame built for `reject` (an ICMPv6 error is capped at 1280 B of IP).
const REPLY_MAX: usize = 1536;
/// Flow id recorded for flows admitted by the default action (no rule).
pub const DEFAULT_RULE: RuleId = RuleId(u32::MAX);
/// Flows examined for expiry per poll, on average (see `EXPIRE_SWEEP_EVERY`): bounds the
/// timer work of the polls. Each one is a record cache line read, so this is memory traffic
/// that competes with the lookups of live flows; 16 still sweeps a 1M-flow table in ~64K
/// polls (well under a second when busy, and timeouts are 10 s or more), and lookups and
/// full-table inserts expire flows lazily anyway.
const EXPIRE_BUDGET: u32 = 16;
/// Polls per expiry sweep step: every 4th poll examines `EXPIRE_SWEEP_EVERY * EXPIRE_BUDGET`
/// records, the same rate as `EXPIRE_BUDGET` every poll, with the sweep's fixed cost (~40
/// instructions: cursor, bounds, stats) paid once instead of 4 times. The flow gauges still
/// follow the table every poll; an expiry shows in them at most 3 polls (microseconds) later.
const EXPIRE_SWEEP_EVERY: u32 = 4;
const _: () = assert!(EXPIRE_SWEEP_EVERY.is_power_of_two());

/// How the firewall stage behaves; fixed at start-up.
#[derive(Debug, Clone)]
pub struct FirewallSettings {
    /// Parser policies (ARP, fragments, tunnel ports).
    pub parse: ParseConfig,
    /// Flow-table capacity, timeouts and TCP modes.
    pub flow: FlowConfig,
    /// Direction of packets arriving on each port (indexed by `PortIndex`): traffic from the
    /// inside port is `Out`, from the outside port `In`.
    pub port_direction: [PacketDirection; MAX_PORTS],
    /// Re-check existing flows against a new ruleset on their next packet, cutting those it
    /// no longer allows (ARCHITECTURE.md decision 3). Off: flows keep the verdict they got.
    pub revalidate_flows: bool,
    /// Rule-log records per second per worker.
    pub log_rate_per_sec: u32,
    /// Rule-log burst allowance.
    pub log_burst: u32,
    /// TSC frequency (from `rampart_dpdk::tsc_hz`), to turn the TSC into nanoseconds.
    pub tsc_hz: u64,
}

impl FirewallSettings {
    /// Defaults for ports laid out as pairs `(inside, outside)`: even ports are inside.
    pub fn paired(tsc_hz: u64) -> Self {
        FirewallSettings {
            parse: ParseConfig::default(),
            flow: FlowConfig::default(),
            port_direction: std::array::from_fn(|p| {
                if p % 2 == 0 {
                    PacketDirection::Out
                } else {
                    PacketDirection::In
                }
            }),
            revalidate_flows: true,
            log_rate_per_sec: 100,
            log_burst: 100,
            tsc_hz,
        }
    }
}

/// Backs the flow table with transparent huge pages where the kernel allows it: at 1M flows
/// `decide` ran ~1.15–1.3× faster with them in the pipeline bench (with 4 KiB pages nearly
/// every record access misses the TLB). Refusal (THP off) only costs that speed.
struct HugePages;

impl rampart_flow::MemoryAdvice for HugePages {
    fn advise<T>(&mut self, region: &mut [std::mem::MaybeUninit<T>]) {
        rampart_dpdk::advise_hugepages(region);
    }
}

/// Converts the TSC to nanoseconds with one multiply (fixed point, 32 fractional bits).
#[derive(Debug, Clone, Copy)]
struct TscClock {
    ns_per_tick_q32: u128,
}

impl TscClock {
    fn new(tsc_hz: u64) -> Self {
        TscClock {
            ns_per_tick_q32: (1_000_000_000u128 << 32) / u128::from(tsc_hz.max(1)),
        }
    }

    #[inline]
    fn ns(&self, tsc: u64) -> u64 {
        ((u128::from(tsc) * self.ns_per_tick_q32) >> 32) as u64
    }
}

/// What stage 2 queued for stage 3.
#[derive(Debug, Clone, Copy)]
struct Pending {
    /// Index of the packet in the burst.
    pkt: u8,
    /// Index of its key in the burst's prepared keys.
    key: u8,
    /// The existing flow, when this is a revalidation.
    hit: Option<Hit>,
}

/// Per-worker scratch arrays, reused every burst.
struct Scratch {
    /// Full parse results. For a frame the plain-IPv4 fast path took, written only once the
    /// packet turns out to need more than a lookup and `track` (see `plain`).
    parsed: [Parsed; STAGE_BURST],
    /// Tracking facts of each prepared key's packet.
    key_info: [PacketInfo; STAGE_BURST],
    /// For a key whose packet the fast path took: its IPv4 total length, the one field of
    /// its `Parsed` that neither the key nor the tracking facts hold; 0 once `parsed` is
    /// written (see [`materialise`]).
    key_plain_l3: [u16; STAGE_BURST],
    /// Keys of the burst's IP packets, prepared (hashed, bucket prefetched) right after
    /// each packet is parsed, so the rest of the parsing hides the memory latency.
    keys: [PreparedKey; STAGE_BURST],
    key_pkt: [u8; STAGE_BURST],
    /// What stage 2's lookup left for the rest of the stage (see `lookup_track_burst`).
    left: [Left; STAGE_BURST],
    pending: [Pending; STAGE_BURST],
    fields: [PacketFields; STAGE_BURST],
    matches: [Match; STAGE_BURST],
    reply: [[u8; REPLY_MAX]; STAGE_BURST],
    reply_len: [u16; STAGE_BURST],
    /// `Verdict::Reply`s of the last burst: with none, `process` skips its scan of the
    /// verdicts for them.
    replies: u32,
}

/// The firewall pipeline of one worker. Built on the main thread, moved to its lcore.
pub struct Firewall {
    settings: FirewallSettings,
    /// `settings.parse` resolved for the parser's fast path, once: a field, so the compiler
    /// keeps its folded compares (see `PlainPolicy`).
    plain: PlainPolicy,
    clock: TscClock,
    table: FlowTable,
    reader: TableReader,
    counters: Arc<FirewallCounters>,
    log: Option<LogQueue>,
    log_limit: RateLimit,
    inspector: Arc<Inspector>,
    responder: inspect::Responder,
    /// Polls so far (wrapping), to pace the expiry sweep.
    polls: u32,
    s: Box<Scratch>,
}

impl Firewall {
    /// A stage reading rulesets through `reader`, logging into `log` (if any).
    pub fn new(
        settings: FirewallSettings,
        reader: TableReader,
        log: Option<LogQueue>,
    ) -> Result<Self, FlowConfigError> {
        let table = FlowTable::new_advised(&settings.flow, &mut HugePages)?;
        Ok(Firewall {
            clock: TscClock::new(settings.tsc_hz),
            plain: settings.parse.plain_policy(),
            log_limit: RateLimit::new(
                settings.log_rate_per_sec,
                settings.log_burst,
                settings.tsc_hz,
            ),
            settings,
            table,
            reader,
            counters: Arc::new(FirewallCounters::default()),
            log,
            inspector: Arc::new(Inspector::default()),
            responder: inspect::Responder::default(),
            polls: 0,
            s: Box::new(Scratch {
                parsed: [Parsed::EMPTY; STAGE_BURST],
                key_plain_l3: [0; STAGE_BURST],
                key_info: [PacketInfo::default(); STAGE_BURST],
                keys: [PreparedKey::default(); STAGE_BURST],
                key_pkt: [0; STAGE_BURST],
                left: [Left::EMPTY; STAGE_BURST],
                pending: [Pending {
                    pkt: 0,
                    key: 0,
                    hit: None,
                }; STAGE_BURST],
                fields: [PacketFields::default(); STAGE_BURST],
                matches: [Match::default(); STAGE_BURST],
                reply: [[0; REPLY_MAX]; STAGE_BURST],
                reply_len: [0; STAGE_BURST],
                replies: 0,
            }),
        })
    }

    /// The counters, for the stats thread.
    pub fn counters(&self) -> Arc<FirewallCounters> {
        self.counters.clone()
    }

    /// The mailbox through which a management thread asks this worker about its flows.
    pub fn inspector(&self) -> Arc<Inspector> {
        self.inspector.clone()
    }

    /// The flow table (read-only), e.g. for tests and flow listings at shutdown.
    pub fn flows(&self) -> &FlowTable {
        &self.table
    }

    /// The reply built for packet `i` of the last burst (valid when its verdict is `Reply`).
    pub fn reply(&self, i: usize) -> &[u8] {
        &self.s.reply[i][..usize::from(self.s.reply_len[i])]
    }

    /// Decide a verdict for each frame of a burst (`frames.len() <= STAGE_BURST`; `verdicts`
    /// preset to `Forward`). Replies for `Verdict::Reply` are left in [`Self::reply`].
    /// This is the whole pipeline on plain byte slices, so it is tested without DPDK.
    pub fn decide(&mut self, ctx: &BurstCtx, frames: &[&[u8]], verdicts: &mut [Verdict]) {
        let n = frames.len().min(STAGE_BURST);
        // Both cut to the burst once, so indexing them by packet needs no bounds checks.
        let (frames, verdicts) = (&frames[..n], &mut verdicts[..n]);
        let now_ns = self.clock.ns(ctx.now_tsc);
        let direction = self.settings.port_direction[usize::from(ctx.ingress.0) % MAX_PORTS];
        self.log_limit.refill(ctx.now_tsc);
        let Firewall {
            settings,
            plain,
            table,
            reader,
            counters: c,
            log,
            log_limit,
            s,
            ..
        } = &mut *self;
        // The scratch itself, not the box: stores into it then need no reload of the box's
        // pointer (the compiler reloaded it after every store of the parse loop).
        let s: &mut Scratch = s;
        s.replies = 0;
        // Flows are stamped with the ruleset's publish number, not its policy generation:
        // an inventory update republishes the same generation with new group members, and
        // the flows it affects must be revalidated too.
        let cur = reader.load_current();
        let (rs, stamp) = (cur.ruleset, cur.stamp);
        let generation = rs.generation();

        // 1. Parse. The common frame (untagged IPv4 without options, TCP without options or
        // UDP, not a fragment or tunnel) goes through the parser's fast path straight into its
        // prepared key and tracking facts; the full `Parsed` is written later, and only if
        // the packet is not simply an established flow's (see `materialise`).
        let mut m = 0;
        for i in 0..n {
            let frame = frames[i];
            if let Some(pl) = parse_plain_with(frame, plain) {
                // The tracking facts first, straight from the parse's registers: stored after
                // the hash they were spilled to the stack and reloaded.
                s.key_info[m] = PacketInfo::from_plain(&pl, frame.len() as u16);
                s.key_plain_l3[m] = pl.l3_len;
                s.key_pkt[m] = i as u8;
                s.keys[m] = table.prepare_v4(pl.src, pl.dst, pl.proto, pl.src_port, pl.dst_port);
                m += 1;
                continue;
            }
            let p = &mut s.parsed[i];
            if let Err(e) = parse_into(frame, &settings.parse, p) {
                c.parse[e.index()].add(1);
                verdicts[i] = Verdict::Drop(DropReason::Malformed);
                continue;
            }
            if p.kind == FrameKind::Arp {
                c.passed_non_ip.add(1);
                continue;
            }
            if matches!(p.frag, Fragment::Later { .. }) {
                // Only reachable with FragmentPolicy::Deliver: without ports such a fragment
                // cannot be matched to a rule or a flow here, so it is not forwarded blindly.
                verdicts[i] = Verdict::Drop(DropReason::Fragment);
                continue;
            }
            s.keys[m] = table.prepare(&p.key);
            s.key_info[m] = PacketInfo::from_parsed(p);
            s.key_plain_l3[m] = 0;
            s.key_pkt[m] = i as u8;
            m += 1;
        }

        // 2. Track. One pass over the keys looks each up and tracks the hits on flows
        // admitted under the current ruleset (any flow, without revalidation): an
        // established packet's verdict stays the preset `Forward` and nothing is stored for
        // it. The rest comes back in key order. Hits are counted per burst (one counter
        // write instead of one per packet).
        let admitted_under = settings.revalidate_flows.then_some(stamp);
        // A flow of an older ruleset whose rule the current one keeps (unchanged, and no
        // rule that changed before it since the flow's stamp may match its packets) is
        // re-stamped and tracked in the record check, like a flow of this ruleset.
        // Counted as `revalidate_hit` counts them: unchanged rules, or changes that cannot
        // match the flow (`kept_rule` tells which from the same entry that keeps it).
        let (kept, kept_unchanged) = (std::cell::Cell::new(0u64), std::cell::Cell::new(0u64));
        let keep = |rule: RuleId, at: u32| {
            let how = match rule {
                DEFAULT_RULE => None,
                _ => rs.kept_rule(rampart_classify::RuleId(rule.0), at),
            };
            if let Some(how) = how {
                kept.set(kept.get() + 1);
                let unchanged = how == RuleCheck::Unchanged;
                kept_unchanged.set(kept_unchanged.get() + u64::from(unchanged));
            }
            how.is_some()
        };
        let done = table.lookup_track_burst(
            &s.keys[..m],
            &s.key_info[..m],
            admitted_under,
            keep,
            now_ns,
            &mut s.left[..m],
        );
        let mut q = 0;
        let mut established = u64::from(done.accepted);
        for k in 0..done.left.min(m) {
            let Left { key, outcome } = s.left[k];
            let j = usize::from(key);
            let i = usize::from(s.key_pkt[j]);
            match outcome {
                Outcome::Refused(e) => {
                    verdicts[i] = verdict_of(c, TrackVerdict::Drop(e));
                    continue;
                }
                Outcome::Hit(hit) => {
                    // A flow from an older ruleset, or a packet after one in this burst
                    // (tracked here, in order, after that flow's revalidation).
                    let tracked = if settings.revalidate_flows {
                        table.track_admitted_under_or(
                            hit.handle,
                            hit.dir,
                            stamp,
                            keep,
                            &s.key_info[j],
                            now_ns,
                        )
                    } else {
                        Some(table.track(hit.handle, hit.dir, &s.key_info[j], now_ns))
                    };
                    if let Some(t) = tracked {
                        verdicts[i] = verdict_of(c, t);
                        established += u64::from(verdicts[i] == Verdict::Forward);
                        continue;
                    }
                    if let Some(v) = revalidate_hit(table, &cur, c, s, j, q, hit, direction, now_ns)
                    {
                        verdicts[i] = v;
                        established += u64::from(v == Verdict::Forward);
                        continue;
                    }
                    s.pending[q] = Pending {
                        pkt: i as u8,
                        key: j as u8,
                        hit: Some(hit),
                    };
                    q += 1;
                    continue;
                }
                Outcome::Miss => {}
            }
            // A fast-path frame (TCP or UDP) is never an ICMP error, and the classifier's
            // fields of it are all in its key: its `Parsed` is written only if stage 3 needs
            // it (a rule log record, a reject reply).
            let plain = s.key_plain_l3[j] != 0;
            if !plain {
                if let Some(inner) = s.parsed[i].icmp_inner {
                    if table.lookup_related(&inner, now_ns).is_some() {
                        c.related.add(1);
                        continue;
                    }
                }
            }
            if !table.can_open(&s.key_info[j]) {
                c.no_flow.add(1);
                verdicts[i] = Verdict::Drop(DropReason::NoFlow);
                continue;
            }
            let f = if plain {
                plain_fields(&s.keys[j].packet_key(), direction)
            } else {
                fields_of(&s.parsed[i], direction)
            };
            s.pending[q] = Pending {
                pkt: i as u8,
                key: j as u8,
                hit: None,
            };
            s.fields[q] = f;
            q += 1;
        }
        if established != 0 {
            c.established.add(established);
        }
        if kept.get() != 0 {
            c.revalidated.add(kept.get());
            c.revalidated_unchanged.add(kept_unchanged.get());
            c.revalidated_delta.add(kept.get() - kept_unchanged.get());
        }
        if q == 0 {
            return;
        }

        // 3. Classify.
        rs.classify_bulk(&s.fields[..q], &mut s.matches[..q]);
        // Counted per burst, as `established`.
        let mut new_flows = 0u64;
        for k in 0..q {
            let Pending { pkt, key, hit } = s.pending[k];
            let i = usize::from(pkt);
            let mt = s.matches[k];
            // Rule hits: a new flow or a packet the rule stops, not each revalidation of a
            // flow it keeps admitting (that flow was counted when it was opened).
            let row = usize::from(ctx.worker.0);
            if let Some(monitor) = mt.monitor {
                c.monitor_hits.add(1);
                rs.count_hit(row, Some(monitor));
            }
            if hit.is_none() || mt.action != Action::Allow {
                rs.count_hit(row, mt.rule);
            }
            let rule = mt.rule_id.map_or(DEFAULT_RULE, |r| RuleId(r.0));
            if mt.log && hit.is_none() {
                if let Some(queue) = log.as_ref() {
                    let rec = RuleLog {
                        worker: ctx.worker.0,
                        generation,
                        rule: mt.rule_id.unwrap_or(rampart_classify::RuleId(u32::MAX)),
                        action: mt.action,
                        key: materialise(s, i, usize::from(key)).key,
                        tsc: ctx.now_tsc,
                    };
                    if log_limit.take() && queue.push(rec).is_ok() {
                        c.logs_emitted.add(1);
                    } else {
                        c.logs_suppressed.add(1);
                    }
                }
            }
            match mt.action {
                Action::Allow => {
                    let adm = Admission {
                        rule,
                        generation: stamp,
                        strict_tcp: strict_tcp(rs, &mt, settings.flow.strict_tcp),
                    };
                    let (pk, info) = (&s.keys[usize::from(key)], &s.key_info[usize::from(key)]);
                    verdicts[i] = match hit {
                        Some(h) => {
                            table.readmit(h.handle, &adm);
                            c.revalidated.add(1);
                            track(table, c, h, info, now_ns)
                        }
                        // Missed in this burst's lookup: no second bucket search, and the
                        // record is written with its first packet already tracked.
                        None => match table.open_after_miss(pk, &adm, info, now_ns) {
                            Ok((_, t)) => {
                                new_flows += 1;
                                verdict_of(c, t)
                            }
                            Err(_) => {
                                c.table_full.add(1);
                                Verdict::Drop(DropReason::TableFull)
                            }
                        },
                    };
                }
                Action::Drop | Action::Reject => {
                    if let Some(h) = hit {
                        table.remove(h.handle);
                        c.revalidated.add(1);
                        c.cut.add(1);
                    }
                    verdicts[i] = Verdict::Drop(DropReason::Policy);
                    if mt.action == Action::Reject {
                        materialise(s, i, usize::from(key));
                        let p = &s.parsed[i];
                        let out = &mut s.reply[i];
                        let built = if p.key.proto == proto::TCP {
                            build_tcp_rst(frames[i], p, out)
                        } else {
                            build_icmp_unreachable(frames[i], p, out)
                        };
                        if let Ok(len) = built {
                            s.reply_len[i] = len as u16;
                            verdicts[i] = Verdict::Reply;
                            s.replies += 1;
                            c.rejected.add(1);
                            continue;
                        }
                    }
                    c.denied.add(1);
                }
            }
        }
        if new_flows != 0 {
            c.new_flows.add(new_flows);
        }
    }

    /// Once per poll iteration: quiescent point, bounded expiry, gauges, and one step of an
    /// operator's question if one is open.
    pub fn tick(&mut self, now_tsc: u64) {
        self.reader.quiescent();
        self.counters
            .generation
            .set(self.reader.cached_generation());
        let now_ns = self.clock.ns(now_tsc);
        self.polls = self.polls.wrapping_add(1);
        // A power of two: the test is a mask.
        if self.polls & (EXPIRE_SWEEP_EVERY - 1) == 0 {
            self.table
                .expire_burst(now_ns, EXPIRE_SWEEP_EVERY * EXPIRE_BUDGET);
        }
        self.counters.set_flow_stats(&self.table.stats());
        self.responder
            .poll(&self.inspector, &mut self.table, now_ns);
    }
}

/// Revalidates the flow of `hit` (key `j`), admitted under an older ruleset: its verdict if it
/// keeps its rule (re-stamped and tracked, not classified); `None` if it must be classified
/// again, with the opening packet's fields left in `s.fields[q]` (stage 3 writes the full
/// parse if it needs it). The flow's rule and stamp alone decide the common cases; the
/// opening packet's fields are worked out only for the rest.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn revalidate_hit(
    table: &mut FlowTable,
    cur: &rampart_classify::Current<'_>,
    c: &FirewallCounters,
    s: &mut Scratch,
    j: usize,
    q: usize,
    hit: Hit,
    direction: PacketDirection,
    now_ns: u64,
) -> Option<Verdict> {
    let (check, rule) = revalidate::check_rule(table, cur, hit);
    let kept = match check {
        // Its rule and every rule before it are the same since its stamp.
        RuleCheck::Unchanged => {
            c.revalidated_unchanged.add(1);
            true
        }
        // The rules that changed before its own cannot match any packet of its rule.
        RuleCheck::Disjoint => {
            c.revalidated_delta.add(1);
            true
        }
        RuleCheck::Test(t) => {
            s.fields[q] = opening_fields(s, j, hit.dir, direction);
            // Kept if none of the rules that changed before its own matches.
            let kept = cur.recheck_test(t, &s.fields[q]);
            if kept {
                c.revalidated_delta.add(1);
            }
            kept
        }
        RuleCheck::Classify => {
            s.fields[q] = opening_fields(s, j, hit.dir, direction);
            false
        }
    };
    if !kept {
        return None;
    }
    // Its rule is still the first match: same verdict, not classified.
    revalidate::keep(table, cur, c, hit, rule);
    Some(track(table, c, hit, &s.key_info[j], now_ns))
}

#[inline]
fn track(
    table: &mut FlowTable,
    c: &FirewallCounters,
    hit: Hit,
    info: &PacketInfo,
    now_ns: u64,
) -> Verdict {
    verdict_of(c, table.track(hit.handle, hit.dir, info, now_ns))
}

/// The stage's verdict for a tracking outcome (a refusal is counted by reason).
#[inline(always)]
fn verdict_of(c: &FirewallCounters, t: TrackVerdict) -> Verdict {
    match t {
        TrackVerdict::Accept => Verdict::Forward,
        TrackVerdict::Drop(e) => {
            c.track[e.index()].add(1);
            Verdict::Drop(DropReason::Conntrack)
        }
    }
}

/// The full parse result of packet `i` (key `j`), written now if the fast path took the
/// frame: for a packet that needs more than a lookup, classification by its key
/// ([`plain_fields`]) and `track` (a rule log record, a reject reply). The
/// fast path's fields are all in the prepared key, the tracking facts and the IPv4 length.
#[inline]
fn materialise(s: &mut Scratch, i: usize, j: usize) -> &Parsed {
    if s.key_plain_l3[j] != 0 {
        let key = s.keys[j].packet_key();
        let info = &s.key_info[j];
        let tcp = TcpMeta {
            flags: info.tcp_flags,
            seq: info.seq,
            ack: info.ack,
            window: info.window,
            wscale: info.wscale,
        };
        let (l3_len, payload_len) = (s.key_plain_l3[j], info.payload_len);
        PlainIpv4::write_parts(
            &key,
            tcp,
            l3_len,
            payload_len,
            info.frame_len,
            &mut s.parsed[i],
        );
        s.key_plain_l3[j] = 0;
    }
    &s.parsed[i]
}

/// The fields of the packet that opened the flow of packet `i` (key `j`), which travels in
/// direction `dir` of its flow: a flow is re-checked as its opening packet whichever way
/// this one travels (a reply must not be judged as a new connection). A frame the parser's
/// fast path took has them all in its key (no need to write its full parse).
#[inline]
fn opening_fields(
    s: &Scratch,
    j: usize,
    dir: rampart_flow::Direction,
    direction: PacketDirection,
) -> PacketFields {
    let f = if s.key_plain_l3[j] != 0 {
        plain_fields(&s.keys[j].packet_key(), direction)
    } else {
        fields_of(&s.parsed[usize::from(s.key_pkt[j])], direction)
    };
    match dir {
        rampart_flow::Direction::Original => f,
        rampart_flow::Direction::Reply => as_original(f),
    }
}

/// Whether flows admitted by `mt` get TCP sequence/window checks: the matching rule's `tcp`
/// setting; rules that do not choose (`inherit`) and the default action (no rule) follow
/// `firewall.strict_tcp`.
#[inline]
fn strict_tcp(rs: &Ruleset, mt: &Match, default: bool) -> bool {
    match mt.rule.map(|index| rs.rule(index).tcp) {
        Some(TcpStrictness::Strict) => true,
        Some(TcpStrictness::Liberal) => false,
        Some(TcpStrictness::Inherit) | None => default,
    }
}

/// The fields of the packet that opened a flow, from a packet of its reply direction:
/// addresses and ports swapped, the other port's direction, an echo reply seen as its request.
#[inline]
fn as_original(f: PacketFields) -> PacketFields {
    let icmp = f.proto == proto::ICMP || f.proto == proto::ICMPV6;
    let (sport, dport) = if icmp {
        // ICMP carries type/code in the port fields: echo reply → echo request.
        let ty = match (f.proto, f.sport) {
            (proto::ICMP, 0) => 8,
            (proto::ICMPV6, 129) => 128,
            (_, t) => t,
        };
        (ty, f.dport)
    } else {
        (f.dport, f.sport)
    };
    PacketFields {
        src: f.dst,
        dst: f.src,
        sport,
        dport,
        direction: match f.direction {
            PacketDirection::In => PacketDirection::Out,
            PacketDirection::Out => PacketDirection::In,
        },
        ..f
    }
}

/// The classifier's view of a packet the parser's fast path took, from its key as the
/// packet carried it: what [`fields_of`] gives for the `Parsed` that [`materialise`] would
/// write (IPv4, TCP or UDP, untagged, not tunnelled).
#[inline]
fn plain_fields(k: &rampart_wire::FlowKey, direction: PacketDirection) -> PacketFields {
    let v4 = |a: &[u8; 16]| u128::from(u32::from_be_bytes([a[12], a[13], a[14], a[15]]));
    PacketFields {
        family: Family::V4,
        src: v4(&k.src),
        dst: v4(&k.dst),
        sport: k.src_port,
        dport: k.dst_port,
        proto: k.proto,
        vlan: None,
        vni: None,
        direction,
    }
}

/// The classifier's view of a parsed packet.
#[inline]
fn fields_of(p: &Parsed, direction: PacketDirection) -> PacketFields {
    let k = &p.key;
    let (family, src, dst) = match k.family() {
        rampart_wire::Family::V4 => (
            Family::V4,
            u128::from(u32::from_be_bytes([
                k.src[12], k.src[13], k.src[14], k.src[15],
            ])),
            u128::from(u32::from_be_bytes([
                k.dst[12], k.dst[13], k.dst[14], k.dst[15],
            ])),
        ),
        rampart_wire::Family::V6 => (
            Family::V6,
            u128::from_be_bytes(k.src),
            u128::from_be_bytes(k.dst),
        ),
    };
    let icmp = k.proto == proto::ICMP || k.proto == proto::ICMPV6;
    let (sport, dport) = if icmp {
        (u16::from(p.icmp.msg_type), u16::from(p.icmp.code))
    } else {
        (k.src_port, k.dst_port)
    };
    PacketFields {
        family,
        src,
        dst,
        sport,
        dport,
        proto: k.proto,
        // The customer (802.1Q) tag: the inner one under QinQ, else the only one.
        vlan: p.vlan_inner.or(p.vlan_outer),
        vni: p.vni,
        direction,
    }
}

impl BurstStage for Firewall {
    #[inline]
    fn process<const N: usize>(
        &mut self,
        ctx: &BurstCtx,
        pkts: &mut MbufBurst<N>,
        verdicts: &mut [Verdict],
    ) {
        let n = pkts.len().min(STAGE_BURST);
        {
            // Sized by the worker's burst, not the stage's maximum: the array is zeroed every
            // burst before it is filled.
            let mut frames: [&[u8]; N] = [&[]; N];
            for (f, m) in frames.iter_mut().zip(pkts.as_slice()) {
                *f = m.data();
            }
            self.decide(ctx, &frames[..n], &mut verdicts[..n]);
        }
        if self.s.replies == 0 {
            return;
        }
        for (i, v) in verdicts.iter_mut().enumerate().take(n) {
            if *v == Verdict::Reply && !pkts[i].set_data(self.reply(i)) {
                *v = Verdict::Drop(DropReason::Policy);
            }
        }
    }

    #[inline]
    fn end_of_poll(&mut self, now_tsc: u64) {
        self.tick(now_tsc);
    }
}

#[cfg(test)]
mod tests;
