//! `rte_errno` and error strings.

use rampart_dpdk_sys as sys;
use std::ffi::CStr;

/// The calling thread's `rte_errno` (DPDK's per-lcore errno), read through a C helper because
/// it is a macro over a thread-local.
pub fn rte_errno() -> i32 {
    // SAFETY: reads a thread-local int; no preconditions.
    unsafe { sys::rampart_rte_errno() }
}

/// DPDK's description of an errno value (positive or negated), covering both libc and `E_RTE_*`.
pub fn strerror(errno: i32) -> String {
    // SAFETY: rte_strerror accepts any int and returns a pointer to a NUL-terminated string that
    // stays valid until the next call on this thread; we copy it out immediately.
    let ptr = unsafe { sys::rte_strerror(errno.abs()) };
    if ptr.is_null() {
        return format!("error {errno}");
    }
    // SAFETY: non-null NUL-terminated string from rte_strerror, see above.
    unsafe { CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}
