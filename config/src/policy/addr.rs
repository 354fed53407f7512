//! Address literals: hosts, prefixes and ranges for IPv4 and IPv6, parsed once into
//! inclusive numeric ranges so the classifier never sees strings.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IP address family of a range or packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// IPv4: the value lives in the low 32 bits of a `u128`.
    V4,
    /// IPv6: the whole `u128`, first octet most significant.
    V6,
}

impl Family {
    /// The largest address of the family.
    pub const fn max(self) -> u128 {
        match self {
            Family::V4 => u32::MAX as u128,
            Family::V6 => u128::MAX,
        }
    }

    /// Address width in bits.
    pub const fn bits(self) -> u32 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }
}

/// An inclusive range of addresses of one family (`lo <= hi`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AddrRange {
    /// Family of both ends.
    pub family: Family,
    /// First address (inclusive).
    pub lo: u128,
    /// Last address (inclusive).
    pub hi: u128,
}

impl AddrRange {
    /// Every address of a family.
    pub const fn any(family: Family) -> Self {
        AddrRange {
            family,
            lo: 0,
            hi: family.max(),
        }
    }

    /// A prefix `addr/len`; host bits of `addr` are ignored.
    pub fn prefix(family: Family, addr: u128, len: u32) -> Self {
        let bits = family.bits();
        debug_assert!(len <= bits);
        let host_bits = bits - len;
        let host_mask: u128 = if host_bits == 0 {
            0
        } else if host_bits >= 128 {
            u128::MAX
        } else {
            (1u128 << host_bits) - 1
        };
        let lo = addr & !host_mask & family.max();
        AddrRange {
            family,
            lo,
            hi: lo | host_mask,
        }
    }

    /// A single IPv4 or IPv6 address.
    pub fn host(ip: IpAddr) -> Self {
        let (family, v) = ip_to_u128(ip);
        AddrRange {
            family,
            lo: v,
            hi: v,
        }
    }

    /// Whether `addr` (of the same family) lies inside.
    pub fn contains(&self, family: Family, addr: u128) -> bool {
        self.family == family && self.lo <= addr && addr <= self.hi
    }
}

/// Splits an `IpAddr` into its family and numeric value.
pub fn ip_to_u128(ip: IpAddr) -> (Family, u128) {
    match ip {
        IpAddr::V4(a) => (Family::V4, u32::from(a) as u128),
        IpAddr::V6(a) => (Family::V6, u128::from(a)),
    }
}

/// Turns a family and numeric value back into an `IpAddr`.
pub fn u128_to_ip(family: Family, v: u128) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::from(v as u32)),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(v)),
    }
}

impl fmt::Display for AddrRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lo = u128_to_ip(self.family, self.lo);
        if self.lo == self.hi {
            return write!(f, "{lo}");
        }
        // Print as a prefix when it is one.
        let span = self.hi - self.lo;
        if span.wrapping_add(1) & span == 0 && self.lo & span == 0 {
            let host_bits = 128 - span.leading_zeros();
            return write!(f, "{lo}/{}", self.family.bits() - host_bits);
        }
        write!(f, "{lo}-{}", u128_to_ip(self.family, self.hi))
    }
}

/// The one or two ranges an address literal stands for (two only for `any`), without a heap
/// allocation: validation parses one per address of every rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddrRanges {
    items: [AddrRange; 2],
    len: usize,
}

impl AddrRanges {
    fn one(r: AddrRange) -> Self {
        AddrRanges {
            items: [r, r],
            len: 1,
        }
    }
}

impl std::ops::Deref for AddrRanges {
    type Target = [AddrRange];
    fn deref(&self) -> &[AddrRange] {
        &self.items[..self.len]
    }
}

impl IntoIterator for AddrRanges {
    type Item = AddrRange;
    type IntoIter = std::iter::Take<std::array::IntoIter<AddrRange, 2>>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter().take(self.len)
    }
}

