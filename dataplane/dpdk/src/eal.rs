//! EAL initialisation, lcores and launching work on them.

use crate::errno::{rte_errno, strerror};
use rampart_dpdk_sys as sys;
use std::ffi::{c_char, c_int, c_void, CString};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once `rte_eal_init` succeeded: DPDK allows one EAL per process, initialised once.
static EAL_INITIALISED: AtomicBool = AtomicBool::new(false);

/// Errors from EAL initialisation.
#[derive(Debug, thiserror::Error)]
pub enum EalError {
    /// EAL was already initialised in this process (DPDK supports one init per process).
    #[error("the DPDK EAL is already initialised in this process")]
    AlreadyInitialised,
    /// An EAL argument contained a NUL byte and cannot be passed to C.
    #[error("EAL argument {0:?} contains a NUL byte")]
    NulInArgument(String),
    /// `rte_eal_init` failed; `errno` is `rte_errno`.
    #[error("DPDK EAL initialisation failed: {reason} ({hint})")]
    Init {
        /// rte_errno after the failed call.
        errno: i32,
        /// DPDK's text for `errno`.
        reason: String,
        /// What the operator most likely has to change.
        hint: &'static str,
    },
}

/// Errors from launching work on an lcore.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The lcore is the main lcore, not enabled, or already busy.
    #[error("cannot launch on lcore {lcore}: {reason}")]
    Launch {
        /// The lcore asked for.
        lcore: u32,
        /// DPDK's text for the returned error.
        reason: String,
    },
}

/// An EAL logical core id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LcoreId(pub u32);

impl std::fmt::Display for LcoreId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "lcore {}", self.0)
    }
}

/// The initialised DPDK Environment Abstraction Layer. Drop (or [`Eal::cleanup`]) releases it;
/// do that last, after every port and queue is gone.
#[derive(Debug)]
pub struct Eal {
    cleaned: bool,
}

