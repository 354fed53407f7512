//! The per-worker flow table: a bucketised hash index over a fixed array of flows.
//!
//! # Layout
//! `flows` is a `Vec` of exactly `capacity` 64-byte, line-aligned records (a 16-byte compact
//! key, state, timestamps, rule, generation and the per-direction packet/byte counters),
//! threaded into a free list through their `rule` field, so a lookup of an IPv4 flow
//! touches one bucket line and one record line. An IPv4 flow's record holds its whole key;
//! an IPv6 flow's holds the last 4 bytes of each address, and the first 12 of each sit in
//! `v6_addrs` (24 bytes a flow, allocated zeroed and written only for IPv6 flows, so a table
//! of IPv4 flows never touches those pages), compared after the record's key matches. The
//! record's family byte keeps the two apart: an IPv6 key never matches an IPv4 flow, even
//! with equal compact keys and hashes. The index is an array of 64-byte buckets, each holding 15
//! slots plus an overflow count. A slot is a `u32`: the flow's index + 1 in the low
//! `idx_bits` bits, a hash signature in the rest (0 = empty). There are 1.5 slots per flow
//! (about 6 B per flow), so a bucket is two-thirds full when the table is. An entry goes to
//! its home bucket or, if that is full, to one of the next `MAX_PROBE` buckets; the home
//! bucket counts such overflows so lookups only walk past it when needed.
//!
//! # Time and expiry
//! Time is passed in as `now_ns` (read once per burst by the worker). Flows store the last
//! accepted packet's time in 2^20 ns ticks (u32, wrapping; the longest timeout is 5 days of
//! a 52-day wrap). Nothing scans per packet: a lookup that finds an expired flow removes it
//! and reports a miss, and [`FlowTable::expire_burst`] (call once per loop iteration) walks a
//! bounded number of records from a cursor and frees the expired ones.
//!
//! # Full table
//! When every record is in use, [`FlowTable::insert`] evicts, in order: an expired flow in
//! the new key's home buckets, the stalest unassured flow there (embryonic TCP, unreplied UDP
//! or ICMP: what a SYN flood creates) or TCP connection already closed (TIME_WAIT, or reset),
//! then the same among the next records at the sweep cursor. Live assured flows (handshake
//! completed / seen both ways, not closed) are never evicted: if no victim is found, the
//! insert fails with [`InsertError::TableFull`] and the new flow's packet is dropped, so
//! established sessions keep working under any flood.

use rampart_wire::FlowKey;

use crate::config::{FlowConfig, FlowConfigError, Timeouts, MAX_CAPACITY};
use crate::flow::{
    flag, wire_ports, Admission, Counters, Direction, Flow, Record, RuleId, SlotKey, FAMILY_V4,
    FAMILY_V6,
};
use crate::state::{self, FlowState, Modes, TrackError, TrackVerdict};
use crate::PacketInfo;

/// Resolution of the table's clock: 2^20 ns ≈ 1.05 ms.
pub const TICK_SHIFT: u32 = 20;
/// Most keys a burst call handles at once (longer slices are processed in chunks).
pub const BURST_MAX: usize = 64;
/// How far past its home bucket an entry may be placed.
const MAX_PROBE: u32 = 8;
/// Slots per bucket (the 16th word is the overflow count).
const SLOTS: usize = 15;
/// Records examined at the sweep cursor when looking for an eviction victim.
const EVICT_SCAN: u32 = 32;
/// No record: past the end of every table's records, so a bounds-checked `get` of it is
/// `None` and stands for the test.
const NONE: u32 = u32::MAX;
const _: () = assert!(NONE > MAX_CAPACITY);
/// The low half of [`FlowKey::words`] 1 and 3 for an IPv4-mapped address (`::ffff:` in
/// little-endian: bytes 8..12 of the address are `00 00 ff ff`).
const V4_MAPPED_WORD: u32 = 0xffff_0000;
const P: [u64; 5] = [
    0xa076_1d64_78bd_642f,
    0xe703_7ed1_a0b4_28db,
    0x8ebc_6af0_9c88_c6e3,
    0x5899_65cc_7537_4cc3,
    0x1d8e_4e27_c47d_124f,
];

/// A 64×64→128 multiply folded to 64 bits (wyhash's `mum`).
#[inline(always)]
fn mum(a: u64, b: u64) -> u64 {
    let r = u128::from(a) * u128::from(b);
    (r as u64) ^ ((r >> 64) as u64)
}

#[inline]
pub(crate) fn tick(now_ns: u64) -> u32 {
    (now_ns >> TICK_SHIFT) as u32
}

fn ticks_of(secs: u32) -> u32 {
    ((u64::from(secs) * 1_000_000_000) >> TICK_SHIFT) as u32
}

/// Names a flow until the end of the current burst: flows may be removed or reused by the
/// next insert/expiry, so handles must not be kept across bursts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowHandle(u32);

impl FlowHandle {
    /// The record index.
    pub fn index(self) -> u32 {
        self.0
    }
}

/// A lookup hit: the flow and the direction of the looked-up packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Hit {
    /// The flow.
    pub handle: FlowHandle,
    /// Direction of the packet relative to the flow's originator.
    pub dir: Direction,
}

/// What [`FlowTable::lookup_track_burst`] did with a key it did not simply track and accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The flow's state machine refused the packet (as [`FlowTable::track`] would).
    Refused(TrackError),
    /// A hit, not tracked: its flow is not live or not admitted under the burst's
    /// generation, or an earlier key of the burst was such a hit.
    Hit(Hit),
    /// No flow.
    Miss,
}

/// A key of [`FlowTable::lookup_track_burst`] left to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Left {
    /// Index of the key in the burst.
    pub key: u8,
    /// What happened to it.
    pub outcome: Outcome,
}

impl Left {
    /// A placeholder, for scratch arrays.
    pub const EMPTY: Left = Left {
        key: 0,
        outcome: Outcome::Miss,
    };
}

/// The totals of [`FlowTable::lookup_track_burst`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BurstTrack {
    /// Keys that hit an admitted flow whose state machine accepted the packet.
    pub accepted: u32,
    /// Entries written to `left`.
    pub left: usize,
}

/// Why a flow could not be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InsertError {
    /// Every record is an assured flow (or the key's buckets are all full): nothing may be
    /// evicted.
    TableFull,
}

/// Occupancy and eviction counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlowStats {
    /// Flows in use.
    pub len: u32,
    /// Maximum flows.
    pub capacity: u32,
    /// Flows created.
    pub inserts: u64,
    /// Inserts refused because nothing could be evicted.
    pub insert_failures: u64,
    /// Unassured flows evicted to make room.
    pub evictions: u64,
    /// Flows removed because they timed out (lazily or by the sweep).
    pub expired: u64,
    /// Flows removed by `remove` or by a refused first packet.
    pub removed: u64,
    /// Bytes allocated for records and index.
    pub memory_bytes: u64,
}

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Bucket {
    slots: [u32; SLOTS],
    /// Entries whose home is this bucket but which live in a later one.
    overflow: u32,
}

const _: () = assert!(core::mem::size_of::<Bucket>() == 64);

/// How a burst lookup warms the cache.
#[derive(Clone, Copy)]
enum Stage<'a> {
    None,
    Prefetch,
    Hook(&'a dyn Fn(*const u8)),
}

/// Per-burst scratch, allocated once. `prepared` is an `Option` so a burst can lend it to
/// the probing stages (which take `&mut self`) without copying it.
struct Scratch {
    prepared: Option<Box<[PreparedKey; BURST_MAX]>>,
    cand: [u32; BURST_MAX],
    /// The flows inserted since the last burst lookup, as a 256-bit filter of their hashes
    /// (see [`FlowTable::insert_after_miss`]): a key whose bit is clear was not inserted
    /// since; a set bit may be another key's. All ones before the first burst lookup. (A list
    /// of the hashes cost a scan of ~16 entries per new flow of a 32-packet burst.)
    inserted: [u64; 4],
}

/// A packet key made ready for a lookup by [`FlowTable::prepare`]: canonicalised, made
/// compact as a record stores it, hashed (with the table's seed, so only for the table that
/// prepared it), and its home bucket prefetched. The lookup reads its first 32 bytes; the
/// IPv6 address bytes after them only for an IPv6 key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct PreparedKey {
    key: SlotKey,
    hash: u64,
    /// Home bucket of `hash` (kept: the lookup's two passes and an insert need it).
    home: u32,
    swapped: bool,
    /// `FAMILY_V4` or `FAMILY_V6` (see `Record::family`).
    family: u8,
    /// The first 12 bytes of an IPv6 key's canonical source then destination address (the
    /// last 4 of each are in `key`); zero for IPv4.
    v6: [u8; 24],
}

const _: () = assert!(core::mem::size_of::<PreparedKey>() == 56);

impl PreparedKey {
    /// The key as the packet carried it (before canonicalisation).
    #[inline]
    pub fn packet_key(&self) -> FlowKey {
        let k = self.key.full(self.family, &self.v6);
        if self.swapped {
            k.reversed()
        } else {
            k
        }
    }
}

/// A hook that sees each large region of a new table's memory after it is allocated and
/// before it is first written, e.g. to ask for huge pages (the worker passes one that calls
/// `rampart_dpdk::advise_hugepages`: at 1M flows most lookups otherwise miss the TLB). It may
/// not write the memory.
pub trait MemoryAdvice {
    /// `region` is one of the table's arrays (records, counters, index).
    fn advise<T>(&mut self, region: &mut [core::mem::MaybeUninit<T>]);
}

/// The advice of [`FlowTable::new`]: none (plain heap pages).
struct NoAdvice;

impl MemoryAdvice for NoAdvice {
    fn advise<T>(&mut self, _: &mut [core::mem::MaybeUninit<T>]) {}
}

