//! A counting global allocator: live bytes and their peak, so the campaign can bound the
//! memory one input makes the decoder take.
//!
//! Install it in the binary that runs a campaign (`#[global_allocator] static A: Counting =
//! Counting;`); [`installed`] tells whether it is. Counts are process-wide: the campaign
//! runs one input at a time on one thread, so the peak between two resets is that
//! input's (the watchdog thread allocates nothing while it sleeps).

use mimalloc::MiMalloc;
use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// gavel's allocator (mimalloc, as `src/main.rs` installs it), counting.
pub struct Counting;

// SAFETY: every call is forwarded to `MiMalloc` unchanged; the counters only observe.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { MiMalloc.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { MiMalloc.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { MiMalloc.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { MiMalloc.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Relaxed);
            }
        }
        p
    }
}

fn grew(by: usize) {
    let live = LIVE.fetch_add(by, Relaxed) + by;
    PEAK.fetch_max(live, Relaxed);
}

/// Bytes allocated and not yet freed.
pub fn live() -> usize {
    LIVE.load(Relaxed)
}

/// Starts a new peak measurement at the current live bytes; returns them.
pub fn reset_peak() -> usize {
    let live = LIVE.load(Relaxed);
    PEAK.store(live, Relaxed);
    live
}

/// The highest live bytes since the last [`reset_peak`].
pub fn peak() -> usize {
    PEAK.load(Relaxed)
}

/// Whether [`Counting`] is the global allocator of this process.
///
/// Other threads allocate and free meanwhile (the test harness, a finished campaign's
/// watchdog), so one small probe can be hidden by a concurrent free: the probe is large
/// (16 MiB, zeroed lazily by the system, so cheap), only half of it must show, and it is
/// tried three times.
pub fn installed() -> bool {
    const PROBE: usize = 16 << 20;
    (0..3).any(|_| {
        let before = reset_peak();
        let probe = std::hint::black_box(vec![0u8; PROBE]);
        let seen = peak() >= before + PROBE / 2;
        drop(probe);
        seen
    })
}
