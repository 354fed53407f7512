//! Rate control: a token bucket on the TSC, and line-rate arithmetic.

/// Ethernet overhead on the wire per frame besides the frame itself: preamble + SFD (8) and
/// the inter-frame gap (12).
pub const WIRE_OVERHEAD: u64 = 20;
/// The frame check sequence: counted in a frame's size, never in the bytes we build.
pub const FCS_LEN: u64 = 4;

/// Packets per second that fill `line_bps` with frames of `frame_size` bytes (FCS included):
/// e.g. 14,880,952 pps for 64-byte frames on 10 Gbit/s.
pub fn line_rate_pps(line_bps: u64, avg_frame_size: f64) -> f64 {
    line_bps as f64 / ((avg_frame_size + WIRE_OVERHEAD as f64) * 8.0)
}

/// Releases packets at `pps` measured on the TSC. Credit accumulates in units of
/// packet·ticks so no division happens per burst except the one that turns credit into
/// packets. Credit is capped at one burst or 20 ms of packets, whichever is more: a
/// preemption of the generator thread (a scheduler time slice on a shared host) is made up
/// for, a long stall
/// is not followed by a catch-up flood.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Packets per second (0 = unlimited).
    pps: u64,
    hz: u64,
    /// Credit in packet·ticks (one packet = `hz` of credit).
    credit: u128,
    cap: u128,
    last_tsc: u64,
}

impl TokenBucket {
    /// A bucket for `pps` packets per second on a clock of `hz` ticks per second, saving up at
    /// most `max(burst, pps / 50)` packets, starting empty at `now_tsc`.
    pub fn new(pps: u64, hz: u64, burst: u32, now_tsc: u64) -> TokenBucket {
        TokenBucket {
            pps,
            hz: hz.max(1),
            credit: 0,
            cap: u128::from(u64::from(burst.max(1)).max(pps / 50)) * u128::from(hz.max(1)),
            last_tsc: now_tsc,
        }
    }

    /// Packets per second (0 = unlimited).
    pub fn pps(&self) -> u64 {
        self.pps
    }

    /// How many packets (at most `want`) may go now; they are taken from the bucket.
    #[inline]
    pub fn take(&mut self, now_tsc: u64, want: u32) -> u32 {
        if self.pps == 0 {
            return want;
        }
        let dt = now_tsc.saturating_sub(self.last_tsc);
        self.last_tsc = now_tsc;
        self.credit = (self.credit + u128::from(dt) * u128::from(self.pps)).min(self.cap);
        let n = ((self.credit / u128::from(self.hz)) as u32).min(want);
        self.credit -= u128::from(n) * u128::from(self.hz);
        n
    }

    /// Give back `n` packets taken but not sent (the device queue was full), so the long-run
    /// rate is what was asked for and not what the queue let through.
    #[inline]
    pub fn refund(&mut self, n: u32) {
        self.credit = (self.credit + u128::from(n) * u128::from(self.hz)).min(self.cap);
    }
}

/// Parses a rate: `"1000000"`, `"1.5M"`, `"500k"`, `"2mpps"` (packets per second) or `"40%"`
/// (of the line rate). Returns `Rate`.
pub fn parse_rate(s: &str) -> Result<Rate, String> {
    let t = s.trim().to_ascii_lowercase();
    if let Some(p) = t.strip_suffix('%') {
        let v: f64 = p.trim().parse().map_err(|_| format!("bad rate {s:?}"))?;
        if !(v > 0.0 && v <= 100.0) {
            return Err(format!("rate {s:?}: a percentage must be in (0, 100]"));
        }
        return Ok(Rate::LinePercent(v));
    }
    let t = t.strip_suffix("pps").unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1e3),
        Some('m') => (&t[..t.len() - 1], 1e6),
        Some('g') => (&t[..t.len() - 1], 1e9),
        _ => (t, 1.0),
    };
    let v: f64 = num.trim().parse().map_err(|_| format!("bad rate {s:?}"))?;
    if v.is_nan() || v < 0.0 || v.is_infinite() {
        return Err(format!("bad rate {s:?}"));
    }
    Ok(Rate::Pps((v * mult).round() as u64))
}

