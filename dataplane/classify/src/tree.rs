//! One decision tree (HiCuts-style equal cuts with power-of-two fan-out) over a subset of
//! boxes. Node regions stay aligned to their size, so a child index is a shift of one field
//! and an add (no mask) and leaves hold a few boxes that are checked in full.
//!
//! Build: at each node, drop every box after the first one that covers the whole region
//! (it can never be the first match there), stop at `binth` boxes, else pick the field and
//! fan-out that minimise the largest child while total replication stays under
//! `spfac × n`. Identical leaves are stored once.
//!
//! An IPv4 tree can instead be built *masked* (see [`MaskedEntry`]): each cut covers only the
//! aligned block of its field that the node's boxes occupy, and keys outside it go to one
//! extra child holding the boxes that span the field. The forest chooses per tree.

use std::collections::HashMap;

use crate::space::{Chunk, Extras, GenericBox, Space, LANES, LEAF_DIM};

/// Tuning knobs of the tree build.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TreeParams {
    /// A node with at most this many boxes becomes a leaf.
    pub binth: usize,
    /// Space factor: the children of a node may hold at most `spfac × n` box copies in total.
    pub spfac: usize,
    /// Largest fan-out exponent considered per cut.
    pub max_cut_bits: u32,
    /// Depth bound (a leaf is made there whatever its size).
    pub max_depth: u32,
    /// Extra budget (box copies + child slots) for the root's cut: one wide root cut saves a
    /// level for every lookup at a memory cost paid once.
    pub root_budget: usize,
    /// Masked address steps (IPv4 only, see [`MaskedEntry`]): `None` lets the forest choose
    /// per tree by its cost estimate, `Some(m)` forces every tree (tests and tuning).
    pub masked: Option<bool>,
}

impl Default for TreeParams {
    fn default() -> Self {
        TreeParams {
            binth: 8,
            spfac: 4,
            max_cut_bits: 15,
            max_depth: 40,
            root_budget: 0,
            masked: None,
        }
    }
}

/// Tree entries are `u64`s that carry everything a lookup needs to take the next step, so a
/// level costs one dependent load and a few register operations. An inner node's entry is
///
/// - bits 0-4: the shift, low bits (a 32-bit shift by a register reads only these);
/// - bits 5-7: the cut field;
/// - bits 8-9: the shift, high bits (IPv6 addresses only);
/// - bits 10-63: `base - (lo >> shift)`, wrapping, where `base` is the slot of the first
///   child and `lo` the node region's start in the cut field.
///
/// Regions are aligned to their size and a packet only reaches a node whose region holds it,
/// so its child slot is `base + (key >> shift) - (lo >> shift)`: one shift and one add, no
/// mask (see [`Space::field_shr`] and [`Space::wrap_index`]).
///
/// A leaf's entry is its `slot` with field [`LEAF_DIM`], a key slot that always holds 0:
/// `ptrs[slot]` holds the leaf entry itself and `ptrs[slot + 1]` its chunk word. So a step
/// from a leaf stays on it, and several walks (packets of a burst) can advance together with
/// no per-walk exit test: the loop ends once every walk reached its leaf (the AND of their
/// entries has all field bits set), one hard-to-predict exit for the group instead of one
/// each.
const ENTRY_DIM_SHIFT: u32 = 5;
const ENTRY_BASE_SHIFT: u32 = 10;
const DIM_BITS: u64 = 7 << ENTRY_DIM_SHIFT;

#[inline(always)]
fn is_leaf(e: u64) -> bool {
    e & DIM_BITS == DIM_BITS
}

/// The entry of the leaf at `slot`.
#[inline(always)]
fn leaf_entry(slot: usize) -> u64 {
    (slot as u64) << ENTRY_BASE_SHIFT | (LEAF_DIM as u64) << ENTRY_DIM_SHIFT
}

/// The slot of a leaf entry.
#[inline(always)]
fn leaf_slot(e: u64) -> usize {
    (e >> ENTRY_BASE_SHIFT) as usize
}

