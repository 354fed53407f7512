//! The one safe wrapper over DPDK (see STYLE.md §2).
//!
//! Everything above this crate is safe Rust: it gets an [`Eal`] handle, [`Mempool`]s, [`Port`]s
//! with their [`RxQueue`]s/[`TxQueue`]s (owned by exactly one worker each: `Send`, not `Sync`),
//! and packets as [`Mbuf`]s inside fixed-size [`MbufBurst`]s whose data is only ever seen as
//! `&[u8]` / `&mut [u8]`.
//!
//! Lifetimes are ordered by the caller, as in every DPDK program: create the [`Eal`] first and
//! drop (or [`Eal::cleanup`]) it last, after ports and queues. Mempools live until EAL cleanup.

mod eal;
mod errno;
mod mbuf;
mod memory;
mod mempool;
mod port;
mod time;

pub use eal::{Eal, EalError, LaunchError, LcoreId};
pub use errno::{rte_errno, strerror};
pub use mbuf::{Mbuf, MbufBurst};
pub use memory::advise_hugepages;
pub use mempool::{Mempool, MempoolConfig, MempoolError};
pub use port::{
    DevInfo, Port, PortConfig, PortError, PortId, PortStats, QueueId, RxQueue, TxQueue,
    SYMMETRIC_RSS_KEY,
};
pub use time::{rdtsc, tsc_hz};

/// The DPDK version string of the linked library, e.g. "DPDK 22.11.11".
pub fn version() -> String {
    // SAFETY: rte_version returns a pointer to a static NUL-terminated string (valid before EAL init).
    let ptr = unsafe { rampart_dpdk_sys::rte_version() };
    // SAFETY: non-null static C string, see above.
    unsafe { std::ffi::CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}
