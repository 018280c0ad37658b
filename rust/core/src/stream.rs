//! Memory-traffic helpers: copies into memory that is not read back soon,
//! with non-temporal stores, and prefetch hints.
//!
//! A kernel's output is fresh memory: an ordinary store to a line that is not
//! cached first reads it from memory (read for ownership), so a copy moves
//! three bytes per byte copied. Streaming stores write whole lines without
//! reading them, which matters for copy-bound kernels such as flips, where
//! the output is tens of megabytes and nothing reads it until the kernel ends.

/// Blocks below this size are copied plainly: streaming pays off for whole
/// planes, while short rows split into partial lines (plain stores at both
/// ends next to streamed ones) copy several times slower than `memcpy`.
pub const STREAM_MIN_BYTES: usize = 16 << 10;

/// Copies `src` into `dst` (equal lengths) with streaming stores where the
/// platform has them, plain copies elsewhere and for the unaligned ends.
///
/// The stores are fenced before returning, so the data is visible to any
/// thread that synchronises with this one afterwards (a rayon join).
///
/// # Panics
/// Never for equal lengths; callers pass slices of the same length (a
/// mismatch falls back to `copy_from_slice`'s own length check).
pub fn copy_streaming<T: Copy>(dst: &mut [T], src: &[T]) {
    #[cfg(target_arch = "x86_64")]
    if dst.len() == src.len() && std::mem::size_of_val(dst) >= STREAM_MIN_BYTES {
        let bytes = std::mem::size_of_val(dst);
        // SAFETY: both slices hold `bytes` bytes of plain `Copy` data, and
        // `dst` is borrowed mutably so the ranges do not overlap.
        unsafe { stream_bytes(dst.as_mut_ptr().cast(), src.as_ptr().cast(), bytes) };
        return;
    }
    dst.copy_from_slice(src);
}

/// Whether [`RowStreamer`] streams rows of `row_bytes` bytes into `dst`: on
/// x86-64, for rows that are whole 16-byte units starting at a 16-byte
/// aligned `dst`, so that every row of a plane written back to back stays
/// aligned and no cache line is part streamed, part stored plainly.
pub fn can_stream_rows<T>(dst: &[T], row_bytes: usize) -> bool {
    cfg!(target_arch = "x86_64")
        && row_bytes.is_multiple_of(16)
        && dst.as_ptr().align_offset(16) == 0
}

/// Copies rows with non-temporal stores, fencing once when dropped.
///
/// For kernels whose output is much larger than the caches and is written
/// row by row (a batch of patches): a fence per row would cost more than
/// the read for ownership it saves.
pub struct RowStreamer {
    _private: (),
}

impl RowStreamer {
    /// A streamer for one task's rows (fenced when it goes out of scope).
    pub fn new() -> Self {
        Self { _private: () }
    }

    /// Copies `src` into `dst` (equal lengths), streaming whole 16-byte units
    /// to `dst` if it is 16-byte aligned and plainly otherwise.
    pub fn copy<T: Copy>(&mut self, dst: &mut [T], src: &[T]) {
        #[cfg(target_arch = "x86_64")]
        if dst.len() == src.len() {
            let bytes = std::mem::size_of_val(dst);
            // SAFETY: both slices hold `bytes` bytes of plain `Copy` data, and
            // `dst` is borrowed mutably so the ranges do not overlap.
            unsafe { stream_unfenced(dst.as_mut_ptr().cast(), src.as_ptr().cast(), bytes) };
            return;
        }
        dst.copy_from_slice(src);
    }
}

