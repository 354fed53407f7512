//! Packet buffers: an owned [`Mbuf`] and a fixed-size [`MbufBurst`].

use rampart_dpdk_sys as sys;
use std::marker::PhantomData;
use std::ptr::NonNull;

/// One owned packet buffer. Freed on Drop. Its bytes are reachable only as slices.
///
/// Data accessors cover the first segment; the appliance's pools use a data room large enough
/// for one MTU-sized frame, so received frames are single-segment ([`Mbuf::is_contiguous`]).
#[repr(transparent)]
#[derive(Debug)]
pub struct Mbuf {
    raw: NonNull<sys::rte_mbuf>,
}

// SAFETY: an Mbuf is exclusively owned (no aliasing handles exist), and DPDK allows freeing an
// mbuf on any thread, so moving ownership between threads is sound.
unsafe impl Send for Mbuf {}

impl Mbuf {
    pub(crate) fn from_nonnull(raw: NonNull<sys::rte_mbuf>) -> Mbuf {
        Mbuf { raw }
    }

    /// Take ownership of a raw mbuf.
    ///
    /// # Safety
    /// `raw` must be a valid mbuf that nothing else owns or frees afterwards.
    pub unsafe fn from_raw(raw: NonNull<sys::rte_mbuf>) -> Mbuf {
        Mbuf { raw }
    }

    /// Give up ownership; the caller must eventually free the mbuf.
    pub fn into_raw(self) -> NonNull<sys::rte_mbuf> {
        let raw = self.raw;
        std::mem::forget(self);
        raw
    }

    #[inline(always)]
    fn m(&self) -> &sys::rte_mbuf {
        // SAFETY: `raw` is a valid mbuf exclusively owned by self (type invariant).
        unsafe { self.raw.as_ref() }
    }

    /// Bytes in the first segment.
    #[inline(always)]
    pub fn data_len(&self) -> usize {
        self.m().data_len as usize
    }

    /// Bytes in the whole packet (all segments).
    #[inline(always)]
    pub fn pkt_len(&self) -> usize {
        self.m().pkt_len as usize
    }

    /// True when the whole packet is in the first segment.
    #[inline(always)]
    pub fn is_contiguous(&self) -> bool {
        self.m().nb_segs == 1
    }

    /// The port the packet was received on (set by the PMD).
    #[inline(always)]
    pub fn port(&self) -> u16 {
        self.m().port
    }

    /// The RSS hash the NIC computed (0 when the device does not provide one).
    #[inline(always)]
    pub fn rss_hash(&self) -> u32 {
        // SAFETY: reading the `rss` member of a plain-integer union is valid for any bit pattern.
        unsafe { self.m().__bindgen_anon_2.hash.rss }
    }

    /// Free space in front of the data.
    #[inline(always)]
    pub fn headroom(&self) -> usize {
        self.m().data_off as usize
    }

    /// Free space after the data in the first (only) segment.
    #[inline(always)]
    pub fn tailroom(&self) -> usize {
        let m = self.m();
        m.buf_len as usize - m.data_off as usize - m.data_len as usize
    }

    #[inline(always)]
    fn data_ptr(&self) -> *mut u8 {
        let m = self.m();
        // SAFETY: buf_addr + data_off stays inside the mbuf's data buffer (DPDK invariant).
        unsafe { (m.buf_addr as *mut u8).add(m.data_off as usize) }
    }

    /// The packet bytes of the first segment.
    #[inline(always)]
    pub fn data(&self) -> &[u8] {
        // SAFETY: the first segment holds `data_len` initialised bytes at `data_ptr`; the borrow
        // of self keeps the mbuf alive and unaliased.
        unsafe { std::slice::from_raw_parts(self.data_ptr(), self.data_len()) }
    }

