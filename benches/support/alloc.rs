//! Counting heap memory: a global allocator that forwards to the system's and keeps the live
//! and peak byte counts (the benchmark table's peak memory), and the number of allocations
//! made on threads marked as counted (`l3d/tests/fast_alloc.rs`, which includes this file, for
//! the fast path's "no allocation per step").

// Included by the benches and by the allocation test, each using a part of it.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A global allocator that counts live and peak heap bytes (for [`run`]'s peak memory).
pub struct TrackingAllocator;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
static COUNTED_ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Set on the threads whose allocations [`counted_allocations`] counts.
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counters are only
// arithmetic on atomics.
unsafe impl GlobalAlloc for TrackingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grow(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grow(layout.size());
        }
        p
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded; `ptr` came from this allocator with `layout`.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if p.is_null() {
            count_on_counted_thread();
        } else {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            grow(new_size);
        }
        p
    }
}

fn grow(bytes: usize) {
    ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    count_on_counted_thread();
    let live = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

/// Whether [`TrackingAllocator`] is this program's global allocator.
pub fn tracking() -> bool {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    std::hint::black_box(Box::new(0u64));
    ALLOCATIONS.load(Ordering::Relaxed) != before
}

/// Peak live heap bytes while `f` runs, above the live bytes when it started.
pub fn peak_during<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let start = LIVE.load(Ordering::Relaxed);
    PEAK.store(start, Ordering::Relaxed);
    let out = f();
    (out, PEAK.load(Ordering::Relaxed).saturating_sub(start))
}

/// Counts one allocation if the current thread is marked as counted.
fn count_on_counted_thread() {
    // `try_with`: the thread-local may already be gone while a thread shuts down.
    if COUNTED.try_with(Cell::get).unwrap_or(false) {
        COUNTED_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

/// Marks the current thread's allocations as counted by [`counted_allocations`] (or not).
pub fn count_this_thread(counted: bool) {
    COUNTED.with(|c| c.set(counted));
}

/// Allocations made so far on threads marked by [`count_this_thread`].
pub fn counted_allocations() -> usize {
    COUNTED_ALLOCATIONS.load(Ordering::SeqCst)
}
