//! The team (`cli::team`): every chunk of every pass runs exactly once on any thread count,
//! the calling thread leads, results stored by chunk index come back in order, and a panic in
//! one thread ends the team instead of leaving the others waiting.

use std::sync::atomic::{AtomicUsize, Ordering};

use cli::parallel::pool;
use cli::team::{self, Pieces, Slots};

const THREADS: [usize; 4] = [1, 2, 3, 8];

#[test]
fn every_chunk_of_every_pass_runs_once() {
    for threads in THREADS {
        let sizes = [0, 1, 2, 5, 7, 100, 1000, 7, 0, 3];
        let runs: Vec<Vec<AtomicUsize>> = sizes
            .iter()
            .map(|&n| (0..n).map(|_| AtomicUsize::new(0)).collect())
            .collect();
        let squares: Vec<Slots<usize>> = sizes.iter().map(|&n| Slots::new(n)).collect();
        let total = pool(threads).unwrap().install(|| {
            team::run(|team| {
                for (p, &n) in sizes.iter().enumerate() {
                    team.for_each(n, |i| {
                        runs[p][i].fetch_add(1, Ordering::Relaxed);
                        squares[p].set(i, i * i);
                    });
                    // after the pass every thread sees every chunk's result, in order
                    let seen: Vec<usize> = squares[p].iter().copied().collect();
                    assert_eq!(seen, (0..n).map(|i| i * i).collect::<Vec<_>>());
                }
                team.is_leader().then(|| team.threads())
            })
        });
        assert_eq!(total, threads);
        for (p, r) in runs.iter().enumerate() {
            for (i, c) in r.iter().enumerate() {
                let c = c.load(Ordering::Relaxed);
                assert_eq!(c, 1, "{threads} threads: pass {p} chunk {i} ran {c} times");
            }
        }
    }
}

#[test]
fn the_caller_leads_and_every_thread_takes_part() {
    for threads in THREADS {
        let (leaders, members) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let indexes = Slots::new(threads);
        let (caller, led_by) = pool(threads).unwrap().install(|| {
            let caller = rayon::current_thread_index();
            let led_by = team::run(|team| {
                members.fetch_add(1, Ordering::Relaxed);
                indexes.set(team.index(), ());
                team.barrier();
                if team.is_leader() {
                    leaders.fetch_add(1, Ordering::Relaxed);
                }
                team.is_leader().then(rayon::current_thread_index)
            });
            (caller, led_by)
        });
        assert_eq!(led_by, caller, "{threads} threads");
        assert_eq!(leaders.into_inner(), 1, "{threads} threads");
        assert_eq!(members.into_inner(), threads, "{threads} threads");
        assert_eq!(indexes.into_vec().len(), threads, "one index per thread");
    }
}

#[test]
fn pieces_are_disjoint_and_cover_the_buffer() {
    for threads in THREADS {
        let mut buf = vec![0usize; 1001];
        let pieces = Pieces::new(&mut buf, 64);
        assert_eq!(pieces.len(), 16);
        pool(threads).unwrap().install(|| {
            team::run(|team| {
                team.for_each(pieces.len(), |i| {
                    pieces.take(i).iter_mut().for_each(|x| *x += i + 1);
                });
                team.is_leader().then_some(())
            })
        });
        let want: Vec<usize> = (0..1001).map(|j| j / 64 + 1).collect();
        assert_eq!(buf, want, "{threads} threads");
    }
}

#[test]
fn a_panic_ends_the_team() {
    for threads in THREADS {
        let result = std::panic::catch_unwind(|| {
            pool(threads).unwrap().install(|| {
                team::run(|team| {
                    team.for_each(10, |i| {
                        if i == 7 {
                            panic!("chunk 7 fails");
                        }
                    });
                    // the others wait here, then give up
                    team.barrier();
                    team.is_leader().then_some(())
                })
            })
        });
        assert!(
            result.is_err(),
            "{threads} threads: the panic is propagated"
        );
    }
}