/// `n` copies of `v` in a vector whose memory `advice` saw before the first write.
fn advised_vec<T: Copy>(n: usize, v: T, advice: &mut impl MemoryAdvice) -> Vec<T> {
    let mut out = Vec::with_capacity(n);
    advice.advise(&mut out.spare_capacity_mut()[..n]);
    out.resize(n, v);
    out
}

/// A huge page (x86-64 and arm64 with 4 KiB base pages).
const HUGE_PAGE: usize = 2 << 20;

/// The record array for `cap` flows and the index of its first usable record: the first one
/// on a huge-page boundary, when the array is at least half a huge page. The heap places a
/// large array at an arbitrary offset into a 2 MiB page, and the kernel backs only whole,
/// aligned 2 MiB pages with a transparent huge page: the 2 MiB array of a 32K-flow table got
/// none (`AnonHugePages: 0 kB` in the 10K-flow pipeline bench), and a larger one lost its
/// first, most used, records to 4 KiB pages. The records before `first` (under 2 MiB) are
/// never used: up to a huge page of memory per table is the price.
fn aligned_records(cap: u32, advice: &mut impl MemoryAdvice) -> (Vec<Record>, u32) {
    const PER_PAGE: usize = HUGE_PAGE / core::mem::size_of::<Record>();
    let cap = cap as usize;
    let pad = if cap * core::mem::size_of::<Record>() >= HUGE_PAGE / 2
        && cap + PER_PAGE <= MAX_CAPACITY as usize
    {
        PER_PAGE
    } else {
        0
    };
    let mut out = Vec::with_capacity(cap + pad);
    let first = if pad == 0 {
        0
    } else {
        // Records are 64-byte aligned, so the distance to the boundary is whole records.
        let at = out.as_ptr() as usize;
        (at.next_multiple_of(HUGE_PAGE) - at) / core::mem::size_of::<Record>()
    };
    let n = first + cap;
    advice.advise(&mut out.spare_capacity_mut()[..n]);
    out.resize(n, Record::FREE);
    (out, first as u32)
}

/// One worker's connection-tracking table. See the module docs for layout, expiry and the
/// full-table policy. No method allocates after [`FlowTable::new`].
pub struct FlowTable {
    flows: Vec<Record>,
    /// Per record: the first 12 bytes of an IPv6 flow's canonical source and destination
    /// addresses.
    v6_addrs: Vec<[u8; 24]>,
    buckets: Vec<Bucket>,
    nbuckets: u32,
    idx_mask: u32,
    free_head: u32,
    /// The first record a flow may use (see [`aligned_records`]); those below are never used.
    first: u32,
    /// Records never yet used (above this index, all free and not in the list).
    high_water: u32,
    max_probe: u32,
    sweep: u32,
    timeout: [u32; FlowState::COUNT],
    modes: Modes,
    /// Strictness of flows inserted without an [`Admission`] (`FlowConfig::strict_tcp`).
    default_strict: bool,
    seed: u64,
    /// [`Self::v4_keys`] of `seed`.
    v4_keys: [u64; 3],
    stats: FlowStats,
    scratch: Box<Scratch>,
}

impl FlowTable {
    /// Allocates a table for `cfg.capacity` flows.
    pub fn new(cfg: &FlowConfig) -> Result<Self, FlowConfigError> {
        Self::new_advised(cfg, &mut NoAdvice)
    }

    /// [`Self::new`], showing each array to `advice` between allocation and first write.
    pub fn new_advised(
        cfg: &FlowConfig,
        advice: &mut impl MemoryAdvice,
    ) -> Result<Self, FlowConfigError> {
        if cfg.capacity == 0 || cfg.capacity > MAX_CAPACITY {
            return Err(FlowConfigError::Capacity(cfg.capacity));
        }
        let timeout = timeout_table(&cfg.timeouts)?;
        let cap = cfg.capacity;
        let nbuckets = ((u64::from(cap) * 3 / 2).div_ceil(SLOTS as u64)).max(2) as u32;
        let empty = Bucket {
            slots: [0; SLOTS],
            overflow: 0,
        };
        let (flows, first) = aligned_records(cap, advice);
        // The last record's index + 1 must fit; at most 29 bits (`aligned_records` keeps
        // `first + cap` within MAX_CAPACITY), leaving >= 3 signature bits (one of them always
        // set, see `sig`).
        let idx_bits = 32 - (flows.len() as u32).leading_zeros();
        // Zeroed by the allocator, not written: pages of it are touched only by IPv6 flows.
        let v6_addrs = vec![[0u8; 24]; flows.len()];
        let buckets = advised_vec(nbuckets as usize, empty, advice);
        let memory = (flows.len() * core::mem::size_of::<Record>()
            + v6_addrs.len() * 24
            + buckets.len() * 64) as u64;
        Ok(FlowTable {
            flows,
            v6_addrs,
            buckets,
            nbuckets,
            idx_mask: (1 << idx_bits) - 1,
            free_head: NONE,
            first,
            high_water: first,
            max_probe: 0,
            sweep: first,
            timeout,
            modes: Modes {
                loose: cfg.loose_tcp_pickup,
            },
            default_strict: cfg.strict_tcp,
            seed: cfg.hash_seed,
            v4_keys: Self::v4_keys(cfg.hash_seed),
            stats: FlowStats {
                capacity: cap,
                memory_bytes: memory,
                ..FlowStats::default()
            },
            scratch: Box::new(Scratch {
                prepared: Some(Box::new([PreparedKey::default(); BURST_MAX])),
                cand: [NONE; BURST_MAX],
                inserted: [u64::MAX; 4],
            }),
        })
    }

    /// Occupancy and eviction counters.
    pub fn stats(&self) -> FlowStats {
        self.stats
    }

    /// Flows in use.
    pub fn len(&self) -> usize {
        self.stats.len as usize
    }

    /// True if no flow is in use.
    pub fn is_empty(&self) -> bool {
        self.stats.len == 0
    }

    /// The hash of an IPv6 key, seeded per table (IPv4 keys take [`Self::hash_v4`] of their
    /// compact key): a wyhash-style hash of all five words, three independent 64×64→128
    /// folded multiplies (they run in parallel), then one more to mix them.
    #[inline]
    fn hash(&self, k: &FlowKey) -> u64 {
        let w = k.words();
        // The seed goes into both operands so nobody who does not know it can pick a word
        // that zeroes a product (and so make the other word irrelevant).
        let (s, t) = (self.seed, self.seed.rotate_left(32) ^ P[2]);
        let a = mum(w[0] ^ s ^ P[0], w[1] ^ t ^ P[1]);
        let b = mum(w[2] ^ s ^ P[2], w[3] ^ t ^ P[3]);
        let c = mum(w[4] ^ s ^ P[4], t ^ P[0]);
        mum(a ^ c ^ P[1], b ^ P[4])
    }

    /// The hash of an IPv4 key from the only words that vary: its [`SlotKey`] (`addrs` = the
    /// high halves of [`FlowKey::words`] 1 and 3, `tail` = word 4): two multiplies instead of
    /// four, like wyhash on 16 bytes — one full 64×64→128 product of the seeded halves, then
    /// one folded multiply of its two halves to mix. Seeded in both operands, as
    /// [`Self::hash`].
    #[inline(always)]
    fn hash_v4(&self, addrs: u64, tail: u64) -> u64 {
        let k = &self.v4_keys;
        let r = u128::from(addrs ^ k[0]) * u128::from(tail ^ k[1]);
        mum((r as u64) ^ k[2], ((r >> 64) as u64) ^ P[3])
    }

    /// The seeded constants of [`Self::hash_v4`], worked out once per table (per packet
    /// they were a rotate, three 64-bit immediate loads and three XORs):
    /// `t ^ P[1]`, `s ^ P[4]` and `P[0] ^ s` for `s` = seed, `t` = seed rotated by 32 ^ `P[2]`.
    fn v4_keys(seed: u64) -> [u64; 3] {
        let (s, t) = (seed, seed.rotate_left(32) ^ P[2]);
        [t ^ P[1], s ^ P[4], P[0] ^ s]
    }

    #[inline]
    fn home(&self, h: u64) -> u32 {
        (((h >> 32) * u64::from(self.nbuckets)) >> 32) as u32
    }

    /// The hash signature as stored in a slot's high bits (above `idx_bits`), with the top
    /// bit always set: an occupied slot therefore never has a zero signature, so a lookup
    /// compares `slot & !idx_mask == sig` alone, without a separate "occupied" test (empty
    /// slots are 0). Costs one signature bit; at most 2^28 flows leaves 2 hash bits.
    #[inline]
    fn sig(&self, h: u64) -> u32 {
        ((h as u32) | 0x8000_0000) & !self.idx_mask
    }

    #[inline]
    fn next_bucket(&self, b: u32) -> u32 {
        if b + 1 == self.nbuckets {
            0
        } else {
            b + 1
        }
    }

    /// True if record `i` is the flow of `pk`: compact key, then family, then (IPv6 only)
    /// the full addresses.
    #[inline(always)]
    fn is_flow_of(&self, i: usize, pk: &PreparedKey) -> bool {
        let f = &self.flows[i];
        f.key == pk.key
            && f.family == pk.family
            && (pk.family == FAMILY_V4 || self.v6_addrs.get(i) == Some(&pk.v6))
    }

    /// Searches for a prepared key; returns the record index.
    #[inline]
    fn find_at(&self, pk: &PreparedKey) -> Option<u32> {
        let (h, home) = (pk.hash, pk.home);
        let want = self.sig(h);
        let probes = if self.buckets[home as usize].overflow == 0 {
            0
        } else {
            self.max_probe
        };
        let mut b = home;
        for _ in 0..=probes {
            let bucket = &self.buckets[b as usize];
            let mut m = self.matches(bucket, want);
            while m != 0 {
                let i = (bucket.slots[m.trailing_zeros() as usize] & self.idx_mask) - 1;
                if self.is_flow_of(i as usize, pk) {
                    return Some(i);
                }
                m &= m - 1;
            }
            b = self.next_bucket(b);
        }
        None
    }

