//! Every packet of every vendored ClassBench trace: the compiled classifier must agree with
//! the linear first-match oracle 100%.

use std::path::PathBuf;

use rampart_classify::classbench::{load_rules, load_trace, to_policy};
use rampart_classify::linear::Linear;
use rampart_classify::{PacketFields, Ruleset};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/classbench")
        .join(name)
}

fn check(set: &str) {
    check_with(set, None);
}

/// `masked`: `None` compiles as deployed (masked steps chosen per tree), `Some(m)` forces
/// them on or off in every tree.
fn check_with(set: &str, masked: Option<bool>) {
    let rules = load_rules(&data(&format!("{set}.rules"))).unwrap();
    let trace = load_trace(&data(&format!("{set}.trace.gz"))).unwrap();
    assert!(
        rules.len() > 500 && trace.len() > 70_000,
        "{set}: data missing"
    );
    let policy = to_policy(&rules);
    let rs = match masked {
        None => Ruleset::compile(&policy).unwrap(),
        Some(m) => Ruleset::compile_masked(&policy, m).unwrap(),
    };
    let oracle = Linear::new(&policy);
    let pkts: Vec<PacketFields> = trace.iter().map(|p| p.fields()).collect();
    let mut got = vec![0u32; pkts.len()];
    for (chunk, out) in pkts.chunks(32).zip(got.chunks_mut(32)) {
        rs.classify_index_bulk(chunk, out);
    }
    // The trace repeats headers in bursts: ask the (slow) oracle once per distinct run.
    let mut mismatches = 0;
    let mut last: Option<(PacketFields, u32)> = None;
    for (i, p) in pkts.iter().enumerate() {
        let want = match last {
            Some((q, w)) if q == *p => w,
            _ => {
                let w = oracle.classify(p).rule.unwrap_or(u32::MAX);
                last = Some((*p, w));
                w
            }
        };
        // Column 7 names a matching rule, so the first match is at or before it.
        assert!(
            want <= trace[i].rule,
            "{set} packet {i}: oracle {want} after generator rule {}",
            trace[i].rule
        );
        if got[i] != want {
            mismatches += 1;
            if mismatches < 5 {
                eprintln!(
                    "{set} packet {i} {:?}: classifier {} oracle {want}",
                    trace[i], got[i] as i64
                );
            }
        }
    }
    assert_eq!(
        mismatches,
        0,
        "{set}: {mismatches} of {} packets disagree",
        pkts.len()
    );
}

#[test]
fn acl1_1k_agrees_with_linear() {
    check("acl1_1k");
}

#[test]
fn fw1_1k_agrees_with_linear() {
    check("fw1_1k");
}

#[test]
fn acl1_10k_agrees_with_linear() {
    check("acl1_10k");
}

#[test]
fn masked_steps_everywhere_agree_with_linear() {
    for set in ["acl1_1k", "fw1_1k", "acl1_10k"] {
        check_with(set, Some(true));
    }
}

#[test]
fn plain_steps_everywhere_agree_with_linear() {
    for set in ["acl1_1k", "fw1_1k", "acl1_10k"] {
        check_with(set, Some(false));
    }
}
