//! The seccomp supervisor: receives the tracees' notified system calls and serves view paths.
//!
//! Worker threads each block in `SECCOMP_IOCTL_NOTIF_RECV` on the shared listener; the kernel
//! hands every notification to exactly one of them, so a slow answer never stalls the others
//! and parallel builds are served in parallel. Paths outside the view are answered with
//! `CONTINUE` as early as possible: that is the hot path.

mod creds;
mod handlers;
pub mod journal;
pub mod model;
mod paths;
pub mod served;
mod statbuf;

use std::sync::Arc;

use crate::sys::notify::{Listener, Notif};
pub use model::Model;

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

    /// Start `workers` threads serving notifications. They run until the process exits: a
    /// thread blocked in RECV is not woken when the last tracee goes away, so nobody joins them.
    pub fn spawn_workers(self: &Arc<Self>, workers: usize) {
        for i in 0..workers {
            let me = Arc::clone(self);
            std::thread::Builder::new()
                .name(format!("vrift-sup-{i}"))
                .spawn(move || me.serve())
                .expect("spawn supervisor thread");
        }
    }

    fn serve(&self) {
        // One thread at a time holds the turn to receive, and keeps it while it answers fast
        // calls (pass-through, stat, open for reading...): that thread loops like a
        // single-threaded supervisor, and the others sleep on the turn instead of all being
        // woken by every notification, as threads waiting in RECV would be. Before a call
        // that may take long (a change carried out on the farm, such as copying a file it
        // opens for writing), it hands the turn on, so one slow answer never holds up others.
        let mut turn = Some(self.receive_turn.lock().unwrap());
        loop {
            if turn.is_none() {
                turn = Some(self.receive_turn.lock().unwrap());
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
        let (served, reply, path) =
            handlers::dispatch(&self.model, &self.listener, n, self.served.is_some());
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
