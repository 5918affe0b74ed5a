//! A team: every thread of the current rayon pool runs the same body (SPMD), splitting each
//! parallel pass into chunks and meeting at spinning barriers between passes.
//!
//! Why not rayon's parallel iterators for evaluation: a pass of a few hundred microseconds
//! ends with the calling thread asleep, waiting for another thread's last chunk, and the next
//! pass starts with the other threads asleep. Waking a thread costs 20 to 50 µs on a virtual
//! machine (much more after a long sleep), so the seven passes of an evaluation lost much of
//! what a second thread gave. A team wakes its threads once; between passes they spin, and
//! after the team they stay awake for `LINGER` in case another team follows.
//!
//! A pass gives each thread a block of chunks, the same block in passes of the same size, so
//! that data a thread wrote in one pass is mostly read by the same thread in the next; a thread
//! done with its block takes the others' remaining chunks.
//!
//! Results never depend on the thread count as long as a pass's chunks are defined by the data
//! alone and each chunk's result is stored by chunk index ([`Slots`]) and read in order, or
//! combined exactly (integer counts, set unions).
//!
//! A team must not start another team from its body (the threads are busy with the first).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Spins before a waiting thread starts yielding its core (when there are more threads than
/// cores, a spinning thread would hold up the ones it waits for).
const SPINS: u32 = 1 << 12;
/// How long a thread other than the caller stays awake after a team's body, so that a team
/// that follows soon after (the next step of an evaluation) finds it awake.
const LINGER: Duration = Duration::from_micros(100);

/// What the threads of a team share.
struct Shared {
    threads: usize,
    /// Threads at the current barrier.
    arrived: AtomicUsize,
    /// Barriers passed.
    generation: AtomicUsize,
    /// Per thread, the chunks of its block not yet claimed in the current pass, packed as
    /// [`Block`]s.
    blocks: Vec<AtomicU64>,
    /// A thread panicked: the others stop waiting and panic too.
    poisoned: AtomicBool,
}

/// The machine's cores (asked once: the question reads files, which takes tens of µs).
fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// One thread's handle on its team.
pub struct Team<'a> {
    leader: bool,
    index: usize,
    shared: &'a Shared,
    /// Passes run so far (the same on every thread: every thread runs every pass).
    passes: std::cell::Cell<usize>,
}

/// Runs `body` on every thread of the current rayon pool at once (the global pool outside a
/// pool's `install`) and returns the leader's result: the calling thread leads (it is awake),
/// thread 0 if the caller is not in the pool. `body` must run the same passes and barriers on
/// every thread; the leader must return `Some`. A panic in `body` is propagated once the other
/// threads reach a barrier or their end.
pub fn run<R: Send>(body: impl Fn(&Team<'_>) -> Option<R> + Sync) -> R {
    let shared = Shared {
        threads: rayon::current_num_threads(),
        arrived: AtomicUsize::new(0),
        generation: AtomicUsize::new(0),
        blocks: (0..rayon::current_num_threads())
            .map(|_| AtomicU64::new(Block::TAG << 48))
            .collect(),
        poisoned: AtomicBool::new(false),
    };
    // the calling thread leads (it is awake), or thread 0 when called from outside the pool
    let caller = rayon::current_thread_index().unwrap_or(0);
    let linger = shared.threads <= cores();
    let results = rayon::broadcast(|ctx| {
        let team = Team {
            leader: ctx.index() == caller,
            index: ctx.index(),
            shared: &shared,
            passes: std::cell::Cell::new(0),
        };
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(&team)));
        if out.is_err() {
            shared.poisoned.store(true, Ordering::Release);
        } else if linger && ctx.index() != caller {
            // Stay awake a little, taking pool work (the next team's start) as it comes.
            let until = Instant::now() + LINGER;
            rayon::spawn(move || {
                // not on the caller, which may take this job while it waits for the team
                if rayon::current_thread_index() == Some(caller) {
                    return;
                }
                while Instant::now() < until {
                    if rayon::yield_now() != Some(rayon::Yield::Executed) {
                        std::hint::spin_loop();
                    }
                }
            });
        }
        out.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    });
    results
        .into_iter()
        .nth(caller)
        .flatten()
        .expect("the team's leader returns its result")
}

