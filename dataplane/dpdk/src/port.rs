//! Ethernet ports and their queues.

use crate::errno::strerror;
use crate::mbuf::MbufBurst;
use crate::mempool::{Mempool, SOCKET_ID_ANY};
use rampart_dpdk_sys as sys;
use std::ffi::{CStr, CString};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A DPDK ethdev port id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(pub u16);

impl std::fmt::Display for PortId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "port {}", self.0)
    }
}

/// A queue index on a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueId(pub u16);

/// The symmetric Toeplitz key (0x6d5a repeated): hash(src,dst) == hash(dst,src), so both
/// directions of a flow land on the same queue and thus the same worker.
pub const SYMMETRIC_RSS_KEY: [u8; 52] = {
    let mut k = [0u8; 52];
    let mut i = 0;
    while i < 52 {
        k[i] = if i % 2 == 0 { 0x6d } else { 0x5a };
        i += 1;
    }
    k
};

// RTE_ETH_RSS_* bits (function-like macros bindgen cannot evaluate), DPDK 22.11 rte_ethdev.h.
const RSS_IPV4: u64 = 1 << 2;
const RSS_FRAG_IPV4: u64 = 1 << 3;
const RSS_NONFRAG_IPV4_TCP: u64 = 1 << 4;
const RSS_NONFRAG_IPV4_UDP: u64 = 1 << 5;
const RSS_NONFRAG_IPV4_OTHER: u64 = 1 << 7;
const RSS_IPV6: u64 = 1 << 8;
const RSS_FRAG_IPV6: u64 = 1 << 9;
const RSS_NONFRAG_IPV6_TCP: u64 = 1 << 10;
const RSS_NONFRAG_IPV6_UDP: u64 = 1 << 11;
const RSS_NONFRAG_IPV6_OTHER: u64 = 1 << 13;
/// The flow types we hash on: IPv4/IPv6 addresses and TCP/UDP ports.
const RSS_WANTED: u64 = RSS_IPV4
    | RSS_FRAG_IPV4
    | RSS_NONFRAG_IPV4_TCP
    | RSS_NONFRAG_IPV4_UDP
    | RSS_NONFRAG_IPV4_OTHER
    | RSS_IPV6
    | RSS_FRAG_IPV6
    | RSS_NONFRAG_IPV6_TCP
    | RSS_NONFRAG_IPV6_UDP
    | RSS_NONFRAG_IPV6_OTHER;

/// Errors from attaching, configuring or starting a port.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// The device string contained a NUL byte.
    #[error("device {0:?} contains a NUL byte")]
    InvalidDevice(String),
    /// No driver accepted the device string (unknown vdev name, missing PCI device, bad args).
    #[error("cannot attach device {device:?}: {reason}")]
    Attach {
        /// The device string as given.
        device: String,
        /// DPDK's text for the error.
        reason: String,
    },
    /// The device was probed but no ethdev port carries its name.
    #[error("device {0:?} was attached but provides no Ethernet port")]
    NoEthPort(String),
    /// `rte_eth_dev_info_get` failed.
    #[error("{port}: cannot read device info: {reason}")]
    Info {
        /// The port.
        port: PortId,
        /// DPDK's text for the error.
        reason: String,
    },
    /// The device cannot have as many queues as asked for.
    #[error("{port} ({name}) supports at most {max_rx} RX / {max_tx} TX queues, {wanted} needed (one per worker)")]
    TooManyQueues {
        /// The port.
        port: PortId,
        /// Device name.
        name: String,
        /// Device limit.
        max_rx: u16,
        /// Device limit.
        max_tx: u16,
        /// Queues asked for.
        wanted: u16,
    },
    /// A DPDK configuration step failed (`step` names it).
    #[error("{port} ({name}): {step} failed: {reason}")]
    Setup {
        /// The port.
        port: PortId,
        /// Device name.
        name: String,
        /// Which call failed, e.g. "rte_eth_dev_configure".
        step: &'static str,
        /// DPDK's text for the error.
        reason: String,
    },
}