/// The empty leaf (every tree has it, at the start of `ptrs`).
const EMPTY_LEAF: u64 = (LEAF_DIM as u64) << ENTRY_DIM_SHIFT;

/// Entries of a masked tree (IPv4 only): two words read by one step, side by side in the
/// same 16 bytes, so the second word costs no extra dependent load.
///
/// A masked node cuts only the aligned block of its cut field that its rules occupy (the
/// common prefix of their ranges within the node's region), not the whole region: rules
/// that span the whole region in that field (wildcards there) are the only ones a packet
/// outside the block can match, and they get one more child, the *outside* child, after
/// the block's children. Cutting the block instead of the region puts every child slot
/// where rules are (a plain cut of a /8 region whose rules sit in one /24 spends almost all
/// of its fan-out on copies of the wildcards) and lets the same budget cut deeper bits.
///
/// - word 0: bits 0-4 the shift, bits 5-7 the cut field, bit 9 (leaves only) "the leaf
///   continues in the next chunk", bits 10-63 `base`, the slot of the first child;
/// - word 1: bits 0-31 `block`, the block's first value, bits 32-63 `fan`, the number of
///   block children (the outside child, when there is one, is at `base + fan`).
///
/// The child is `base + min((key - block) >> shift, fan)` in 32-bit wrapping arithmetic: a
/// key below the block wraps to a large value, one above it shifts to `fan` or more, both
/// land on the outside child. A node whose block is its whole region (nothing to mask) is
/// the same step with `block` = region start: a key reaching it lies in the region, so the
/// minimum never applies and it has no outside child.
///
/// A leaf is `[leaf_entry(slot), chunk << 32]`: field [`LEAF_DIM`] reads 0, `block` is 0 and
/// `fan` is the chunk index, so its step gives `base + min(0, chunk) = slot`, itself (the
/// lockstep walk of [`ENTRY_BASE_SHIFT`] works unchanged).
type MaskedEntry = [u64; 2];

const MASKED_MULTI_BIT: u32 = 9;

#[inline(always)]
fn masked_leaf(slot: usize, chunk: u64, multi: bool) -> MaskedEntry {
    [
        leaf_entry(slot) | (multi as u64) << MASKED_MULTI_BIT,
        chunk << 32,
    ]
}

const EMPTY_MASKED_LEAF: MaskedEntry = [EMPTY_LEAF, 0];

#[inline(always)]
fn masked_inner(base: usize, dim: usize, shift: u32, block: u128, fan: usize) -> MaskedEntry {
    debug_assert!(dim < LEAF_DIM && shift < 32 && block <= u32::MAX as u128);
    [
        (base as u64) << ENTRY_BASE_SHIFT | (dim as u64) << ENTRY_DIM_SHIFT | shift as u64,
        block as u64 | (fan as u64) << 32,
    ]
}

/// The slot of the child of `e` that `key` goes to (a leaf's own slot).
#[inline(always)]
fn masked_child<S: Space>(e: MaskedEntry, key: &S::Key) -> usize {
    let x = S::field32(key, e[0])
        .wrapping_sub(e[1] as u32)
        .wrapping_shr(e[0] as u32);
    let child = x.min((e[1] >> 32) as u32);
    (e[0] >> ENTRY_BASE_SHIFT) as usize + child as usize
}

#[inline(always)]
fn masked_step<S: Space>(ptrs: &[MaskedEntry], e: MaskedEntry, key: &S::Key) -> MaskedEntry {
    ptrs[masked_child::<S>(e, key)]
}

/// The chunk word (see [`Tree::chunk_of`]) of a masked leaf entry.
#[inline(always)]
fn masked_chunk_of(e: MaskedEntry) -> u64 {
    (e[1] >> 32) | (e[0] >> MASKED_MULTI_BIT & 1) << 63
}

