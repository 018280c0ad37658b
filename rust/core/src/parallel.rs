//! The process-local, fork-safe rayon pool that every kernel runs in.
//!
//! rayon's global pool must never be used: a process forked by a PyTorch
//! `DataLoader` inherits the parent's pool bookkeeping but none of its threads,
//! and the first parallel call in the child deadlocks. This module keeps one
//! pool per process id and silently builds a new one after a fork.
//!
//! The bookkeeping's lock must not be inherited held either: a fork while
//! another thread configures the pool (a loader starting its workers while a
//! read-ahead thread runs a kernel) would leave it locked for ever in the
//! child. On Linux, fork handlers take the lock before the fork and release
//! it on both sides.

use std::cell::UnsafeCell;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rayon::{ThreadPool, ThreadPoolBuilder};

use crate::error::{Error, Result};

struct PoolState {
    /// Process that built `pool`; a different current pid means we were forked.
    pid: u32,
    /// Requested number of threads; 0 means "all available cores".
    requested: usize,
    pool: Option<Arc<ThreadPool>>,
}

/// The pool bookkeeping behind a lock that fork handlers can take and
/// release (a `std::sync::Mutex` cannot be released from a fork handler).
struct StateLock {
    locked: AtomicBool,
    state: UnsafeCell<PoolState>,
}

// SAFETY: `state` is only reached through a `StateGuard`, which exists only
// while this thread holds `locked` (see `acquire`).
unsafe impl Sync for StateLock {}

static STATE: StateLock = StateLock {
    locked: AtomicBool::new(false),
    state: UnsafeCell::new(PoolState {
        pid: 0,
        requested: 0,
        pool: None,
    }),
};

/// Exclusive access to the pool bookkeeping; releases the lock when dropped.
struct StateGuard;

impl Deref for StateGuard {
    type Target = PoolState;
    fn deref(&self) -> &PoolState {
        // SAFETY: the guard's existence means this thread holds the lock.
        unsafe { &*STATE.state.get() }
    }
}

impl DerefMut for StateGuard {
    fn deref_mut(&mut self) -> &mut PoolState {
        // SAFETY: as in `deref`; the `&mut self` borrow makes it unique.
        unsafe { &mut *STATE.state.get() }
    }
}

impl Drop for StateGuard {
    fn drop(&mut self) {
        release();
    }
}

/// Takes the lock, yielding while another thread holds it (it is held for a
/// few integer updates, or while a pool's threads start).
fn acquire() {
    while STATE
        .locked
        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        std::thread::yield_now();
    }
}

fn release() {
    STATE.locked.store(false, Ordering::Release);
}

/// Registers (once per process) the fork handlers that keep a fork from
/// inheriting the lock held by another thread.
#[cfg(target_os = "linux")]
fn register_fork_handlers() {
    static REGISTERED: std::sync::Once = std::sync::Once::new();
    REGISTERED.call_once(|| {
        extern "C" fn prepare() {
            acquire();
        }
        extern "C" fn after() {
            release();
        }
        // SAFETY: the handlers only flip an atomic flag, which is
        // async-signal-safe; registration cannot fail but for lack of memory,
        // in which case the lock is merely not protected across forks.
        unsafe {
            libc::pthread_atfork(Some(prepare), Some(after), Some(after));
        }
    });
}

#[cfg(not(target_os = "linux"))]
fn register_fork_handlers() {}

fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn lock_state() -> StateGuard {
    register_fork_handlers();
    acquire();
    StateGuard
}

/// Sets the number of threads kernels use in this process (0 = all cores).
///
/// The pool is rebuilt lazily on the next kernel call.
pub fn set_num_threads(threads: usize) {
    let mut state = lock_state();
    if state.requested != threads {
        state.requested = threads;
        forget_pool(&mut state);
    }
}

/// Number of threads the next kernel call will use.
pub fn num_threads() -> usize {
    let state = lock_state();
    resolve(state.requested)
}

fn resolve(requested: usize) -> usize {
    if requested == 0 {
        available_cores()
    } else {
        requested
    }
}

fn forget_pool(state: &mut PoolState) {
    if let Some(pool) = state.pool.take() {
        if state.pid == std::process::id() {
            drop(pool);
        } else {
            // Inherited across fork: its worker threads do not exist here, so
            // dropping it could wait on them forever. Leak it instead.
            std::mem::forget(pool);
        }
    }
}

