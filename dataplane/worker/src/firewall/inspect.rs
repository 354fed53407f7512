//! Questions an operator asks a running worker about its flows (`rampartctl flows`, the
//! conntrack part of `rampartctl explain` on a live node).
//!
//! The flow table belongs to its worker, so the worker answers, at its end of poll and never
//! mid-burst. The asking side (the control thread) brings the answer's buffer with the
//! question, so the worker fills it without allocating; a listing walks the table a bounded
//! number of slots per poll, so a million flows delay no burst by more than one step.
//! Checking for a question is one empty-queue test per poll.

use crossbeam_queue::ArrayQueue;
use rampart_flow::{Direction, Flow, FlowState, FlowTable, RuleId};
use rampart_wire::FlowKey;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Flow slots examined per poll while a listing is in progress.
const WALK_STEP: u32 = 2048;

/// One flow as reported to the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowRow {
    /// The key in the direction of the packet that opened the flow.
    pub key: FlowKey,
    /// Protocol state.
    pub state: FlowState,
    /// The rule that admitted it.
    pub rule: RuleId,
    /// Low 32 bits of the publish number of the ruleset that admitted (or last revalidated)
    /// it: policy generations and inventory updates each advance it.
    pub ruleset_seq: u32,
    /// Packets original / reply (32-bit, wrapping).
    pub packets: [u32; 2],
    /// Bytes original / reply.
    pub bytes: [u64; 2],
    /// Nanoseconds since its last packet.
    pub idle_ns: u64,
}

impl FlowRow {
    fn of(f: &Flow<'_>, now_ns: u64) -> Self {
        FlowRow {
            key: f.key(),
            state: f.state(),
            rule: f.rule(),
            ruleset_seq: f.generation(),
            packets: [f.packets(Direction::Original), f.packets(Direction::Reply)],
            bytes: [f.bytes(Direction::Original), f.bytes(Direction::Reply)],
            idle_ns: now_ns.saturating_sub(f.last_seen_ns(now_ns)),
        }
    }

    /// Bytes both ways: what "top" ranks by.
    pub fn total_bytes(&self) -> u64 {
        self.bytes[0] + self.bytes[1]
    }
}

/// What is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Question {
    /// The flow of this key (either direction), if tracked.
    Flow(FlowKey),
    /// The `n` flows with the most bytes.
    Top(usize),
}

struct Asked {
    id: u64,
    question: Question,
    rows: Vec<FlowRow>,
}

struct Answer {
    id: u64,
    rows: Vec<FlowRow>,
}

/// The mailbox between one worker and whoever asks it (shared through an `Arc`).
pub struct Inspector {
    questions: ArrayQueue<Asked>,
    answers: ArrayQueue<Answer>,
    next_id: AtomicU64,
}

impl Default for Inspector {
    fn default() -> Self {
        Inspector {
            questions: ArrayQueue::new(1),
            answers: ArrayQueue::new(2),
            next_id: AtomicU64::new(1),
        }
    }
}

/// Why a worker gave no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AskError {
    /// Another question to this worker is still open.
    #[error("the worker is busy with another question")]
    Busy,
    /// No answer within the time allowed (the worker is stopped or stalled).
    #[error("the worker did not answer within {0:?}")]
    Timeout(Duration),
}

impl Inspector {
    /// Asks and waits (sleeping, never spinning on the worker's cache lines) for the answer.
    /// Call from a management thread, one question at a time per inspector.
    pub fn ask(&self, question: Question, timeout: Duration) -> Result<Vec<FlowRow>, AskError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let capacity = match question {
            Question::Flow(_) => 1,
            Question::Top(n) => n,
        };
        let asked = Asked {
            id,
            question,
            rows: Vec::with_capacity(capacity),
        };
        if self.questions.push(asked).is_err() {
            return Err(AskError::Busy);
        }
        let deadline = Instant::now() + timeout;
        loop {
            // Answers to earlier questions that timed out are dropped here.
            while let Some(a) = self.answers.pop() {
                if a.id == id {
                    return Ok(a.rows);
                }
            }
            if Instant::now() >= deadline {
                // Withdraw the question if the worker has not taken it yet.
                let _ = self.questions.pop();
                return Err(AskError::Timeout(timeout));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

/// A listing in progress on the worker.
struct Walk {
    id: u64,
    n: usize,
    rows: Vec<FlowRow>,
    at: u32,
}

/// The worker's side: holds a listing across polls.
#[derive(Default)]
pub(crate) struct Responder {
    walk: Option<Walk>,
}

impl Responder {
    /// Called at each end of poll: takes a question if there is one, advances a listing by
    /// one step, posts a finished answer.
    #[inline]
    pub(crate) fn poll(&mut self, inbox: &Inspector, table: &mut FlowTable, now_ns: u64) {
        if self.walk.is_none() {
            if inbox.questions.is_empty() {
                return;
            }
            self.take(inbox, table, now_ns);
        }
        self.step(inbox, table, now_ns);
    }

    #[cold]
    fn take(&mut self, inbox: &Inspector, table: &mut FlowTable, now_ns: u64) {
        let Some(Asked {
            id,
            question,
            mut rows,
        }) = inbox.questions.pop()
        else {
            return;
        };
        match question {
            Question::Flow(key) => {
                rows.clear();
                if let Some(f) = table
                    .lookup(&key, now_ns)
                    .and_then(|hit| table.flow(hit.handle))
                {
                    rows.push(FlowRow::of(&f, now_ns));
                }
                let _ = inbox.answers.push(Answer { id, rows });
            }
            Question::Top(n) => {
                rows.clear();
                self.walk = Some(Walk { id, n, rows, at: 0 });
            }
        }
    }

    fn step(&mut self, inbox: &Inspector, table: &FlowTable, now_ns: u64) {
        let Some(w) = self.walk.as_mut() else {
            return;
        };
        for (_, f) in table.iter_slots(w.at, WALK_STEP, now_ns) {
            let row = FlowRow::of(&f, now_ns);
            // Keep `rows` sorted by bytes, descending, at most `n` long; it was allocated
            // with capacity `n` by the asker, so inserting never allocates here.
            if w.rows.len() == w.n {
                match w.rows.last() {
                    Some(last) if row.total_bytes() > last.total_bytes() => {
                        w.rows.pop();
                    }
                    _ => continue,
                }
            }
            let at = w
                .rows
                .partition_point(|r| r.total_bytes() >= row.total_bytes());
            w.rows.insert(at, row);
        }
        w.at = w.at.saturating_add(WALK_STEP);
        if w.at >= table.slot_limit() {
            if let Some(w) = self.walk.take() {
                let _ = inbox.answers.push(Answer {
                    id: w.id,
                    rows: w.rows,
                });
            }
        }
    }
}