#[inline(always)]
fn inner(base: usize, dim: usize, shift: u32, lo: u128) -> u64 {
    debug_assert!(base < u32::MAX as usize && dim < LEAF_DIM && shift < 128);
    let adj = (base as u64).wrapping_sub((lo >> shift) as u64);
    adj << ENTRY_BASE_SHIFT
        | ((shift as u64) >> 5) << 8
        | (dim as u64) << ENTRY_DIM_SHIFT
        | (shift as u64 & 31)
}

#[inline(always)]
fn step<S: Space>(ptrs: &[u64], e: u64, key: &S::Key) -> u64 {
    // Arithmetic shift: `base - (lo >> shift)` comes back sign-extended.
    let slot = ((e as i64 >> ENTRY_BASE_SHIFT) as u64).wrapping_add(S::field_shr(key, e));
    ptrs[S::wrap_index(slot)]
}

/// Flag of a leaf's chunk word: the leaf spans several chunks.
const MULTI_CHUNK: u64 = 1 << 63;

/// A built tree. Leaves are runs of [`Chunk`]s holding their boxes' fields inline (a box is
/// copied into every leaf it reaches) plus the boxes' indices in the table shared by all
/// trees of a forest, whose order is the priority order.
pub(crate) struct Tree<S: Space> {
    root: u64,
    ptrs: Vec<u64>,
    /// Whether the tree is masked: then `mroot` and `mptrs` hold it and `ptrs` is empty.
    masked: bool,
    mroot: MaskedEntry,
    mptrs: Vec<MaskedEntry>,
    chunks: Vec<Chunk<S::Lanes>>,
    /// Smallest box index in the tree: a packet that already matched a box before it has
    /// nothing to find here.
    min_box: u32,
    /// Box copies in leaves.
    entries: usize,
    /// Nodes that cut a block smaller than their region (with an outside child).
    block_cuts: usize,
}

/// The boxes of a forest in lookup form, and their out-of-line VLAN/VNI/direction limits.
pub(crate) struct BoxTable<S: Space> {
    pub rules: Vec<S::Rule>,
    pub extras: Vec<Extras>,
}

struct Builder<'a, S: Space> {
    rules: &'a [S::Rule],
    /// The five cut fields of every box, one column per field: the build scans one field of
    /// many boxes at a time, so columns keep those scans in few cache lines.
    cols: [Vec<(u128, u128)>; 5],
    /// Whether a box has VLAN/VNI/direction limits (checked out of line; such a box never
    /// covers a region).
    has_extras: Vec<bool>,
    params: TreeParams,
    tree: Tree<S>,
    /// Leaf entry of each distinct member list.
    leaf_dedup: HashMap<Vec<u32>, MaskedEntry>,
    /// Give up once leaves hold more box copies than this (a trial build).
    max_entries: usize,
}

fn region_hi(lo: u128, bits: u32) -> u128 {
    if bits >= 128 {
        u128::MAX
    } else {
        lo + ((1u128 << bits) - 1)
    }
}

const EMPTY_CHUNK_IDX: [u32; LANES + 1] = [u32::MAX; LANES + 1];

impl<S: Space> Tree<S> {
    /// Builds a tree over `members` (indices into `boxes`, ascending = priority order);
    /// `table` holds the same boxes in lookup form.
    pub fn build(
        boxes: &[GenericBox],
        table: &BoxTable<S>,
        members: Vec<u32>,
        params: TreeParams,
    ) -> Self {
        Self::build_capped(boxes, table, members, params, usize::MAX)
            .expect("an uncapped build completes")
    }

