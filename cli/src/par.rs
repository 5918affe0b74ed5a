//! The parallel iterators of `eval` and `draw`: rayon's (feature `rayon`, with `bin`), or, in
//! the web build (one thread), the same calls run in order on std's iterators. Work is cut by
//! data size only and merged in chunk order, so the results are the same bits either way.
//!
//! The calls whose rayon and std forms differ (`fold` then `reduce`, and their `try_` forms) go
//! through [`FoldReduce`].

#[cfg(feature = "rayon")]
pub use rayon::prelude::*;
#[cfg(not(feature = "rayon"))]
pub use sequential::*;

/// `fold` into per-worker accumulators, then `reduce` them (exact merges only: their order is
/// not specified).
pub trait FoldReduce: Sized {
    type Item;
    fn fold_reduce<A: Send>(
        self,
        identity: impl Fn() -> A + Sync + Send,
        fold: impl Fn(A, Self::Item) -> A + Sync + Send,
        reduce: impl Fn(A, A) -> A + Sync + Send,
    ) -> A;
    fn try_fold_reduce<A: Send, E: Send>(
        self,
        identity: impl Fn() -> A + Sync + Send,
        fold: impl Fn(A, Self::Item) -> Result<A, E> + Sync + Send,
        reduce: impl Fn(A, A) -> Result<A, E> + Sync + Send,
    ) -> Result<A, E>;
}

#[cfg(feature = "rayon")]
impl<I: ParallelIterator> FoldReduce for I {
    type Item = I::Item;
    fn fold_reduce<A: Send>(
        self,
        identity: impl Fn() -> A + Sync + Send,
        fold: impl Fn(A, I::Item) -> A + Sync + Send,
        reduce: impl Fn(A, A) -> A + Sync + Send,
    ) -> A {
        self.fold(&identity, fold).reduce(&identity, reduce)
    }
    fn try_fold_reduce<A: Send, E: Send>(
        self,
        identity: impl Fn() -> A + Sync + Send,
        fold: impl Fn(A, I::Item) -> Result<A, E> + Sync + Send,
        reduce: impl Fn(A, A) -> Result<A, E> + Sync + Send,
    ) -> Result<A, E> {
        self.try_fold(&identity, fold).try_reduce(&identity, reduce)
    }
}

#[cfg(not(feature = "rayon"))]
mod sequential {
    use super::FoldReduce;

    /// `par_iter`, `par_chunks` on a slice: its std iterators.
    pub trait ParallelSlice<T> {
        fn par_iter(&self) -> core::slice::Iter<'_, T>;
        fn par_chunks(&self, size: usize) -> core::slice::Chunks<'_, T>;
    }

    impl<T> ParallelSlice<T> for [T] {
        fn par_iter(&self) -> core::slice::Iter<'_, T> {
            self.iter()
        }
        fn par_chunks(&self, size: usize) -> core::slice::Chunks<'_, T> {
            self.chunks(size)
        }
    }

    /// `par_iter_mut`, `par_chunks_mut`, `par_sort_unstable` on a slice.
    pub trait ParallelSliceMut<T> {
        fn par_iter_mut(&mut self) -> core::slice::IterMut<'_, T>;
        fn par_chunks_mut(&mut self, size: usize) -> core::slice::ChunksMut<'_, T>;
        fn par_sort_unstable(&mut self)
        where
            T: Ord;
    }

    impl<T> ParallelSliceMut<T> for [T] {
        fn par_iter_mut(&mut self) -> core::slice::IterMut<'_, T> {
            self.iter_mut()
        }
        fn par_chunks_mut(&mut self, size: usize) -> core::slice::ChunksMut<'_, T> {
            self.chunks_mut(size)
        }
        fn par_sort_unstable(&mut self)
        where
            T: Ord,
        {
            self.sort_unstable()
        }
    }

    /// `into_par_iter`: `into_iter`.
    pub trait IntoParallelIterator: IntoIterator + Sized {
        fn into_par_iter(self) -> Self::IntoIter {
            self.into_iter()
        }
    }

    impl<I: IntoIterator> IntoParallelIterator for I {}

    /// rayon's `map_init` and `try_for_each_init`: one state for the whole run.
    pub trait ParallelIterator: Iterator + Sized {
        fn map_init<S, R>(
            self,
            init: impl FnOnce() -> S,
            mut f: impl FnMut(&mut S, Self::Item) -> R,
        ) -> impl Iterator<Item = R> {
            let mut state = init();
            self.map(move |x| f(&mut state, x))
        }
        fn try_for_each_init<S, E>(
            mut self,
            init: impl FnOnce() -> S,
            mut f: impl FnMut(&mut S, Self::Item) -> Result<(), E>,
        ) -> Result<(), E> {
            let mut state = init();
            self.try_for_each(|x| f(&mut state, x))
        }
    }

    impl<I: Iterator> ParallelIterator for I {}

    impl<I: Iterator> FoldReduce for I {
        type Item = I::Item;
        fn fold_reduce<A: Send>(
            self,
            identity: impl Fn() -> A + Sync + Send,
            fold: impl Fn(A, I::Item) -> A + Sync + Send,
            _reduce: impl Fn(A, A) -> A + Sync + Send,
        ) -> A {
            self.fold(identity(), fold)
        }
        fn try_fold_reduce<A: Send, E: Send>(
            mut self,
            identity: impl Fn() -> A + Sync + Send,
            fold: impl Fn(A, I::Item) -> Result<A, E> + Sync + Send,
            _reduce: impl Fn(A, A) -> Result<A, E> + Sync + Send,
        ) -> Result<A, E> {
            self.try_fold(identity(), fold)
        }
    }
}
