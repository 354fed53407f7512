//! Several trees over disjoint subsets of the boxes, after CutSplit/EffiCuts: boxes with
//! wide source or destination ranges replicate badly in a tree that cuts addresses, so
//! boxes are grouped by which address fields are "small" and each group gets its own tree.
//! A lookup walks every tree and keeps the smallest box index (boxes are numbered in
//! priority order), passing it down as a bound so later leaves stop early. Groups are then
//! merged while a cost estimate on points drawn from the boxes says one tree costs less than
//! two (see [`merge_trees`]). IPv4 groups of more than 4,096 boxes get masked trees (see
//! `tree.rs`); smaller ones get them where the estimate says so (see [`mask_trees`]).

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

/// Groups whose boxes add up to more than this are not tried merged: the trial build of a
/// merged tree would double the build time of a large ruleset.
const MERGE_MAX_BOXES: usize = 4096;

/// A merged tree whose leaves hold more box copies than this many per box is not kept
/// (its trial build stops there): it bounds the build time and memory a merge may cost.
const MERGE_MAX_REPLICATION: usize = 32;

/// Points (one per sampled box) the cost of a forest is estimated on.
const COST_POINTS: usize = 4096;

/// Weights of the cost estimate, in instructions (callgrind, ClassBench sets): a node step,
/// a leaf chunk scanned, a tree visited (its setup, the exit of its lockstep loop and the
/// leaf's first load).
const COST_STEP: usize = 12;
/// A masked step ([`crate::tree`]): the block's subtraction, the clamp to the outside child
/// and a second entry word, which also keep more registers live across the lockstep loop
/// (callgrind on acl1_1k and acl1_10k, lookup example: ~16-17 instructions a step).
const COST_STEP_MASKED: usize = 16;

fn step_cost<S: Space>(t: &Tree<S>) -> usize {
    if t.is_masked() {
        COST_STEP_MASKED
    } else {
        COST_STEP
    }
}
const COST_CHUNK: usize = 50;
const COST_TREE: usize = 30;

/// One point inside each of up to [`COST_POINTS`] boxes, spread over the priority order,
/// drawn by a fixed generator (builds stay deterministic). A ClassBench trace is made the
/// same way: headers drawn from inside rules.
fn sample_points<S: Space>(boxes: &[GenericBox]) -> Vec<S::Key> {
    let step = boxes.len().div_ceil(COST_POINTS).max(1);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut draw = move || {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        x ^ x >> 29
    };
    boxes
        .iter()
        .step_by(step)
        .map(|b| {
            let p: [u128; 8] = std::array::from_fn(|d| {
                let r = (draw() as u128) << 64 | draw() as u128;
                match (b.hi[d] - b.lo[d]).checked_add(1) {
                    Some(n) => b.lo[d] + r % n,
                    None => r,
                }
            });
            S::key(&p)
        })
        .collect()
}

/// Estimated lookup cost of trees visited in this order over `points` (see [`COST_STEP`]).
fn forest_cost<S: Space>(trees: &[&Tree<S>], table: &BoxTable<S>, points: &[S::Key]) -> usize {
    points
        .iter()
        .map(|k| {
            let mut best = u32::MAX;
            let mut cost = 0;
            for t in trees {
                let (nodes, chunks) = t.cost(table, k, best);
                if nodes + chunks > 0 {
                    cost += COST_TREE + nodes * step_cost(t) + chunks * COST_CHUNK;
                }
                best = t.lookup(table, k, best);
            }
            cost
        })
        .sum()
}

/// Packets per lockstep group in [`forest_cost_grouped`] (the burst lookup's group size).
const COST_GROUP: usize = 8;

