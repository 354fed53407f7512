//! The per-lcore poll loop.

use crate::counters::WorkerCounters;
use crate::stage::{BurstCtx, BurstStage, Verdict};
use crate::MAX_PORTS;
use rampart_dpdk::{rdtsc, MbufBurst, RxQueue, TxQueue};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Packets per RX burst.
pub const BURST: usize = 32;

/// A worker's index (0..workers), also its queue index on every port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkerId(pub u16);

/// A port's index in the appliance's port list (not the DPDK port id); indexes counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortIndex(pub u16);

/// Loop tuning.
#[derive(Debug, Clone, Copy, Default)]
pub struct WorkerSettings {
    /// After this many consecutive empty polls, sleep `idle_sleep`. 0 = never sleep (pure poll
    /// mode, lowest latency; burns the core).
    pub idle_polls_before_sleep: u32,
    /// How long to sleep when idle.
    pub idle_sleep: Duration,
}

/// The queues one worker owns: `rx[p]` / `tx[p]` on every port `p`, and each port's peer.
#[derive(Debug)]
pub struct WorkerQueues {
    /// This worker's id.
    pub id: WorkerId,
    /// One RX queue per port, indexed by [`PortIndex`].
    pub rx: Vec<RxQueue>,
    /// One TX queue per port, indexed by [`PortIndex`].
    pub tx: Vec<TxQueue>,
    /// `peer[p]` is the port packets received on `p` are forwarded to.
    pub peer: Vec<PortIndex>,
}

/// Distribute per-port queue lists (`rx[port][queue]`, one queue per worker) to workers:
/// worker `w` gets queue `w` of every port. `peer[p]` is the paired port of `p`.
pub fn assign_queues(
    rx: Vec<Vec<RxQueue>>,
    tx: Vec<Vec<TxQueue>>,
    peer: &[PortIndex],
    workers: usize,
) -> Vec<WorkerQueues> {
    assert!(rx.len() <= MAX_PORTS, "at most {MAX_PORTS} ports");
    assert_eq!(rx.len(), tx.len());
    assert_eq!(rx.len(), peer.len());
    let mut out: Vec<WorkerQueues> = (0..workers)
        .map(|w| WorkerQueues {
            id: WorkerId(w as u16),
            rx: Vec::with_capacity(rx.len()),
            tx: Vec::with_capacity(tx.len()),
            peer: peer.to_vec(),
        })
        .collect();
    for (port_rx, port_tx) in rx.into_iter().zip(tx) {
        assert!(
            port_rx.len() >= workers && port_tx.len() >= workers,
            "one queue per worker"
        );
        for (w, (r, t)) in port_rx.into_iter().zip(port_tx).take(workers).enumerate() {
            out[w].rx.push(r);
            out[w].tx.push(t);
        }
    }
    out
}

/// One poll-mode worker: owns its queues, scratch bursts, stage state and counters.
/// Built on the main thread and moved to its lcore.
pub struct Worker<S: BurstStage> {
    queues: WorkerQueues,
    stage: S,
    counters: Arc<WorkerCounters>,
    stop: Arc<AtomicBool>,
    settings: WorkerSettings,
    rx: MbufBurst<BURST>,
    fwd: MbufBurst<BURST>,
    reply: MbufBurst<BURST>,
    dropped: MbufBurst<BURST>,
    verdicts: [Verdict; BURST],
    idle_run: u32,
}

impl<S: BurstStage> Worker<S> {
    /// A worker over `queues` running `stage`. It stops when `stop` becomes true.
    pub fn new(
        queues: WorkerQueues,
        stage: S,
        stop: Arc<AtomicBool>,
        settings: WorkerSettings,
    ) -> Self {
        Worker {
            queues,
            stage,
            counters: Arc::new(WorkerCounters::default()),
            stop,
            settings,
            rx: MbufBurst::new(),
            fwd: MbufBurst::new(),
            reply: MbufBurst::new(),
            dropped: MbufBurst::new(),
            verdicts: [Verdict::Forward; BURST],
            idle_run: 0,
        }
    }

    /// This worker's id.
    pub fn id(&self) -> WorkerId {
        self.queues.id
    }

    /// The counters, for the stats thread.
    pub fn counters(&self) -> Arc<WorkerCounters> {
        self.counters.clone()
    }

    /// Poll until the stop flag is set. Returns the stage (for final state or statistics).
    pub fn run(mut self) -> S {
        self.poll_until_stopped();
        self.stage
    }

