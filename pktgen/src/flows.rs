//! Flow spaces: which 5-tuples a stream cycles through, enumerated without division on the hot
//! path (a mixed-radix odometer over source port, destination port, source and destination
//! address, in that order).

use std::net::IpAddr;

/// Why a flow space is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlowSpaceError {
    /// Source and destination ranges are of different address families.
    #[error("source and destination addresses are of different families")]
    FamilyMismatch,
    /// A range is empty.
    #[error("{0} range is empty")]
    EmptyRange(&'static str),
    /// An address range runs past the end of the address space.
    #[error("{0} address range runs past the end of the address space")]
    AddressOverflow(&'static str),
    /// More flows were asked for than distinct tuples exist.
    #[error("{flows} flows asked for but the ranges give only {tuples} distinct tuples")]
    TooManyFlows {
        /// Flows asked for.
        flows: u64,
        /// Distinct tuples available.
        tuples: u128,
    },
}

/// The tuple fields a frame template is patched with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Tuple {
    /// Source address (IPv4 in the first 4 bytes).
    pub src: [u8; 16],
    /// Destination address (IPv4 in the first 4 bytes).
    pub dst: [u8; 16],
    /// Source port (ICMP: echo identifier).
    pub sport: u16,
    /// Destination port (unused for ICMP).
    pub dport: u16,
}

/// A set of flows: `flows` distinct tuples taken in odometer order from the ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowSpace {
    /// IPv6 (else IPv4).
    pub v6: bool,
    /// First source address (IPv4 in the low 32 bits).
    pub src_base: u128,
    /// Number of source addresses.
    pub src_count: u128,
    /// First destination address.
    pub dst_base: u128,
    /// Number of destination addresses.
    pub dst_count: u128,
    /// First source port.
    pub sport_lo: u16,
    /// Number of source ports.
    pub sport_count: u32,
    /// First destination port.
    pub dport_lo: u16,
    /// Number of destination ports.
    pub dport_count: u32,
    /// Number of flows to cycle through.
    pub flows: u64,
}

fn addr_u128(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u128::from(u32::from(v)),
        IpAddr::V6(v) => u128::from(v),
    }
}

impl FlowSpace {
    /// A flow space from address ranges `(first, count)` and port ranges `(lo, hi)` inclusive.
    pub fn new(
        src: (IpAddr, u128),
        dst: (IpAddr, u128),
        sports: (u16, u16),
        dports: (u16, u16),
        flows: u64,
    ) -> Result<FlowSpace, FlowSpaceError> {
        let v6 = match (src.0, dst.0) {
            (IpAddr::V4(_), IpAddr::V4(_)) => false,
            (IpAddr::V6(_), IpAddr::V6(_)) => true,
            _ => return Err(FlowSpaceError::FamilyMismatch),
        };
        let max: u128 = if v6 { u128::MAX } else { u128::from(u32::MAX) };
        for (name, (a, n)) in [("source", src), ("destination", dst)] {
            if n == 0 {
                return Err(FlowSpaceError::EmptyRange(name));
            }
            if addr_u128(a)
                .checked_add(n - 1)
                .is_none_or(|last| last > max)
            {
                return Err(FlowSpaceError::AddressOverflow(name));
            }
        }
        if sports.0 > sports.1 {
            return Err(FlowSpaceError::EmptyRange("source port"));
        }
        if dports.0 > dports.1 {
            return Err(FlowSpaceError::EmptyRange("destination port"));
        }
        if flows == 0 {
            return Err(FlowSpaceError::EmptyRange("flow"));
        }
        let s = FlowSpace {
            v6,
            src_base: addr_u128(src.0),
            src_count: src.1,
            dst_base: addr_u128(dst.0),
            dst_count: dst.1,
            sport_lo: sports.0,
            sport_count: u32::from(sports.1 - sports.0) + 1,
            dport_lo: dports.0,
            dport_count: u32::from(dports.1 - dports.0) + 1,
            flows,
        };
        let tuples = s.tuples();
        if u128::from(flows) > tuples {
            return Err(FlowSpaceError::TooManyFlows { flows, tuples });
        }
        Ok(s)
    }

    /// Distinct tuples the ranges give (saturating).
    pub fn tuples(&self) -> u128 {
        u128::from(self.sport_count)
            .saturating_mul(u128::from(self.dport_count))
            .saturating_mul(self.src_count)
            .saturating_mul(self.dst_count)
    }

    /// The tuple of flow `i` (slow path: tests, and positioning a cursor).
    pub fn tuple(&self, i: u64) -> Tuple {
        let mut c = Cursor::new(self);
        c.digits = self.digits(i);
        c.flow = i;
        c.tuple(self)
    }

    fn digits(&self, i: u64) -> [u128; 4] {
        let mut r = u128::from(i);
        let ns = u128::from(self.sport_count);
        let nd = u128::from(self.dport_count);
        let d0 = r % ns;
        r /= ns;
        let d1 = r % nd;
        r /= nd;
        let d2 = r % self.src_count;
        r /= self.src_count;
        [d0, d1, d2, r % self.dst_count]
    }