impl Eal {
    /// Initialise EAL with `args` as on a DPDK command line (without the program name), e.g.
    /// `["-l", "0,1", "--no-pci", "--in-memory"]`.
    pub fn init<S: AsRef<str>>(args: &[S]) -> Result<Eal, EalError> {
        if EAL_INITIALISED.swap(true, Ordering::SeqCst) {
            return Err(EalError::AlreadyInitialised);
        }
        let mut owned = Vec::with_capacity(args.len() + 1);
        owned.push(CString::new("rampart").expect("static string has no NUL"));
        for arg in args {
            let arg = arg.as_ref();
            match CString::new(arg) {
                Ok(c) => owned.push(c),
                Err(_) => {
                    EAL_INITIALISED.store(false, Ordering::SeqCst);
                    return Err(EalError::NulInArgument(arg.to_owned()));
                }
            }
        }
        // EAL may keep pointers into argv for the life of the process (and reorders argv):
        // leak the strings and the array; this happens once per process.
        let owned: &'static mut [CString] = Box::leak(owned.into_boxed_slice());
        let argv: &'static mut [*mut c_char] = Box::leak(
            owned
                .iter()
                .map(|c| c.as_ptr() as *mut c_char)
                .collect::<Vec<_>>()
                .into_boxed_slice(),
        );
        let argc = argv.len() as c_int;
        // SAFETY: argc/argv describe valid NUL-terminated strings that live forever (leaked
        // above); EAL is initialised at most once per process (guarded by EAL_INITIALISED).
        let ret = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if ret < 0 {
            let errno = rte_errno();
            // A failed init cannot be retried in DPDK (it returns EALREADY), keep the flag set.
            return Err(EalError::Init {
                errno,
                reason: strerror(errno),
                hint: init_hint(errno, args),
            });
        }
        Ok(Eal { cleaned: false })
    }

    /// The main lcore (the one that called [`Eal::init`]).
    pub fn main_lcore(&self) -> LcoreId {
        // SAFETY: EAL is initialised (self exists); reads configuration.
        LcoreId(unsafe { sys::rte_get_main_lcore() })
    }

    /// Every enabled lcore except the main one, in ascending order.
    pub fn worker_lcores(&self) -> Vec<LcoreId> {
        let mut out = Vec::new();
        let mut i: u32 = u32::MAX; // -1: start from the beginning
        loop {
            // SAFETY: EAL is initialised; rte_get_next_lcore only reads the lcore configuration.
            i = unsafe { sys::rte_get_next_lcore(i, 1, 0) };
            if i >= sys::RTE_MAX_LCORE {
                break;
            }
            out.push(LcoreId(i));
        }
        out
    }

    /// The lcore the calling thread runs on, if it is an EAL thread.
    pub fn current_lcore() -> Option<LcoreId> {
        // SAFETY: reads a thread-local; no preconditions.
        let id = unsafe { sys::rte_lcore_id() };
        (id < sys::RTE_MAX_LCORE).then_some(LcoreId(id))
    }

    /// Run `f` on worker lcore `lcore`; collect its return value with [`Eal::wait`].
    pub fn launch<F>(&self, lcore: LcoreId, f: F) -> Result<(), LaunchError>
    where
        F: FnOnce() -> i32 + Send + 'static,
    {
        let boxed: Box<Box<dyn FnOnce() -> i32 + Send>> = Box::new(Box::new(f));
        let arg = Box::into_raw(boxed) as *mut c_void;
        // SAFETY: `trampoline` takes ownership of `arg` (a leaked Box<Box<dyn FnOnce>>) exactly
        // once when the lcore runs it; on failure DPDK never calls it and we reclaim it below.
        let ret = unsafe { sys::rte_eal_remote_launch(Some(trampoline), arg, lcore.0) };
        if ret != 0 {
            // SAFETY: launch failed, so the trampoline never ran and `arg` is still ours.
            drop(unsafe { Box::from_raw(arg as *mut Box<dyn FnOnce() -> i32 + Send>) });
            return Err(LaunchError::Launch {
                lcore: lcore.0,
                reason: strerror(ret),
            });
        }
        Ok(())
    }

    /// Wait for the function launched on `lcore` to return and get its return value
    /// (0 if nothing was launched there).
    pub fn wait(&self, lcore: LcoreId) -> i32 {
        // SAFETY: EAL is initialised; waiting on any lcore id is allowed (returns 0 when idle).
        unsafe { sys::rte_eal_wait_lcore(lcore.0) }
    }

    /// Register the calling non-EAL thread with EAL so it gets an lcore id (and mempool cache).
    pub fn register_thread(&self) -> Result<LcoreId, EalError> {
        // SAFETY: EAL is initialised; registers the calling thread only.
        let ret = unsafe { sys::rte_thread_register() };
        if ret != 0 {
            let errno = rte_errno();
            return Err(EalError::Init {
                errno,
                reason: strerror(errno),
                hint: "too many lcores in use",
            });
        }
        Eal::current_lcore().ok_or(EalError::Init {
            errno: 0,
            reason: "no lcore id after rte_thread_register".into(),
            hint: "too many lcores in use",
        })
    }

    /// Release EAL resources now (hugepage memory, shared config). Idempotent with Drop.
    pub fn cleanup(mut self) {
        self.do_cleanup();
    }

    fn do_cleanup(&mut self) {
        if !self.cleaned {
            self.cleaned = true;
            // SAFETY: EAL was initialised by this handle; every worker lcore has been waited
            // for by the caller's contract (documented on the type), so no DPDK call is in flight.
            unsafe { sys::rte_eal_cleanup() };
        }
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        self.do_cleanup();
    }
}

extern "C" fn trampoline(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the Box<Box<dyn FnOnce>> leaked by `Eal::launch`, handed to exactly one
    // launch, so we are its only owner.
    let f = unsafe { Box::from_raw(arg as *mut Box<dyn FnOnce() -> i32 + Send>) };
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(-1)
}

/// A one-line hint for the most common EAL init failures.
fn init_hint<S: AsRef<str>>(errno: i32, args: &[S]) -> &'static str {
    let no_huge = args.iter().any(|a| a.as_ref() == "--no-huge");
    match errno {
        libc_errno::ENOMEM if !no_huge => {
            "no free hugepages? reserve some (echo 512 > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages) or pass --no-huge -m 512"
        }
        libc_errno::ENOMEM => "not enough memory for -m",
        libc_errno::EACCES => "run as root (or with CAP_SYS_ADMIN, CAP_NET_RAW, CAP_IPC_LOCK)",
        libc_errno::EINVAL => "check the EAL arguments (note: --no-huge cannot be combined with --in-memory)",
        libc_errno::EALREADY => "EAL was already initialised in this process",
        _ => "see the EAL messages above",
    }
}

/// The few errno values we interpret (Linux numbering; DPDK runs on Linux here).
mod libc_errno {
    pub const EACCES: i32 = 13;
    pub const ENOMEM: i32 = 12;
    pub const EINVAL: i32 = 22;
    pub const EALREADY: i32 = 114;
}