    /// [`Tree::build`], or `None` as soon as its leaves would hold more than `max_entries`
    /// box copies (trial builds stop early on replication they would be rejected for).
    pub fn build_capped(
        boxes: &[GenericBox],
        table: &BoxTable<S>,
        members: Vec<u32>,
        params: TreeParams,
        max_entries: usize,
    ) -> Option<Self> {
        let mut cols: [Vec<(u128, u128)>; 5] = Default::default();
        for (d, col) in cols.iter_mut().enumerate() {
            *col = boxes.iter().map(|b| (b.lo[d], b.hi[d])).collect();
        }
        let min_box = members.first().copied().unwrap_or(u32::MAX);
        let masked = S::MASKED_STEPS && params.masked == Some(true);
        let mut b = Builder::<S> {
            rules: &table.rules,
            cols,
            has_extras: boxes.iter().map(|b| !b.extras_any()).collect(),
            params,
            tree: Tree {
                root: EMPTY_LEAF,
                // The empty leaf: itself, then chunk 0.
                ptrs: if masked {
                    Vec::new()
                } else {
                    vec![EMPTY_LEAF, 0]
                },
                masked,
                mroot: EMPTY_MASKED_LEAF,
                mptrs: if masked {
                    vec![EMPTY_MASKED_LEAF]
                } else {
                    Vec::new()
                },
                // Chunk 0: the empty leaf. About one chunk per box is typical (ClassBench
                // sets: 0.6-1.2); reserving that up front saves the copies of a growing
                // vector of 320-byte chunks.
                chunks: vec![Chunk {
                    lanes: S::Lanes::default(),
                    idx: EMPTY_CHUNK_IDX,
                    valid: 0,
                    extras: 0,
                    more: false,
                }],
                min_box,
                entries: 0,
                block_cuts: 0,
            },
            leaf_dedup: HashMap::new(),
            max_entries,
        };
        b.leaf_dedup.insert(Vec::new(), EMPTY_MASKED_LEAF);
        b.tree.chunks.reserve(members.len().min(1 << 16));
        let root = b.node(&members, [0; 5], S::BITS, 0);
        if b.tree.entries > b.max_entries {
            return None;
        }
        b.tree.root = root[0];
        b.tree.mroot = root;
        let mut t = b.tree;
        t.ptrs.shrink_to_fit();
        t.mptrs.shrink_to_fit();
        t.chunks.shrink_to_fit();
        Some(t)
    }

    /// The first box (in priority order) of the leaf whose chunk word (see
    /// [`ENTRY_BASE_SHIFT`]) is `w` that contains `key`, else `u32::MAX`.
    #[inline(always)]
    fn leaf_first(&self, table: &BoxTable<S>, w: u64, key: &S::Key) -> u32 {
        let c = w as u32 as usize;
        // The first chunk whatever the leaf's length: the branch below is taken only when
        // it missed and the leaf goes on (rare), where testing the length first was a
        // data-dependent branch (a third of the mispredictions on acl1_1k).
        let ch = &self.chunks[c];
        let m = S::lanes_match(ch, &table.rules, key, &table.extras) & ch.valid;
        // Zero exactly when nothing matched and the leaf goes on: one branch.
        if m | (!w & MULTI_CHUNK) == 0 {
            return self.leaf_first_run(table, c + 1, key);
        }
        ch.idx[(m.trailing_zeros() / 8) as usize]
    }

    /// [`Tree::leaf_first`] of the chunks of a leaf from `c` on.
    #[cold]
    #[inline(never)]
    fn leaf_first_run(&self, table: &BoxTable<S>, mut c: usize, key: &S::Key) -> u32 {
        loop {
            let ch = &self.chunks[c];
            let m = S::lanes_match(ch, &table.rules, key, &table.extras) & ch.valid;
            if m != 0 || !ch.more {
                return ch.idx[(m.trailing_zeros() / 8) as usize];
            }
            c += 1;
        }
    }

    /// The smallest box index below `bound` whose box contains `key`, else `bound`.
    #[inline(always)]
    pub fn lookup(&self, table: &BoxTable<S>, key: &S::Key, bound: u32) -> u32 {
        if bound <= self.min_box {
            return bound;
        }
        let c = self.leaf_of(key);
        self.leaf_first(table, c, key).min(bound)
    }

    /// Chunk index of the leaf `key` falls in.
    #[inline(always)]
    fn leaf_of(&self, key: &S::Key) -> u64 {
        if self.masked {
            let mut e = self.mroot;
            while !is_leaf(e[0]) {
                e = masked_step::<S>(&self.mptrs, e, key);
            }
            return masked_chunk_of(e);
        }
        let mut e = self.root;
        while !is_leaf(e) {
            e = step::<S>(&self.ptrs, e, key);
        }
        self.chunk_of(e)
    }