    /// The packet bytes of the first segment, writable.
    #[inline(always)]
    pub fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `data`, and &mut self guarantees exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.data_ptr(), self.data_len()) }
    }

    /// Grow the packet by `len` bytes at the end; returns the new (uninitialised-content) bytes,
    /// or `None` if the tailroom is too small. Used to build frames (e.g. TCP RST replies).
    pub fn append(&mut self, len: usize) -> Option<&mut [u8]> {
        let len16 = u16::try_from(len).ok()?;
        // SAFETY: valid owned mbuf; rte_pktmbuf_append returns NULL without changing anything if
        // there is no room, else a pointer to `len` bytes inside the buffer.
        let p = unsafe { sys::rte_pktmbuf_append(self.raw.as_ptr(), len16) };
        if p.is_null() {
            return None;
        }
        // SAFETY: `len` bytes at p are inside this mbuf's buffer and exclusively ours via &mut.
        Some(unsafe { std::slice::from_raw_parts_mut(p as *mut u8, len) })
    }

    /// Grow the packet by `len` bytes at the front (into the headroom); returns the new bytes.
    pub fn prepend(&mut self, len: usize) -> Option<&mut [u8]> {
        let len16 = u16::try_from(len).ok()?;
        // SAFETY: valid owned mbuf; returns NULL (unchanged) if headroom is too small.
        let p = unsafe { sys::rte_pktmbuf_prepend(self.raw.as_ptr(), len16) };
        if p.is_null() {
            return None;
        }
        // SAFETY: `len` bytes at p are inside this mbuf's buffer and exclusively ours via &mut.
        Some(unsafe { std::slice::from_raw_parts_mut(p as *mut u8, len) })
    }

    /// Remove `len` bytes from the end. Returns false (unchanged) if the packet is shorter.
    pub fn trim(&mut self, len: usize) -> bool {
        let Ok(len16) = u16::try_from(len) else {
            return false;
        };
        // SAFETY: valid owned mbuf; rte_pktmbuf_trim fails without change if len is too big.
        unsafe { sys::rte_pktmbuf_trim(self.raw.as_ptr(), len16) == 0 }
    }

    /// Remove `len` bytes from the front. Returns false (unchanged) if the segment is shorter.
    pub fn adj(&mut self, len: usize) -> bool {
        let Ok(len16) = u16::try_from(len) else {
            return false;
        };
        // SAFETY: valid owned mbuf; rte_pktmbuf_adj returns NULL without change if too short.
        unsafe { !sys::rte_pktmbuf_adj(self.raw.as_ptr(), len16).is_null() }
    }

    /// Make the packet empty again (length 0, default headroom) so it can be rebuilt in place.
    pub fn reset(&mut self) {
        // SAFETY: valid owned mbuf; frees nothing, only resets metadata of this segment chain.
        unsafe { sys::rte_pktmbuf_reset(self.raw.as_ptr()) }
    }

    /// Replace the packet contents with `bytes` (single segment). Returns false if it does not fit.
    pub fn set_data(&mut self, bytes: &[u8]) -> bool {
        self.reset();
        match self.append(bytes.len()) {
            Some(buf) => {
                buf.copy_from_slice(bytes);
                true
            }
            None => false,
        }
    }

    /// Prefetch the packet's first data cache line (call a few packets ahead of use).
    #[inline(always)]
    pub fn prefetch_data(&self) {
        // SAFETY: prefetch is a hint; any address is allowed, and this one is valid anyway.
        unsafe { sys::rte_prefetch0(self.data_ptr() as *const _) }
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf (type invariant) and never use it again.
        unsafe { sys::rte_pktmbuf_free(self.raw.as_ptr()) }
    }
}

/// Up to `N` owned mbufs in a fixed array plus a length: the unit a worker receives, processes
/// and transmits. Never allocates. Dropping it frees every mbuf it still holds (in bulk).
pub struct MbufBurst<const N: usize> {
    /// Slots `[0, len)` hold owned, non-null mbufs; the rest are unspecified.
    ptrs: [*mut sys::rte_mbuf; N],
    len: usize,
    /// Not Sync: a burst is one worker's scratch space.
    _not_sync: PhantomData<std::cell::Cell<()>>,
}

// SAFETY: the burst exclusively owns its mbufs (see Mbuf's Send impl).
unsafe impl<const N: usize> Send for MbufBurst<N> {}

