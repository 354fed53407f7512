//! One decision tree (HiCuts-style equal cuts with power-of-two fan-out) over a subset of
//! boxes. Node regions stay aligned to their size, so a child index is a shift and a mask of
//! one field (no subtraction) and leaves hold a few boxes that are checked in full.
//!
//! Build: at each node, drop every box after the first one that covers the whole region
//! (it can never be the first match there), stop at `binth` boxes, else pick the field and
//! fan-out that minimise the largest child while total replication stays under
//! `spfac × n`. Identical leaves are stored once.

use std::collections::HashMap;

use crate::space::{GenericBox, Space};

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
}

impl Default for TreeParams {
    fn default() -> Self {
        TreeParams {
            binth: 8,
            spfac: 4,
            max_cut_bits: 16,
            max_depth: 40,
        }
    }
}

const LEAF: u32 = 1 << 31;

#[derive(Clone, Copy, Debug)]
struct Node {
    dim: u8,
    shift: u8,
    mask: u32,
    base: u32,
}

#[derive(Clone, Copy, Debug)]
struct Leaf {
    start: u32,
    end: u32,
}

/// A built tree.
pub(crate) struct Tree<S: Space> {
    root: u32,
    nodes: Vec<Node>,
    ptrs: Vec<u32>,
    leaves: Vec<Leaf>,
    /// Leaf boxes in lookup form, leaf after leaf, each leaf in priority order.
    rules: Vec<S::Rule>,
    /// Rule index of each leaf box.
    ids: Vec<u32>,
    /// Build-box index of each leaf box (for warnings).
    box_of: Vec<u32>,
}

struct Builder<'a, S: Space> {
    boxes: &'a [GenericBox],
    box_rule: &'a [u32],
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
    pub fn build(
        boxes: &[GenericBox],
        box_rule: &[u32],
        members: Vec<u32>,
        params: TreeParams,
    ) -> Self {
        let mut b = Builder::<S> {
            boxes,
            box_rule,
            params,
            tree: Tree {
                root: LEAF,
                nodes: Vec::new(),
                ptrs: Vec::new(),
                leaves: vec![Leaf { start: 0, end: 0 }],
                rules: Vec::new(),
                ids: Vec::new(),
                box_of: Vec::new(),
            },
            leaf_dedup: HashMap::new(),
        };
        b.leaf_dedup.insert(Vec::new(), 0);
        let root = b.node(members, [0; 5], S::BITS, 0);
        b.tree.root = root;
        let mut t = b.tree;
        t.nodes.shrink_to_fit();
        t.ptrs.shrink_to_fit();
        t.leaves.shrink_to_fit();
        t.rules.shrink_to_fit();
        t.ids.shrink_to_fit();
        t.box_of.shrink_to_fit();
        t
    }

    /// The smallest rule index below `bound` whose box contains `key`, else `bound`.
    #[inline(always)]
    pub fn lookup(&self, key: &S::Key, bound: u32) -> u32 {
        let leaf = self.leaf_of(key);
        let rules = &self.rules[leaf.start as usize..leaf.end as usize];
        let ids = &self.ids[leaf.start as usize..leaf.end as usize];
        for (r, &id) in rules.iter().zip(ids) {
            if id >= bound {
                break;
            }
            if S::matches(r, key) {
                return id;
            }
        }
        bound
    }

    #[inline(always)]
    fn leaf_of(&self, key: &S::Key) -> Leaf {
        let mut p = self.root;
        while p & LEAF == 0 {
            let n = self.nodes[p as usize];
            p = self.ptrs[n.base as usize + S::child(key, n.dim, n.shift, n.mask)];
        }
        self.leaves[(p & !LEAF) as usize]
    }

    /// Build-box indices of the leaf `key` falls in (every box that can match `key` and was
    /// not pruned behind a box covering the whole leaf region).
    pub fn candidates(&self, key: &S::Key) -> &[u32] {
        let leaf = self.leaf_of(key);
        &self.box_of[leaf.start as usize..leaf.end as usize]
    }

    /// Heap bytes held.
    pub fn memory_bytes(&self) -> usize {
        use std::mem::size_of;
        self.nodes.capacity() * size_of::<Node>()
            + self.ptrs.capacity() * 4
            + self.leaves.capacity() * size_of::<Leaf>()
            + self.rules.capacity() * size_of::<S::Rule>()
            + self.ids.capacity() * 4
            + self.box_of.capacity() * 4
    }

    /// Number of boxes stored in leaves (with replication).
    pub fn leaf_entries(&self) -> usize {
        self.rules.len()
    }
}

