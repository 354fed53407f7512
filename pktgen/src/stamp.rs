//! The 16-byte stamp pktgen writes at the end of every generated frame: it names the stream and
//! trial, numbers the packet and carries the TX time, so the receiver counts per stream and
//! measures latency without any state shared between the TX and RX paths.
//!
//! Layout (big-endian): magic `u16` | stream `u8` | trial `u8` | seq `u32` | tsc `u64`.
//! It sits at the very end of the frame, which is where it is found again whatever headers
//! (VLAN tags, tunnels) come before it.

/// Bytes of a stamp.
pub const STAMP_LEN: usize = 16;
/// Marks a stamped frame ("RP").
pub const MAGIC: u16 = 0x5250;

/// One stamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Stream index (position in the run's stream list).
    pub stream: u8,
    /// Trial number (RFC 2544 search), so late packets of an earlier trial are not counted.
    pub trial: u8,
    /// Per-stream sequence number (wraps).
    pub seq: u32,
    /// TSC when the burst was built.
    pub tsc: u64,
}

impl Stamp {
    /// The stamp's bytes.
    #[inline]
    pub fn to_bytes(&self) -> [u8; STAMP_LEN] {
        let mut b = [0u8; STAMP_LEN];
        b[0..2].copy_from_slice(&MAGIC.to_be_bytes());
        b[2] = self.stream;
        b[3] = self.trial;
        b[4..8].copy_from_slice(&self.seq.to_be_bytes());
        b[8..16].copy_from_slice(&self.tsc.to_be_bytes());
        b
    }

    /// Reads the stamp at the end of `frame`, if there is one.
    #[inline]
    pub fn read(frame: &[u8]) -> Option<Stamp> {
        let start = frame.len().checked_sub(STAMP_LEN)?;
        let b = &frame[start..];
        if u16::from_be_bytes([b[0], b[1]]) != MAGIC {
            return None;
        }
        Some(Stamp {
            stream: b[2],
            trial: b[3],
            seq: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            tsc: u64::from_be_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_at_frame_end() {
        let s = Stamp {
            stream: 3,
            trial: 9,
            seq: 0xdead_beef,
            tsc: 0x0123_4567_89ab_cdef,
        };
        let mut frame = vec![0xaau8; 60];
        frame[44..].copy_from_slice(&s.to_bytes());
        assert_eq!(Stamp::read(&frame), Some(s));
    }

    #[test]
    fn short_or_unmarked_frames_have_no_stamp() {
        assert_eq!(Stamp::read(&[0u8; 15]), None);
        assert_eq!(Stamp::read(&[0u8; 64]), None);
    }
}
