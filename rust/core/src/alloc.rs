//! A global allocator that backs large blocks with transparent huge pages.
//!
//! Every kernel returns a freshly allocated volume, and a 1 mm brain in float32
//! (35 MB) is above glibc's largest mmap threshold, so each output is new
//! memory that the kernel's first writes fault in page by page. On the
//! machines we measured, 4 KiB faults cap such writes at a fifth of the copy
//! bandwidth (a 35 MB copy: 28 ms with 4 KiB pages, 5 ms with 2 MiB pages).
//! NumPy asks for huge pages on its large arrays for the same reason; this
//! allocator does the same for ours: it is the system allocator, plus
//! `madvise(MADV_HUGEPAGE)` on blocks of at least [`HUGE_PAGE_THRESHOLD`].
//!
//! The allocator wraps another one (`System` by default). The extension module
//! wraps mimalloc: kernels allocate their outputs on pool threads, where glibc
//! serves them from per-thread arenas that return freed blocks to the kernel at
//! once, so every patch of a sampler paid for fresh pages again (1.7 ms instead
//! of 0.2 ms for a 96^3 float32 patch); mimalloc keeps and reuses them.
//!
//! The extension module installs it with `#[global_allocator]`; the advice is
//! only a hint, so a kernel without it (or a refused `madvise`) is still right.

use std::alloc::{GlobalAlloc, Layout, System};

/// Blocks at least this large are advised to use huge pages (NumPy's threshold).
pub const HUGE_PAGE_THRESHOLD: usize = 4 << 20;

/// Size and alignment of a transparent huge page on x86_64 and aarch64 Linux.
#[cfg(target_os = "linux")]
const HUGE_PAGE: usize = 2 << 20;

/// An allocator `A` with huge-page advice for large blocks.
#[derive(Debug, Default, Clone, Copy)]
pub struct HugePageAllocator<A = System>(pub A);

// SAFETY: every method forwards to the inner allocator with the caller's arguments and
// returns its result unchanged; `advise` only hints the kernel about memory
// that the block owns and never reads or writes it.
unsafe impl<A: GlobalAlloc> GlobalAlloc for HugePageAllocator<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees on `layout`.
        let block = unsafe { self.0.alloc(layout) };
        advise(block, layout.size());
        block
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as above. calloc's large blocks are fresh, untouched pages,
        // so the advice takes effect before the first write faults them in.
        let block = unsafe { self.0.alloc_zeroed(layout) };
        advise(block, layout.size());
        block
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        // SAFETY: `block` came from the inner allocator through this one with `layout`.
        unsafe { self.0.dealloc(block, layout) }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let moved = unsafe { self.0.realloc(block, layout, new_size) };
        advise(moved, new_size);
        moved
    }
}

/// Advises the whole huge pages inside `[block, block + size)`, if large enough.
#[inline]
fn advise(block: *mut u8, size: usize) {
    #[cfg(target_os = "linux")]
    if !block.is_null() && size >= HUGE_PAGE_THRESHOLD {
        let start = (block as usize).next_multiple_of(HUGE_PAGE);
        let end = (block as usize + size) & !(HUGE_PAGE - 1);
        if end > start {
            // SAFETY: `[start, end)` lies inside the block just allocated, and
            // MADV_HUGEPAGE changes no contents; failure (THP disabled) is harmless.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (block, size);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_and_small_blocks_round_trip_their_contents() {
        let allocator = HugePageAllocator(System);
        for size in [16, HUGE_PAGE_THRESHOLD, HUGE_PAGE_THRESHOLD * 3 + 123] {
            let layout = Layout::from_size_align(size, 64).unwrap();
            unsafe {
                let block = allocator.alloc_zeroed(layout);
                assert!(!block.is_null());
                let bytes = std::slice::from_raw_parts_mut(block, size);
                assert!(bytes.iter().all(|&b| b == 0));
                bytes.iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
                let grown = allocator.realloc(block, layout, size * 2);
                assert!(!grown.is_null());
                let bytes = std::slice::from_raw_parts(grown, size);
                assert!(bytes.iter().enumerate().all(|(i, &b)| b == i as u8));
                allocator.dealloc(grown, Layout::from_size_align(size * 2, 64).unwrap());
            }
        }
    }
}