    /// Poll until the stop flag is set, keeping the worker (benchmarks run several stages
    /// over the same queues, see [`Self::into_parts`]).
    pub fn poll_until_stopped(&mut self) {
        while !self.stop.load(Ordering::Relaxed) {
            let got = self.poll_once();
            if got == 0 {
                self.idle();
            } else {
                self.idle_run = 0;
            }
        }
    }

    /// The queues and the stage back (mbufs still in the worker's scratch bursts are freed).
    pub fn into_parts(self) -> (WorkerQueues, S) {
        (self.queues, self.stage)
    }

    #[inline]
    fn idle(&mut self) {
        let s = &self.settings;
        if s.idle_polls_before_sleep == 0 {
            return;
        }
        self.idle_run += 1;
        if self.idle_run >= s.idle_polls_before_sleep {
            std::thread::sleep(s.idle_sleep);
        }
    }

    /// One iteration over every port: read the clock once, serve each port's RX queue, then
    /// give the stage its end-of-poll call. Returns the number of packets received.
    #[inline]
    pub fn poll_once(&mut self) -> usize {
        let now_tsc = rdtsc();
        let mut total = 0;
        // One extra TSC read per non-empty burst times it: receive, stages and transmit (plus
        // any empty polls of other ports since the previous burst ended).
        let mut t = now_tsc;
        for p in 0..self.queues.rx.len() {
            let n = self.serve_port(p, now_tsc);
            if n != 0 {
                let end = rdtsc();
                self.counters.burst_cycles.record(end.wrapping_sub(t));
                t = end;
            }
            total += n;
        }
        self.stage.end_of_poll(now_tsc);
        if total == 0 {
            self.counters.idle_polls.add(1);
        } else {
            self.counters.busy_polls.add(1);
        }
        total
    }

    /// Receive → stage → route → transmit for one port.
    #[inline(always)]
    fn serve_port(&mut self, p: usize, now_tsc: u64) -> usize {
        // 1. Receive.
        let n = self.queues.rx[p].rx_burst(&mut self.rx);
        if n == 0 {
            return 0;
        }
        let egress = self.queues.peer[p];
        let ctx = BurstCtx {
            worker: self.queues.id,
            ingress: PortIndex(p as u16),
            egress,
            now_tsc,
        };
        let pc = &self.counters.ports[p];
        pc.rx_pkts.add(n as u64);
        let bytes: usize = self.rx.as_slice().iter().map(|m| m.pkt_len()).sum();
        pc.rx_bytes.add(bytes as u64);

        // 2. Stages (parse → track → classify → verdict).
        let verdicts = &mut self.verdicts[..n];
        verdicts.fill(Verdict::Forward);
        self.stage.process(&ctx, &mut self.rx, verdicts);

        // 3. Route by verdict. Fast path: the whole burst is forwarded as is.
        let e = egress.0 as usize;
        if verdicts.iter().all(|v| *v == Verdict::Forward) {
            self.transmit_rx(e);
            return n;
        }
        let (fwd, reply, dropped) = (&mut self.fwd, &mut self.reply, &mut self.dropped);
        let mut drops = [0u64; crate::DropReason::COUNT];
        let vs = &self.verdicts;
        self.rx.drain_each(|i, m| {
            let target = match vs[i] {
                Verdict::Forward => &mut *fwd,
                Verdict::Reply => &mut *reply,
                Verdict::Drop(r) => {
                    drops[r as usize] += 1;
                    &mut *dropped
                }
            };
            // Each target has room for a whole burst, so push cannot fail; if it did the mbuf
            // would simply be freed by Drop.
            let _ = target.push(m);
        });
        for (c, d) in pc.drops.iter().zip(drops) {
            if d != 0 {
                c.add(d);
            }
        }
        self.dropped.clear();

        // 4. Transmit: forwarded to the peer, replies back out of the ingress port.
        if !self.fwd.is_empty() {
            let (sent, lost) = self.queues.tx[e].tx_burst_or_free(&mut self.fwd);
            self.count_tx(e, sent, lost);
        }
        if !self.reply.is_empty() {
            let (sent, lost) = self.queues.tx[p].tx_burst_or_free(&mut self.reply);
            self.count_tx(p, sent, lost);
        }
        n
    }

    #[inline(always)]
    fn transmit_rx(&mut self, e: usize) {
        let (sent, lost) = self.queues.tx[e].tx_burst_or_free(&mut self.rx);
        self.count_tx(e, sent, lost);
    }

    #[inline(always)]
    fn count_tx(&self, port: usize, sent: usize, lost: usize) {
        let c = &self.counters.ports[port];
        c.tx_pkts.add(sent as u64);
        if lost != 0 {
            c.tx_full.add(lost as u64);
        }
    }
}