impl<const N: usize> Default for MbufBurst<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> std::fmt::Debug for MbufBurst<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MbufBurst")
            .field("len", &self.len)
            .field("capacity", &N)
            .finish()
    }
}

impl<const N: usize> MbufBurst<N> {
    /// An empty burst.
    pub const fn new() -> Self {
        MbufBurst {
            ptrs: [std::ptr::null_mut(); N],
            len: 0,
            _not_sync: PhantomData,
        }
    }

    /// Number of mbufs held.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no mbuf is held.
    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `N`.
    #[inline(always)]
    pub const fn capacity(&self) -> usize {
        N
    }

    /// Free slots left.
    #[inline(always)]
    pub fn spare(&self) -> usize {
        N - self.len
    }

    /// The mbufs held, as a slice of owned handles.
    #[inline(always)]
    pub fn as_slice(&self) -> &[Mbuf] {
        // SAFETY: Mbuf is repr(transparent) over NonNull<rte_mbuf>, which has the layout of a
        // non-null *mut rte_mbuf; slots [0, len) are non-null owned mbufs (type invariant). The
        // shared borrow of self prevents dropping or moving them out meanwhile.
        unsafe { std::slice::from_raw_parts(self.ptrs.as_ptr() as *const Mbuf, self.len) }
    }

    /// The mbufs held, writable (packet bytes can be rewritten in place).
    #[inline(always)]
    pub fn as_mut_slice(&mut self) -> &mut [Mbuf] {
        // SAFETY: as in `as_slice`; &mut self gives exclusive access. Callers can swap Mbufs
        // within the slice but cannot drop one without replacing it, so the invariant holds.
        unsafe { std::slice::from_raw_parts_mut(self.ptrs.as_mut_ptr() as *mut Mbuf, self.len) }
    }

    /// The mbuf at `i`.
    #[inline(always)]
    pub fn get(&self, i: usize) -> Option<&Mbuf> {
        self.as_slice().get(i)
    }

    /// The mbuf at `i`, writable.
    #[inline(always)]
    pub fn get_mut(&mut self, i: usize) -> Option<&mut Mbuf> {
        self.as_mut_slice().get_mut(i)
    }

    /// Add an mbuf at the end; gives it back if the burst is full.
    #[inline]
    pub fn push(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        if self.len == N {
            return Err(m);
        }
        self.ptrs[self.len] = m.into_raw().as_ptr();
        self.len += 1;
        Ok(())
    }

