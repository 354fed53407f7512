//! The committed fuzz corpus doubles as a regression suite. Hand-made seeds (`NN_name`,
//! written by `examples/fuzz_corpus.rs`) must parse (except the later fragment, which the
//! default config drops); inputs the fuzzer found (hex names) only must not panic. For every
//! input that parses, the reject replies built for it parse back.

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
        let hand_made =
            name.as_bytes().get(2) == Some(&b'_') && name[..2].bytes().all(|b| b.is_ascii_digit());
        if !hand_made {
            if let Ok(p) = r {
                let mut out = [0u8; 2048];
                if let Ok(m) = build_tcp_rst(&f, &p, &mut out) {
                    assert_eq!(
                        parse(&out[..m], &ParseConfig::default()).map(|r| r.key),
                        Ok(p.key.reversed()),
                        "{name}"
                    );
                }
                if let Ok(m) = build_icmp_unreachable(&f, &p, &mut out) {
                    assert!(parse(&out[..m], &ParseConfig::default()).is_ok(), "{name}");
                }
            }
            continue;
        }
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
