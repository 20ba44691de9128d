//! A per-thread ceiling on single allocations while a third-party parser reads one file: the
//! backstop behind [`crate::io::dicom::bounds`].
//!
//! dicom-rs reserves each value's buffer by its declared length, fallibly (`try_reserve`), before
//! reading it. The length walk refuses such lengths first; should the walk and dicom-rs ever
//! disagree on where an element starts, this ceiling makes the reservation fail instead, and
//! dicom-rs reports an error rather than committing gigabytes. While no ceiling is set (every
//! thread, nearly all the time) the allocator is the system's with one thread-local read added.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    static CEILING: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// The system allocator, refusing single allocations above the calling thread's ceiling.
pub struct Guarded;

fn over(size: usize) -> bool {
    CEILING.try_with(|c| size > c.get()).unwrap_or(false)
}

// SAFETY: every call is passed to `System` unchanged, or answered with null (allocation
// failure), which callers of `GlobalAlloc` must handle.
unsafe impl GlobalAlloc for Guarded {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if over(layout.size()) {
            return std::ptr::null_mut();
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if over(layout.size()) {
            return std::ptr::null_mut();
        }
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if over(new_size) {
            return std::ptr::null_mut();
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Guarded = Guarded;

/// Run `f` with single allocations on this thread limited to `ceiling` bytes (the previous
/// ceiling is restored afterwards, also on unwinding). Only for code whose large allocations
/// are fallible (a parser's `try_reserve`): an infallible one over the ceiling aborts.
pub fn with_ceiling<T>(ceiling: usize, f: impl FnOnce() -> T) -> T {
    struct Restore(usize);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = CEILING.try_with(|c| c.set(self.0));
        }
    }
    let previous = CEILING.with(|c| c.replace(ceiling.min(c.get())));
    let _restore = Restore(previous);
    f()
}

/// The ceiling for parsing a file of `len` bytes: no value of it can be longer than the file,
/// plus room for the parser's own buffers; a deflated data set may inflate up to
/// [`crate::io::dicom::bounds::MAX_INFLATED`].
pub fn ceiling_for_file(len: u64, deflated: bool) -> usize {
    let base = if deflated {
        crate::io::dicom::bounds::MAX_INFLATED
    } else {
        len
    };
    (base.saturating_add(16 << 20)).min(usize::MAX as u64) as usize
}

/// Ask the kernel to back a large, freshly reserved buffer with transparent huge pages (2 MiB
/// instead of 4 KiB on x86-64 Linux), where the system leaves that to `madvise` (the common
/// default). Writing a volume into new memory is otherwise dominated by one page fault per
/// 4 KiB; with huge pages there is one per 2 MiB. A hint only: nothing changes where the
/// kernel declines or on other systems. `SYNTHSCOPE_HUGE_PAGES=off` turns it off (to compare).
pub fn advise_huge_pages<T>(buf: &mut [std::mem::MaybeUninit<T>]) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const HUGE: usize = 2 << 20;
        let bytes = std::mem::size_of_val(buf);
        if bytes < 4 * HUGE || std::env::var_os("SYNTHSCOPE_HUGE_PAGES").is_some_and(|v| v == "off")
        {
            return;
        }
        let start = buf.as_mut_ptr() as usize;
        let first = start.next_multiple_of(HUGE);
        let end = (start + bytes) / HUGE * HUGE;
        if end > first {
            // SAFETY: [first, end) lies inside `buf`, memory this process owns; MADV_HUGEPAGE
            // changes how the kernel backs it, never its contents or validity.
            unsafe {
                libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = buf;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reservation_over_the_ceiling_fails_and_the_ceiling_is_restored() {
        let r = with_ceiling(1 << 20, || {
            let mut v: Vec<u8> = Vec::new();
            (
                v.try_reserve_exact(64 << 20).is_err(),
                v.try_reserve_exact(1024).is_ok(),
            )
        });
        assert_eq!(r, (true, true));
        let mut v: Vec<u8> = Vec::new();
        assert!(v.try_reserve_exact(64 << 20).is_ok());
    }
}