    /// Bit k set if slot k holds signature `want` (see [`Self::sig`]).
    #[inline(always)]
    fn matches(&self, b: &Bucket, want: u32) -> u32 {
        matches(b, !self.idx_mask, want)
    }

    #[inline]
    fn expired(&self, f: &Record, now_t: u32) -> bool {
        now_t.wrapping_sub(f.last_seen) > self.timeout[f.state as usize]
    }

    #[inline]
    fn dir_of(f: &Record, swapped: bool) -> Direction {
        if swapped == (f.flags & flag::ORIG_SWAPPED != 0) {
            Direction::Original
        } else {
            Direction::Reply
        }
    }

    /// Looks up one packet key. An expired flow is removed and reported as a miss.
    pub fn lookup(&mut self, key: &FlowKey, now_ns: u64) -> Option<Hit> {
        let pk = self.prepare_with(key, Stage::None);
        let i = self.find_at(&pk)?;
        self.hit_or_expire(i, pk.swapped, tick(now_ns))
    }

    #[inline]
    fn hit_or_expire(&mut self, i: u32, swapped: bool, now_t: u32) -> Option<Hit> {
        let f = &self.flows[i as usize];
        if self.expired(f, now_t) {
            self.free(i);
            self.stats.expired += 1;
            return None;
        }
        Some(Hit {
            handle: FlowHandle(i),
            dir: Self::dir_of(f, swapped),
        })
    }

    /// Looks up a burst of packet keys, hiding memory latency: hash every key and prefetch its
    /// bucket, then find signature matches and prefetch those records (which hold the
    /// counters the `track` that follows a hit writes), then compare keys.
    /// `out[i]` gets the result for `keys[i]`; `out` must be at least as long as `keys`.
    pub fn lookup_burst(&mut self, keys: &[FlowKey], now_ns: u64, out: &mut [Option<Hit>]) {
        self.lookup_burst_impl(keys, now_ns, out, Stage::Prefetch);
    }

    /// [`Self::lookup_burst`] with a caller-supplied prefetch (e.g. one that prefetches into a
    /// different cache level): `prefetch(addr)` is called with each bucket's address in the
    /// first pass and each candidate record's address in the second.
    /// The addresses are only hints; they are never dereferenced by the caller's prefetch
    /// (a prefetch instruction cannot fault).
    pub fn lookup_burst_with(
        &mut self,
        keys: &[FlowKey],
        now_ns: u64,
        out: &mut [Option<Hit>],
        prefetch: impl Fn(*const u8),
    ) {
        self.lookup_burst_impl(keys, now_ns, out, Stage::Hook(&prefetch));
    }

    /// [`Self::lookup_burst`] without any prefetching: only for measuring what it buys.
    #[doc(hidden)]
    pub fn lookup_burst_no_prefetch(
        &mut self,
        keys: &[FlowKey],
        now_ns: u64,
        out: &mut [Option<Hit>],
    ) {
        self.lookup_burst_impl(keys, now_ns, out, Stage::None);
    }

    /// Canonicalises and hashes `key` and prefetches its home bucket, so the bucket is on its
    /// way while the caller does other work (the worker prepares each key as soon as it has
    /// parsed the packet, so the rest of the burst's parsing hides the memory latency).
    #[inline]
    pub fn prepare(&self, key: &FlowKey) -> PreparedKey {
        self.prepare_with(key, Stage::Prefetch)
    }

    #[inline(always)]
    fn prepare_with(&self, key: &FlowKey, pf: Stage<'_>) -> PreparedKey {
        let w = key.words();
        // The proto and segment, as the compact key's tail holds them above the ports.
        let upper = w[4] & !0xffff_ffff;
        let ports = wire_ports(key.src_port, key.dst_port);
        // IPv4 only if both addresses are IPv4-mapped: a key with one mapped address is
        // IPv6, and keeps its full addresses. IPv4 keys take the fast path's order and hash.
        if is_v4_words(&w) {
            let (s, d) = (&key.src[12..], &key.dst[12..]);
            return self.prepared_v4(
                u32::from_le_bytes([s[0], s[1], s[2], s[3]]),
                u32::from_le_bytes([d[0], d[1], d[2], d[3]]),
                ports,
                upper,
                pf,
            );
        }
        let (ck, order) = key.canonical();
        let swapped = order == rampart_wire::KeyOrder::Swapped;
        let hash = self.hash(&ck);
        let w = ck.words();
        let compact = SlotKey {
            addrs: (w[1] >> 32) << 32 | w[3] >> 32,
            tail: u64::from(wire_ports(ck.src_port, ck.dst_port)) | upper,
        };
        let mut v6 = [0u8; 24];
        v6[..12].copy_from_slice(&ck.src[..12]);
        v6[12..].copy_from_slice(&ck.dst[..12]);
        self.prepared(compact, FAMILY_V6, v6, hash, swapped, pf)
    }

    #[inline(always)]
    fn prepared(
        &self,
        key: SlotKey,
        family: u8,
        v6: [u8; 24],
        hash: u64,
        swapped: bool,
        pf: Stage<'_>,
    ) -> PreparedKey {
        let home = self.home(hash);
        let b = &self.buckets[home as usize];
        match pf {
            Stage::None => {}
            Stage::Prefetch => prefetch(b),
            Stage::Hook(f) => f((b as *const Bucket).cast()),
        }
        PreparedKey {
            key,
            hash,
            home,
            swapped,
            family,
            v6,
        }
    }

    /// [`Self::prepare`] for the IPv4 key `FlowKey::v4(src, dst, proto, src_port, dst_port)`
    /// (segment 0), as the parser's plain-IPv4 fast path gives it
    /// ([`rampart_wire::PlainIpv4`]): the same prepared key, canonicalised with one compare
    /// and made compact and hashed from the four fields directly.
    #[inline]
    pub fn prepare_v4(
        &self,
        src: [u8; 4],
        dst: [u8; 4],
        proto: u8,
        src_port: u16,
        dst_port: u16,
    ) -> PreparedKey {
        self.prepared_v4(
            u32::from_le_bytes(src),
            u32::from_le_bytes(dst),
            wire_ports(src_port, dst_port),
            u64::from(proto) << 32,
            Stage::Prefetch,
        )
    }

    /// The prepared key of an IPv4 key from its addresses and ports as they sit on the wire
    /// (each read as a little-endian integer: no byte swaps) and `upper`, the tail's protocol
    /// and segment bits.
    ///
    /// The canonical order is the table's own, not [`FlowKey::canonical`]'s: endpoints
    /// compared as (address, port) in those wire-order integers. Any fixed total order
    /// serves, as long as every IPv4 key comes through here.
    #[inline(always)]
    fn prepared_v4(
        &self,
        src: u32,
        dst: u32,
        ports: u32,
        upper: u64,
        pf: Stage<'_>,
    ) -> PreparedKey {
        let a = u64::from(src) << 16 | u64::from(ports & 0xffff);
        let b = u64::from(dst) << 16 | u64::from(ports >> 16);
        let swapped = a > b;
        // Swapping the endpoints of the compact key is a rotate of each half-pair: two
        // conditional moves instead of selecting four fields and reassembling them.
        let addrs = u64::from(src) << 32 | u64::from(dst);
        let (addrs, ports) = if swapped {
            (addrs.rotate_left(32), ports.rotate_left(16))
        } else {
            (addrs, ports)
        };
        let key = SlotKey {
            addrs,
            tail: u64::from(ports) | upper,
        };
        let hash = self.hash_v4(key.addrs, key.tail);
        self.prepared(key, FAMILY_V4, [0; 24], hash, swapped, pf)
    }

    /// [`Self::lookup_burst`] over keys already [`Self::prepare`]d: `out[i]` gets the result
    /// for `keys[i]`; `out` must be at least as long as `keys`.
    pub fn lookup_prepared_burst(
        &mut self,
        keys: &[PreparedKey],
        now_ns: u64,
        out: &mut [Option<Hit>],
    ) {
        assert!(
            out.len() >= keys.len(),
            "lookup_prepared_burst: out shorter than keys"
        );
        let now_t = tick(now_ns);
        for (chunk_no, chunk) in keys.chunks(BURST_MAX).enumerate() {
            let base = chunk_no * BURST_MAX;
            self.probe(chunk, now_t, &mut out[base..], Stage::Prefetch);
        }
        self.scratch.inserted = [0; 4];
    }

