//! One decision tree (HiCuts-style equal cuts with power-of-two fan-out) over a subset of
//! boxes. Node regions stay aligned to their size, so a child index is a shift and a mask of
//! one field (no subtraction) and leaves hold a few boxes that are checked in full.
//!
//! Build: at each node, drop every box after the first one that covers the whole region
//! (it can never be the first match there), stop at `binth` boxes, else pick the field and
//! fan-out that minimise the largest child while total replication stays under
//! `spfac × n`. Identical leaves are stored once.

use std::collections::HashMap;

use crate::space::{Extras, GenericBox, Space};

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
}

impl Default for TreeParams {
    fn default() -> Self {
        TreeParams {
            binth: 8,
            spfac: 4,
            max_cut_bits: 15,
            max_depth: 40,
            root_budget: 0,
        }
    }
}

/// Tree entries are `u64`s that carry everything a lookup needs to take the next step, so a
/// level costs one dependent load: an inner node is `base | dim << 32 | shift << 40 |
/// mask << 48` (children at `ptrs[base + ((key[dim] >> shift) & mask)]`); a leaf is
/// `LEAF | leaf index` (dim, shift and mask 0, so "descending" a leaf reads `ptrs[index]`,
/// always in bounds, and the result is discarded: grouped lookups run without branches).
const LEAF: u64 = 1 << 63;

#[inline(always)]
fn inner(base: usize, dim: usize, shift: u32, mask: u32) -> u64 {
    debug_assert!(base < u32::MAX as usize && mask < 1 << 15);
    base as u64 | (dim as u64) << 32 | (shift as u64) << 40 | (mask as u64) << 48
}

#[inline(always)]
fn step<S: Space>(ptrs: &[u64], e: u64, key: &S::Key) -> u64 {
    let base = e as u32 as usize;
    let c = S::child(
        key,
        (e >> 32) as u8,
        (e >> 40) as u8,
        ((e >> 48) as u32) & 0x7fff,
    );
    let next = ptrs[base + c];
    if e & LEAF != 0 {
        e
    } else {
        next
    }
}

#[derive(Clone, Copy, Debug)]
struct Leaf {
    start: u32,
    end: u32,
}

/// A built tree. Leaves hold box indices (ascending = priority order) into the box table
/// shared by all trees of a forest, so a box is stored once however often it is replicated.
pub(crate) struct Tree<S: Space> {
    root: u64,
    ptrs: Vec<u64>,
    leaves: Vec<Leaf>,
    entries: Vec<u32>,
    _space: std::marker::PhantomData<S>,
}

/// The boxes of a forest in lookup form, and their out-of-line VLAN/VNI/direction limits.
pub(crate) struct BoxTable<S: Space> {
    pub rules: Vec<S::Rule>,
    pub extras: Vec<Extras>,
}

struct Builder<'a, S: Space> {
    _boxes: &'a [GenericBox],
    /// The five cut fields of every box, one column per field: the build scans one field of
    /// many boxes at a time, so columns keep those scans in few cache lines.
    cols: [Vec<(u128, u128)>; 5],
    /// Whether a box ignores VLAN, VNI and direction (only those can cover a region).
    plain: Vec<bool>,
    params: TreeParams,
    tree: Tree<S>,
    leaf_dedup: HashMap<Vec<u32>, u32>,
}

fn region_hi(lo: u128, bits: u32) -> u128 {
    if bits >= 128 {
        u128::MAX
    } else {
        lo + ((1u128 << bits) - 1)
    }
}

impl<S: Space> Tree<S> {
    /// Builds a tree over `members` (indices into `boxes`, ascending = priority order).
    pub fn build(boxes: &[GenericBox], members: Vec<u32>, params: TreeParams) -> Self {
        let mut cols: [Vec<(u128, u128)>; 5] = Default::default();
        for (d, col) in cols.iter_mut().enumerate() {
            *col = boxes.iter().map(|b| (b.lo[d], b.hi[d])).collect();
        }
        let mut b = Builder::<S> {
            _boxes: boxes,
            cols,
            plain: boxes.iter().map(|b| b.extras_any()).collect(),
            params,
            tree: Tree {
                root: LEAF,
                ptrs: Vec::new(),
                leaves: vec![Leaf { start: 0, end: 0 }],
                entries: Vec::new(),
                _space: std::marker::PhantomData,
            },
            leaf_dedup: HashMap::new(),
        };
        b.leaf_dedup.insert(Vec::new(), 0);
        let root = b.node(members, [0; 5], S::BITS, 0);
        b.tree.root = root;
        let mut t = b.tree;
        // A leaf entry "descends" to ptrs[leaf index]: keep that in bounds.
        if t.ptrs.len() < t.leaves.len() {
            t.ptrs.resize(t.leaves.len(), LEAF);
        }
        t.ptrs.shrink_to_fit();
        t.leaves.shrink_to_fit();
        t.entries.shrink_to_fit();
        t
    }