/// [`forest_cost`] for the burst lookup, which walks a tree with [`COST_GROUP`] packets in
/// lockstep until the deepest of them reaches its leaf, scans every one of their leaves, and
/// skips a tree only when all of them already matched a box before it. The points go into
/// groups by a stride through the list (group `g` takes points `g`, `g + G`, …), so a group
/// mixes boxes from all over the priority order as a trace's burst does.
fn forest_cost_grouped<S: Space>(
    trees: &[&Tree<S>],
    table: &BoxTable<S>,
    points: &[S::Key],
) -> usize {
    let groups = points.len().div_ceil(COST_GROUP);
    let mut total = 0;
    for g in 0..groups {
        let members: Vec<&S::Key> = points.iter().skip(g).step_by(groups).collect();
        let mut best = vec![u32::MAX; members.len()];
        for t in trees {
            let mut deepest = 0;
            let mut walked = false;
            for (k, b) in members.iter().zip(&mut best) {
                let (nodes, chunks) = t.cost(table, k, *b);
                if nodes + chunks > 0 {
                    walked = true;
                }
                deepest = deepest.max(nodes);
                total += chunks * COST_CHUNK;
                *b = t.lookup(table, k, *b);
            }
            if walked {
                total += members.len() * (COST_TREE + deepest * step_cost(t));
            }
        }
    }
    total
}

/// Merges pairs of groups into one tree while that lowers the estimated lookup cost: the
/// split by address widths keeps a tree from replicating wide boxes, but every tree a packet
/// walks costs a walk and a leaf scan (fw1_1k: three trees per packet, two of them shallow
/// and better as one). Greedy, best pair first; trees stay ordered by size.
fn merge_trees<S: Space>(
    boxes: &[GenericBox],
    table: &BoxTable<S>,
    params: TreeParams,
    points: &[S::Key],
    groups: &mut Vec<Vec<u32>>,
    trees: &mut Vec<Tree<S>>,
) {
    let mut current = forest_cost(&trees.iter().collect::<Vec<_>>(), table, points);
    while trees.len() > 1 {
        // (cost, kept group, merged-in group, members, tree) of the best merge so far.
        type Merge<S> = (usize, usize, usize, Vec<u32>, Tree<S>);
        let mut best: Option<Merge<S>> = None;
        for i in 0..groups.len() {
            for j in i + 1..groups.len() {
                if groups[i].len() + groups[j].len() > MERGE_MAX_BOXES {
                    continue;
                }
                let mut members = [groups[i].as_slice(), groups[j].as_slice()].concat();
                members.sort_unstable();
                let cap = MERGE_MAX_REPLICATION * members.len();
                let Some(merged) = Tree::build_capped(boxes, table, members.clone(), params, cap)
                else {
                    continue;
                };
                // The merged tree takes the place of the larger group.
                let order: Vec<&Tree<S>> = (0..trees.len())
                    .filter(|&t| t != j)
                    .map(|t| if t == i { &merged } else { &trees[t] })
                    .collect();
                let cost = forest_cost(&order, table, points);
                if cost < best.as_ref().map_or(current, |b| b.0) {
                    best = Some((cost, i, j, members, merged));
                }
            }
        }
        // Only a clear gain is worth a tree that replicates more.
        match best {
            Some((cost, i, j, members, merged)) if cost * 100 < current * 98 => {
                groups.remove(j);
                trees.remove(j);
                groups[i] = members;
                trees[i] = merged;
                current = cost;
            }
            _ => break,
        }
    }
}

/// Space factor of the alternative build [`widen_trees`] tries.
const WIDE_SPFAC: usize = 16;