    /// [`Self::lookup_prepared_burst`] and then, in the same pass, [`Self::track`] of each
    /// hit whose flow is live and admitted under `generation` (compared on the low 32 bits
    /// as [`Self::track_admitted_under`]; `None`: any live flow): the pipeline's common case
    /// with no per-key hit to store and read back. `pkts[j]` is the packet of `keys[j]`.
    /// A live flow admitted under another generation for which `keep(rule, its generation)`
    /// says it keeps its rule is re-stamped with `generation` and tracked the same way, as
    /// [`Self::track_admitted_under_or`] (revalidation decided in the record check).
    ///
    /// Returns how many keys were tracked and accepted; every other key goes to `left`, in
    /// key order, and the count of those is [`BurstTrack::left`]: a refused packet
    /// ([`Outcome::Refused`], already applied as `track` does), a miss, or a hit left
    /// untracked. At the first hit whose flow is not live, not yet tracked (state `New`,
    /// only between an insert and its first `track`) or not admitted under
    /// `generation`, tracking stops for the rest of the burst: that key and every later
    /// hit go to `left` as plain [`Outcome::Hit`]s, so the caller can revalidate the flow and
    /// then track the later packets in their order (a later packet may be of the same flow).
    /// The table ends exactly as after `lookup_prepared_burst` followed by `track` (or
    /// `track_admitted_under`) of the accepted keys in order. `left` must be at least as
    /// long as `keys`, which may hold at most [`BURST_MAX`] keys.
    #[inline]
    pub fn lookup_track_burst(
        &mut self,
        keys: &[PreparedKey],
        pkts: &[PacketInfo],
        generation: Option<u64>,
        mut keep: impl FnMut(RuleId, u32) -> bool,
        now_ns: u64,
        left: &mut [Left],
    ) -> BurstTrack {
        let n = keys.len();
        assert!(
            n <= BURST_MAX && pkts.len() >= n && left.len() >= n,
            "lookup_track_burst: at most BURST_MAX keys, one packet and left slot each"
        );
        let (pkts, left) = (&pkts[..n], &mut left[..n]);
        let now_t = tick(now_ns);
        self.candidates(keys, Stage::Prefetch);
        // Compared as the record stores it; `check` false admits any generation.
        let (check, gen) = match generation {
            Some(g) => (true, g as u32),
            None => (false, 0),
        };
        // Keys that went to `left`; every other key was tracked and accepted. Counted in a
        // local and stored once (a field of `out` was written back on every packet).
        let mut nleft = 0;
        let mut push = |left: &mut [Left], j: usize, outcome: Outcome| {
            left[nleft] = Left {
                key: j as u8,
                outcome,
            };
            nleft += 1;
        };
        // Phase 1, tracking: until the first hit that may not be tracked here. Two loops
        // rather than a "still tracking" flag tested per key: the flag cost the fused path a
        // register and a test.
        let mut j = 0;
        while j < n {
            let pk = &keys[j];
            let cand = self.scratch.cand[j];
            // The common case in one record access: the first signature match is the flow,
            // live and tracked before (not `New`), unexpired, admitted under `generation`.
            // Exactly what `resolve` and the general case below do for it, without handles
            // or a second look at the record.
            let i = cand as usize;
            // One bounds check, which also stands for `cand != NONE` (no table holds
            // `NONE` records): the counters are in the record.
            if let Some(f) = self.flows.get_mut(i) {
                if f.key == pk.key
                    && f.family == pk.family
                    && (pk.family == FAMILY_V4 || self.v6_addrs.get(i) == Some(&pk.v6))
                    && f.state as u8 > FlowState::New as u8
                    && now_t.wrapping_sub(f.last_seen) <= self.timeout[f.state as usize]
                    && (!check || f.generation == gen || restamp_if_kept(&mut keep, f, gen))
                {
                    let dir = Self::dir_of(f, pk.swapped);
                    let pkt = &pkts[j];
                    match state::advance(f, dir, pkt, self.modes) {
                        Ok(()) => {
                            f.last_seen = now_t;
                            let c = &mut f.counters;
                            c.packets[dir.index()] = c.packets[dir.index()].wrapping_add(1);
                            c.bytes[dir.index()] += u64::from(pkt.frame_len);
                        }
                        // Not `New`: a refusal changes nothing (see `track_live`).
                        Err(e) => push(left, j, Outcome::Refused(e)),
                    }
                    j += 1;
                    continue;
                }
            }
            let outcome = match self.resolve(pk, cand, now_t) {
                None => Outcome::Miss,
                Some(h) => {
                    let i = h.handle.0 as usize;
                    let f = &mut self.flows[i];
                    // `Free` and `New` (never tracked: only `track` refusing its first
                    // packet frees a record, and that would change later keys' lookups)
                    // are the two lowest states: one compare.
                    let live = f.state as u8 > FlowState::New as u8;
                    if live && (!check || f.generation == gen || restamp_if_kept(&mut keep, f, gen))
                    {
                        match self.track_live(i, h.dir, &pkts[j], now_ns) {
                            TrackVerdict::Accept => {
                                j += 1;
                                continue;
                            }
                            TrackVerdict::Drop(e) => Outcome::Refused(e),
                        }
                    } else {
                        push(left, j, Outcome::Hit(h));
                        j += 1;
                        break;
                    }
                }
            };
            push(left, j, outcome);
            j += 1;
        }
        // Phase 2, after a hit left untracked: the rest only looked up, in order.
        while j < n {
            let outcome = match self.resolve(&keys[j], self.scratch.cand[j], now_t) {
                None => Outcome::Miss,
                Some(h) => Outcome::Hit(h),
            };
            push(left, j, outcome);
            j += 1;
        }
        self.scratch.inserted = [0; 4];
        BurstTrack {
            accepted: (n - nleft) as u32,
            left: nleft,
        }
    }

    #[inline(always)]
    fn lookup_burst_impl(
        &mut self,
        keys: &[FlowKey],
        now_ns: u64,
        out: &mut [Option<Hit>],
        pf: Stage<'_>,
    ) {
        assert!(
            out.len() >= keys.len(),
            "lookup_burst: out shorter than keys"
        );
        let now_t = tick(now_ns);
        let mut prepared = self.scratch.prepared.take().expect("scratch in place");
        for (chunk_no, chunk) in keys.chunks(BURST_MAX).enumerate() {
            let base = chunk_no * BURST_MAX;
            // Stage 1: canonicalise, hash, prefetch the home bucket.
            for (j, k) in chunk.iter().enumerate() {
                prepared[j] = self.prepare_with(k, pf);
            }
            self.probe(&prepared[..chunk.len()], now_t, &mut out[base..], pf);
        }
        self.scratch.prepared = Some(prepared);
        self.scratch.inserted = [0; 4];
    }

    /// Stages 2 and 3 of a burst lookup (at most `BURST_MAX` keys).
    #[inline(always)]
    fn probe(&mut self, keys: &[PreparedKey], now_t: u32, out: &mut [Option<Hit>], pf: Stage<'_>) {
        self.candidates(keys, pf);
        for (j, pk) in keys.iter().enumerate() {
            out[j] = self.resolve(pk, self.scratch.cand[j], now_t);
        }
    }

    /// Stage 2 of a burst lookup: each key's first signature match in its home bucket goes
    /// to `scratch.cand` (NONE if none), and its record is prefetched.
    #[inline(always)]
    fn candidates(&mut self, keys: &[PreparedKey], pf: Stage<'_>) {
        // Stage 2: first signature match in the home bucket; prefetch that record.
        for (j, pk) in keys.iter().enumerate() {
            let bucket = &self.buckets[pk.home as usize];
            let m = self.matches(bucket, self.sig(pk.hash));
            let cand = if m == 0 {
                NONE
            } else {
                (bucket.slots[m.trailing_zeros() as usize] & self.idx_mask) - 1
            };
            self.scratch.cand[j] = cand;
            // `NONE` is past every table's records: the bounds check is the `NONE` test.
            if let Some(f) = self.flows.get(cand as usize) {
                match pf {
                    Stage::None => {}
                    // The record line holds the counters `track` writes after a hit.
                    Stage::Prefetch => prefetch(f),
                    Stage::Hook(p) => p((f as *const Record).cast()),
                }
            }
        }
    }

    /// Stage 3 of a burst lookup for one key with candidate `cand`: compare; fall back to
    /// the full search on a signature collision or an overflowed bucket. An expired flow
    /// is removed and reported as a miss.
    #[inline(always)]
    fn resolve(&mut self, pk: &PreparedKey, cand: u32, now_t: u32) -> Option<Hit> {
        let idx = if cand != NONE && self.is_flow_of(cand as usize, pk) {
            Some(cand)
        } else if cand == NONE && self.buckets[pk.home as usize].overflow == 0 {
            None
        } else {
            self.find_at(pk)
        };
        match idx {
            Some(i) => self.hit_or_expire(i, pk.swapped, now_t),
            None => None,
        }
    }

    /// Finds the flow an ICMP error relates to, from the error's embedded key
    /// ([`rampart_wire::Parsed::icmp_inner`]). Returns the flow and the direction of the
    /// embedded packet; the error itself travels the opposite way.
    pub fn lookup_related(&mut self, inner: &FlowKey, now_ns: u64) -> Option<Hit> {
        self.lookup(inner, now_ns)
    }

    /// True if `pkt` may open a new flow (a TCP SYN, or anything in loose mode; not an ICMP
    /// echo reply). The pipeline can use it to skip classifying packets that `track` would
    /// refuse anyway.
    pub fn can_open(&self, pkt: &PacketInfo) -> bool {
        use rampart_wire::tcp::flags as tf;
        match pkt.proto {
            rampart_wire::proto::TCP => {
                let f = pkt.tcp_flags;
                (f & (tf::SYN | tf::ACK | tf::RST | tf::FIN) == tf::SYN)
                    || (self.modes.loose && f & (tf::SYN | tf::RST) == 0 && f != 0)
            }
            rampart_wire::proto::ICMP | rampart_wire::proto::ICMPV6 => {
                !pkt.icmp_reply || self.modes.loose
            }
            _ => true,
        }
    }

    /// [`Self::insert_admitted`] with the table's default TCP strictness
    /// (`FlowConfig::strict_tcp`).
    pub fn insert(
        &mut self,
        key: &FlowKey,
        rule: RuleId,
        generation: u64,
        now_ns: u64,
    ) -> Result<Hit, InsertError> {
        let adm = Admission {
            rule,
            generation,
            strict_tcp: self.default_strict,
        };
        self.insert_admitted(key, &adm, now_ns)
    }

