//! Running work on rayon's threads or on the calling thread, and the reused buffers it fills.
//!
//! Every helper here gives the same numbers whichever way it runs: work is split into fixed
//! items or blocks, each computed whole by one thread, and anything summed across them is
//! summed by the caller in a fixed order. Running in parallel only saves time, and on a
//! one-thread pool (or below a size threshold) nothing calls rayon at all, so nothing is
//! allocated for its bookkeeping.

use rayon::prelude::*;
use std::sync::Mutex;
use tensor::gemm::GemmScratch;
use tensor::Float;

/// Whether work of size `work` goes to rayon: it is at least `min`, and the pool has more than
/// one thread. Either way every task computes the same numbers (so results never depend on
/// it); the point is to spend no time, and allocate nothing, in rayon when it cannot help.
pub(crate) fn worth_threads(work: usize, min: usize) -> bool {
    work >= min && rayon::current_num_threads() > 1
}

/// Runs `f(index, item)` on every item, in parallel or in order on this thread.
pub(crate) fn each<I: Send>(
    items: &mut [I],
    parallel: bool,
    f: impl Fn(usize, &mut I) + Sync + Send,
) {
    if parallel {
        // One item per job: tasks of unequal size are stolen one by one.
        let items = items.par_iter_mut().with_max_len(1).enumerate();
        items.for_each(|(i, item)| f(i, item));
    } else {
        items
            .iter_mut()
            .enumerate()
            .for_each(|(i, item)| f(i, item));
    }
}

/// Runs `f(index, block)` on every block of `len` values of `data` (the last may be shorter),
/// in parallel or in order on this thread.
pub(crate) fn each_block<T: Send>(
    data: &mut [T],
    len: usize,
    parallel: bool,
    f: impl Fn(usize, &mut [T]) + Sync + Send,
) {
    if parallel {
        let blocks = data.par_chunks_mut(len).with_max_len(1).enumerate();
        blocks.for_each(|(b, block)| f(b, block));
    } else {
        data.chunks_mut(len)
            .enumerate()
            .for_each(|(b, block)| f(b, block));
    }
}

/// One GEMM scratch per thread, for tasks that threads take in no fixed order.
#[derive(Debug, Default)]
pub(crate) struct ScratchPool<T> {
    slots: Vec<Mutex<GemmScratch<T>>>,
}

impl<T: Float> ScratchPool<T> {
    /// One scratch per thread of the current pool (one if not `parallel`), sized up front for
    /// products with up to `cols` columns when `parallel`: whichever thread takes a task,
    /// nothing grows in steady state. (Work on one thread takes its tasks in a fixed order, so
    /// its scratch grows on demand.)
    pub fn grow(&mut self, parallel: bool, cols: usize) {
        let threads = if parallel {
            rayon::current_num_threads()
        } else {
            1
        };
        while self.slots.len() < threads {
            let scratch = if parallel {
                GemmScratch::for_columns(cols)
            } else {
                GemmScratch::default()
            };
            self.slots.push(Mutex::new(scratch));
        }
    }

    /// Runs `f` with this thread's scratch (one per thread of the pool, so the lock is always
    /// free; the calling thread outside a pool takes the first).
    pub fn with(&self, f: impl FnOnce(&mut GemmScratch<T>)) {
        let slot = rayon::current_thread_index().unwrap_or(0) % self.slots.len();
        let mut s = self.slots[slot]
            .lock()
            .expect("a scratch lock is never poisoned");
        f(&mut s);
    }
}

/// Sets a buffer's length, allocating only when it must grow.
pub(crate) fn fit<T: Float>(buf: &mut Vec<T>, len: usize) {
    if buf.len() < len {
        buf.resize(len, T::zero());
    }
    buf.truncate(len);
}

/// Whether every value is finite. `0 x` is 0 for a finite `x` and NaN for an infinite or NaN
/// one, so sixteen lane sums of it stay 0 exactly when every value is finite: a loop the
/// compiler vectorises, unlike a search that stops at the first bad value.
pub(crate) fn all_finite<T: Float>(x: &[T]) -> bool {
    const LANES: usize = 16;
    let mut acc = [T::zero(); LANES];
    let chunks = x.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for l in 0..LANES {
            acc[l] += c[l] * T::zero();
        }
    }
    acc.iter().chain(rest).all(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_finite_finds_a_nan_or_an_infinity_anywhere() {
        for len in [0, 1, 15, 16, 17, 40] {
            let x = vec![1.5f32; len];
            assert!(all_finite(&x));
            for at in 0..len {
                for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                    let mut y = x.clone();
                    y[at] = bad;
                    assert!(!all_finite(&y), "{bad} at {at} of {len}");
                }
            }
        }
    }
}