/// How to configure a port.
#[derive(Debug, Clone)]
pub struct PortConfig {
    /// RX queues (one per worker).
    pub rx_queues: u16,
    /// TX queues (one per worker).
    pub tx_queues: u16,
    /// RX descriptors per queue (adjusted to the device limits).
    pub rx_desc: u16,
    /// TX descriptors per queue (adjusted to the device limits).
    pub tx_desc: u16,
    /// Receive frames for every MAC address (a bump in the wire must).
    pub promiscuous: bool,
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: 1024,
            tx_desc: 1024,
            promiscuous: true,
        }
    }
}

/// What the device says about itself.
#[derive(Debug, Clone)]
pub struct DevInfo {
    /// Driver name, e.g. "net_null".
    pub driver: String,
    /// Maximum RX queues.
    pub max_rx_queues: u16,
    /// Maximum TX queues.
    pub max_tx_queues: u16,
    /// RSS flow types the device can hash (0 = no RSS).
    pub rss_offloads: u64,
    /// RSS key size in bytes (0 = default 40).
    pub hash_key_size: u8,
}

/// Port counters as kept by the driver.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Packets received.
    pub ipackets: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Packets dropped by the device because no RX descriptor was free (we were too slow).
    pub imissed: u64,
    /// Erroneous received packets.
    pub ierrors: u64,
    /// Failed transmissions.
    pub oerrors: u64,
    /// RX mbuf allocation failures.
    pub rx_nombuf: u64,
}

impl PortStats {
    /// The driver counters of port `id`, or zeros when the driver cannot say. Any thread may
    /// read them while workers run; the metrics endpoint does, by id, so that it never holds a
    /// [`Port`] handle (which would keep the port open past EAL cleanup).
    pub fn read(id: PortId) -> PortStats {
        let mut s = sys::rte_eth_stats::default();
        // SAFETY: `s` is a valid, writable rte_eth_stats; an unknown id is an error return.
        let ret = unsafe { sys::rte_eth_stats_get(id.0, &mut s) };
        if ret != 0 {
            return PortStats::default();
        }
        PortStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        }
    }
}

#[derive(Debug)]
struct PortShared {
    id: PortId,
    name: String,
    started: AtomicBool,
    /// Keeps the RX pool referenced for as long as any queue can receive into it.
    _pool: Mempool,
}

impl PortShared {
    fn stop(&self) {
        if self.started.swap(false, Ordering::SeqCst) {
            // SAFETY: the port was started by us; stopping is a control-path call. DPDK swaps
            // the fast-path ops to no-op dummies, so queues still held by workers stay safe.
            unsafe { sys::rte_eth_dev_stop(self.id.0) };
        }
    }
}

impl Drop for PortShared {
    fn drop(&mut self) {
        self.stop();
        // SAFETY: the last handle (port or queue) is gone, so nothing uses the port any more.
        unsafe { sys::rte_eth_dev_close(self.id.0) };
    }
}

/// A configured, started Ethernet port. It is stopped and closed when this handle and all of
/// its queues are dropped; [`Port::stop`] stops it earlier (for a clean shutdown).
#[derive(Debug, Clone)]
pub struct Port {
    shared: Arc<PortShared>,
}

impl Port {
    /// Find the port for a device string, attaching (hot-plugging) it if no port has that name
    /// yet. `device` is a PCI address (`0000:01:00.0`) or a vdev string
    /// (`net_af_packet0,iface=veth0`); the part before the first comma is the port name.
    pub fn attach(device: &str) -> Result<PortId, PortError> {
        let name = device.split(',').next().unwrap_or(device).trim();
        if let Some(id) = port_by_name(name)? {
            return Ok(id);
        }
        let c = CString::new(device).map_err(|_| PortError::InvalidDevice(device.into()))?;
        // SAFETY: valid C string; EAL initialised (caller holds an Eal); control-path call.
        let ret = unsafe { sys::rte_dev_probe(c.as_ptr()) };
        if ret < 0 {
            return Err(PortError::Attach {
                device: device.into(),
                reason: probe_reason(ret),
            });
        }
        port_by_name(name)?.ok_or_else(|| PortError::NoEthPort(device.into()))
    }