    /// Creates a flow for an allowed first packet, remembering the rule and ruleset
    /// generation that admitted it and whether its TCP segments are window-checked; then the
    /// caller tracks the packet with [`Self::track`].
    /// If the flow already exists (two first packets in one burst) the existing one is
    /// returned unchanged. When the table is full, see the module docs for the eviction policy.
    pub fn insert_admitted(
        &mut self,
        key: &FlowKey,
        adm: &Admission,
        now_ns: u64,
    ) -> Result<Hit, InsertError> {
        let pk = self.prepare_with(key, Stage::None);
        self.insert_prepared(&pk, adm, now_ns)
    }

    /// [`Self::insert_admitted`] for a key already [`Self::prepare`]d (e.g. by the lookup
    /// that missed), saving the second hash.
    pub fn insert_prepared(
        &mut self,
        pk: &PreparedKey,
        adm: &Admission,
        now_ns: u64,
    ) -> Result<Hit, InsertError> {
        let now_t = tick(now_ns);
        if let Some(i) = self.find_at(pk) {
            if let Some(hit) = self.hit_or_expire(i, pk.swapped, now_t) {
                return Ok(hit);
            }
        }
        self.insert_absent(pk, adm, now_t)
    }

    /// [`Self::insert_prepared`] for a key whose lookup in the latest burst lookup
    /// ([`Self::lookup_prepared_burst`] or [`Self::lookup_burst`]) missed: the search for an
    /// existing flow is skipped unless a flow that may have the same hash was inserted since
    /// (two first packets of one flow in a burst, or now and then another flow: the table
    /// remembers those hashes in a small filter), which saves a second bucket scan per new
    /// flow. Passing
    /// a key that was not looked up in that burst may create a duplicate flow.
    pub fn insert_after_miss(
        &mut self,
        pk: &PreparedKey,
        adm: &Admission,
        now_ns: u64,
    ) -> Result<Hit, InsertError> {
        if !self.maybe_inserted(pk.hash) {
            debug_assert!(self.find_at(pk).is_none(), "key was not a miss");
            self.insert_absent(pk, adm, tick(now_ns))
        } else {
            self.insert_prepared(pk, adm, now_ns)
        }
    }

    /// [`Self::insert_after_miss`] and then [`Self::track`] of the flow's first packet `pkt`,
    /// in one step: the new record is built in place with its first packet already applied
    /// (the state machine's `open`), with no handle check or second record access. Same
    /// results, counters and table state as the two calls.
    #[inline]
    pub fn open_after_miss(
        &mut self,
        pk: &PreparedKey,
        adm: &Admission,
        pkt: &PacketInfo,
        now_ns: u64,
    ) -> Result<(Hit, TrackVerdict), InsertError> {
        if !self.maybe_inserted(pk.hash) {
            debug_assert!(self.find_at(pk).is_none(), "key was not a miss");
            let now_t = tick(now_ns);
            let pos = self.make_room(pk, now_t)?;
            let i = self.alloc();
            // Built in place (a record built apart and then copied cost ~20 instructions).
            self.note_v6(i, pk);
            let f = &mut self.flows[i as usize];
            *f = new_record(pk, adm, now_t);
            let opened = state::open(f, pkt, self.modes);
            // Refused, `open` changed nothing: the record is indexed as inserted, then freed.
            if opened.is_ok() {
                f.counters = Counters {
                    bytes: [u64::from(pkt.frame_len), 0],
                    packets: [1, 0],
                };
            }
            let hit = self.index(pk, pos, i);
            let verdict = match opened {
                Ok(()) => TrackVerdict::Accept,
                Err(e) => self.refused(hit.handle, true, e),
            };
            Ok((hit, verdict))
        } else {
            let hit = self.insert_prepared(pk, adm, now_ns)?;
            Ok((hit, self.track(hit.handle, hit.dir, pkt, now_ns)))
        }
    }

    /// Creates the flow of a key known not to be in the table. Inlined into the caller (the
    /// worker's new-flow path): called out of line, its register saves and restores were
    /// ~18 of its ~95 instructions (plain `#[inline]` left it out of line).
    #[inline(always)]
    fn insert_absent(
        &mut self,
        pk: &PreparedKey,
        adm: &Admission,
        now_t: u32,
    ) -> Result<Hit, InsertError> {
        let pos = self.make_room(pk, now_t)?;
        let i = self.alloc();
        self.note_v6(i, pk);
        self.flows[i as usize] = new_record(pk, adm, now_t);
        Ok(self.index(pk, pos, i))
    }

    /// Keeps an IPv6 key's full addresses for record `i` (nothing for IPv4).
    #[inline(always)]
    fn note_v6(&mut self, i: u32, pk: &PreparedKey) {
        if pk.family != FAMILY_V4 {
            self.v6_addrs[i as usize] = pk.v6;
        }
    }

    /// The hash of record `i`'s key (as `prepare` worked it out).
    fn record_hash(&self, i: u32) -> u64 {
        let f = &self.flows[i as usize];
        if f.family == FAMILY_V4 {
            self.hash_v4(f.key.addrs, f.key.tail)
        } else {
            self.hash(&f.key.full(f.family, &self.v6_addrs[i as usize]))
        }
    }

    /// False if no flow with hash `h` was inserted since the last burst lookup (true may be
    /// wrong: see `Scratch::inserted`).
    #[inline(always)]
    fn maybe_inserted(&self, h: u64) -> bool {
        let (word, bit) = inserted_bit(h);
        self.scratch.inserted[word] & bit != 0
    }

    /// The first steps of an insert of a key known to be absent: notes its hash for
    /// [`Self::insert_after_miss`], evicts if the table is full, and finds a free slot
    /// (bucket, slot, distance from home) for it.
    #[inline(always)]
    fn make_room(
        &mut self,
        pk: &PreparedKey,
        now_t: u32,
    ) -> Result<(u32, usize, u32), InsertError> {
        let (word, bit) = inserted_bit(pk.hash);
        self.scratch.inserted[word] |= bit;
        if self.stats.len == self.stats.capacity && !self.evict(pk.hash, now_t) {
            self.stats.insert_failures += 1;
            return Err(InsertError::TableFull);
        }
        let Some(pos) = self.free_slot(pk.home) else {
            self.stats.insert_failures += 1;
            return Err(InsertError::TableFull);
        };
        Ok(pos)
    }

    /// The last step of an insert: indexes record `i` (written, from [`Self::alloc`]) at
    /// `pos` (from [`Self::make_room`]).
    #[inline(always)]
    fn index(&mut self, pk: &PreparedKey, pos: (u32, usize, u32), i: u32) -> Hit {
        let (b, slot, dist) = pos;
        self.buckets[b as usize].slots[slot] = self.sig(pk.hash) | (i + 1);
        if dist > 0 {
            self.buckets[pk.home as usize].overflow += 1;
            self.max_probe = self.max_probe.max(dist);
        }
        self.stats.len += 1;
        self.stats.inserts += 1;
        Hit {
            handle: FlowHandle(i),
            dir: Direction::Original,
        }
    }

    /// The first bucket from `home` with a free slot, that slot, and the bucket's
    /// distance from home. One empty-slot mask per bucket (empty slots are 0, so this is
    /// [`matches`] against 0 under an all-ones mask) finds both whether there is room and
    /// where, in one pass.
    #[inline]
    fn free_slot(&self, home: u32) -> Option<(u32, usize, u32)> {
        let mut b = home;
        for dist in 0..=MAX_PROBE {
            let empty = matches(&self.buckets[b as usize], u32::MAX, 0);
            if empty != 0 {
                return Some((b, empty.trailing_zeros() as usize, dist));
            }
            b = self.next_bucket(b);
        }
        None
    }

    fn alloc(&mut self) -> u32 {
        if self.free_head != NONE {
            let i = self.free_head;
            self.free_head = self.flows[i as usize].rule;
            i
        } else {
            let i = self.high_water;
            self.high_water += 1;
            i
        }
    }

    /// Unlinks record `i` from the index and puts it on the free list.
    fn free(&mut self, i: u32) {
        let home = self.home(self.record_hash(i));
        let mut b = home;
        for dist in 0..=self.max_probe {
            let bucket = &mut self.buckets[b as usize];
            if let Some(s) = bucket
                .slots
                .iter()
                .position(|&s| s != 0 && (s & self.idx_mask) == i + 1)
            {
                bucket.slots[s] = 0;
                if dist > 0 {
                    self.buckets[home as usize].overflow -= 1;
                }
                break;
            }
            b = self.next_bucket(b);
        }
        let f = &mut self.flows[i as usize];
        *f = Record::FREE;
        f.rule = self.free_head;
        self.free_head = i;
        self.stats.len -= 1;
    }

