//! Packet-buffer pools.

use crate::errno::{rte_errno, strerror};
use crate::mbuf::{Mbuf, MbufBurst};
use rampart_dpdk_sys as sys;
use std::ffi::CString;
use std::ptr::NonNull;

/// `RTE_MEMPOOL_NAMESIZE` (a macro bindgen cannot evaluate): RTE_RING_NAMESIZE - sizeof("MP_") + 1.
const MEMPOOL_NAMESIZE: usize = 29;
/// `SOCKET_ID_ANY` (a macro outside the bindings allowlist).
pub(crate) const SOCKET_ID_ANY: i32 = -1;

/// Errors from creating a mempool.
#[derive(Debug, thiserror::Error)]
pub enum MempoolError {
    /// The pool name contained a NUL byte or is longer than DPDK allows.
    #[error("invalid mempool name {0:?}")]
    InvalidName(String),
    /// `rte_pktmbuf_pool_create` failed (usually out of hugepage memory).
    #[error("cannot create mempool {name:?} of {mbufs} mbufs: {reason}")]
    Create {
        /// Pool name.
        name: String,
        /// Requested number of mbufs.
        mbufs: u32,
        /// DPDK's text for rte_errno.
        reason: String,
    },
}

/// Parameters of a packet mempool.
#[derive(Debug, Clone)]
pub struct MempoolConfig {
    /// Pool name, unique in the process.
    pub name: String,
    /// Number of mbufs (a power of two minus one is optimal for the ring).
    pub mbufs: u32,
    /// Per-lcore cache size (at most 512).
    pub cache: u32,
    /// Data room per mbuf including headroom (default 2048 + 128).
    pub data_room: u16,
    /// NUMA socket (`None` = any).
    pub socket: Option<u32>,
}

impl Default for MempoolConfig {
    fn default() -> Self {
        MempoolConfig {
            name: "rampart_pool".into(),
            mbufs: 8191,
            cache: 256,
            data_room: sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16,
            socket: None,
        }
    }
}

/// A packet-buffer pool. It is a cheap handle (`Clone`, `Send`, `Sync`: mempools are
/// multi-producer/multi-consumer safe). The pool itself lives until EAL cleanup, so mbufs in
/// flight can never outlive it.
#[derive(Debug, Clone)]
pub struct Mempool {
    raw: NonNull<sys::rte_mempool>,
}

// SAFETY: rte_mempool get/put are thread-safe (lock-free ring + per-lcore caches); the handle is
// only a pointer to a pool that is never freed before EAL cleanup.
unsafe impl Send for Mempool {}
// SAFETY: see Send; all operations through &Mempool are thread-safe in DPDK.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// Create a pool of packet mbufs. Requires an initialised EAL.
    pub fn create(cfg: &MempoolConfig) -> Result<Mempool, MempoolError> {
        let name = CString::new(cfg.name.as_str())
            .map_err(|_| MempoolError::InvalidName(cfg.name.clone()))?;
        if cfg.name.len() >= MEMPOOL_NAMESIZE {
            return Err(MempoolError::InvalidName(cfg.name.clone()));
        }
        let socket = cfg.socket.map(|s| s as i32).unwrap_or(SOCKET_ID_ANY);
        // SAFETY: name is a valid C string; numeric arguments are plain values; EAL must be
        // initialised (otherwise DPDK returns NULL with rte_errno set, handled below).
        let raw = unsafe {
            sys::rte_pktmbuf_pool_create(
                name.as_ptr(),
                cfg.mbufs,
                cfg.cache.min(sys::RTE_MEMPOOL_CACHE_MAX_SIZE),
                0,
                cfg.data_room,
                socket,
            )
        };
        NonNull::new(raw)
            .map(|raw| Mempool { raw })
            .ok_or_else(|| MempoolError::Create {
                name: cfg.name.clone(),
                mbufs: cfg.mbufs,
                reason: strerror(rte_errno()),
            })
    }

    /// Allocate one empty mbuf (data length 0, headroom reserved).
    #[inline]
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool pointer is valid for the life of EAL; alloc returns NULL or an
        // exclusively owned, reset mbuf.
        let m = unsafe { sys::rte_pktmbuf_alloc(self.raw.as_ptr()) };
        NonNull::new(m).map(Mbuf::from_nonnull)
    }

    /// Allocate `n` mbufs at the end of `burst` in one call; all or nothing.
    /// Returns false (and allocates nothing) if the pool or the burst lacks room.
    #[inline]
    pub fn alloc_bulk<const N: usize>(&self, burst: &mut MbufBurst<N>, n: usize) -> bool {
        if n > burst.spare() {
            return false;
        }
        let (ptr, _) = burst.spare_raw();
        // SAFETY: `ptr` points to at least `n` writable slots past the burst's length; DPDK
        // writes exactly `n` owned mbuf pointers there on success and nothing on failure.
        let ret = unsafe { sys::rte_pktmbuf_alloc_bulk(self.raw.as_ptr(), ptr, n as u32) };
        if ret != 0 {
            return false;
        }
        // SAFETY: the n slots were just filled with valid mbufs we own.
        unsafe { burst.commit_spare(n) };
        true
    }

    /// Mbufs currently available in the pool (approximate while other cores allocate).
    pub fn available(&self) -> u32 {
        // SAFETY: valid pool; reads counters.
        unsafe { sys::rte_mempool_avail_count(self.raw.as_ptr()) }
    }

    /// Mbufs currently allocated from the pool (approximate).
    pub fn in_use(&self) -> u32 {
        // SAFETY: valid pool; reads counters.
        unsafe { sys::rte_mempool_in_use_count(self.raw.as_ptr()) }
    }

    pub(crate) fn as_ptr(&self) -> *mut sys::rte_mempool {
        self.raw.as_ptr()
    }
}
