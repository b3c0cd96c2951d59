//! The seccomp supervisor: receives the tracees' notified system calls and serves view paths.
//!
//! A few worker threads share the listener, but only one at a time holds the turn to wait in
//! `SECCOMP_IOCTL_NOTIF_RECV` (the kernel wakes every waiting thread for each notification);
//! it keeps the turn while it answers fast calls and hands it on before a call that may take
//! long, so a slow answer never stalls the others and parallel builds are served in
//! parallel. Paths outside the view are answered with `CONTINUE` as early as possible: that
//! is the hot path.

use std::sync::Arc;

use super::handlers;
use super::model::Model;
use super::served;
use crate::sys::notify::{Listener, Notif};
use crate::view::state::lock;

/// How one notification was served (counted per syscall by `vrift trace`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Served {
    Hit,
    Miss,
    Passthrough,
    Denied,
}

pub struct Supervisor {
    listener: Listener,
    model: Arc<Model>,
    /// Per-syscall and per-path detail, kept only under `vrift trace`.
    pub served: Option<Arc<served::ServedStats>>,
    receive_turn: std::sync::Mutex<()>,
}

impl Supervisor {
    pub fn new(
        listener: Listener,
        model: Arc<Model>,
        served: Option<Arc<served::ServedStats>>,
    ) -> Arc<Supervisor> {
        Arc::new(Supervisor {
            listener,
            model,
            served,
            receive_turn: std::sync::Mutex::new(()),
        })
    }

    /// Start `workers` threads serving notifications. They stop when the listener reports
    /// that no process is left under the filter. A thread that cannot be made is reported
    /// (after at least one started, the run goes on with fewer).
    pub fn spawn_workers(self: &Arc<Self>, workers: usize) -> std::io::Result<()> {
        for i in 0..workers {
            let me = Arc::clone(self);
            let started = std::thread::Builder::new()
                .name(format!("vrift-sup-{i}"))
                .spawn(move || me.serve());
            match started {
                Ok(_) => {}
                Err(e) if i > 0 => {
                    tracing::warn!("starting supervisor thread {i}: {e}; serving with {i}");
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn serve(&self) {
        // One thread at a time holds the turn to receive, and keeps it while it answers fast
        // calls (pass-through, stat, open for reading...): that thread loops like a
        // single-threaded supervisor, and the others sleep on the turn instead of all being
        // woken by every notification, as threads waiting in RECV would be. Before a call
        // that may take long (a change carried out on the farm, such as copying a file it
        // opens for writing), it hands the turn on, so one slow answer never holds up others.
        let mut turn = Some(lock(&self.receive_turn));
        loop {
            if turn.is_none() {
                turn = Some(lock(&self.receive_turn));
            }
            let n = match self.listener.recv() {
                Ok(n) => n,
                // The caller was interrupted or died between wake-up and receive, or (on
                // recent kernels) no process is left under the filter.
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::EINTR)) => {
                    if self.listener.hung_up() {
                        return;
                    }
                    continue;
                }
                Err(e) => {
                    tracing::debug!("listener closed: {e}");
                    return;
                }
            };
            if handlers::may_be_slow(&n) {
                turn = None;
            }
            self.handle(&n);
        }
    }

    fn handle(&self, n: &Notif) {
        let started = self.served.as_ref().map(|_| std::time::Instant::now());
        // A handler that panics answers EIO instead of leaving its caller hanging, and the
        // other workers go on (the locks it held are taken back, see `run::state`).
        let dispatched = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            handlers::dispatch(&self.model, &self.listener, n, self.served.is_some())
        }));
        let (served, reply, path) = dispatched.unwrap_or_else(|_| {
            tracing::error!("the handler of syscall {} panicked", n.data.nr);
            (Served::Denied, Reply::Errno(libc::EIO), None)
        });
        let continued = reply == Reply::Continue;
        let result = match reply {
            Reply::Continue => self.listener.continue_syscall(n.id),
            Reply::Value(v) => self.listener.reply_value(n.id, v),
            Reply::Errno(e) => self.listener.reply_errno(n.id, e),
            Reply::Done => Ok(()),
        };
        if let Err(e) = result {
            tracing::debug!("answering notification {}: {e}", n.id);
        }
        if let (Some(stats), Some(t)) = (&self.served, started) {
            stats.record(
                n.data.nr,
                served,
                continued,
                t.elapsed().as_nanos() as u64,
                path,
            );
        }
    }
}

/// What to answer a notification with.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// Let the kernel run the call as issued.
    Continue,
    Value(i64),
    Errno(i32),
    /// Already answered (e.g. by installing an fd).
    Done,
}