    /// The index of the flow with this tuple, if it belongs to the space (replies are matched
    /// back to their flow this way, without a table).
    pub fn index_of(&self, src: &[u8; 16], dst: &[u8; 16], sport: u16, dport: u16) -> Option<u64> {
        let addr = |a: &[u8; 16]| {
            if self.v6 {
                u128::from_be_bytes(*a)
            } else {
                u128::from(u32::from_be_bytes([a[0], a[1], a[2], a[3]]))
            }
        };
        let d2 = addr(src).checked_sub(self.src_base)?;
        let d3 = addr(dst).checked_sub(self.dst_base)?;
        let d0 = u128::from(sport.checked_sub(self.sport_lo)?);
        let d1 = u128::from(dport.checked_sub(self.dport_lo)?);
        if d0 >= u128::from(self.sport_count)
            || d1 >= u128::from(self.dport_count)
            || d2 >= self.src_count
            || d3 >= self.dst_count
        {
            return None;
        }
        let ns = u128::from(self.sport_count);
        let nd = u128::from(self.dport_count);
        let i = d0 + ns * (d1 + nd * (d2 + self.src_count * d3));
        (i < u128::from(self.flows)).then_some(i as u64)
    }
}

/// Walks a [`FlowSpace`] flow by flow, wrapping after the last flow; no division per step.
#[derive(Debug, Clone, Default)]
pub struct Cursor {
    digits: [u128; 4],
    flow: u64,
}

impl Cursor {
    /// At flow 0.
    pub fn new(_space: &FlowSpace) -> Cursor {
        Cursor {
            digits: [0; 4],
            flow: 0,
        }
    }

    /// The current flow index.
    #[inline]
    pub fn flow(&self) -> u64 {
        self.flow
    }

    /// The current tuple.
    #[inline]
    pub fn tuple(&self, s: &FlowSpace) -> Tuple {
        let mut t = Tuple {
            sport: s.sport_lo.wrapping_add(self.digits[0] as u16),
            dport: s.dport_lo.wrapping_add(self.digits[1] as u16),
            ..Tuple::default()
        };
        let src = s.src_base + self.digits[2];
        let dst = s.dst_base + self.digits[3];
        if s.v6 {
            t.src = src.to_be_bytes();
            t.dst = dst.to_be_bytes();
        } else {
            t.src[..4].copy_from_slice(&(src as u32).to_be_bytes());
            t.dst[..4].copy_from_slice(&(dst as u32).to_be_bytes());
        }
        t
    }

    /// Move to the next flow (flow 0 after the last).
    #[inline]
    pub fn advance(&mut self, s: &FlowSpace) {
        self.flow += 1;
        if self.flow == s.flows {
            self.flow = 0;
            self.digits = [0; 4];
            return;
        }
        let radix = [
            u128::from(s.sport_count),
            u128::from(s.dport_count),
            s.src_count,
            s.dst_count,
        ];
        for (d, r) in self.digits.iter_mut().zip(radix) {
            *d += 1;
            if *d < r {
                return;
            }
            *d = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn v4(a: &str) -> IpAddr {
        a.parse().unwrap()
    }

    #[test]
    fn odometer_gives_distinct_tuples_and_wraps() {
        let s = FlowSpace::new(
            (v4("10.0.0.1"), 3),
            (v4("10.1.0.1"), 2),
            (1000, 1001),
            (80, 80),
            12,
        )
        .unwrap();
        let mut c = Cursor::new(&s);
        let mut seen = HashSet::new();
        for i in 0..12 {
            let t = c.tuple(&s);
            assert_eq!(t, s.tuple(i), "cursor and direct index agree at {i}");
            assert_eq!(s.index_of(&t.src, &t.dst, t.sport, t.dport), Some(i));
            seen.insert(t);
            c.advance(&s);
        }
        assert_eq!(seen.len(), 12);
        assert_eq!(c.flow(), 0);
        assert_eq!(c.tuple(&s), s.tuple(0));
        // sport is the fastest digit, then dport, src, dst
        assert_eq!(s.tuple(1).sport, 1001);
        assert_eq!(&s.tuple(2).src[..4], &[10, 0, 0, 2]);
        assert_eq!(&s.tuple(6).dst[..4], &[10, 1, 0, 2]);
    }

    #[test]
    fn partial_cycle_wraps_at_flow_count() {
        let s = FlowSpace::new(
            (v4("10.0.0.1"), 10),
            (v4("10.1.0.1"), 1),
            (1, 100),
            (80, 80),
            7,
        )
        .unwrap();
        let mut c = Cursor::new(&s);
        for _ in 0..7 {
            c.advance(&s);
        }
        assert_eq!(c.tuple(&s), s.tuple(0));
        let t = s.tuple(0);
        assert_eq!(s.index_of(&t.src, &t.dst, 8, t.dport), None, "beyond flows");
    }

    #[test]
    fn ipv6_and_errors() {
        let s = FlowSpace::new(
            ("2001:db8::1".parse().unwrap(), 1 << 20),
            ("2001:db8:1::1".parse().unwrap(), 1),
            (5, 5),
            (6, 6),
            1 << 20,
        )
        .unwrap();
        let t = s.tuple((1 << 20) - 1);
        assert_eq!(
            IpAddr::from(t.src),
            "2001:db8::10:0".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            FlowSpace::new((v4("10.0.0.1"), 2), (v4("10.0.0.1"), 2), (1, 1), (1, 1), 5),
            Err(FlowSpaceError::TooManyFlows {
                flows: 5,
                tuples: 4
            })
        );
        assert_eq!(
            FlowSpace::new(
                (v4("255.255.255.255"), 2),
                (v4("10.0.0.1"), 1),
                (1, 1),
                (1, 1),
                1
            ),
            Err(FlowSpaceError::AddressOverflow("source"))
        );
        assert!(matches!(
            FlowSpace::new(
                (v4("1.1.1.1"), 1),
                ("::1".parse().unwrap(), 1),
                (1, 1),
                (1, 1),
                1
            ),
            Err(FlowSpaceError::FamilyMismatch)
        ));
    }
}