    /// The smallest box index below `bound` whose box contains `key`, else `bound`.
    #[inline(always)]
    pub fn lookup(&self, table: &BoxTable<S>, key: &S::Key, bound: u32) -> u32 {
        let leaf = self.leaf_of(key);
        for &b in &self.entries[leaf.start as usize..leaf.end as usize] {
            if b >= bound {
                break;
            }
            if S::matches(&table.rules[b as usize], key, &table.extras) {
                return b;
            }
        }
        bound
    }

    #[inline(always)]
    fn leaf_of(&self, key: &S::Key) -> Leaf {
        let mut e = self.root;
        while e & LEAF == 0 {
            e = step::<S>(&self.ptrs, e, key);
        }
        self.leaves[(e & !LEAF) as usize]
    }

    /// (nodes visited, boxes compared) for one lookup: for tuning.
    pub fn cost(&self, table: &BoxTable<S>, key: &S::Key, bound: u32) -> (usize, usize) {
        let mut e = self.root;
        let mut nodes = 0;
        while e & LEAF == 0 {
            e = step::<S>(&self.ptrs, e, key);
            nodes += 1;
        }
        let leaf = self.leaves[(e & !LEAF) as usize];
        let mut cmp = 0;
        for &b in &self.entries[leaf.start as usize..leaf.end as usize] {
            if b >= bound {
                break;
            }
            cmp += 1;
            if S::matches(&table.rules[b as usize], key, &table.extras) {
                break;
            }
        }
        (nodes, cmp)
    }

    /// Build-box indices of the leaf `key` falls in (every box that can match `key` and was
    /// not pruned behind a box covering the whole leaf region).
    pub fn candidates(&self, key: &S::Key) -> &[u32] {
        let leaf = self.leaf_of(key);
        &self.entries[leaf.start as usize..leaf.end as usize]
    }

    /// Heap bytes held.
    pub fn memory_bytes(&self) -> usize {
        use std::mem::size_of;
        self.ptrs.capacity() * 8
            + self.leaves.capacity() * size_of::<Leaf>()
            + self.entries.capacity() * 4
    }

    /// Number of boxes stored in leaves (with replication).
    pub fn leaf_entries(&self) -> usize {
        self.entries.len()
    }
}