    /// Device information of a port.
    pub fn info(id: PortId) -> Result<DevInfo, PortError> {
        let mut info = sys::rte_eth_dev_info::default();
        // SAFETY: `info` is a valid, writable rte_eth_dev_info.
        let ret = unsafe { sys::rte_eth_dev_info_get(id.0, &mut info) };
        if ret != 0 {
            return Err(PortError::Info {
                port: id,
                reason: strerror(ret),
            });
        }
        let driver = if info.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: driver_name is a static NUL-terminated string owned by the driver.
            unsafe { CStr::from_ptr(info.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        Ok(DevInfo {
            driver,
            max_rx_queues: info.max_rx_queues,
            max_tx_queues: info.max_tx_queues,
            rss_offloads: info.flow_type_rss_offloads,
            hash_key_size: info.hash_key_size,
        })
    }

    /// Configure `id` with `cfg`, receiving into `pool`, and start it. Returns the port and one
    /// RX and one TX queue handle per queue index, to be moved to the workers.
    ///
    /// With more than one RX queue and a device that supports RSS, RSS is enabled with the
    /// symmetric Toeplitz key over IPv4/IPv6 addresses and TCP/UDP ports.
    pub fn start(
        id: PortId,
        cfg: &PortConfig,
        pool: &Mempool,
    ) -> Result<(Port, Vec<RxQueue>, Vec<TxQueue>), PortError> {
        let name = port_name(id);
        let info = Port::info(id)?;
        let setup_err = |step: &'static str, ret: i32| PortError::Setup {
            port: id,
            name: name.clone(),
            step,
            reason: strerror(ret),
        };
        if cfg.rx_queues > info.max_rx_queues || cfg.tx_queues > info.max_tx_queues {
            return Err(PortError::TooManyQueues {
                port: id,
                name,
                max_rx: info.max_rx_queues,
                max_tx: info.max_tx_queues,
                wanted: cfg.rx_queues.max(cfg.tx_queues),
            });
        }

        let mut conf = sys::rte_eth_conf::default();
        let mut key = SYMMETRIC_RSS_KEY;
        let rss_hf = info.rss_offloads & RSS_WANTED;
        if cfg.rx_queues > 1 && rss_hf != 0 {
            let key_len = match info.hash_key_size {
                0 => 40,
                n => (n as usize).min(key.len()),
            };
            conf.rxmode.mq_mode = sys::rte_eth_rx_mq_mode_RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_key = key.as_mut_ptr();
            conf.rx_adv_conf.rss_conf.rss_key_len = key_len as u8;
            conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
        }
        // SAFETY: `conf` is a valid configuration; the RSS key it points to outlives the call
        // (DPDK copies it).
        let ret = unsafe { sys::rte_eth_dev_configure(id.0, cfg.rx_queues, cfg.tx_queues, &conf) };
        if ret != 0 {
            return Err(setup_err("rte_eth_dev_configure", ret));
        }

        let (mut rx_desc, mut tx_desc) = (cfg.rx_desc, cfg.tx_desc);
        // SAFETY: valid pointers to two u16 the call may adjust.
        let ret =
            unsafe { sys::rte_eth_dev_adjust_nb_rx_tx_desc(id.0, &mut rx_desc, &mut tx_desc) };
        if ret != 0 {
            return Err(setup_err("rte_eth_dev_adjust_nb_rx_tx_desc", ret));
        }
        // SAFETY: plain query.
        let socket = unsafe { sys::rte_eth_dev_socket_id(id.0) };
        let socket = if socket < 0 { SOCKET_ID_ANY } else { socket } as u32;
        for q in 0..cfg.rx_queues {
            // SAFETY: the port is configured with rx_queues queues; NULL rxconf = driver
            // defaults; the mempool stays alive (held by PortShared) while the port exists.
            let ret = unsafe {
                sys::rte_eth_rx_queue_setup(
                    id.0,
                    q,
                    rx_desc,
                    socket,
                    std::ptr::null(),
                    pool.as_ptr(),
                )
            };
            if ret != 0 {
                return Err(setup_err("rte_eth_rx_queue_setup", ret));
            }
        }
        for q in 0..cfg.tx_queues {
            // SAFETY: the port is configured with tx_queues queues; NULL txconf = defaults.
            let ret =
                unsafe { sys::rte_eth_tx_queue_setup(id.0, q, tx_desc, socket, std::ptr::null()) };
            if ret != 0 {
                return Err(setup_err("rte_eth_tx_queue_setup", ret));
            }
        }
        if cfg.promiscuous {
            // SAFETY: control-path call on a configured port. Some vdevs (net_null, net_ring)
            // report ENOTSUP and are promiscuous anyway, so the result is ignored.
            unsafe { sys::rte_eth_promiscuous_enable(id.0) };
        }
        // SAFETY: every queue is set up.
        let ret = unsafe { sys::rte_eth_dev_start(id.0) };
        if ret != 0 {
            return Err(setup_err("rte_eth_dev_start", ret));
        }

        let shared = Arc::new(PortShared {
            id,
            name,
            started: AtomicBool::new(true),
            _pool: pool.clone(),
        });
        let rx = (0..cfg.rx_queues)
            .map(|q| RxQueue {
                port: shared.clone(),
                queue: QueueId(q),
                _not_sync: PhantomData,
            })
            .collect();
        let tx = (0..cfg.tx_queues)
            .map(|q| TxQueue {
                port: shared.clone(),
                queue: QueueId(q),
                _not_sync: PhantomData,
            })
            .collect();
        Ok((Port { shared }, rx, tx))
    }

    /// The port id.
    pub fn id(&self) -> PortId {
        self.shared.id
    }

    /// The device name (e.g. "net_null0" or a PCI address).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The port's MAC address.
    pub fn mac(&self) -> [u8; 6] {
        let mut addr = sys::rte_ether_addr::default();
        // SAFETY: `addr` is a valid, writable rte_ether_addr.
        unsafe { sys::rte_eth_macaddr_get(self.shared.id.0, &mut addr) };
        addr.addr_bytes
    }

    /// Driver counters (safe to read from any thread while workers run).
    pub fn stats(&self) -> PortStats {
        PortStats::read(self.shared.id)
    }

    /// True when the link is up (without waiting; memif and af_packet links come up
    /// asynchronously after start).
    pub fn link_up(&self) -> bool {
        let mut link = sys::rte_eth_link::default();
        // SAFETY: `link` is a valid, writable rte_eth_link; the call does not block.
        let ret = unsafe { sys::rte_eth_link_get_nowait(self.shared.id.0, &mut link) };
        ret == 0 && link.link_status() != 0
    }

    /// Stop the port (idempotent). Queues still held return nothing / send nothing afterwards.
    /// Close happens when the last handle is dropped.
    pub fn stop(&self) {
        self.shared.stop();
    }
}

/// One RX queue of a port, owned by one worker: `Send`, not `Sync`.
#[derive(Debug)]
pub struct RxQueue {
    port: Arc<PortShared>,
    queue: QueueId,
    _not_sync: PhantomData<std::cell::Cell<()>>,
}

// SAFETY: a queue may be polled from any single thread; the handle is moved, never shared (not
// Sync), which is exactly DPDK's rule that one queue is used by one thread at a time.
unsafe impl Send for RxQueue {}

impl RxQueue {
    /// The port this queue belongs to.
    pub fn port_id(&self) -> PortId {
        self.port.id
    }