impl<S: Space> Builder<'_, S> {
    fn leaf(&mut self, members: Vec<u32>) -> u32 {
        if let Some(&l) = self.leaf_dedup.get(&members) {
            return LEAF | l;
        }
        let t = &mut self.tree;
        let start = t.rules.len() as u32;
        for &m in &members {
            t.rules.push(S::rule(&self.boxes[m as usize]));
            t.ids.push(self.box_rule[m as usize]);
            t.box_of.push(m);
        }
        let l = t.leaves.len() as u32;
        t.leaves.push(Leaf {
            start,
            end: t.rules.len() as u32,
        });
        self.leaf_dedup.insert(members, l);
        LEAF | l
    }

    fn node(&mut self, mut members: Vec<u32>, lo: [u128; 5], bits: [u32; 5], depth: u32) -> u32 {
        let hi: [u128; 5] = std::array::from_fn(|d| region_hi(lo[d], bits[d]));
        // Everything after a box covering the whole region is unreachable here.
        if let Some(pos) = members.iter().position(|&m| {
            let b = &self.boxes[m as usize];
            b.extras_any() && (0..5).all(|d| b.lo[d] <= lo[d] && hi[d] <= b.hi[d])
        }) {
            members.truncate(pos + 1);
        }
        let n = members.len();
        if n <= self.params.binth || depth >= self.params.max_depth {
            return self.leaf(members);
        }
        let Some((dim, k)) = self.choose_cut(&members, &lo, &hi, &bits) else {
            return self.leaf(members);
        };
        let shift = bits[dim] - k;
        let fan = 1usize << k;
        let mut children: Vec<Vec<u32>> = vec![Vec::new(); fan];
        for &m in &members {
            let b = &self.boxes[m as usize];
            let a = (b.lo[dim].max(lo[dim]) - lo[dim]) >> shift;
            let z = (b.hi[dim].min(hi[dim]) - lo[dim]) >> shift;
            for c in a as usize..=z as usize {
                children[c].push(m);
            }
        }
        drop(members);
        let idx = self.tree.nodes.len() as u32;
        let base = self.tree.ptrs.len() as u32;
        self.tree.nodes.push(Node {
            dim: dim as u8,
            shift: shift as u8,
            mask: (fan - 1) as u32,
            base,
        });
        self.tree.ptrs.resize(base as usize + fan, LEAF);
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
            self.tree.ptrs[base as usize + c] = p;
        }
        idx
    }

    /// The (field, fan-out bits) with the smallest largest child under the space bound.
    fn choose_cut(
        &self,
        members: &[u32],
        lo: &[u128; 5],
        hi: &[u128; 5],
        bits: &[u32; 5],
    ) -> Option<(usize, u32)> {
        let n = members.len();
        let budget = self.params.spfac * n;
        let mut best: Option<(usize, usize, usize, u32)> = None; // (max child, sum, dim, k)
        let mut diff: Vec<i64> = Vec::new();
        for d in 0..5 {
            let kmax = bits[d].min(self.params.max_cut_bits);
            let mut dim_best: Option<(usize, usize, u32)> = None;
            for k in 1..=kmax {
                let shift = bits[d] - k;
                let fan = 1usize << k;
                diff.clear();
                diff.resize(fan + 1, 0);
                let mut sum = 0usize;
                for &m in members {
                    let b = &self.boxes[m as usize];
                    let a = ((b.lo[d].max(lo[d]) - lo[d]) >> shift) as usize;
                    let z = ((b.hi[d].min(hi[d]) - lo[d]) >> shift) as usize;
                    sum += z - a + 1;
                    diff[a] += 1;
                    diff[z + 1] -= 1;
                }
                if k > 1 && sum + fan > budget {
                    break;
                }
                let mut run = 0i64;
                let mut max = 0i64;
                for &x in &diff[..fan] {
                    run += x;
                    max = max.max(run);
                }
                let max = max as usize;
                if max < n && dim_best.is_none_or(|(bm, _, _)| max < bm) {
                    dim_best = Some((max, sum, k));
                }
            }
            if let Some((max, sum, k)) = dim_best {
                if best.is_none_or(|(bm, bs, _, _)| (max, sum) < (bm, bs)) {
                    best = Some((max, sum, d, k));
                }
            }
        }
        best.map(|(_, _, d, k)| (d, k))
    }
}