    /// Remove and return the last mbuf.
    #[inline]
    pub fn pop(&mut self) -> Option<Mbuf> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        // SAFETY: slot `len` held an owned non-null mbuf; it is no longer counted, so ownership
        // moves to the returned Mbuf.
        Some(Mbuf::from_nonnull(unsafe {
            NonNull::new_unchecked(self.ptrs[self.len])
        }))
    }

    /// Keep the mbufs for which `keep(index, mbuf)` is true (order preserved); move the others
    /// to `out` while it has room and bulk-free the rest. Returns how many were removed.
    #[inline]
    pub fn retain_into<const M: usize>(
        &mut self,
        out: &mut MbufBurst<M>,
        mut keep: impl FnMut(usize, &Mbuf) -> bool,
    ) -> usize {
        let mut kept = 0;
        let mut removed = 0;
        let mut overflow: [*mut sys::rte_mbuf; N] = [std::ptr::null_mut(); N];
        let mut n_overflow = 0;
        for i in 0..self.len {
            let p = self.ptrs[i];
            // SAFETY: slot i < len is an owned non-null mbuf; the reference lives only for the
            // call and the slot is not modified while it exists.
            let keep_it = keep(i, unsafe {
                &*(&self.ptrs[i] as *const *mut sys::rte_mbuf as *const Mbuf)
            });
            if keep_it {
                self.ptrs[kept] = p;
                kept += 1;
            } else {
                removed += 1;
                if out.len < M {
                    out.ptrs[out.len] = p;
                    out.len += 1;
                } else {
                    overflow[n_overflow] = p;
                    n_overflow += 1;
                }
            }
        }
        self.len = kept;
        if n_overflow > 0 {
            // SAFETY: the overflow entries are owned mbufs removed from the burst above.
            unsafe { sys::rte_pktmbuf_free_bulk(overflow.as_mut_ptr(), n_overflow as u32) };
        }
        removed
    }

    /// Keep the mbufs for which `keep(index, mbuf)` is true (order preserved) and bulk-free the
    /// others. Returns how many were freed.
    #[inline]
    pub fn retain(&mut self, mut keep: impl FnMut(usize, &Mbuf) -> bool) -> usize {
        let mut none: MbufBurst<0> = MbufBurst::new();
        self.retain_into(&mut none, |i, m| keep(i, m))
    }

    /// Move every mbuf, in order, to `f` (with its index), leaving the burst empty. The
    /// closure decides where each one goes: another burst, or dropped (freed).
    #[inline]
    pub fn drain_each(&mut self, mut f: impl FnMut(usize, Mbuf)) {
        let n = self.len;
        // Uncount first: ownership of every slot moves to `f`, even if `f` panics midway
        // (the remaining ones then leak rather than double-free).
        self.len = 0;
        for i in 0..n {
            // SAFETY: slot i < n held an owned non-null mbuf and is no longer counted.
            f(
                i,
                Mbuf::from_nonnull(unsafe { NonNull::new_unchecked(self.ptrs[i]) }),
            );
        }
    }

    /// Bulk-free every mbuf from index `from` on. Returns how many were freed.
    #[inline]
    pub fn truncate(&mut self, from: usize) -> usize {
        if from >= self.len {
            return 0;
        }
        let n = self.len - from;
        // SAFETY: slots [from, len) are owned mbufs; they are uncounted right after.
        unsafe { sys::rte_pktmbuf_free_bulk(self.ptrs.as_mut_ptr().add(from), n as u32) };
        self.len = from;
        n
    }

    /// Bulk-free everything. Returns how many were freed.
    #[inline]
    pub fn clear(&mut self) -> usize {
        self.truncate(0)
    }

    /// Drop the first `n` entries from the burst *without freeing them* (ownership was passed
    /// to DPDK, e.g. by tx_burst), moving the rest to the front.
    ///
    /// # Safety
    /// The first `n` mbufs must now be owned by someone else.
    #[inline]
    pub(crate) unsafe fn forget_front(&mut self, n: usize) {
        debug_assert!(n <= self.len);
        if n == 0 {
            return;
        }
        self.ptrs.copy_within(n..self.len, 0);
        self.len -= n;
    }

    /// Raw pointer to the held mbufs and their count (for rx/tx bursts).
    #[inline(always)]
    pub(crate) fn filled_raw(&mut self) -> (*mut *mut sys::rte_mbuf, usize) {
        (self.ptrs.as_mut_ptr(), self.len)
    }

    /// Raw pointer to the first free slot and the number of free slots.
    #[inline(always)]
    pub(crate) fn spare_raw(&mut self) -> (*mut *mut sys::rte_mbuf, usize) {
        // SAFETY: len <= N so the offset is in bounds (or one past the end when full).
        (
            unsafe { self.ptrs.as_mut_ptr().add(self.len) },
            N - self.len,
        )
    }

    /// Count `n` newly written slots after the current length as held.
    ///
    /// # Safety
    /// Slots `[len, len + n)` must have been filled with owned, non-null mbufs.
    #[inline(always)]
    pub(crate) unsafe fn commit_spare(&mut self, n: usize) {
        debug_assert!(self.len + n <= N);
        self.len += n;
    }
}

impl<const N: usize> Drop for MbufBurst<N> {
    fn drop(&mut self) {
        self.clear();
    }
}

impl<const N: usize> std::ops::Index<usize> for MbufBurst<N> {
    type Output = Mbuf;
    #[inline(always)]
    fn index(&self, i: usize) -> &Mbuf {
        &self.as_slice()[i]
    }
}

impl<const N: usize> std::ops::IndexMut<usize> for MbufBurst<N> {
    #[inline(always)]
    fn index_mut(&mut self, i: usize) -> &mut Mbuf {
        &mut self.as_mut_slice()[i]
    }
}
