//! A reader for the classic libpcap file format (not pcapng): a 24-byte file header, then one
//! 16-byte record header per packet. Both byte orders and both microsecond and nanosecond
//! timestamp magics are accepted; only Ethernet captures (link type 1) can be replayed.

use std::path::Path;

/// Link type of Ethernet captures.
pub const LINKTYPE_ETHERNET: u32 = 1;

/// Why a pcap file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is shorter than the 24-byte header or starts with an unknown magic number
    /// (pcapng files are not supported: convert with `editcap -F pcap`).
    #[error("not a classic pcap file (bad magic {0:#010x}; pcapng is not supported, convert it with `editcap -F pcap`)")]
    BadMagic(u32),
    /// The capture is not of Ethernet frames.
    #[error("link type {0} is not Ethernet (1); only Ethernet captures can be replayed")]
    LinkType(u32),
    /// A record header or its data runs past the end of the file.
    #[error("record {index} at byte {offset} is truncated")]
    Truncated {
        /// 0-based record index.
        index: usize,
        /// Byte offset of its record header.
        offset: usize,
    },
    /// A record claims an implausible length.
    #[error("record {index} claims {len} bytes (more than the 262144-byte maximum)")]
    Oversized {
        /// 0-based record index.
        index: usize,
        /// Claimed captured length.
        len: u32,
    },
}

/// One captured packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcapRecord {
    /// Capture time in nanoseconds since the epoch.
    pub ts_ns: u64,
    /// Length on the wire (may exceed `data.len()` when the capture was cut at a snap length).
    pub orig_len: u32,
    /// The captured bytes.
    pub data: Vec<u8>,
}

/// A whole capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pcap {
    /// Link type from the file header.
    pub link_type: u32,
    /// Snap length from the file header.
    pub snaplen: u32,
    /// The packets, in file order.
    pub records: Vec<PcapRecord>,
}

const MAGIC_US: u32 = 0xa1b2_c3d4;
const MAGIC_NS: u32 = 0xa1b2_3c4d;
const MAX_RECORD: u32 = 262_144;

/// Parses a capture held in memory.
pub fn parse(bytes: &[u8]) -> Result<Pcap, PcapError> {
    if bytes.len() < 24 {
        let mut m = [0u8; 4];
        m[..bytes.len().min(4)].copy_from_slice(&bytes[..bytes.len().min(4)]);
        return Err(PcapError::BadMagic(u32::from_le_bytes(m)));
    }
    let magic_le = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let (le, nanos) = match magic_le {
        MAGIC_US => (true, false),
        MAGIC_NS => (true, true),
        m if m.swap_bytes() == MAGIC_US => (false, false),
        m if m.swap_bytes() == MAGIC_NS => (false, true),
        m => return Err(PcapError::BadMagic(m)),
    };
    let u32_at = |off: usize| {
        let b = [bytes[off], bytes[off + 1], bytes[off + 2], bytes[off + 3]];
        if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    };
    let snaplen = u32_at(16);
    let link_type = u32_at(20) & 0x0fff_ffff; // upper bits carry FCS info in newer files
    let mut records = Vec::new();
    let mut off = 24;
    while off < bytes.len() {
        let index = records.len();
        if off + 16 > bytes.len() {
            return Err(PcapError::Truncated { index, offset: off });
        }
        let (sec, frac, incl, orig) = (
            u32_at(off),
            u32_at(off + 4),
            u32_at(off + 8),
            u32_at(off + 12),
        );
        if incl > MAX_RECORD {
            return Err(PcapError::Oversized { index, len: incl });
        }
        let start = off + 16;
        let end = start + incl as usize;
        if end > bytes.len() {
            return Err(PcapError::Truncated { index, offset: off });
        }
        let frac_ns = if nanos {
            u64::from(frac)
        } else {
            u64::from(frac) * 1000
        };
        records.push(PcapRecord {
            ts_ns: u64::from(sec) * 1_000_000_000 + frac_ns,
            orig_len: orig,
            data: bytes[start..end].to_vec(),
        });
        off = end;
    }
    Ok(Pcap {
        link_type,
        snaplen,
        records,
    })
}