impl<S: Space> Builder<'_, S> {
    fn leaf(&mut self, members: Vec<u32>) -> u64 {
        if let Some(&l) = self.leaf_dedup.get(&members) {
            return LEAF | l as u64;
        }
        let t = &mut self.tree;
        let start = t.entries.len() as u32;
        t.entries.extend_from_slice(&members);
        let l = t.leaves.len() as u32;
        t.leaves.push(Leaf {
            start,
            end: t.entries.len() as u32,
        });
        self.leaf_dedup.insert(members, l);
        LEAF | l as u64
    }

    fn node(&mut self, mut members: Vec<u32>, lo: [u128; 5], bits: [u32; 5], depth: u32) -> u64 {
        let hi: [u128; 5] = std::array::from_fn(|d| region_hi(lo[d], bits[d]));
        // Everything after a box covering the whole region is unreachable here.
        if let Some(pos) = members.iter().position(|&m| {
            self.plain[m as usize]
                && (0..5).all(|d| {
                    let (blo, bhi) = self.cols[d][m as usize];
                    blo <= lo[d] && hi[d] <= bhi
                })
        }) {
            members.truncate(pos + 1);
        }
        let n = members.len();
        if n <= self.params.binth || depth >= self.params.max_depth {
            return self.leaf(members);
        }
        let Some((dim, k)) = self.choose_cut(&members, &lo, &hi, &bits, depth) else {
            return self.leaf(members);
        };
        let shift = bits[dim] - k;
        let fan = 1usize << k;
        let mut children: Vec<Vec<u32>> = vec![Vec::new(); fan];
        let col = &self.cols[dim];
        for &m in &members {
            let (blo, bhi) = col[m as usize];
            let a = (blo.max(lo[dim]) - lo[dim]) >> shift;
            let z = (bhi.min(hi[dim]) - lo[dim]) >> shift;
            for child in &mut children[a as usize..=z as usize] {
                child.push(m);
            }
        }
        drop(members);
        let base = self.tree.ptrs.len();
        let entry = inner(base, dim, shift, (fan - 1) as u32);
        self.tree.ptrs.resize(base + fan, LEAF);
        let mut cbits = bits;
        cbits[dim] = shift;
        for (c, list) in children.into_iter().enumerate() {
            let mut clo = lo;
            clo[dim] = lo[dim] + ((c as u128) << shift);
            let p = if list.is_empty() {
                LEAF
            } else {
                self.node(list, clo, cbits, depth + 1)
            };
            self.tree.ptrs[base + c] = p;
        }
        entry
    }

    /// The (field, fan-out bits) with the smallest largest child under the space bound.
    ///
    /// Along one field, finer cuts never enlarge the largest child, and the total of box
    /// copies grows with the fan-out: so per field the best cut is the finest one within the
    /// budget, found by binary search; the field whose cut leaves the smallest largest child
    /// (then the fewest copies) wins.
    fn choose_cut(
        &self,
        members: &[u32],
        lo: &[u128; 5],
        hi: &[u128; 5],
        bits: &[u32; 5],
        depth: u32,
    ) -> Option<(usize, u32)> {
        let n = members.len();
        let budget = self.params.spfac * n
            + if depth == 0 {
                self.params.root_budget
            } else {
                0
            };
        let mut best: Option<(usize, usize, usize, u32)> = None; // (max child, sum, dim, k)
        let mut diff: Vec<i32> = Vec::new();
        let mut offs: Vec<(u128, u128)> = Vec::with_capacity(n);
        let mut offs64: Vec<(u64, u64)> = Vec::with_capacity(n);
        for d in 0..5 {
            let kmax = bits[d].min(self.params.max_cut_bits);
            if kmax == 0 {
                continue;
            }
            let col = &self.cols[d];
            // Each box clipped to the region, as offsets from its start (computed once per
            // field; the fan-out search below only shifts them).
            let full = hi[d] - lo[d];
            offs.clear();
            let mut spans_all = true;
            for &m in members {
                let (blo, bhi) = col[m as usize];
                let a = blo.max(lo[d]) - lo[d];
                let z = bhi.min(hi[d]) - lo[d];
                spans_all &= a == 0 && z == full;
                offs.push((a, z));
            }
            // A field every box spans entirely cannot separate anything.
            if spans_all {
                continue;
            }
            // Narrow to u64 when the region allows (all IPv4 fields): u128 shifts are slow.
            let narrow = bits[d] <= 64;
            if narrow {
                offs64.clear();
                offs64.extend(offs.iter().map(|&(a, z)| (a as u64, z as u64)));
            }
            // Box copies if field d is cut into 2^k children.
            let copies = |k: u32| -> usize {
                let shift = bits[d] - k;
                if narrow {
                    offs64
                        .iter()
                        .map(|&(a, z)| ((z >> shift) - (a >> shift)) as usize + 1)
                        .sum()
                } else {
                    offs.iter()
                        .map(|&(a, z)| ((z >> shift) - (a >> shift)) as usize + 1)
                        .sum()
                }
            };
            let fits = |k: u32| copies(k) + (1usize << k) <= budget;
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
            let shift = bits[d] - k;
            let fan = 1usize << k;
            diff.clear();
            diff.resize(fan + 1, 0);
            let mut sum = 0usize;
            for &(a, z) in &offs {
                let a = (a >> shift) as usize;
                let z = (z >> shift) as usize;
                sum += z - a + 1;
                diff[a] += 1;
                diff[z + 1] -= 1;
            }
            let mut run = 0i32;
            let mut max = 0i32;
            for &x in &diff[..fan] {
                run += x;
                max = max.max(run);
            }
            let max = max as usize;
            if max < n && best.is_none_or(|(bm, bs, _, _)| (max, sum) < (bm, bs)) {
                best = Some((max, sum, d, k));
            }
        }
        best.map(|(_, _, d, k)| (d, k))
    }
}
