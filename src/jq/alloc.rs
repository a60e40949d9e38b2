//! The counting allocator: bytes allocated and freed per thread, so an evaluation knows how
//! much its values hold.

use std::cell::Cell;

thread_local! {
    /// Bytes allocated minus bytes freed on this thread (see [`CountingAllocator`]).
    static LIVE_BYTES: Cell<isize> = const { Cell::new(0) };
}

/// The process's allocator: the system's, counting per thread the bytes allocated and freed, so
/// that an evaluation knows how much its values hold. jaq has no hook on the size of what a
/// program builds (`reduce range(29) as $i ("x"; . + .)` reaches 1 GiB in a few dozen steps),
/// and the evaluator thread allocates little besides the program's values. Installed in
/// `lib.rs`; a thread-local add per allocation is all it costs.
pub struct CountingAllocator;

#[inline]
pub(super) fn count(delta: isize) {
    // `try_with`: during thread teardown the counter may be gone; nothing to count then.
    let _ = LIVE_BYTES.try_with(|live| live.set(live.get().wrapping_add(delta)));
}

pub(super) fn live_bytes() -> isize {
    LIVE_BYTES.try_with(Cell::get).unwrap_or(0)
}

// SAFETY: every call is forwarded unchanged to `System`; the counting touches only a
// thread-local `Cell` with a const initialiser (no allocation, no destructor).
unsafe impl std::alloc::GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let pointer = unsafe { std::alloc::System.alloc(layout) };
        if !pointer.is_null() {
            count(layout.size() as isize);
        }
        pointer
    }

    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let pointer = unsafe { std::alloc::System.alloc_zeroed(layout) };
        if !pointer.is_null() {
            count(layout.size() as isize);
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: std::alloc::Layout) {
        count(-(layout.size() as isize));
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { std::alloc::System.dealloc(pointer, layout) }
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let moved = unsafe { std::alloc::System.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        moved
    }
}