impl Team<'_> {
    /// Whether this thread runs the serial parts and returns the team's result.
    pub fn is_leader(&self) -> bool {
        self.leader
    }

    /// This thread's index in the team, below [`Team::threads`].
    pub fn index(&self) -> usize {
        self.index
    }

    /// How many threads the team has.
    pub fn threads(&self) -> usize {
        self.shared.threads
    }

    /// Waits until every thread of the team has arrived (spinning, then yielding).
    pub fn barrier(&self) {
        let s = self.shared;
        let generation = s.generation.load(Ordering::Acquire);
        if s.arrived.fetch_add(1, Ordering::AcqRel) + 1 == s.threads {
            s.arrived.store(0, Ordering::Relaxed);
            s.generation.fetch_add(1, Ordering::Release);
            return;
        }
        let mut spins = 0u32;
        while s.generation.load(Ordering::Acquire) == generation {
            if s.poisoned.load(Ordering::Acquire) {
                panic!("another thread of the team panicked");
            }
            if spins < SPINS {
                spins += 1;
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }

    /// A parallel pass: runs `job(i)` for every `i < n` (`n < 2^24`) on whichever thread
    /// claims it, then waits for the whole team. Thread `j` first runs its own block of chunks
    /// (`j n / T .. (j + 1) n / T`) from the front, so that in passes of the same `n` a chunk
    /// stays on the thread that has its data in cache; then it takes the other blocks' chunks
    /// from the back.
    pub fn for_each(&self, n: usize, mut job: impl FnMut(usize)) {
        let pass = self.passes.get();
        self.passes.set(pass + 1);
        let tag = pass as u64 & Block::TAG;
        let threads = self.shared.threads;
        assert!(n <= Block::INDEX as usize, "{n} chunks in one pass");
        for d in 0..threads {
            let owner = (self.index + d) % threads;
            while let Some(i) = self.claim(owner, tag, n, d == 0) {
                job(i);
            }
        }
        self.barrier();
    }

    /// Claims a chunk of `owner`'s block in the pass tagged `tag`: the first one left (the
    /// owner) or the last (another thread). Whoever comes first sets the block up.
    fn claim(&self, owner: usize, tag: u64, n: usize, front: bool) -> Option<usize> {
        let cell = &self.shared.blocks[owner];
        let threads = self.shared.threads;
        let mut current = cell.load(Ordering::Acquire);
        loop {
            let mut block = Block::unpack(current);
            if block.tag != tag {
                block = Block {
                    tag,
                    lo: owner * n / threads,
                    hi: (owner + 1) * n / threads,
                };
            }
            if block.lo >= block.hi {
                return None;
            }
            let claimed = if front {
                block.lo += 1;
                block.lo - 1
            } else {
                block.hi -= 1;
                block.hi
            };
            match cell.compare_exchange_weak(
                current,
                block.pack(),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(claimed),
                Err(now) => current = now,
            }
        }
    }
}

/// The unclaimed chunks `lo..hi` of a thread's block in the pass tagged `tag`.
struct Block {
    tag: u64,
    lo: usize,
    hi: usize,
}

impl Block {
    /// Passes are told apart by their number's low 16 bits (a block is set up anew in every
    /// pass, so an old tag never comes back unnoticed).
    const TAG: u64 = (1 << 16) - 1;
    const INDEX: u64 = (1 << 24) - 1;

    fn pack(&self) -> u64 {
        self.tag << 48 | (self.lo as u64 & Self::INDEX) << 24 | (self.hi as u64 & Self::INDEX)
    }

    fn unpack(x: u64) -> Block {
        Block {
            tag: x >> 48,
            lo: (x >> 24 & Self::INDEX) as usize,
            hi: (x & Self::INDEX) as usize,
        }
    }
}

/// One result per chunk, set by whichever thread runs the chunk and read after the pass.
pub struct Slots<T>(Vec<OnceLock<T>>);

impl<T> Slots<T> {
    /// `n` empty slots.
    pub fn new(n: usize) -> Self {
        Slots((0..n).map(|_| OnceLock::new()).collect())
    }

    /// How many slots.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Stores chunk `i`'s result (the first store wins; a chunk runs once).
    pub fn set(&self, i: usize, value: T) {
        let _ = self.0[i].set(value);
    }

    /// Chunk `i`'s result, if stored yet.
    pub fn get(&self, i: usize) -> Option<&T> {
        self.0[i].get()
    }

    /// The results in chunk order (after the pass; panics if a chunk has none).
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.0.iter().map(|s| s.get().expect("every chunk ran"))
    }

    /// The stored results in chunk order, owned.
    pub fn into_vec(self) -> Vec<T> {
        self.0
            .into_iter()
            .filter_map(OnceLock::into_inner)
            .collect()
    }
}

/// Disjoint mutable pieces of a buffer, one per chunk, each taken by the thread that runs it.
pub struct Pieces<'a, T>(Vec<Mutex<Option<&'a mut [T]>>>);

impl<'a, T> Pieces<'a, T> {
    /// `buf` cut into pieces of `size` (the last may be shorter).
    pub fn new(buf: &'a mut [T], size: usize) -> Self {
        Pieces(
            buf.chunks_mut(size.max(1))
                .map(|c| Mutex::new(Some(c)))
                .collect(),
        )
    }

    /// How many pieces.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Piece `i` (panics if taken twice).
    pub fn take(&self, i: usize) -> &'a mut [T] {
        self.0[i]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .expect("each piece is taken once")
    }
}
