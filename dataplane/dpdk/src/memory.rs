//! Memory advice for large per-worker tables that do not live in DPDK's hugepages.

/// Asks the kernel to back the pages of `region` with transparent huge pages
/// (`madvise(MADV_HUGEPAGE)`). Random lookups into tables of tens of megabytes (a worker's flow
/// table at 1M flows) otherwise miss the TLB on nearly every access; with 2 MiB pages they
/// mostly do not. Call it on memory that is allocated but not yet written: pages the kernel
/// already backed with 4 KiB pages are only merged later, if ever, by khugepaged.
///
/// Only whole 4 KiB pages inside the region are advised. Returns false when the kernel refused
/// (no THP support, or THP `never`); the memory works the same either way, only slower.
/// Works without EAL.
pub fn advise_hugepages<T>(region: &mut [T]) -> bool {
    const PAGE: usize = 4096;
    let start = region.as_mut_ptr() as usize;
    let end = start + std::mem::size_of_val(region);
    let (lo, hi) = (start.next_multiple_of(PAGE), end / PAGE * PAGE);
    if hi <= lo {
        return false;
    }
    // SAFETY: [lo, hi) is page-aligned and lies inside `region`, which we borrow exclusively
    // for the call, so it is mapped memory that nothing else is using. MADV_HUGEPAGE only sets
    // a flag on the mapping (the kernel may split the VMA); it never changes the contents or
    // the validity of any byte, so no Rust invariant can be affected.
    let ret = unsafe { libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_HUGEPAGE) };
    ret == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advising_keeps_the_contents_and_rejects_sub_page_regions() {
        let mut big = vec![7u64; 1 << 20]; // 8 MiB: whole pages inside, whatever the alignment
        let _ = advise_hugepages(&mut big); // THP may be disabled on the host: result varies
        assert!(big.iter().all(|&v| v == 7));
        let mut small = [1u8; 16];
        assert!(!advise_hugepages(&mut small));
        assert_eq!(small, [1u8; 16]);
    }
}