impl Default for RowStreamer {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for RowStreamer {
    fn drop(&mut self) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a store fence has no preconditions. (Older compilers
        // declare the intrinsic unsafe; newer ones call it safe.)
        #[allow(unused_unsafe)]
        unsafe {
            std::arch::x86_64::_mm_sfence()
        };
    }
}

/// Streams `len` bytes from `src` to `dst` with SSE2 (every x86-64 CPU):
/// plain copies up to the first 16-byte aligned destination address and
/// after the last one, streaming stores in between, then a store fence.
///
/// # Safety
/// `src` and `dst` must be valid for `len` bytes and must not overlap.
#[cfg(target_arch = "x86_64")]
unsafe fn stream_bytes(dst: *mut u8, src: *const u8, len: usize) {
    // SAFETY: forwarded from the caller; the fence has no preconditions.
    unsafe {
        stream_unfenced(dst, src, len);
        std::arch::x86_64::_mm_sfence();
    }
}

/// [`stream_bytes`] without the closing store fence, for a caller that
/// fences once after many calls.
///
/// # Safety
/// As for [`stream_bytes`].
#[cfg(target_arch = "x86_64")]
unsafe fn stream_unfenced(dst: *mut u8, src: *const u8, len: usize) {
    use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_stream_si128};
    const LINE: usize = 16;
    let head = dst.align_offset(LINE).min(len);
    let body = (len - head) / LINE * LINE;
    // SAFETY: every range below lies within the `len` bytes the caller vouches
    // for; the body's destination is 16-byte aligned as the stores require.
    unsafe {
        std::ptr::copy_nonoverlapping(src, dst, head);
        let (src_body, dst_body) = (src.add(head), dst.add(head));
        for at in (0..body).step_by(LINE) {
            let value = _mm_loadu_si128(src_body.add(at).cast::<__m128i>());
            _mm_stream_si128(dst_body.add(at).cast::<__m128i>(), value);
        }
        let done = head + body;
        std::ptr::copy_nonoverlapping(src.add(done), dst.add(done), len - done);
    }
}

/// Asks the cache for the line holding `address`, for access patterns the
/// hardware prefetchers do not follow (many interleaved streams).
///
/// A prefetch is a hint that never faults, so `address` need not point into
/// any allocation (form it with `wrapping_offset`); nothing is read or
/// written. A no-op on other platforms.
#[inline(always)]
pub fn prefetch(address: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: see above. (Older compilers declare the intrinsic unsafe;
    // newer ones call it safe.)
    #[allow(unused_unsafe)]
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(address.cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn streams_every_length_and_alignment() {
        let source: Vec<u8> = (0..300u32).map(|v| (v * 7 % 251) as u8).collect();
        for start in 0..17 {
            for len in [0, 1, 15, 16, 17, 31, 64, 100, 283 - start] {
                let mut target = vec![0u8; 300];
                // SAFETY: the slices hold `len` bytes each and do not overlap.
                unsafe {
                    stream_bytes(target[start..].as_mut_ptr(), source.as_ptr(), len);
                }
                assert_eq!(&target[start..start + len], &source[..len]);
                assert!(target[..start].iter().all(|&v| v == 0));
                assert!(target[start + len..].iter().all(|&v| v == 0));
            }
        }
    }

    #[test]
    fn row_streamer_copies_rows_of_any_length_and_alignment() {
        let source: Vec<u16> = (0..400u16).map(|v| v.wrapping_mul(2_654)).collect();
        for start in 0..9 {
            for len in [0, 1, 7, 8, 9, 24, 100, 391 - start] {
                let mut target = vec![0u16; 400];
                {
                    let mut streamer = RowStreamer::new();
                    // Two rows back to back, as a plane's rows are written.
                    let (first, second) = target[start..start + len].split_at_mut(len / 2);
                    streamer.copy(first, &source[..len / 2]);
                    streamer.copy(second, &source[len / 2..len]);
                }
                assert_eq!(&target[start..start + len], &source[..len]);
                assert!(target[..start].iter().all(|&v| v == 0));
                assert!(target[start + len..].iter().all(|&v| v == 0));
            }
        }
        #[repr(C, align(16))]
        struct Aligned([u32; 16]);
        let block = Aligned([0; 16]);
        assert_eq!(can_stream_rows(&block.0, 32), cfg!(target_arch = "x86_64"));
        assert!(!can_stream_rows(&block.0, 24));
        assert!(!can_stream_rows(&block.0[1..], 32));
    }

    #[test]
    fn copies_large_blocks_from_any_offset() {
        // Above the streaming threshold, from an odd offset.
        let floats: Vec<f32> = (0..10_000).map(|v| v as f32 * 0.5).collect();
        let mut out = vec![0.0f32; 10_000];
        copy_streaming(&mut out[1..], &floats[..9_999]);
        assert_eq!(&out[1..], &floats[..9_999]);
        assert_eq!(out[0], 0.0);
    }
}