    /// The chunk word of a leaf entry: chunk index, and [`MULTI_CHUNK`] when the leaf
    /// continues in the chunks after it.
    #[inline(always)]
    fn chunk_of(&self, leaf: u64) -> u64 {
        self.ptrs[leaf_slot(leaf) + 1]
    }

    /// Chunk indices of the leaves of `N` keys, walked in lockstep (see [`ENTRY_BASE_SHIFT`]).
    #[inline(always)]
    fn leaves_of<const N: usize>(&self, keys: [&S::Key; N]) -> [u64; N] {
        if self.masked {
            let mut e = [self.mroot; N];
            while !is_leaf(e.iter().fold(!0, |a, x| a & x[0])) {
                for i in 0..N {
                    e[i] = masked_step::<S>(&self.mptrs, e[i], keys[i]);
                }
            }
            return e.map(masked_chunk_of);
        }
        let mut e = [self.root; N];
        while !is_leaf(e.iter().fold(!0, |a, &x| a & x)) {
            for i in 0..N {
                e[i] = step::<S>(&self.ptrs, e[i], keys[i]);
            }
        }
        e.map(|x| self.chunk_of(x))
    }

    /// The first matching box of each of `N` keys (`u32::MAX`: none).
    #[inline(always)]
    pub fn first_n<const N: usize>(&self, table: &BoxTable<S>, keys: [&S::Key; N]) -> [u32; N] {
        let c = self.leaves_of(keys);
        std::array::from_fn(|i| self.leaf_first(table, c[i], keys[i]))
    }

    /// [`Tree::lookup`] for `N` keys at once: `bound[i]` is lowered to key `i`'s first match
    /// here when that comes before it.
    #[inline(always)]
    pub fn lookup_n<const N: usize>(
        &self,
        table: &BoxTable<S>,
        keys: [&S::Key; N],
        bound: &mut [u32; N],
    ) {
        if bound.iter().all(|&b| b <= self.min_box) {
            return;
        }
        let c = self.leaves_of(keys);
        // Every key's leaf is scanned, also those whose bound already comes first (the
        // answer is then the bound anyway): testing per key mispredicted on fw1_1k.
        for i in 0..N {
            bound[i] = self.leaf_first(table, c[i], keys[i]).min(bound[i]);
        }
    }

    /// (nodes visited, chunks scanned) for one lookup: for tuning.
    pub fn cost(&self, table: &BoxTable<S>, key: &S::Key, bound: u32) -> (usize, usize) {
        if bound <= self.min_box {
            return (0, 0);
        }
        let mut nodes = 0;
        let w = if self.masked {
            let mut e = self.mroot;
            while !is_leaf(e[0]) {
                e = masked_step::<S>(&self.mptrs, e, key);
                nodes += 1;
            }
            masked_chunk_of(e)
        } else {
            let mut e = self.root;
            while !is_leaf(e) {
                e = step::<S>(&self.ptrs, e, key);
                nodes += 1;
            }
            self.chunk_of(e)
        };
        let mut c = w as u32 as usize;
        let mut scanned = 1;
        loop {
            let ch = &self.chunks[c];
            let m = S::lanes_match(ch, &table.rules, key, &table.extras) & ch.valid;
            if m != 0 || !ch.more {
                break;
            }
            c += 1;
            scanned += 1;
        }
        (nodes, scanned)
    }

