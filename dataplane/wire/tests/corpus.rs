//! The committed fuzz seed corpus doubles as a regression suite: every seed parses (except
//! the later fragment, which the default config drops), and the reject replies built for
//! them parse back.

use rampart_wire::*;

#[test]
fn committed_seeds_parse() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/corpus/parse");
    let mut n = 0;
    for e in std::fs::read_dir(dir).expect("fuzz/corpus/parse exists") {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let f = std::fs::read(&path).unwrap();
        let r = parse(&f, &ParseConfig::default());
        if name.contains("later_fragment") {
            assert_eq!(r, Err(ParseError::NonFirstFragment), "{name}");
            continue;
        }
        let p = r.unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut out = [0u8; 2048];
        if let Ok(m) = build_icmp_unreachable(&f, &p, &mut out) {
            assert_eq!(
                parse(&out[..m], &ParseConfig::default())
                    .unwrap()
                    .icmp_inner
                    .map(|k| k.dst_port),
                Some(p.key.dst_port),
                "{name}"
            );
        }
        n += 1;
    }
    assert!(n >= 15, "only {n} seeds");
}