fn current_pool() -> Result<Arc<ThreadPool>> {
    let mut state = lock_state();
    let pid = std::process::id();
    if state.pid != pid {
        forget_pool(&mut state);
        state.pid = pid;
    }
    if let Some(pool) = &state.pool {
        return Ok(Arc::clone(pool));
    }
    let threads = resolve(state.requested);
    let pool = ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("torchvox-{i}"))
        .build()
        .map_err(|e| Error::ThreadPool(e.to_string()))?;
    let pool = Arc::new(pool);
    state.pool = Some(Arc::clone(&pool));
    Ok(pool)
}

/// Runs `f` inside this process's pool, so every rayon call in `f` uses it.
pub fn install<R, F>(f: F) -> Result<R>
where
    R: Send,
    F: FnOnce() -> Result<R> + Send,
{
    let pool = current_pool()?;
    pool.install(f)
}

/// Runs `task(index, item)` for every item, on the calling thread and on as
/// many of the pool's threads as the thread count allows, each taking the
/// next item until none is left.
///
/// For kernels of uniform, independent items (the planes of a copy) called
/// from outside the pool: [`install`] hands the whole kernel to a pool thread
/// and sleeps until it is done, so every call pays two thread wake-ups
/// before and after the work, which on a virtual machine is a large part of
/// a millisecond-long copy. Here the caller starts at once and the pool's
/// threads join as they wake. With one thread the items run on the caller
/// alone, with no hand-off at all.
///
/// `task` must not itself use rayon (the caller is not a pool thread).
pub fn share_items<I, F>(items: Vec<I>, task: F) -> Result<()>
where
    I: Send,
    F: Fn(usize, I) + Sync,
{
    let threads = num_threads().min(items.len());
    if threads <= 1 {
        items
            .into_iter()
            .enumerate()
            .for_each(|(n, item)| task(n, item));
        return Ok(());
    }
    let pool = current_pool()?;
    // Each slot is taken exactly once (the counter hands out each index once);
    // the lock only makes the hand-over of its item safe.
    let slots: Vec<Mutex<Option<I>>> = items.into_iter().map(|i| Mutex::new(Some(i))).collect();
    let next = AtomicUsize::new(0);
    let drain = || loop {
        let n = next.fetch_add(1, Ordering::Relaxed);
        let Some(slot) = slots.get(n) else { break };
        let item = slot
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(item) = item {
            task(n, item);
        }
    };
    pool.in_place_scope(|scope| {
        for _ in 1..threads {
            scope.spawn(|_| drain());
        }
        drain();
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    /// Held by the tests that change the process's thread count, which cargo
    /// would otherwise run at the same time.
    static THREAD_COUNT: Mutex<()> = Mutex::new(());

    fn lock_thread_count() -> std::sync::MutexGuard<'static, ()> {
        THREAD_COUNT.lock().unwrap_or_else(|p| p.into_inner())
    }

    #[test]
    fn install_uses_requested_thread_count() {
        let _guard = lock_thread_count();
        set_num_threads(2);
        let n = install(|| Ok(rayon::current_num_threads())).unwrap();
        assert_eq!(n, 2);
        set_num_threads(1);
        let n = install(|| Ok(rayon::current_num_threads())).unwrap();
        assert_eq!(n, 1);
        set_num_threads(0);
        assert_eq!(num_threads(), available_cores());
    }

    #[test]
    fn shared_items_each_run_once_on_any_thread_count() {
        let _guard = lock_thread_count();
        for threads in [1, 2, 3] {
            set_num_threads(threads);
            let mut counts = vec![0u32; 103];
            share_items(counts.iter_mut().collect(), |n, count| {
                assert!(n < 103);
                *count += 1 + n as u32;
            })
            .unwrap();
            let expected: Vec<u32> = (0..103).map(|n| 1 + n).collect();
            assert_eq!(counts, expected);
            share_items(Vec::<&mut u32>::new(), |_, _| unreachable!()).unwrap();
        }
        // One thread: no hand-off, every item runs on the caller.
        set_num_threads(1);
        let caller = std::thread::current().id();
        let mut threads = [None; 9];
        share_items(threads.iter_mut().collect(), |_, slot| {
            *slot = Some(std::thread::current().id());
        })
        .unwrap();
        assert!(threads.iter().all(|&id| id == Some(caller)));
        set_num_threads(0);
    }

    #[test]
    fn install_propagates_errors_and_values() {
        let sum: i64 = install(|| Ok((0..1000i64).into_par_iter().sum())).unwrap();
        assert_eq!(sum, 499_500);
        let err = install(|| -> Result<()> { Err(Error::Empty("x".into())) }).unwrap_err();
        assert_eq!(err, Error::Empty("x".into()));
    }
}