    /// The queue index.
    pub fn queue_id(&self) -> QueueId {
        self.queue
    }

    /// Receive into the free slots of `burst`; returns how many mbufs were added.
    #[inline(always)]
    pub fn rx_burst<const N: usize>(&mut self, burst: &mut MbufBurst<N>) -> usize {
        let (ptr, spare) = burst.spare_raw();
        if spare == 0 {
            return 0;
        }
        // SAFETY: `ptr` has `spare` writable slots; this thread is the only user of the queue
        // (&mut self, !Sync); the driver writes at most `spare` owned mbuf pointers.
        let n = unsafe { sys::rte_eth_rx_burst(self.port.id.0, self.queue.0, ptr, spare as u16) }
            as usize;
        // SAFETY: the driver filled exactly n slots with owned mbufs.
        unsafe { burst.commit_spare(n) };
        n
    }
}

/// One TX queue of a port, owned by one worker: `Send`, not `Sync`.
#[derive(Debug)]
pub struct TxQueue {
    port: Arc<PortShared>,
    queue: QueueId,
    _not_sync: PhantomData<std::cell::Cell<()>>,
}

// SAFETY: as for RxQueue.
unsafe impl Send for TxQueue {}

impl TxQueue {
    /// The port this queue belongs to.
    pub fn port_id(&self) -> PortId {
        self.port.id
    }

