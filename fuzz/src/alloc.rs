//! A counting global allocator: while [`measure`] runs a closure on this thread, it records
//! the largest single allocation (a `realloc` counts as an allocation of its new size) and
//! the peak of bytes held beyond what was held at the start. Other threads are not counted.
//!
//! A test binary installs it with
//! `#[global_allocator] static ALLOC: CountingAlloc = CountingAlloc;`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The system allocator, counting on threads inside [`measure`].
pub struct CountingAlloc;

/// What one [`measure`] saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AllocStats {
    /// The largest single allocation or reallocation, in bytes.
    pub largest_bytes: usize,
    /// The most bytes held at once beyond those held when the measurement began.
    pub peak_bytes: usize,
    /// How many allocations and reallocations were made.
    pub count: usize,
}

// Const-initialised cells without destructors: reading them never allocates, so the
// allocator may use them.
thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
    static COUNT: Cell<usize> = const { Cell::new(0) };
    static NET: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

/// Runs `f` and reports the allocations it made on this thread (its result included).
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, AllocStats) {
    LARGEST.set(0);
    COUNT.set(0);
    NET.set(0);
    PEAK.set(0);
    ARMED.set(true);
    let out = f();
    ARMED.set(false);
    let stats = AllocStats {
        largest_bytes: LARGEST.get(),
        peak_bytes: usize::try_from(PEAK.get()).unwrap_or(0),
        count: COUNT.get(),
    };
    (out, stats)
}

/// Panics unless [`CountingAlloc`] is this binary's global allocator: without it every
/// measurement would read zero and every limit check would pass.
pub fn assert_installed() {
    const PROBE_BYTES: usize = 1_000;
    // black_box: an optimised build would otherwise elide an allocation nobody reads.
    let (probe, stats) = measure(|| std::hint::black_box(Vec::<u8>::with_capacity(PROBE_BYTES)));
    drop(probe);
    assert!(
        stats.largest_bytes >= PROBE_BYTES,
        "CountingAlloc is not the global allocator of this test binary"
    );
}

fn on_alloc(size: usize) {
    let _ = ARMED.try_with(|armed| {
        if armed.get() {
            LARGEST.set(LARGEST.get().max(size));
            COUNT.set(COUNT.get() + 1);
            let net = NET.get().saturating_add_unsigned(size);
            NET.set(net);
            PEAK.set(PEAK.get().max(net));
        }
    });
}

fn on_free(size: usize) {
    let _ = ARMED.try_with(|armed| {
        if armed.get() {
            NET.set(NET.get().saturating_sub_unsigned(size));
        }
    });
}

// SAFETY: every call is forwarded unchanged to `System`; the bookkeeping only touches
// this thread's cells and never allocates.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        on_alloc(layout.size());
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which `System` shares.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        on_alloc(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        on_free(layout.size());
        // SAFETY: `ptr` came from `System` through this allocator with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        on_free(layout.size());
        on_alloc(new_size);
        // SAFETY: as for `dealloc`; `new_size` is checked by the caller.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