/// Rebuilds each tree of up to [`MERGE_MAX_BOXES`] boxes with a larger space factor (wider
/// cuts, so fewer levels) and keeps the rebuild where the estimated lookup cost drops by more
/// than 2% and its leaves grow by at most a quarter. acl1_1k: 229.5 → 211 instructions per
/// packet at about the same leaf entries; fw1_1k's merged tree keeps its factor.
fn widen_trees<S: Space>(
    boxes: &[GenericBox],
    table: &BoxTable<S>,
    params: TreeParams,
    points: &[S::Key],
    groups: &[Vec<u32>],
    trees: &mut [Tree<S>],
    tparams: &mut [TreeParams],
) {
    if params.spfac >= WIDE_SPFAC {
        return;
    }
    let wide = TreeParams {
        spfac: WIDE_SPFAC,
        ..params
    };
    let tried: Vec<usize> = (0..trees.len())
        .filter(|&i| worth_a_trial(&trees[i], &groups[i]))
        .collect();
    let cost = |order: &[&Tree<S>]| forest_cost(order, table, points);
    for i in keep_cheaper_rebuilds(boxes, table, groups, trees, &tried, |_| wide, cost) {
        tparams[i] = wide;
    }
}

/// Whether a trial rebuild of a tree may pay: a tree of a group above [`MERGE_MAX_BOXES`],
/// or one that already copies its boxes many times (fw1_1k's merged tree: 22–24 per box),
/// only grows with wider or masked cuts, and its trial build is the costly one.
fn worth_a_trial<S: Space>(tree: &Tree<S>, group: &[u32]) -> bool {
    group.len() <= MERGE_MAX_BOXES && tree.leaf_entries() <= 4 * group.len()
}

/// Rebuilds each tree of `tried` with `params(i)`, its leaves capped at a quarter more than
/// it has, and keeps each rebuild that lowers the whole forest's `cost` by more than 2%.
/// Returns the indices of the trees replaced.
fn keep_cheaper_rebuilds<S: Space>(
    boxes: &[GenericBox],
    table: &BoxTable<S>,
    groups: &[Vec<u32>],
    trees: &mut [Tree<S>],
    tried: &[usize],
    params: impl Fn(usize) -> TreeParams,
    cost: impl Fn(&[&Tree<S>]) -> usize,
) -> Vec<usize> {
    let mut kept = Vec::new();
    if tried.is_empty() {
        return kept;
    }
    let mut current = cost(&trees.iter().collect::<Vec<_>>());
    for &i in tried {
        let cap = trees[i].leaf_entries() + trees[i].leaf_entries() / 4;
        let Some(t) = Tree::build_capped(boxes, table, groups[i].clone(), params(i), cap) else {
            continue;
        };
        let order: Vec<&Tree<S>> = (0..trees.len())
            .map(|k| if k == i { &t } else { &trees[k] })
            .collect();
        let trial = cost(&order);
        if trial * 100 < current * 98 {
            trees[i] = t;
            current = trial;
            kept.push(i);
        }
    }
    kept
}

/// Leaf size and space factor of the masked trees of groups above [`MERGE_MAX_BOXES`]:
/// masked cuts replicate the wildcards of a field once (their outside child) instead of
/// once per child, so a big group affords wide cuts, and larger leaves save levels.
const BIG_BINTH: usize = 16;
const BIG_SPFAC: usize = 16;