    /// Build-box indices of the leaf `key` falls in (every box that can match `key` and was
    /// not pruned behind a box covering the whole leaf region).
    pub fn candidates<'a>(&'a self, key: &S::Key) -> impl Iterator<Item = u32> + 'a {
        let first = self.leaf_of(key) as u32 as usize;
        let len = self.chunks[first..]
            .iter()
            .position(|c| !c.more)
            .map_or(0, |p| p + 1);
        self.chunks[first..first + len].iter().flat_map(|c| {
            c.idx[..LANES]
                .iter()
                .enumerate()
                .filter(move |&(l, _)| c.valid & (1 << (8 * l)) != 0)
                .map(|(_, &b)| b)
        })
    }

    /// Heap bytes held.
    pub fn memory_bytes(&self) -> usize {
        use std::mem::size_of;
        self.ptrs.capacity() * 8
            + self.mptrs.capacity() * 16
            + self.chunks.capacity() * size_of::<Chunk<S::Lanes>>()
    }

    /// Whether the tree takes masked steps.
    pub fn is_masked(&self) -> bool {
        self.masked
    }

    /// Nodes that cut a block smaller than their region.
    #[cfg(test)]
    pub fn block_cuts(&self) -> usize {
        self.block_cuts
    }

    /// Number of boxes stored in leaves (with replication).
    pub fn leaf_entries(&self) -> usize {
        self.entries
    }
}

/// A chosen cut: field, fan-out bits, and the aligned block of the field that is cut (the
/// node's whole region unless the tree is masked and the node's rules sit in a smaller one).
struct Cut {
    dim: usize,
    k: u32,
    block_lo: u128,
    block_bits: u32,
}