    /// The queue index.
    pub fn queue_id(&self) -> QueueId {
        self.queue
    }

    /// Hand the mbufs of `burst` to the device, front first. Returns how many were sent; the
    /// unsent ones stay in `burst` (moved to the front) for a retry or [`MbufBurst::clear`].
    #[inline(always)]
    pub fn tx_burst<const N: usize>(&mut self, burst: &mut MbufBurst<N>) -> usize {
        let (ptr, len) = burst.filled_raw();
        if len == 0 {
            return 0;
        }
        // SAFETY: `ptr` holds `len` owned mbufs; this thread is the only user of the queue.
        // The driver takes ownership of the first `sent` of them.
        let sent = unsafe { sys::rte_eth_tx_burst(self.port.id.0, self.queue.0, ptr, len as u16) }
            as usize;
        // SAFETY: the first `sent` mbufs now belong to the driver.
        unsafe { burst.forget_front(sent) };
        sent
    }

    /// Send what the device takes and free the rest. Returns `(sent, dropped)`.
    #[inline(always)]
    pub fn tx_burst_or_free<const N: usize>(&mut self, burst: &mut MbufBurst<N>) -> (usize, usize) {
        let sent = self.tx_burst(burst);
        let dropped = burst.clear();
        (sent, dropped)
    }
}

fn port_by_name(name: &str) -> Result<Option<PortId>, PortError> {
    let c = CString::new(name).map_err(|_| PortError::InvalidDevice(name.into()))?;
    let mut id: u16 = 0;
    // SAFETY: valid C string and a writable u16.
    let ret = unsafe { sys::rte_eth_dev_get_port_by_name(c.as_ptr(), &mut id) };
    Ok((ret == 0).then_some(PortId(id)))
}

fn port_name(id: PortId) -> String {
    let mut buf = [0 as std::ffi::c_char; sys::RTE_ETH_NAME_MAX_LEN as usize];
    // SAFETY: `buf` has RTE_ETH_NAME_MAX_LEN bytes as the API requires.
    let ret = unsafe { sys::rte_eth_dev_get_name_by_port(id.0, buf.as_mut_ptr()) };
    if ret != 0 {
        return format!("port{}", id.0);
    }
    // SAFETY: DPDK wrote a NUL-terminated string into buf.
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

fn probe_reason(ret: i32) -> String {
    match -ret {
        17 => "a device with that name already exists".into(),
        _ => format!(
            "no driver accepted it; check the vdev name, PCI address and arguments ({})",
            strerror(ret)
        ),
    }
}