/// Parses a bit rate such as `"10G"`, `"25g"`, `"100M"`, `"1e9"` into bits per second.
pub fn parse_bps(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let t = t
        .strip_suffix("bps")
        .or_else(|| t.strip_suffix("bit"))
        .unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1e3),
        Some('m') => (&t[..t.len() - 1], 1e6),
        Some('g') => (&t[..t.len() - 1], 1e9),
        _ => (t, 1.0),
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("bad bit rate {s:?}"))?;
    if v.is_nan() || v <= 0.0 || v.is_infinite() {
        return Err(format!("bad bit rate {s:?}"));
    }
    Ok((v * mult).round() as u64)
}

/// A requested rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    /// Packets per second; 0 = as fast as possible.
    Pps(u64),
    /// Percent of the line rate.
    LinePercent(f64),
}

impl Rate {
    /// Packets per second for a line of `line_bps` and an average frame size (FCS included).
    pub fn pps(&self, line_bps: u64, avg_frame_size: f64) -> u64 {
        match *self {
            Rate::Pps(p) => p,
            Rate::LinePercent(pct) => {
                (line_rate_pps(line_bps, avg_frame_size) * pct / 100.0).round() as u64
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_rate_of_well_known_frame_sizes() {
        assert_eq!(
            line_rate_pps(10_000_000_000, 64.0).round() as u64,
            14_880_952
        );
        assert_eq!(
            line_rate_pps(10_000_000_000, 1518.0).round() as u64,
            812_744
        );
        assert_eq!(Rate::LinePercent(50.0).pps(10_000_000_000, 64.0), 7_440_476);
        assert_eq!(Rate::Pps(123).pps(1, 64.0), 123);
    }

    #[test]
    fn bucket_releases_the_asked_rate() {
        let hz = 2_000_000_000u64;
        let mut b = TokenBucket::new(1_000_000, hz, 32, 0);
        let mut sent = 0u64;
        // Poll every 1000 ticks (0.5 us) for one simulated second.
        let mut t = 0;
        while t < hz {
            t += 1000;
            sent += u64::from(b.take(t, 32));
        }
        assert!((999_990..=1_000_000).contains(&sent), "sent {sent}");
    }

    #[test]
    fn bucket_caps_credit_after_a_stall_and_refunds() {
        let hz = 1_000_000_000u64;
        let mut b = TokenBucket::new(100, hz, 8, 0);
        assert_eq!(
            b.take(hz * 10, 1000),
            8,
            "10 s of stall give one burst, not 10,000"
        );
        let mut fast = TokenBucket::new(1_000_000, hz, 8, 0);
        assert_eq!(
            fast.take(hz, 100_000),
            20_000,
            "a stall is made up for up to 20 ms of packets"
        );
        assert_eq!(b.take(hz * 10, 1000), 0);
        b.refund(3);
        assert_eq!(b.take(hz * 10, 1000), 3);
        let mut u = TokenBucket::new(0, hz, 8, 0);
        assert_eq!(u.take(0, 32), 32, "0 pps = unlimited");
    }

    #[test]
    fn rate_strings() {
        assert_eq!(parse_rate("1.5M"), Ok(Rate::Pps(1_500_000)));
        assert_eq!(parse_rate("500kpps"), Ok(Rate::Pps(500_000)));
        assert_eq!(parse_rate("42"), Ok(Rate::Pps(42)));
        assert_eq!(parse_rate("25%"), Ok(Rate::LinePercent(25.0)));
        assert!(parse_rate("120%").is_err());
        assert!(parse_rate("fast").is_err());
        assert_eq!(parse_bps("10G"), Ok(10_000_000_000));
        assert_eq!(parse_bps("100mbps"), Ok(100_000_000));
        assert!(parse_bps("0").is_err());
    }
}