impl<S: Space> Builder<'_, S> {
    fn leaf(&mut self, members: &[u32]) -> MaskedEntry {
        if let Some(&e) = self.leaf_dedup.get(members) {
            return e;
        }
        let t = &mut self.tree;
        let first = t.chunks.len() as u64;
        let multi = members.len() > LANES;
        let e = if t.masked {
            let e = masked_leaf(t.mptrs.len(), first, multi);
            t.mptrs.push(e);
            e
        } else {
            let entry = leaf_entry(t.ptrs.len());
            t.ptrs
                .extend([entry, first | if multi { MULTI_CHUNK } else { 0 }]);
            [entry, 0]
        };
        let runs = members.len().div_ceil(LANES);
        for (r, run) in members.chunks(LANES).enumerate() {
            let mut c = Chunk {
                lanes: S::pack(std::array::from_fn(|l| {
                    run.get(l).map(|&m| &self.rules[m as usize])
                })),
                idx: EMPTY_CHUNK_IDX,
                valid: 0,
                extras: 0,
                more: r + 1 < runs,
            };
            for (l, &m) in run.iter().enumerate() {
                c.idx[l] = m;
                c.valid |= 0xff << (8 * l);
                if self.has_extras[m as usize] {
                    c.extras |= 1 << l;
                }
            }
            t.chunks.push(c);
        }
        t.entries += members.len();
        self.leaf_dedup.insert(members.to_vec(), e);
        e
    }

    fn node(&mut self, members: &[u32], lo: [u128; 5], bits: [u32; 5], depth: u32) -> MaskedEntry {
        let empty = if self.tree.masked {
            EMPTY_MASKED_LEAF
        } else {
            [EMPTY_LEAF, 0]
        };
        if self.tree.entries > self.max_entries {
            return empty;
        }
        let hi: [u128; 5] = std::array::from_fn(|d| region_hi(lo[d], bits[d]));
        // Everything after a box covering the whole region is unreachable here.
        let members = match members.iter().position(|&m| {
            !self.has_extras[m as usize]
                && (0..5).all(|d| {
                    let (blo, bhi) = self.cols[d][m as usize];
                    blo <= lo[d] && hi[d] <= bhi
                })
        }) {
            Some(pos) => &members[..=pos],
            None => members,
        };
        let n = members.len();
        if n <= self.params.binth || depth >= self.params.max_depth {
            return self.leaf(members);
        }
        let Some(cut) = self.choose_cut(members, &lo, &hi, &bits, depth) else {
            return self.leaf(members);
        };
        let dim = cut.dim;
        let (blo, bbits) = (cut.block_lo, cut.block_bits);
        let bhi = region_hi(blo, bbits);
        // Masked cut of a block smaller than the region: one more child for the keys
        // outside the block, holding the boxes that span the region in this field.
        let outside = bbits < bits[dim];
        let shift = bbits - cut.k;
        let fan = 1usize << cut.k;
        // The children's member lists, back to back in one buffer (counted first, then
        // filled in member order so each list stays in priority order): three allocations
        // per node instead of one growing vector per child. A box that is not in the block
        // spans the region (the block holds every other box), so clipping to the block
        // loses nothing.
        let col = &self.cols[dim];
        let span = |m: u32| {
            let (mlo, mhi) = col[m as usize];
            let a = (mlo.max(blo) - blo) >> shift;
            let z = (mhi.min(bhi) - blo) >> shift;
            (a as usize, z as usize)
        };
        let mut start = vec![0usize; fan + 1];
        for &m in members {
            let (a, z) = span(m);
            start[a] = start[a].wrapping_add(1);
            start[z + 1] = start[z + 1].wrapping_sub(1);
        }
        // Differences (wrapping: a prefix may dip below zero) -> counts -> start offsets.
        let mut run = 0usize;
        let mut total = 0usize;
        for x in start.iter_mut().take(fan) {
            run = run.wrapping_add(*x);
            *x = total;
            total += run;
        }
        start[fan] = total;
        let mut fill = start.clone();
        let mut lists = vec![0u32; total];
        for &m in members {
            let (a, z) = span(m);
            for f in &mut fill[a..=z] {
                lists[*f] = m;
                *f += 1;
            }
        }
        drop(fill);
        let wild: Vec<u32> = if outside {
            members
                .iter()
                .copied()
                .filter(|&m| {
                    let (mlo, mhi) = col[m as usize];
                    mlo <= lo[dim] && hi[dim] <= mhi
                })
                .collect()
        } else {
            Vec::new()
        };
        self.tree.block_cuts += outside as usize;
        let base;
        let entry;
        if self.tree.masked {
            base = self.tree.mptrs.len();
            entry = masked_inner(base, dim, shift, blo, fan);
            self.tree
                .mptrs
                .resize(base + fan + outside as usize, EMPTY_MASKED_LEAF);
        } else {
            debug_assert!(!outside);
            base = self.tree.ptrs.len();
            entry = [inner(base, dim, shift, blo), 0];
            self.tree.ptrs.resize(base + fan, EMPTY_LEAF);
        }
        let mut cbits = bits;
        cbits[dim] = shift;
        for c in 0..fan {
            let list = &lists[start[c]..start[c + 1]];
            let mut clo = lo;
            clo[dim] = blo + ((c as u128) << shift);
            let p = if list.is_empty() {
                empty
            } else {
                self.node(list, clo, cbits, depth + 1)
            };
            self.set_child(base + c, p);
        }
        if outside && !wild.is_empty() {
            // Keys outside the block but inside the region: the region stays the parent's
            // (every box here spans it in this field, so no later cut picks this field).
            let p = self.node(&wild, lo, bits, depth + 1);
            self.set_child(base + fan, p);
        }
        entry
    }

    fn set_child(&mut self, slot: usize, e: MaskedEntry) {
        if self.tree.masked {
            self.tree.mptrs[slot] = e;
        } else {
            self.tree.ptrs[slot] = e[0];
        }
    }

    /// The cut (field, fan-out bits, block) with the smallest largest child under the space
    /// bound.
    ///
    /// Along one field, finer cuts never enlarge the largest child, and the total of box
    /// copies grows with the fan-out: so per field the best cut is the finest one within the
    /// budget, found by binary search; the field whose cut leaves the smallest largest child
    /// (then the fewest copies) wins. In a masked tree each field is cut within its block:
    /// the aligned block holding every box that does not span the region, plus one outside
    /// child (one slot, and a copy of each spanning box).
    fn choose_cut(
        &self,
        members: &[u32],
        lo: &[u128; 5],
        hi: &[u128; 5],
        bits: &[u32; 5],
        depth: u32,
    ) -> Option<Cut> {
        let n = members.len();
        let budget = self.params.spfac * n
            + if depth == 0 {
                self.params.root_budget
            } else {
                0
            };
        // (max child, sum, cut) of the best cut so far.
        let mut best: Option<(usize, usize, Cut)> = None;
        let mut diff: Vec<i32> = Vec::new();
        let mut offs: Vec<(u128, u128)> = Vec::with_capacity(n);
        let mut offs64: Vec<(u64, u64)> = Vec::with_capacity(n);
        for d in 0..5 {
            let col = &self.cols[d];
            // Each box clipped to the region, as offsets from its start (computed once per
            // field; the fan-out search below only shifts them).
            let full = hi[d] - lo[d];
            offs.clear();
            let mut wild = 0usize;
            let (mut amin, mut zmax) = (u128::MAX, 0u128);
            for &m in members {
                let (blo, bhi) = col[m as usize];
                let a = blo.max(lo[d]) - lo[d];
                let z = bhi.min(hi[d]) - lo[d];
                if a == 0 && z == full {
                    wild += 1;
                } else {
                    amin = amin.min(a);
                    zmax = zmax.max(z);
                }
                offs.push((a, z));
            }
            // A field every box spans entirely cannot separate anything.
            if wild == n {
                continue;
            }
            // The block: the aligned power of two holding [amin, zmax] (their common
            // prefix), as offsets in the region.
            let (mut fbits, mut boff, mut extra) = (bits[d], 0u128, 0usize);
            if self.tree.masked {
                let x = amin ^ zmax;
                let bb = 128 - x.leading_zeros();
                if bb < bits[d] {
                    fbits = bb;
                    boff = amin & !region_hi(0, bb);
                    extra = wild;
                    let top = region_hi(0, bb);
                    for o in offs.iter_mut() {
                        *o = if o.0 == 0 && o.1 == full {
                            (0, top)
                        } else {
                            (o.0 - boff, o.1 - boff)
                        };
                    }
                }
            }
            let kmax = fbits.min(self.params.max_cut_bits);
            if kmax == 0 {
                continue;
            }
            let slots = (fbits < bits[d]) as usize;
            // Narrow to u64 when the region allows (all IPv4 fields): u128 shifts are slow.
            let narrow = fbits <= 64;
            if narrow {
                offs64.clear();
                offs64.extend(offs.iter().map(|&(a, z)| (a as u64, z as u64)));
            }
            // Box copies if field d is cut into 2^k children.
            let copies = |k: u32| -> usize {
                let shift = fbits - k;
                extra
                    + if narrow {
                        offs64
                            .iter()
                            .map(|&(a, z)| ((z >> shift) - (a >> shift)) as usize + 1)
                            .sum::<usize>()
                    } else {
                        offs.iter()
                            .map(|&(a, z)| ((z >> shift) - (a >> shift)) as usize + 1)
                            .sum::<usize>()
                    }
            };
            let fits = |k: u32| copies(k) + (1usize << k) + slots <= budget;
            let (mut ok, mut bad) = (1u32, kmax + 1);
            if fits(kmax) {
                ok = kmax;
            } else {
                while bad - ok > 1 {
                    let mid = (ok + bad) / 2;
                    if fits(mid) {
                        ok = mid;
                    } else {
                        bad = mid;
                    }
                }
            }
            let k = ok;
            let shift = fbits - k;
            let fan = 1usize << k;
            diff.clear();
            diff.resize(fan + 1, 0);
            let mut sum = extra;
            for &(a, z) in &offs {
                let a = (a >> shift) as usize;
                let z = (z >> shift) as usize;
                sum += z - a + 1;
                diff[a] += 1;
                diff[z + 1] -= 1;
            }
            let mut run = 0i32;
            let mut max = extra as i32;
            for &x in &diff[..fan] {
                run += x;
                max = max.max(run);
            }
            let max = max as usize;
            if max < n
                && best
                    .as_ref()
                    .is_none_or(|(bm, bs, _)| (max, sum) < (*bm, *bs))
            {
                let cut = Cut {
                    dim: d,
                    k,
                    block_lo: lo[d] + boff,
                    block_bits: fbits,
                };
                best = Some((max, sum, cut));
            }
        }
        best.map(|(_, _, c)| c)
    }
}
