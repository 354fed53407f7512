//! Exact packet accounting through the appliance with net_pcap ports: every frame read from
//! one port's rx_pcap must leave on the paired port's tx_pcap, byte for byte and in order, and
//! the appliance's summary must count exactly as many.

mod support;

use std::time::Duration;
use support::*;

/// A distinct Ethernet frame: sizes from 60 to 1514 bytes, the index in the payload.
fn frame(side: u8, i: usize) -> Vec<u8> {
    let len = 60 + (i * 37) % 1455;
    let mut f = vec![0u8; len];
    f[0..6].copy_from_slice(&[0x02, 0, 0, 0, side, 1]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, side, 2]);
    f[12..14].copy_from_slice(&[0x88, 0xb5]); // local experimental ethertype
    f[14..22].copy_from_slice(&(i as u64).to_be_bytes());
    for (k, b) in f[22..].iter_mut().enumerate() {
        *b = (k as u8)
            .wrapping_mul(31)
            .wrapping_add(i as u8)
            .wrapping_add(side);
    }
    f
}

#[test]
fn pcap_pair_forwards_every_frame_exactly_once() {
    let t = tag("pc");
    let dir = TempDir::new(&t);
    let (n_in, n_out) = (3000usize, 1234usize);
    let in_frames: Vec<Vec<u8>> = (0..n_in).map(|i| frame(0xa, i)).collect();
    let out_frames: Vec<Vec<u8>> = (0..n_out).map(|i| frame(0xb, i)).collect();
    write_pcap(&dir.path("in-rx.pcap"), &in_frames);
    write_pcap(&dir.path("out-rx.pcap"), &out_frames);

    let d = |n: &str| dir.path(n).display().to_string();
    let mut args: Vec<String> = vec![
        "--inside".into(),
        format!(
            "net_pcap0,rx_pcap={},tx_pcap={}",
            d("in-rx.pcap"),
            d("in-tx.pcap")
        ),
        "--outside".into(),
        format!(
            "net_pcap1,rx_pcap={},tx_pcap={}",
            d("out-rx.pcap"),
            d("out-tx.pcap")
        ),
        "--idle-sleep-us".into(),
        "100".into(),
        "--stats-interval-ms".into(),
        "500".into(),
        "--duration".into(),
        "3".into(),
        "--".into(),
    ];
    args.extend(eal_args(&t));
    let app = Appliance::spawn(&args);
    let done = app.wait_exit(Duration::from_secs(60));
    done.assert_stopped_cleanly("rampart");

    // The tx pcap files are flushed when the ports close at shutdown.
    let got_out = read_pcap(&dir.path("out-tx.pcap"));
    let got_in = read_pcap(&dir.path("in-tx.pcap"));
    assert_eq!(got_out.len(), n_in, "frames inside -> outside");
    assert_eq!(got_in.len(), n_out, "frames outside -> inside");
    assert!(got_out == in_frames, "inside -> outside frames differ");
    assert!(got_in == out_frames, "outside -> inside frames differ");

    // The summary counts exactly what went through, and nothing was dropped.
    let line = |label: &str| {
        done.stdout
            .lines()
            .find(|l| l.trim_start().starts_with(label))
            .unwrap_or_else(|| panic!("no summary line for {label}:\n{}", done.stdout))
            .to_owned()
    };
    let (in0, out0) = (line("in0 "), line("out0 "));
    assert!(in0.contains(&format!("rx {n_in:>12} pkts")), "{in0}");
    assert!(in0.contains(&format!("tx {n_out:>12} pkts")), "{in0}");
    assert!(out0.contains(&format!("rx {n_out:>12} pkts")), "{out0}");
    assert!(out0.contains(&format!("tx {n_in:>12} pkts")), "{out0}");
    assert!(
        in0.contains("dropped          0") && out0.contains("dropped          0"),
        "{in0}\n{out0}"
    );
    let bytes: usize = in_frames.iter().map(Vec::len).sum();
    assert!(in0.contains(&format!("{bytes:>14} bytes")), "{in0}");
}