    /// Frees one victim to make room for a key hashing to `h`. See the module docs.
    fn evict(&mut self, h: u64, now_t: u32) -> bool {
        let mut best: Option<(u32, u32)> = None; // (index, age); expired wins outright
        let consider = |t: &Self, i: u32, best: &mut Option<(u32, u32)>| -> bool {
            let f = &t.flows[i as usize];
            if f.state == FlowState::Free {
                return false;
            }
            if t.expired(f, now_t) {
                *best = Some((i, u32::MAX));
                return true;
            }
            // Unassured flows, and connections that are already closed, may make room.
            let closed = matches!(f.state, FlowState::TcpTimeWait | FlowState::TcpClose);
            if f.flags & flag::ASSURED == 0 || closed {
                let age = now_t.wrapping_sub(f.last_seen);
                if best.is_none_or(|(_, a)| age >= a) {
                    *best = Some((i, age));
                }
            }
            false
        };
        let mut b = self.home(h);
        'outer: for _ in 0..=self.max_probe {
            for &s in &self.buckets[b as usize].slots {
                if s != 0 && consider(self, (s & self.idx_mask) - 1, &mut best) {
                    break 'outer;
                }
            }
            b = self.next_bucket(b);
        }
        if best.is_none() {
            let cap = self.stats.capacity;
            for _ in 0..EVICT_SCAN.min(cap) {
                let i = self.sweep;
                self.sweep = if i + 1 >= self.first + cap {
                    self.first
                } else {
                    i + 1
                };
                if consider(self, i, &mut best) {
                    break;
                }
            }
        }
        match best {
            Some((i, age)) => {
                self.free(i);
                if age == u32::MAX {
                    self.stats.expired += 1;
                } else {
                    self.stats.evictions += 1;
                }
                true
            }
            None => false,
        }
    }

    /// Applies a packet travelling in `dir` to its flow: state machine, then counters and
    /// last-seen time. A flow whose very first packet is refused (`NotOpener`) is removed.
    #[inline]
    pub fn track(
        &mut self,
        handle: FlowHandle,
        dir: Direction,
        pkt: &PacketInfo,
        now_ns: u64,
    ) -> TrackVerdict {
        let i = handle.0 as usize;
        let Some(f) = self.flows.get_mut(i) else {
            return TrackVerdict::Drop(TrackError::Stale);
        };
        if f.state == FlowState::Free {
            return TrackVerdict::Drop(TrackError::Stale);
        }
        self.track_live(i, dir, pkt, now_ns)
    }

    /// [`Self::track`] for a flow admitted under `generation` (compared on the low 32 bits, as
    /// [`Flow::admitted_under`]); None, with nothing changed, for a flow admitted under
    /// another one or not live. One record check for the pipeline's common case, instead of
    /// [`Self::flow`] and then [`Self::track`].
    #[inline]
    pub fn track_admitted_under(
        &mut self,
        handle: FlowHandle,
        dir: Direction,
        generation: u64,
        pkt: &PacketInfo,
        now_ns: u64,
    ) -> Option<TrackVerdict> {
        let i = handle.0 as usize;
        let f = self.flows.get(i)?;
        if f.state == FlowState::Free || f.generation != generation as u32 {
            return None;
        }
        Some(self.track_live(i, dir, pkt, now_ns))
    }

    /// [`Self::track_admitted_under`], and the same for a flow admitted under another
    /// generation for which `keep(rule, its generation)` is true, re-stamped with
    /// `generation` first (its revalidation decided from the record alone); None, with
    /// nothing changed, for any other flow or one not live.
    #[inline]
    pub fn track_admitted_under_or(
        &mut self,
        handle: FlowHandle,
        dir: Direction,
        generation: u64,
        keep: impl FnOnce(RuleId, u32) -> bool,
        pkt: &PacketInfo,
        now_ns: u64,
    ) -> Option<TrackVerdict> {
        let i = handle.0 as usize;
        let f = self.flows.get_mut(i)?;
        let gen = generation as u32;
        if f.state == FlowState::Free
            || (f.generation != gen && !keep(RuleId(f.rule), f.generation))
        {
            return None;
        }
        f.generation = gen;
        Some(self.track_live(i, dir, pkt, now_ns))
    }

    /// The body of [`Self::track`] for a live record `i`.
    #[inline(always)]
    fn track_live(
        &mut self,
        i: usize,
        dir: Direction,
        pkt: &PacketInfo,
        now_ns: u64,
    ) -> TrackVerdict {
        let handle = FlowHandle(i as u32);
        let f = &mut self.flows[i];
        let was_new = f.state == FlowState::New;
        // In place: `advance` changes nothing when it refuses a packet.
        match state::advance(f, dir, pkt, self.modes) {
            Ok(()) => {
                f.last_seen = tick(now_ns);
                let c = &mut f.counters;
                c.packets[dir.index()] = c.packets[dir.index()].wrapping_add(1);
                c.bytes[dir.index()] += u64::from(pkt.frame_len);
                TrackVerdict::Accept
            }
            Err(e) => self.refused(handle, was_new, e),
        }
    }

    /// A refused packet: a flow it was the first packet of goes away again.
    #[cold]
    #[inline(never)]
    fn refused(&mut self, handle: FlowHandle, was_new: bool, e: TrackError) -> TrackVerdict {
        if was_new {
            self.free(handle.0);
            self.stats.removed += 1;
        }
        TrackVerdict::Drop(e)
    }

    /// The flow behind a handle, if it is live.
    pub fn flow(&self, handle: FlowHandle) -> Option<Flow<'_>> {
        let i = handle.0 as usize;
        let rec = self.flows.get(i).filter(|f| f.state != FlowState::Free)?;
        Some(Flow {
            rec,
            v6: &self.v6_addrs[i],
        })
    }

    /// Re-stamps a flow after revalidation against a new ruleset generation (its TCP
    /// strictness stays as it was).
    pub fn set_admission(&mut self, handle: FlowHandle, rule: RuleId, generation: u64) {
        if let Some(f) = self.flows.get_mut(handle.0 as usize) {
            if f.state != FlowState::Free {
                f.rule = rule.0;
                f.generation = generation as u32;
            }
        }
    }

    /// Re-stamps a flow after revalidation: rule, generation and TCP strictness of the rule
    /// that now admits it.
    pub fn readmit(&mut self, handle: FlowHandle, adm: &Admission) {
        if let Some(f) = self.flows.get_mut(handle.0 as usize) {
            if f.state != FlowState::Free {
                f.rule = adm.rule.0;
                f.generation = adm.generation as u32;
                f.flags = (f.flags & !flag::STRICT) | if adm.strict_tcp { flag::STRICT } else { 0 };
            }
        }
    }

    /// Removes a flow (e.g. a new deny rule cuts it). Returns false if it was not live.
    pub fn remove(&mut self, handle: FlowHandle) -> bool {
        if self.flow(handle).is_none() {
            return false;
        }
        self.free(handle.0);
        self.stats.removed += 1;
        true
    }

    /// Walks up to `budget` records from the sweep cursor and frees the expired ones.
    /// Call once per poll-loop iteration; a full pass takes `capacity / budget` calls.
    /// Returns how many flows expired.
    pub fn expire_burst(&mut self, now_ns: u64, budget: u32) -> u32 {
        let now_t = tick(now_ns);
        // The cursor stays below `limit`: `high_water` only grows (until `clear`, which
        // resets both), and `evict` walks it only when every record is in use.
        let limit = self.high_water.max(self.first + 1) as usize;
        let mut left = budget.min(self.stats.capacity) as usize;
        let mut i = self.sweep as usize;
        let mut n = 0;
        // Runs of records up to the next expired one or the end, each a plain slice scan
        // (a free record's timeout is u32::MAX, so it never counts as expired): ~6
        // instructions a record where a wrap test and two bounds checks each took ~18.
        while left > 0 {
            let end = (i + left).min(limit);
            let timeout = &self.timeout;
            let hit = self.flows[i..end]
                .iter()
                .position(|f| now_t.wrapping_sub(f.last_seen) > timeout[f.state as usize]);
            match hit {
                Some(p) => {
                    self.free((i + p) as u32);
                    n += 1;
                    left -= p + 1;
                    i += p + 1;
                }
                None => {
                    left -= end - i;
                    i = end;
                }
            }
            if i >= limit {
                i = self.first as usize;
            }
        }
        self.sweep = i as u32;
        self.stats.expired += u64::from(n);
        n
    }

    /// Iterates over live flows (for `rampartctl flows`); not for the hot path.
    pub fn iter(&self) -> impl Iterator<Item = (FlowHandle, Flow<'_>)> + '_ {
        self.flows[..self.high_water as usize]
            .iter()
            .zip(&self.v6_addrs)
            .enumerate()
            .filter(|(_, (f, _))| f.state != FlowState::Free)
            .map(|(i, (rec, v6))| (FlowHandle(i as u32), Flow { rec, v6 }))
    }

    /// One past the highest slot ever used: a walk with [`Self::iter_slots`] ends here.
    pub fn slot_limit(&self) -> u32 {
        self.high_water
    }

    /// Live, unexpired flows among slots `start..start + count`: lets a worker walk the table
    /// in bounded steps between bursts (`rampartctl flows`) instead of stalling on all of it.
    pub fn iter_slots(
        &self,
        start: u32,
        count: u32,
        now_ns: u64,
    ) -> impl Iterator<Item = (FlowHandle, Flow<'_>)> + '_ {
        let end = start.saturating_add(count).min(self.high_water) as usize;
        let start = (start as usize).min(end);
        let now_t = tick(now_ns);
        self.flows[start..end]
            .iter()
            .zip(&self.v6_addrs[start..end])
            .enumerate()
            .filter(move |(_, (f, _))| f.state != FlowState::Free && !self.expired(f, now_t))
            .map(move |(i, (rec, v6))| (FlowHandle((start + i) as u32), Flow { rec, v6 }))
    }

    /// Removes every flow (e.g. on a policy change configured to flush).
    pub fn clear(&mut self) {
        for b in &mut self.buckets {
            *b = Bucket {
                slots: [0; SLOTS],
                overflow: 0,
            };
        }
        for f in &mut self.flows[..self.high_water as usize] {
            *f = Record::FREE;
        }
        self.free_head = NONE;
        self.high_water = self.first;
        self.max_probe = 0;
        self.sweep = self.first;
        self.stats.removed += u64::from(self.stats.len);
        self.stats.len = 0;
    }
}

/// True if both addresses of a key's [`FlowKey::words`] are IPv4-mapped: the key is IPv4.
#[inline(always)]
fn is_v4_words(w: &[u64; 5]) -> bool {
    w[0] == 0 && w[2] == 0 && w[1] as u32 == V4_MAPPED_WORD && w[3] as u32 == V4_MAPPED_WORD
}

/// The word and bit of hash `h` in `Scratch::inserted` (its top 8 bits).
#[inline(always)]
fn inserted_bit(h: u64) -> (usize, u64) {
    ((h >> 62) as usize, 1 << ((h >> 56) & 63))
}

/// The record of a new flow before its first packet is tracked (state `New`).
#[inline(always)]
fn new_record(pk: &PreparedKey, adm: &Admission, now_t: u32) -> Record {
    Record {
        key: pk.key,
        family: pk.family,
        state: FlowState::New,
        flags: if pk.swapped { flag::ORIG_SWAPPED } else { 0 }
            | if adm.strict_tcp { flag::STRICT } else { 0 },
        rule: adm.rule.0,
        generation: adm.generation as u32,
        last_seen: now_t,
        ..Record::FREE
    }
}

fn timeout_table(t: &Timeouts) -> Result<[u32; FlowState::COUNT], FlowConfigError> {
    let check = |name: &'static str, secs: u32| {
        if secs == 0 || secs > 2_000_000 {
            Err(FlowConfigError::Timeout { name, secs })
        } else {
            Ok(ticks_of(secs))
        }
    };
    let mut out = [0u32; FlowState::COUNT];
    use FlowState::*;
    out[New as usize] = check("tcp_syn_sent", t.tcp_syn_sent_secs)?;
    out[TcpSynSent as usize] = check("tcp_syn_sent", t.tcp_syn_sent_secs)?;
    out[TcpSynRecv as usize] = check("tcp_syn_recv", t.tcp_syn_recv_secs)?;
    out[TcpEstablished as usize] = check("tcp_established", t.tcp_established_secs)?;
    out[TcpFinWait as usize] = check("tcp_fin_wait", t.tcp_fin_wait_secs)?;
    out[TcpCloseWait as usize] = check("tcp_close_wait", t.tcp_close_wait_secs)?;
    out[TcpLastAck as usize] = check("tcp_last_ack", t.tcp_last_ack_secs)?;
    out[TcpTimeWait as usize] = check("tcp_time_wait", t.tcp_time_wait_secs)?;
    out[TcpClose as usize] = check("tcp_close", t.tcp_close_secs)?;
    out[UdpUnreplied as usize] = check("udp", t.udp_secs)?;
    out[UdpReplied as usize] = check("udp_stream", t.udp_stream_secs)?;
    out[IcmpRequest as usize] = check("icmp", t.icmp_secs)?;
    out[IcmpReplied as usize] = check("icmp", t.icmp_secs)?;
    out[Other as usize] = check("generic", t.generic_secs)?;
    out[OtherReplied as usize] = check("generic", t.generic_secs)?;
    out[Free as usize] = u32::MAX;
    Ok(out)
}

