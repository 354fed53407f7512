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
    table: BoxTable<S>,
}

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
        let trees = groups
            .into_iter()
            .map(|g| Tree::build(boxes, &table, g, params))
            .collect();
        Forest { trees, table }
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

    /// [`Forest::lookup`] for `N` keys at once (from no bound): each tree is walked by
    /// the `N` keys in lockstep.
    ///
    /// Walking several trees in one lockstep loop as well (one exit branch for all of them)
    /// was measured on fw1_1k, whose first three trees every packet walks: fewer
    /// mispredictions (1.6 against 2.0 per packet) but 27% more instructions (the shallow
    /// trees idle along the deepest one), and slower; not kept.
    #[inline(always)]
    pub fn lookup_n<const N: usize>(&self, keys: [&S::Key; N]) -> [u32; N] {
        let Some((first, rest)) = self.trees.split_first() else {
            return [u32::MAX; N];
        };
        // The first tree unconditionally: every packet walks it.
        let mut best = first.first_n(&self.table, keys);
        for t in rest {
            t.lookup_n(&self.table, keys, &mut best);
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
