//! Several trees over disjoint subsets of the boxes, after CutSplit/EffiCuts: boxes with
//! wide source or destination ranges replicate badly in a tree that cuts addresses, so
//! boxes are grouped by which address fields are "small" and each group gets its own tree.
//! A lookup walks every tree and keeps the smallest box index (boxes are numbered in
//! priority order), passing it down as a bound so later leaves stop early.

use crate::space::{extras_of, GenericBox, Space, NO_EXTRAS};
use crate::tree::{BoxTable, Tree, TreeParams};

/// The trees of one family and the boxes they index.
pub(crate) struct Forest<S: Space> {
    trees: Vec<Tree<S>>,
    /// The leading trees whose box ranges interleave (each starts before the ones before it
    /// end): a match in one rarely spares the walk of the next, so burst lookups walk them
    /// all in one lockstep loop, one exit branch for all of them.
    joint: usize,
    table: BoxTable<S>,
}

/// At most this many trees are walked in lockstep (the four address-size groups).
const MAX_JOINT: usize = 4;

/// A field range is "small" when it spans fewer than 2^(width − SMALL_PREFIX) values, i.e.
/// it is at least as specific as a /SMALL_PREFIX.
const SMALL_PREFIX: u32 = 16;

fn is_small(lo: u128, hi: u128, width: u32) -> bool {
    let host_bits = width.saturating_sub(SMALL_PREFIX);
    host_bits < 128 && hi - lo < (1u128 << host_bits)
}

impl<S: Space> Forest<S> {
    /// Builds the trees over every box (box index order = priority order).
    pub fn build(boxes: &[GenericBox], params: TreeParams) -> Self {
        let mut groups: [Vec<u32>; 4] = Default::default();
        for (i, b) in boxes.iter().enumerate() {
            let s = is_small(b.lo[0], b.hi[0], S::BITS[0]) as usize;
            let d = is_small(b.lo[1], b.hi[1], S::BITS[1]) as usize;
            groups[s * 2 + d].push(i as u32);
        }
        // Bigger groups first: they most often hold the answer, and their matches let packets
        // skip the trees whose boxes all come later.
        let mut groups: Vec<Vec<u32>> = groups.into_iter().filter(|g| !g.is_empty()).collect();
        groups.sort_by_key(|g| std::cmp::Reverse(g.len()));
        let mut extras = vec![[0; 6]];
        let rules = boxes
            .iter()
            .map(|b| match extras_of(b) {
                None => S::rule(b, NO_EXTRAS),
                Some(e) => {
                    extras.push(e);
                    S::rule(b, (extras.len() - 1) as u32)
                }
            })
            .collect();
        let table = BoxTable { rules, extras };
        // Trees join the lockstep group while most of the group's boxes come after the
        // joining tree's first box: a packet whose answer lies in the group then usually
        // still needs that tree too.
        let mut joint = groups.len().min(1);
        while joint < groups.len().min(MAX_JOINT) {
            let first = groups[joint][0];
            let (later, all) = groups[..joint].iter().fold((0, 0), |(l, a), g| {
                (l + g.len() - g.partition_point(|&b| b < first), a + g.len())
            });
            if 2 * later < all {
                break;
            }
            joint += 1;
        }
        let trees: Vec<Tree<S>> = groups
            .into_iter()
            .map(|g| Tree::build(boxes, &table, g, params))
            .collect();
        Forest {
            trees,
            joint,
            table,
        }
    }

    /// The smallest matching box index below `bound`, else `bound`.
    #[inline(always)]
    pub fn lookup(&self, key: &S::Key, bound: u32) -> u32 {
        let mut best = bound;
        for t in &self.trees {
            best = t.lookup(&self.table, key, best);
        }
        best
    }

    /// [`Forest::lookup`] for `N` keys at once (from no bound).
    #[inline(always)]
    pub fn lookup_n<const N: usize>(&self, keys: [&S::Key; N]) -> [u32; N] {
        let mut best = match self.joint {
            0 => [u32::MAX; N],
            1 => self.joint_walk::<N, 1>(keys),
            2 => self.joint_walk::<N, 2>(keys),
            3 => self.joint_walk::<N, 3>(keys),
            _ => self.joint_walk::<N, 4>(keys),
        };
        for t in &self.trees[self.joint..] {
            t.lookup_n(&self.table, keys, &mut best);
        }
        best
    }

    /// First matches of `N` keys in the first `J` trees, walked in lockstep.
    #[inline(always)]
    fn joint_walk<const N: usize, const J: usize>(&self, keys: [&S::Key; N]) -> [u32; N] {
        let trees: &[Tree<S>; J] = self.trees[..J].try_into().expect("J joint trees");
        let mut e: [[u64; N]; J] = std::array::from_fn(|t| [trees[t].root(); N]);
        while !Tree::<S>::is_leaf(e.iter().flatten().fold(0, |a, &x| a | x)) {
            for t in 0..J {
                for i in 0..N {
                    e[t][i] = trees[t].advance(e[t][i], keys[i]);
                }
            }
        }
        let mut best = [u32::MAX; N];
        for t in 0..J {
            for i in 0..N {
                best[i] = best[i].min(trees[t].first_in(&self.table, e[t][i], keys[i]));
            }
        }
        best
    }

    /// Per tree: (nodes visited, leaf chunks scanned), for tuning.
    pub fn cost(&self, key: &S::Key) -> Vec<(usize, usize)> {
        let mut best = u32::MAX;
        self.trees
            .iter()
            .map(|t| {
                let c = t.cost(&self.table, key, best);
                best = t.lookup(&self.table, key, best);
                c
            })
            .collect()
    }

    /// Candidate boxes for `key` from every tree.
    pub fn candidates<'a>(&'a self, key: &'a S::Key) -> impl Iterator<Item = u32> + 'a {
        self.trees.iter().flat_map(move |t| t.candidates(key))
    }

    /// Heap bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.trees.iter().map(|t| t.memory_bytes()).sum::<usize>()
            + self.table.rules.capacity() * std::mem::size_of::<S::Rule>()
            + self.table.extras.capacity() * std::mem::size_of::<crate::space::Extras>()
    }

    /// Number of trees.
    pub fn tree_count(&self) -> usize {
        self.trees.len()
    }

    /// Box copies stored in leaves.
    pub fn leaf_entries(&self) -> usize {
        self.trees.iter().map(|t| t.leaf_entries()).sum()
    }
}
