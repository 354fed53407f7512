//! The TSC: read it once per burst (~38 cycles here), never per packet.

use rampart_dpdk_sys as sys;

/// The current timestamp counter.
#[inline(always)]
pub fn rdtsc() -> u64 {
    // SAFETY: reads the CPU's timestamp counter; no memory is touched.
    unsafe { sys::rte_rdtsc() }
}

/// TSC ticks per second as measured by EAL (0 before EAL init).
pub fn tsc_hz() -> u64 {
    // SAFETY: reads a value EAL computed at init; returns 0 if EAL is not initialised.
    unsafe { sys::rte_get_tsc_hz() }
}