/// Reads an Ethernet capture from a file.
pub fn load(path: &Path) -> Result<Pcap, PcapError> {
    let bytes = std::fs::read(path).map_err(|source| PcapError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let p = parse(&bytes)?;
    if p.link_type != LINKTYPE_ETHERNET {
        return Err(PcapError::LinkType(p.link_type));
    }
    Ok(p)
}

/// Writes a classic little-endian microsecond pcap (used by tests and `--pcap-out` style tools).
pub fn write(link_type: u32, records: &[PcapRecord]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&MAGIC_US.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&link_type.to_le_bytes());
    for r in records {
        out.extend_from_slice(&((r.ts_ns / 1_000_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&((r.ts_ns % 1_000_000_000 / 1000) as u32).to_le_bytes());
        out.extend_from_slice(&(r.data.len() as u32).to_le_bytes());
        out.extend_from_slice(&r.orig_len.to_le_bytes());
        out.extend_from_slice(&r.data);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A big-endian nanosecond capture written by hand, byte by byte.
    const BE_NS: &[u8] = &[
        0xa1, 0xb2, 0x3c, 0x4d, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x04, 0, 0, 0, 0,
        1, //
        0, 0, 0, 2, 0, 0, 0, 7, 0, 0, 0, 3, 0, 0, 0, 60, 0xde, 0xad, 0xbe, //
        0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];

    #[test]
    fn reads_big_endian_nanosecond_files() {
        let p = parse(BE_NS).unwrap();
        assert_eq!((p.link_type, p.snaplen), (1, 1024));
        assert_eq!(p.records.len(), 2);
        assert_eq!(
            p.records[0],
            PcapRecord {
                ts_ns: 2_000_000_007,
                orig_len: 60,
                data: vec![0xde, 0xad, 0xbe]
            }
        );
        assert_eq!(p.records[1].ts_ns, 3_000_000_000);
        assert!(p.records[1].data.is_empty());
    }

    #[test]
    fn round_trips_little_endian_microsecond_files() {
        let recs = vec![
            PcapRecord {
                ts_ns: 1_500_000_000,
                orig_len: 4,
                data: vec![1, 2, 3, 4],
            },
            PcapRecord {
                ts_ns: 1_500_001_000,
                orig_len: 100,
                data: vec![9; 60],
            },
        ];
        let bytes = write(1, &recs);
        assert_eq!(&bytes[..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
        let p = parse(&bytes).unwrap();
        assert_eq!(p.records, recs);
    }

    #[test]
    fn rejects_bad_files() {
        assert!(matches!(
            parse(&[0x0a, 0x0d, 0x0d, 0x0a]),
            Err(PcapError::BadMagic(_))
        ));
        assert!(matches!(
            parse(&[
                0x0a, 0x0d, 0x0d, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
            ]),
            Err(PcapError::BadMagic(0x0a0d_0d0a))
        ));
        let mut cut = write(
            1,
            &[PcapRecord {
                ts_ns: 0,
                orig_len: 10,
                data: vec![0; 10],
            }],
        );
        cut.pop();
        assert!(matches!(
            parse(&cut),
            Err(PcapError::Truncated {
                index: 0,
                offset: 24
            })
        ));
        let mut big = write(1, &[]);
        big.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0]);
        assert!(matches!(
            parse(&big),
            Err(PcapError::Oversized { index: 0, .. })
        ));
        let dir = std::env::temp_dir().join(format!("pktgen-pcap-{}.pcap", std::process::id()));
        std::fs::write(&dir, write(101, &[])).unwrap();
        assert!(matches!(load(&dir), Err(PcapError::LinkType(101))));
        std::fs::remove_file(&dir).unwrap();
    }
}