/// Parses `"10.0.0.1"`, `"10.0.0.0/8"`, `"10.0.0.1-10.0.0.9"`, the same for IPv6, or `"any"`
/// (which yields both families). The error is a reason without the path.
pub fn parse_addr(s: &str) -> Result<AddrRanges, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("any") {
        return Ok(AddrRanges {
            items: [AddrRange::any(Family::V4), AddrRange::any(Family::V6)],
            len: 2,
        });
    }
    if let Some((a, len)) = s.split_once('/') {
        let ip: IpAddr = a
            .parse()
            .map_err(|_| format!("bad prefix {s:?}: {a:?} is not an IP address"))?;
        let (family, v) = ip_to_u128(ip);
        let len: u32 = len
            .parse()
            .map_err(|_| format!("bad prefix {s:?}: length {len:?} is not a number"))?;
        if len > family.bits() {
            return Err(format!(
                "bad prefix {s:?}: length {len} exceeds {}",
                family.bits()
            ));
        }
        return Ok(AddrRanges::one(AddrRange::prefix(family, v, len)));
    }
    if let Some((a, b)) = s.split_once('-') {
        let a: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| format!("bad range {s:?}: {a:?} is not an IP address"))?;
        let b: IpAddr = b
            .trim()
            .parse()
            .map_err(|_| format!("bad range {s:?}: {b:?} is not an IP address"))?;
        let (fa, va) = ip_to_u128(a);
        let (fb, vb) = ip_to_u128(b);
        if fa != fb {
            return Err(format!("bad range {s:?}: ends are of different families"));
        }
        if va > vb {
            return Err(format!("bad range {s:?}: first address is above the last"));
        }
        return Ok(AddrRanges::one(AddrRange {
            family: fa,
            lo: va,
            hi: vb,
        }));
    }
    let ip: IpAddr = s
        .parse()
        .map_err(|_| format!("{s:?} is not an IP address, prefix or range"))?;
    Ok(AddrRanges::one(AddrRange::host(ip)))
}

/// Sorts and merges overlapping or adjacent ranges of each family.
pub fn normalize(mut v: Vec<AddrRange>) -> Vec<AddrRange> {
    v.sort();
    let mut out: Vec<AddrRange> = Vec::with_capacity(v.len());
    for r in v {
        if let Some(last) = out.last_mut() {
            if last.family == r.family && r.lo <= last.hi.saturating_add(1) {
                last.hi = last.hi.max(r.hi);
                continue;
            }
        }
        out.push(r);
    }
    out
}

/// The complement of a set of ranges over both families' full spaces.
pub fn complement(set: &[AddrRange]) -> Vec<AddrRange> {
    let set = normalize(set.to_vec());
    let mut out = Vec::new();
    for family in [Family::V4, Family::V6] {
        let mut next: Option<u128> = Some(0);
        for r in set.iter().filter(|r| r.family == family) {
            if let Some(n) = next {
                if r.lo > n {
                    out.push(AddrRange {
                        family,
                        lo: n,
                        hi: r.lo - 1,
                    });
                }
            }
            next = r.hi.checked_add(1).filter(|&x| x <= family.max());
        }
        if let Some(n) = next {
            out.push(AddrRange {
                family,
                lo: n,
                hi: family.max(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_literals() {
        let r = parse_addr("10.1.2.3/8").unwrap();
        assert_eq!(r[0].lo, 0x0a00_0000);
        assert_eq!(r[0].hi, 0x0aff_ffff);
        assert_eq!(r[0].to_string(), "10.0.0.0/8");
        let r = parse_addr("2001:db8::/32").unwrap();
        assert_eq!(r[0].family, Family::V6);
        assert_eq!(r[0].to_string(), "2001:db8::/32");
        let r = parse_addr("10.0.0.1-10.0.0.9").unwrap();
        assert_eq!((r[0].lo, r[0].hi), (0x0a00_0001, 0x0a00_0009));
        assert_eq!(parse_addr("::/0").unwrap()[0].hi, u128::MAX);
        assert_eq!(parse_addr("0.0.0.0/0").unwrap()[0].hi, u32::MAX as u128);
        assert!(parse_addr("10.0.0.0/33").is_err());
        assert!(parse_addr("10.0.0.300").is_err());
        assert!(parse_addr("10.0.0.9-10.0.0.1").is_err());
        assert!(parse_addr("10.0.0.1-::1").is_err());
    }

    #[test]
    fn complement_covers_the_rest() {
        let set = parse_addr("10.0.0.0/8").unwrap();
        let c = complement(&set);
        assert_eq!(c.len(), 3);
        assert_eq!((c[0].lo, c[0].hi), (0, 0x09ff_ffff));
        assert_eq!((c[1].lo, c[1].hi), (0x0b00_0000, u32::MAX as u128));
        assert_eq!(c[2], AddrRange::any(Family::V6));
        assert!(complement(&parse_addr("any").unwrap()).is_empty());
    }
}