/// Rebuilds each tree of up to [`MERGE_MAX_BOXES`] boxes with masked steps and keeps the
/// rebuild where the grouped cost estimate ([`forest_cost_grouped`]) drops by more than 2%
/// and its leaves grow by at most a quarter.
fn mask_trees<S: Space>(
    boxes: &[GenericBox],
    table: &BoxTable<S>,
    points: &[S::Key],
    groups: &[Vec<u32>],
    trees: &mut [Tree<S>],
    tparams: &[TreeParams],
) {
    let tried: Vec<usize> = (0..trees.len())
        .filter(|&i| !trees[i].is_masked() && worth_a_trial(&trees[i], &groups[i]))
        .collect();
    let masked = |i: usize| TreeParams {
        masked: Some(true),
        ..tparams[i]
    };
    let cost = |order: &[&Tree<S>]| forest_cost_grouped(order, table, points);
    keep_cheaper_rebuilds(boxes, table, groups, trees, &tried, masked, cost);
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
        // Masked steps: forced either way by `params.masked`, else masked for big groups
        // and chosen by the cost estimate for the others.
        let choose = S::MASKED_STEPS && params.masked.is_none();
        let tree_params = |g: &Vec<u32>| {
            if choose && g.len() > MERGE_MAX_BOXES {
                TreeParams {
                    binth: BIG_BINTH,
                    spfac: BIG_SPFAC,
                    masked: Some(true),
                    ..params
                }
            } else {
                params
            }
        };
        let mut trees: Vec<Tree<S>> = groups
            .iter()
            .map(|g| Tree::build(boxes, &table, g.clone(), tree_params(g)))
            .collect();
        let points = sample_points::<S>(boxes);
        merge_trees(boxes, &table, params, &points, &mut groups, &mut trees);
        let mut tparams: Vec<TreeParams> = groups.iter().map(tree_params).collect();
        widen_trees(
            boxes,
            &table,
            params,
            &points,
            &groups,
            &mut trees,
            &mut tparams,
        );
        if choose {
            mask_trees(boxes, &table, &points, &groups, &mut trees, &tparams);
        }
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

    /// Trees that take masked steps.
    pub fn masked_trees(&self) -> usize {
        self.trees.iter().filter(|t| t.is_masked()).count()
    }

    /// Box copies stored in leaves.
    pub fn leaf_entries(&self) -> usize {
        self.trees.iter().map(|t| t.leaf_entries()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::{V4, V6, VLAN_NONE, VNI_NONE};

    /// A fixed generator (tests stay deterministic).
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            self.0 >> 17
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// A prefix of `len` bits around `x` in a field of `width` bits.
    fn prefix(x: u128, len: u32, width: u32) -> (u128, u128) {
        let host = width - len;
        let mask = if host >= 128 {
            u128::MAX
        } else {
            (1u128 << host) - 1
        };
        (x & !mask, (x & !mask) | mask)
    }

    /// Firewall-like boxes: each address narrow or wide (so all four groups are filled),
    /// ports exact, ranges or any, some protocols.
    fn boxes(rng: &mut Lcg, n: usize, width: u32) -> Vec<GenericBox> {
        (0..n)
            .map(|_| {
                let mut lo = [0u128; 8];
                let mut hi = [0u128; 8];
                for d in 0..2 {
                    let len = match rng.below(4) {
                        0 => 0,
                        1 => 8,
                        _ => width - rng.below(8) as u32,
                    };
                    let x = ((rng.below(64) as u128) << (width - 8) | rng.next() as u128)
                        & (u128::MAX >> (128 - width));
                    (lo[d], hi[d]) = prefix(x, len, width);
                }
                for d in 2..4 {
                    (lo[d], hi[d]) = match rng.below(3) {
                        0 => (0, 65535),
                        1 => {
                            let p = rng.below(2048) as u128;
                            (p, p)
                        }
                        _ => (1024, 65535),
                    };
                }
                (lo[4], hi[4]) = match rng.below(3) {
                    0 => (0, 255),
                    1 => (6, 6),
                    _ => (17, 17),
                };
                (hi[5], hi[6], hi[7]) = (VLAN_NONE as u128, VNI_NONE as u128, 1);
                GenericBox { lo, hi }
            })
            .collect()
    }

    /// A point inside a random box, or anywhere.
    fn point(rng: &mut Lcg, boxes: &[GenericBox]) -> [u128; 8] {
        let b = &boxes[rng.below(boxes.len() as u64) as usize];
        let anywhere = rng.below(4) == 0;
        std::array::from_fn(|d| {
            let r = (rng.next() as u128) << 64 | rng.next() as u128;
            if d >= 5 {
                b.lo[d]
            } else if anywhere {
                r & b.hi[d].max(255)
            } else {
                match (b.hi[d] - b.lo[d]).checked_add(1) {
                    Some(n) => b.lo[d] + r % n,
                    None => r,
                }
            }
        })
    }

    fn first_match(boxes: &[GenericBox], p: &[u128; 8]) -> u32 {
        boxes
            .iter()
            .position(|b| (0..8).all(|d| b.lo[d] <= p[d] && p[d] <= b.hi[d]))
            .map_or(u32::MAX, |i| i as u32)
    }

    fn agrees_with_linear<S: Space>(width: u32, seed: u64) -> usize {
        let mut rng = Lcg(seed);
        let n = 50 + rng.below(400) as usize;
        let bx = boxes(&mut rng, n, width);
        let f = Forest::<S>::build(&bx, TreeParams::default());
        for _ in 0..2000 {
            let ps: [[u128; 8]; 8] = std::array::from_fn(|_| point(&mut rng, &bx));
            let keys = ps.map(|p| S::key(&p));
            let got = f.lookup_n(keys.each_ref());
            for (i, p) in ps.iter().enumerate() {
                let want = first_match(&bx, p);
                assert_eq!(f.lookup(&keys[i], u32::MAX), want, "seed {seed} {p:?}");
                assert_eq!(got[i], want, "seed {seed} {p:?} (group)");
            }
        }
        f.tree_count()
    }

    /// Forests built with merged groups answer what a linear scan of the boxes answers, and
    /// merging happens on such sets (fewer trees than the four groups they fill).
    #[test]
    fn merged_forests_agree_with_linear() {
        let mut merged = 0;
        for seed in 1..=12 {
            merged += (agrees_with_linear::<V4>(32, seed) < 4) as usize;
            agrees_with_linear::<V6>(128, seed);
        }
        assert!(merged > 0, "no IPv4 forest merged a group");
    }

    /// Each cost point lies inside the box it was drawn from.
    #[test]
    fn cost_points_lie_in_their_boxes() {
        let mut rng = Lcg(7);
        let bx = boxes(&mut rng, 300, 32);
        let f = Forest::<V4>::build(&bx, TreeParams::default());
        let pts = sample_points::<V4>(&bx);
        assert_eq!(pts.len(), bx.len());
        for (r, k) in f.table.rules.iter().zip(&pts) {
            assert!(V4::matches(r, k, &f.table.extras));
        }
    }

    /// A tree cut by masked steps: most boxes sit in one /24 of the source field and one
    /// in five spans it (source any), so the cuts of the source take the /24 block and an
    /// outside child. Points inside the block, outside it (where only the wildcards can
    /// match) and anywhere are answered as a linear scan answers, by single and burst
    /// lookups, masked and plain.
    #[test]
    fn masked_steps_agree_with_linear() {
        let mut rng = Lcg(11);
        let block = 0x0a01_0200u128; // 10.1.2.0/24
        let bx: Vec<GenericBox> = (0..600)
            .map(|i| {
                let mut lo = [0u128; 8];
                let mut hi = [0u128; 8];
                if i % 5 == 4 {
                    // Source any, destination a /24-/32 in 192.168.0.0/16.
                    (lo[0], hi[0]) = (0, u32::MAX as u128);
                    let len = 24 + rng.below(9) as u32;
                    let x = 0xc0a8_0000 | rng.below(1 << 16) as u128;
                    (lo[1], hi[1]) = prefix(x, len, 32);
                } else {
                    let len = 28 + rng.below(5) as u32;
                    (lo[0], hi[0]) = prefix(block | rng.below(256) as u128, len, 32);
                    (lo[1], hi[1]) = (0, u32::MAX as u128);
                }
                let p = rng.below(1024) as u128;
                (lo[3], hi[3]) = if rng.below(2) == 0 {
                    (p, p)
                } else {
                    (0, 65535)
                };
                hi[2] = 65535;
                (lo[4], hi[4]) = if rng.below(2) == 0 { (6, 6) } else { (0, 255) };
                (hi[5], hi[6], hi[7]) = (VLAN_NONE as u128, VNI_NONE as u128, 1);
                GenericBox { lo, hi }
            })
            .collect();
        let masked = TreeParams {
            masked: Some(true),
            ..TreeParams::default()
        };
        let f = Forest::<V4>::build(&bx, masked);
        let all: Vec<u32> = (0..bx.len() as u32).collect();
        let t = Tree::build(&bx, &f.table, all, masked);
        assert!(t.is_masked());
        assert!(
            t.block_cuts() > 0,
            "no cut took a block smaller than its region"
        );
        let plain = Forest::<V4>::build(
            &bx,
            TreeParams {
                masked: Some(false),
                ..TreeParams::default()
            },
        );
        let mut ps = Vec::new();
        for _ in 0..6000 {
            let mut p = point(&mut rng, &bx);
            match rng.below(3) {
                // Outside the block: below or above it.
                0 => p[0] = rng.below(block as u64) as u128,
                1 => p[0] = block + 256 + rng.below(0xffff_ffff - block as u64 - 256) as u128,
                _ => {}
            }
            ps.push(p);
        }
        let mut outside_hits = 0;
        for group in ps.chunks_exact(8) {
            let keys: [_; 8] = std::array::from_fn(|i| V4::key(&group[i]));
            let got = f.lookup_n(keys.each_ref());
            let got_plain = plain.lookup_n(keys.each_ref());
            for (i, p) in group.iter().enumerate() {
                let want = first_match(&bx, p);
                let k = &keys[i];
                assert_eq!(f.lookup(k, u32::MAX), want, "{p:?}");
                assert_eq!(got[i], want, "{p:?} (group)");
                assert_eq!(got_plain[i], want, "{p:?} (plain)");
                assert_eq!(t.lookup(&f.table, k, u32::MAX), want, "{p:?} (one tree)");
                let outside = p[0] < block || p[0] > block + 255;
                outside_hits += (outside && want != u32::MAX) as usize;
            }
        }
        assert!(
            outside_hits > 100,
            "too few matches outside the block: {outside_hits}"
        );
    }

    /// Random firewall-like sets with masked steps forced on every tree.
    #[test]
    fn forced_masked_forests_agree_with_linear() {
        for seed in 20..=30 {
            let mut rng = Lcg(seed);
            let n = 50 + rng.below(600) as usize;
            let bx = boxes(&mut rng, n, 32);
            for binth in [1, 8, 16] {
                let params = TreeParams {
                    binth,
                    spfac: [2, 4, 16][seed as usize % 3],
                    masked: Some(true),
                    ..TreeParams::default()
                };
                let f = Forest::<V4>::build(&bx, params);
                for _ in 0..300 {
                    let ps: [[u128; 8]; 8] = std::array::from_fn(|_| point(&mut rng, &bx));
                    let keys = ps.map(|p| V4::key(&p));
                    let got = f.lookup_n(keys.each_ref());
                    for (i, p) in ps.iter().enumerate() {
                        let want = first_match(&bx, p);
                        assert_eq!(f.lookup(&keys[i], u32::MAX), want, "seed {seed} {p:?}");
                        assert_eq!(got[i], want, "seed {seed} {p:?} (group)");
                    }
                }
            }
        }
    }

    /// A capped trial build gives up instead of finishing an over-replicated tree.
    #[test]
    fn capped_build_stops() {
        let mut rng = Lcg(3);
        let bx = boxes(&mut rng, 200, 32);
        let f = Forest::<V4>::build(&bx, TreeParams::default());
        let all: Vec<u32> = (0..bx.len() as u32).collect();
        let p = TreeParams::default();
        assert!(Tree::build_capped(&bx, &f.table, all.clone(), p, 10).is_none());
        let t = Tree::build_capped(&bx, &f.table, all, p, usize::MAX).unwrap();
        assert!(t.leaf_entries() >= bx.len());
    }
}
