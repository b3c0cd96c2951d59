//! The process's one [`Shim`], made on first use, and the guard that keeps the shim's own
//! calls (and calls made while it sets itself up) away from the hooks.

use std::cell::Cell;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicI32, AtomicU8, AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::core::Shim;

const NEW: u8 = 0;
const STARTING: u8 = 1;
const READY: u8 = 2;
const OFF: u8 = 3;

/// The exit status of a process of a run whose shim could not set up (as a shell's "cannot
/// execute").
pub const EXIT_NO_VIEW: i32 = 126;

static INIT: AtomicU8 = AtomicU8::new(NEW);
static STATE: Mutex<Option<Shim>> = Mutex::new(None);

/// How many descriptors the view handed out in this process: while none, `close` and the
/// `dup` family need not take the lock.
pub static VIEW_FDS: AtomicUsize = AtomicUsize::new(0);

/// The shim's own descriptor on the store's blob directory (-1: none open), which blobs are
/// opened relative to. A program may close it or put another file at its number (`dup2`,
/// a loop closing every descriptor): the hooks of those calls forget it, and it is opened
/// again when next needed.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub static BLOBS_DIR: AtomicI32 = AtomicI32::new(-1);

/// `fd` is closed or replaced by the program: if it was [`BLOBS_DIR`], it is no longer ours.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub fn fd_gone(fd: i32) {
    if fd >= 0 {
        let _ = BLOBS_DIR.compare_exchange(fd, -1, Ordering::AcqRel, Ordering::Relaxed);
    }
}

/// The descriptors `first..=last` are closed by the program (see [`fd_gone`]).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub fn fds_gone(first: u32, last: u32) {
    let dir = BLOBS_DIR.load(Ordering::Acquire);
    if dir >= 0 && (first..=last).contains(&(dir as u32)) {
        fd_gone(dir);
    }
}

thread_local! {
    /// Set while this thread runs shim code: any libc call the shim makes itself reaches
    /// the hooks again and must go straight to the real function. `const` and without a
    /// destructor, so reading it never allocates.
    static BUSY: Cell<bool> = const { Cell::new(false) };
}

fn init() {
    let made = std::panic::catch_unwind(Shim::from_env);
    let (state, next) = match made {
        Ok(Ok(Some(s))) => (Some(s), READY),
        Ok(Ok(None)) => (None, OFF),
        // With a supervisor behind the shim, every call the shim does not answer reaches
        // the supervisor, which serves the whole view: a process whose shim cannot set up
        // (one running as another user, who may not read the store's index) is served by
        // the supervisor alone, as a static program is.
        Ok(Err(_)) if crate::env::supervised() => (None, OFF),
        // In a run, but the view cannot be served: running on would let the program see
        // and write the real tree where it expects the view. Stop it, saying why.
        Ok(Err(e)) => {
            crate::sys::write_stderr(
                format!("vrift-shim: cannot serve the view: {e}\n").as_bytes(),
            );
            crate::sys::exit(EXIT_NO_VIEW);
        }
        Err(_) => {
            crate::sys::write_stderr(b"vrift-shim: cannot serve the view: set-up failed\n");
            crate::sys::exit(EXIT_NO_VIEW);
        }
    };
    *STATE.lock().unwrap_or_else(|p| p.into_inner()) = state;
    INIT.store(next, Ordering::Release);
}

/// Run `f` on the process's shim; `None` (the hook passes the call through) when the shim
/// is off, still being set up, or the call comes from the shim itself.
pub fn with<R>(f: impl FnOnce(&mut Shim) -> R) -> Option<R> {
    if BUSY.get() {
        return None;
    }
    BUSY.set(true);
    let r = std::panic::catch_unwind(AssertUnwindSafe(|| {
        match INIT.load(Ordering::Acquire) {
            READY => {}
            NEW => {
                if INIT
                    .compare_exchange(NEW, STARTING, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    init();
                }
                if INIT.load(Ordering::Acquire) != READY {
                    return None;
                }
            }
            _ => return None,
        }
        let mut g = STATE.lock().unwrap_or_else(|p| p.into_inner());
        g.as_mut().map(f)
    }));
    BUSY.set(false);
    r.ok().flatten()
}

/// Does this process hold any descriptor the view handed out?
pub fn has_view_fds() -> bool {
    VIEW_FDS.load(Ordering::Relaxed) != 0
}

/// Set up as soon as the loader has loaded the library, while the environment vrift gave is
/// still the process's: a program may clear it (`env -i`) before its first file call.
#[cfg(not(test))]
extern "C" fn at_load() {
    let _ = with(|_| ());
    crate::sys::at_fork(fork_prepare, fork_done, fork_done);
}

thread_local! {
    /// The state's lock, held by the thread that forks from just before the fork until just
    /// after it in both processes: the child never inherits it held by a thread it does not
    /// have.
    static FORK_GUARD: std::cell::RefCell<Option<std::sync::MutexGuard<'static, Option<Shim>>>> =
        const { std::cell::RefCell::new(None) };
}

#[cfg(not(test))]
extern "C" fn fork_prepare() {
    if BUSY.get() || INIT.load(Ordering::Acquire) != READY {
        return;
    }
    let g = STATE.lock().unwrap_or_else(|p| p.into_inner());
    FORK_GUARD.with(|f| *f.borrow_mut() = Some(g));
}

#[cfg(not(test))]
extern "C" fn fork_done() {
    FORK_GUARD.with(|f| f.borrow_mut().take());
}

#[cfg(all(target_os = "linux", not(test)))]
#[used]
#[link_section = ".init_array"]
static AT_LOAD: extern "C" fn() = at_load;

#[cfg(all(target_os = "macos", not(test)))]
#[used]
#[link_section = "__DATA,__mod_init_func"]
static AT_LOAD: extern "C" fn() = at_load;