/// Bit k set if `slots[k] & hi == want`. On x86-64, explicit SSE2 (part of the baseline):
/// the bucket as four 4-lane vectors, AND, compare, two packs and one byte mask — ~16
/// instructions where the compiler's own vectorisation of the portable loop took ~44.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn matches(b: &Bucket, hi: u32, want: u32) -> u32 {
    use safe_arch::*;
    let (hi, want) = (
        set_splat_i32_m128i(hi as i32),
        set_splat_i32_m128i(want as i32),
    );
    let s = &b.slots;
    // The 16th lane is the overflow count; its bit is masked off below.
    let words = [
        [s[0], s[1], s[2], s[3]],
        [s[4], s[5], s[6], s[7]],
        [s[8], s[9], s[10], s[11]],
        [s[12], s[13], s[14], b.overflow],
    ];
    let eq = words.map(|w| cmp_eq_mask_i32_m128i(bitand_m128i(m128i::from(w), hi), want));
    let bytes = pack_i16_to_i8_m128i(
        pack_i32_to_i16_m128i(eq[0], eq[1]),
        pack_i32_to_i16_m128i(eq[2], eq[3]),
    );
    move_mask_i8_m128i(bytes) as u32 & ((1 << SLOTS) - 1)
}

/// The portable form of [`matches`] (and its reference in the tests).
#[cfg(any(not(target_arch = "x86_64"), test))]
#[inline(always)]
fn matches_portable(b: &Bucket, hi: u32, want: u32) -> u32 {
    let mut m = 0u32;
    for (k, &s) in b.slots.iter().enumerate() {
        m |= u32::from(s & hi == want) << k;
    }
    m
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn matches(b: &Bucket, hi: u32, want: u32) -> u32 {
    matches_portable(b, hi, want)
}

/// Prefetches a bucket or record line into L1 (`prefetcht0`).
///
/// `core::arch::x86_64::_mm_prefetch` cannot be called from this crate: even with SSE in the
/// x86_64 baseline, rustc 1.95 still requires `unsafe` for it ("the sse target feature being
/// enabled in the build configuration does not remove the requirement to list it in
/// `#[target_feature]`", E0133), and the workspace forbids unsafe here. `mem_prefetch` is a
/// 120-line crate whose one unsafe block makes exactly that call.
#[inline(always)]
fn prefetch<T>(r: &T) {
    mem_prefetch::prefetch_read_data::<T, 3>(r);
}

/// Whether `keep` keeps the flow of record `f` (admitted under another generation than
/// `gen`); if so it is re-stamped with `gen`. Out of line and cold: only the first packet of
/// a flow after a ruleset change gets here, and inlined into the burst loop the caller's
/// check cost the established path registers (~5 instructions a packet).
#[cold]
#[inline(never)]
fn restamp_if_kept(keep: &mut impl FnMut(RuleId, u32) -> bool, f: &mut Record, gen: u32) -> bool {
    let kept = keep(RuleId(f.rule), f.generation);
    if kept {
        f.generation = gen;
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_wire::proto;

    fn key(i: u32) -> FlowKey {
        let b = i.to_be_bytes();
        FlowKey::v4(
            [10, b[1], b[2], b[3]],
            [192, 168, 0, 1],
            proto::UDP,
            1000,
            53,
        )
    }

    /// A table of at least half a huge page of records starts them on a huge-page boundary,
    /// and exactly `capacity` of them, from there on, hold flows: filled, swept, evicted into
    /// and cleared, no flow ever takes a record below `first`.
    #[test]
    fn large_tables_start_their_records_on_a_huge_page() {
        let cap = 1 << 15;
        let mut t = FlowTable::new(&FlowConfig {
            capacity: cap,
            ..FlowConfig::default()
        })
        .unwrap();
        let at = t.flows.as_ptr() as usize + t.first as usize * core::mem::size_of::<Record>();
        assert_eq!(at % HUGE_PAGE, 0);
        assert_eq!(t.flows.len(), (t.first + cap) as usize);
        let above_first = |t: &FlowTable| t.iter().all(|(h, _)| h.0 >= t.first);
        for i in 0..cap {
            let h = t.insert(&key(i), RuleId(1), 1, 0).unwrap();
            assert!(h.handle.0 >= t.first);
        }
        assert_eq!(t.len(), cap as usize);
        // Full: the next flow evicts one (none is assured), and still lands above `first`.
        let h = t.insert(&key(cap), RuleId(1), 1, 0).unwrap();
        assert!(h.handle.0 >= t.first && t.stats().evictions == 1);
        // The sweep walks exactly the capacity: one pass of `cap` expires every flow.
        let late = 10_000 * 1_000_000_000;
        assert_eq!(t.expire_burst(late, cap), cap);
        assert!(t.is_empty() && t.sweep >= t.first);
        for i in 0..100 {
            t.insert(&key(i), RuleId(1), 1, late).unwrap();
        }
        assert!(above_first(&t));
        t.clear();
        assert_eq!((t.high_water, t.sweep), (t.first, t.first));
        let h = t.insert(&key(7), RuleId(1), 1, late).unwrap();
        assert_eq!(h.handle.0, t.first);
        // A small table is not padded.
        let small = FlowTable::new(&FlowConfig {
            capacity: 1024,
            ..FlowConfig::default()
        })
        .unwrap();
        assert_eq!((small.first, small.flows.len()), (0, 1024));
    }

    /// Keys chosen to share one home bucket overflow into the next ones; lookups, bursts and
    /// removals must still find them, and the overflow count must return to zero.
    #[test]
    fn overflowing_buckets() {
        let mut t = FlowTable::new(&FlowConfig {
            capacity: 200,
            ..FlowConfig::default()
        })
        .unwrap();
        let same: Vec<FlowKey> = (0..100_000)
            .map(key)
            .filter(|k| t.prepare(k).home == 5)
            .take(40)
            .collect();
        assert_eq!(same.len(), 40);
        for k in &same {
            t.insert(k, RuleId(1), 1, 0).unwrap();
        }
        assert_eq!(t.buckets[5].overflow, 25);
        assert!(t.max_probe >= 2);
        let mut out = [None; 40];
        t.lookup_burst(&same, 0, &mut out);
        assert!(out.iter().all(|h| h.is_some()));
        for k in &same {
            assert_eq!(
                t.lookup(&k.reversed(), 0).map(|h| h.dir),
                Some(Direction::Reply)
            );
        }
        for k in &same[..20] {
            let h = t.lookup(k, 0).unwrap();
            assert!(t.remove(h.handle));
        }
        for k in &same[20..] {
            assert!(t.lookup(k, 0).is_some());
        }
        for k in &same[20..] {
            let h = t.lookup(k, 0).unwrap();
            assert!(t.remove(h.handle));
        }
        assert_eq!(t.buckets[5].overflow, 0);
        assert!(t.buckets.iter().all(|b| b.slots.iter().all(|&s| s == 0)));
    }

    /// Removing, expiring and evicting IPv6 flows finds their slots from the record (compact
    /// key and the IPv6 side array hash as `prepare` did): after every flow is gone, the
    /// index is empty.
    #[test]
    fn ipv6_flows_leave_no_slots_behind() {
        let mut t = FlowTable::new(&FlowConfig {
            capacity: 64,
            ..FlowConfig::default()
        })
        .unwrap();
        let k6 = |i: u32| {
            let mut a = [0u8; 16];
            a[..2].copy_from_slice(&[0x20, 1]);
            a[4..8].copy_from_slice(&i.to_be_bytes());
            FlowKey::v6(a, [0xfd; 16], proto::UDP, 1000, 53)
        };
        // Three rounds of 64: the later ones evict unassured flows of the earlier ones.
        for i in 0..192 {
            t.insert(&k6(i), RuleId(1), 1, 0).unwrap();
        }
        assert_eq!(t.len(), 64);
        assert!(t.stats().evictions >= 128);
        let live: Vec<u32> = (0..192)
            .filter(|&i| t.lookup(&k6(i), 0).is_some())
            .collect();
        assert_eq!(live.len(), 64);
        for &i in &live[..32] {
            let h = t.lookup(&k6(i), 0).unwrap();
            assert_eq!(t.flow(h.handle).unwrap().key(), k6(i));
            assert!(t.remove(h.handle));
        }
        // The rest expire: lazily on lookup, then by the sweep.
        let late = 10_000 * 1_000_000_000;
        assert!(t.lookup(&k6(live[40]), late).is_none());
        t.expire_burst(late, 64);
        assert!(t.is_empty());
        assert!(t
            .buckets
            .iter()
            .all(|b| b.overflow == 0 && b.slots.iter().all(|&s| s == 0)));
    }

    /// An IPv4 flow and two IPv6 flows with the same compact key (last address bytes,
    /// ports, protocol) and, forced, the same hash: one home bucket, one signature, so each
    /// key's first candidate may be another family's record. Every lookup path finds each
    /// key's own flow (the family byte and the IPv6 address bytes decide), and the fused
    /// path tracks each on its own record.
    #[test]
    fn v4_and_v6_flows_with_colliding_hashes_stay_apart() {
        let mut t = FlowTable::new(&FlowConfig {
            capacity: 64,
            ..FlowConfig::default()
        })
        .unwrap();
        let six = |hi: u8, v: [u8; 4]| {
            let mut a = [0u8; 16];
            a[..2].copy_from_slice(&[0x20, hi]);
            a[12..].copy_from_slice(&v);
            a
        };
        let (a, b) = ([10, 0, 0, 1], [10, 0, 0, 2]);
        let keys = [
            FlowKey::v4(a, b, proto::UDP, 5353, 53),
            FlowKey::v6(six(1, a), six(1, b), proto::UDP, 5353, 53),
            FlowKey::v6(six(2, a), six(2, b), proto::UDP, 5353, 53),
        ];
        let forced = |t: &FlowTable, k: &FlowKey| {
            let mut pk = t.prepare(k);
            let v4 = t.prepare(&keys[0]);
            (pk.hash, pk.home) = (v4.hash, v4.home);
            pk
        };
        let pks: Vec<PreparedKey> = keys.iter().map(|k| forced(&t, k)).collect();
        assert!(pks
            .iter()
            .all(|pk| pk.key == pks[0].key && pk.hash == pks[0].hash));
        assert_eq!(
            pks.iter().map(|pk| pk.family).collect::<Vec<_>>(),
            [FAMILY_V4, FAMILY_V6, FAMILY_V6]
        );
        // Inserted in every order of first candidate: each insert must see the others as
        // different flows, not as its own existing one.
        let adm = Admission {
            rule: RuleId(1),
            generation: 1,
            strict_tcp: false,
        };
        for order in [[0, 1, 2], [2, 1, 0], [1, 0, 2]] {
            t.clear();
            let mut h = [FlowHandle(0); 3];
            for &k in &order {
                h[k] = t.insert_prepared(&pks[k], &adm, 0).unwrap().handle;
            }
            assert_eq!(t.len(), 3);
            for k in 0..3 {
                assert_eq!(t.find_at(&pks[k]), Some(h[k].0));
                assert_eq!(t.flow(h[k]).unwrap().key(), keys[k]);
            }
            let mut out = [None; 3];
            t.lookup_prepared_burst(&pks, 0, &mut out);
            assert_eq!(out.map(|x| x.unwrap().handle), h);
            let udp = PacketInfo {
                proto: proto::UDP,
                frame_len: 100,
                ..PacketInfo::default()
            };
            // The reverse direction of each (the first packet, `New`, goes through `track`).
            for &handle in &h {
                t.track(handle, Direction::Original, &udp, 0);
            }
            let rev: Vec<PreparedKey> = keys.iter().map(|k| forced(&t, &k.reversed())).collect();
            let mut left = [Left::EMPTY; 3];
            let done = t.lookup_track_burst(&rev, &[udp; 3], Some(1), |_, _| false, 0, &mut left);
            assert_eq!((done.accepted, done.left), (3, 0));
            for &handle in &h {
                let f = t.flow(handle).unwrap();
                assert_eq!(
                    (f.packets(Direction::Original), f.packets(Direction::Reply)),
                    (1, 1)
                );
                assert_eq!(f.state(), FlowState::UdpReplied);
            }
        }
    }

    /// The IPv4 hash with its seeded constants worked out once gives what it gave when it
    /// derived them from the seed per key.
    #[test]
    fn v4_hash_constants_give_the_same_hash() {
        let mut x = 0x2545_f491u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for seed in [0, 1, 0xdead_beef, u64::MAX, next(), next()] {
            let t = FlowTable::new(&FlowConfig {
                capacity: 16,
                hash_seed: seed,
                ..FlowConfig::default()
            })
            .unwrap();
            for _ in 0..1000 {
                let (src, dst, tail) = (next() >> 32, next() >> 32, next() & 0xff_ffff_ffff);
                let (s, u) = (seed, seed.rotate_left(32) ^ P[2]);
                let r = u128::from((src << 32 | dst) ^ u ^ P[1]) * u128::from(tail ^ s ^ P[4]);
                let want = mum((r as u64) ^ P[0] ^ s, ((r >> 64) as u64) ^ P[3]);
                assert_eq!(t.hash_v4(src << 32 | dst, tail), want);
            }
        }
    }

    /// The SSE2 slot match agrees with the portable loop, the overflow word never matching.
    #[test]
    fn slot_match_agrees_with_portable() {
        let mut x = 0x9e37_79b9u32;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        for round in 0..2_000 {
            let hi = !((1u32 << (round % 29 + 1)) - 1);
            let want = (next() | 0x8000_0000) & hi;
            let mut b = Bucket {
                slots: [0; SLOTS],
                overflow: want | 5,
            };
            for s in &mut b.slots {
                *s = match next() % 3 {
                    0 => 0,
                    1 => want | (next() & !hi),
                    _ => next(),
                };
            }
            assert_eq!(matches(&b, hi, want), matches_portable(&b, hi, want));
        }
    }

    /// The sweep frees exactly what a record-by-record walk from the cursor frees, leaves
    /// the cursor where that walk does, for any budget (also past the records in use, so
    /// it wraps more than once).
    #[test]
    fn expiry_sweep_agrees_with_a_record_by_record_walk() {
        let cfg = FlowConfig {
            capacity: 300,
            ..FlowConfig::default()
        };
        let (mut a, mut b) = (FlowTable::new(&cfg).unwrap(), FlowTable::new(&cfg).unwrap());
        let walk = |t: &mut FlowTable, now_ns: u64, budget: u32| -> u32 {
            let now_t = tick(now_ns);
            let limit = t.high_water.max(t.first + 1);
            let mut n = 0;
            for _ in 0..budget.min(t.stats.capacity) {
                let i = t.sweep;
                t.sweep = if i + 1 >= limit { t.first } else { i + 1 };
                let f = &t.flows[i as usize];
                if f.state != FlowState::Free && t.expired(f, now_t) {
                    t.free(i);
                    n += 1;
                }
            }
            t.stats.expired += u64::from(n);
            n
        };
        let mut x = 0x9e37_79b9u32;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        let sec = 1_000_000_000u64;
        let mut now = sec;
        for round in 0..400u32 {
            now += sec * u64::from(next() % 30);
            for _ in 0..next() % 6 {
                let k = key(next() % 2000);
                let (ra, rb) = (
                    a.insert(&k, RuleId(1), 1, now),
                    b.insert(&k, RuleId(1), 1, now),
                );
                assert_eq!(ra, rb);
            }
            let budget = [0, 1, 3, 16, 64, 1000][next() as usize % 6];
            assert_eq!(
                a.expire_burst(now, budget),
                walk(&mut b, now, budget),
                "round {round}"
            );
            assert_eq!((a.sweep, a.stats), (b.sweep, b.stats), "round {round}");
        }
        assert!(a.stats.expired > 100, "{:?}", a.stats);
    }

    /// A walk in steps covers every live flow once and skips expired and removed ones.
    #[test]
    fn slot_walk_in_steps_sees_each_live_flow_once() {
        let mut t = FlowTable::new(&FlowConfig {
            capacity: 100,
            ..FlowConfig::default()
        })
        .unwrap();
        for i in 0..50 {
            t.insert(&key(i), RuleId(1), 1, 0).unwrap();
        }
        let h = t.lookup(&key(7), 0).unwrap();
        assert!(t.remove(h.handle));
        let mut seen = Vec::new();
        let mut at = 0;
        while at < t.slot_limit() {
            seen.extend(t.iter_slots(at, 8, 0).map(|(_, f)| f.key()));
            at += 8;
        }
        assert_eq!(seen.len(), 49);
        assert!(!seen.contains(&key(7)));
        // Long after every timeout, nothing is live even before the sweep frees it.
        let later = 10_000 * 1_000_000_000;
        assert_eq!(t.iter_slots(0, u32::MAX, later).count(), 0);
    }
}
