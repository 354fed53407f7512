//! Verdicts for non-first IP fragments, remembered from their first fragment.
//!
//! Later fragments carry no ports, so they can neither be looked up in the flow table nor be
//! classified by port (see `rampart_wire::parse` with `FragmentPolicy::Deliver`). The first
//! fragment can: the pipeline classifies/tracks it as usual and then calls
//! [`FragmentCache::remember`] with the outcome; each later fragment of the same datagram
//! (same addresses, protocol, segment and IP identification) gets that outcome from
//! [`FragmentCache::verdict`]. A later fragment that arrives before its first fragment, or
//! after the entry expired or was overwritten, gets `None`: drop it (the sender retransmits the
//! whole datagram). No reassembly, no buffering, no allocation after `new`.

use rampart_wire::{Fragment, Parsed};

use crate::flow::RuleId;
use crate::table::tick;

/// What the first fragment of a datagram was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragVerdict {
    /// True if the first fragment was forwarded.
    pub allowed: bool,
    /// The rule (or admitting rule of the flow) that decided it.
    pub rule: RuleId,
}

#[derive(Clone, Copy, Default)]
struct Slot {
    /// Hash of the datagram identity; 0 = empty.
    tag: u64,
    /// Tick after which the entry is stale.
    expires: u32,
    rule: u32,
    allowed: bool,
}

/// Counters for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FragStats {
    /// First fragments remembered.
    pub remembered: u64,
    /// Later fragments that found their first fragment's verdict.
    pub hits: u64,
    /// Later fragments with no (live) entry.
    pub misses: u64,
}

/// A direct-mapped cache of first-fragment verdicts, one per worker.
pub struct FragmentCache {
    slots: Vec<Slot>,
    mask: usize,
    timeout_ticks: u32,
    seed: u64,
    stats: FragStats,
}

impl FragmentCache {
    /// `entries` is rounded up to a power of two; entries live `timeout_secs` (30 s is the
    /// usual reassembly timeout).
    pub fn new(entries: usize, timeout_secs: u32, seed: u64) -> Self {
        let n = entries.max(1).next_power_of_two();
        FragmentCache {
            slots: vec![Slot::default(); n],
            mask: n - 1,
            timeout_ticks: ((u64::from(timeout_secs) * 1_000_000_000) >> crate::table::TICK_SHIFT)
                as u32,
            seed,
            stats: FragStats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> FragStats {
        self.stats
    }

    /// Identity of the datagram a fragment belongs to: addresses, protocol, segment, IP id.
    fn tag(&self, p: &Parsed) -> Option<u64> {
        let id = match p.frag {
            Fragment::First { id } | Fragment::Later { id, .. } => id,
            Fragment::None => return None,
        };
        let mut k = p.key;
        k.src_port = 0;
        k.dst_port = 0;
        let mut h = self.seed ^ u64::from(id).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        for w in k.words() {
            h = (h ^ w).wrapping_mul(0xff51_afd7_ed55_8ccd);
            h ^= h >> 32;
        }
        Some(h | 1) // never 0, which marks an empty slot
    }

    /// Records the verdict given to a first fragment. Ignores packets that are not one.
    pub fn remember(&mut self, p: &Parsed, allowed: bool, rule: RuleId, now_ns: u64) {
        if !matches!(p.frag, Fragment::First { .. }) {
            return;
        }
        let Some(tag) = self.tag(p) else { return };
        let expires = tick(now_ns).wrapping_add(self.timeout_ticks);
        self.slots[tag as usize & self.mask] = Slot {
            tag,
            expires,
            rule: rule.0,
            allowed,
        };
        self.stats.remembered += 1;
    }

    /// The verdict for a later fragment, if its first fragment was seen recently.
    pub fn verdict(&mut self, p: &Parsed, now_ns: u64) -> Option<FragVerdict> {
        if !matches!(p.frag, Fragment::Later { .. }) {
            return None;
        }
        let tag = self.tag(p)?;
        let s = self.slots[tag as usize & self.mask];
        if s.tag == tag && (tick(now_ns).wrapping_sub(s.expires) as i32) < 0 {
            self.stats.hits += 1;
            Some(FragVerdict {
                allowed: s.allowed,
                rule: RuleId(s.rule),
            })
        } else {
            self.stats.misses += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_wire::{
        build_frame, parse, EthernetRepr, FragmentPolicy, IpSpec, L4Repr, ParseConfig, UdpRepr,
    };

    /// An IPv4 UDP frame turned into a fragment (first or at `offset`) with IP id `id`.
    fn frag(src: &str, id: u16, first: bool) -> Parsed {
        let eth = EthernetRepr {
            src: [2; 6],
            dst: [4; 6],
            outer_vlan: None,
            inner_vlan: None,
            ethertype: 0,
        };
        let ip = IpSpec {
            src: src.parse().unwrap(),
            dst: "10.0.0.9".parse().unwrap(),
            ttl: 64,
        };
        let mut f = [0u8; 200];
        let n = build_frame(
            &eth,
            &ip,
            &L4Repr::Udp(UdpRepr {
                src_port: 53,
                dst_port: 999,
                payload: &[7; 64],
            }),
            &mut f,
        )
        .unwrap();
        f[18..20].copy_from_slice(&id.to_be_bytes());
        let fo: u16 = if first { 0x2000 } else { 8 };
        f[20..22].copy_from_slice(&fo.to_be_bytes());
        parse(
            &f[..n],
            &ParseConfig {
                fragments: FragmentPolicy::Deliver,
                ..ParseConfig::default()
            },
        )
        .unwrap()
    }

    #[test]
    fn later_fragments_follow_their_first() {
        let mut c = FragmentCache::new(64, 30, 7);
        let s = 1_000_000_000;
        c.remember(&frag("10.0.0.1", 5, true), true, RuleId(3), s);
        c.remember(&frag("10.0.0.2", 5, true), false, RuleId(4), s);
        assert_eq!(
            c.verdict(&frag("10.0.0.1", 5, false), s),
            Some(FragVerdict {
                allowed: true,
                rule: RuleId(3)
            })
        );
        assert_eq!(
            c.verdict(&frag("10.0.0.2", 5, false), s),
            Some(FragVerdict {
                allowed: false,
                rule: RuleId(4)
            })
        );
        assert_eq!(
            c.verdict(&frag("10.0.0.1", 6, false), s),
            None,
            "other datagram"
        );
        assert_eq!(
            c.verdict(&frag("10.0.0.1", 5, false), 40 * s),
            None,
            "expired"
        );
        assert_eq!(
            c.verdict(&frag("10.0.0.1", 5, true), s),
            None,
            "first fragments are not looked up"
        );
        assert_eq!(
            c.stats(),
            FragStats {
                remembered: 2,
                hits: 2,
                misses: 2
            }
        );
    }
}
