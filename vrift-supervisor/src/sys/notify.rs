//! seccomp user notification: the listener's ioctls and the filter install.
//!
//! Layouts follow `<linux/seccomp.h>`; the ioctl numbers are computed with the kernel's
//! `_IOWR('!', nr, type)` encoding.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// `struct seccomp_data`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SeccompData {
    pub nr: i32,
    pub arch: u32,
    pub instruction_pointer: u64,
    pub args: [u64; 6],
}

/// `struct seccomp_notif`: one intercepted system call.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Notif {
    pub id: u64,
    /// Thread id of the caller, in the supervisor's pid namespace.
    pub pid: u32,
    pub flags: u32,
    pub data: SeccompData,
}

/// `struct seccomp_notif_resp`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct NotifResp {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}

/// `struct seccomp_notif_addfd`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct NotifAddfd {
    id: u64,
    flags: u32,
    srcfd: u32,
    newfd: u32,
    newfd_flags: u32,
}

const fn iowr(dir: u64, nr: u64, size: usize) -> u64 {
    (dir << 30) | ((size as u64) << 16) | ((b'!' as u64) << 8) | nr
}
const IOC_WRITE: u64 = 1;
const IOC_READ: u64 = 2;
const NOTIF_RECV: u64 = iowr(IOC_READ | IOC_WRITE, 0, std::mem::size_of::<Notif>());
const NOTIF_SEND: u64 = iowr(IOC_READ | IOC_WRITE, 1, std::mem::size_of::<NotifResp>());
const NOTIF_ID_VALID: u64 = iowr(IOC_WRITE, 2, 8);
const NOTIF_ADDFD: u64 = iowr(IOC_WRITE, 3, std::mem::size_of::<NotifAddfd>());
const NOTIF_SET_FLAGS: u64 = iowr(IOC_WRITE, 4, 8);

const USER_NOTIF_FLAG_CONTINUE: u32 = 1;
const ADDFD_FLAG_SEND: u32 = 1 << 1;
const USER_NOTIF_FD_SYNC_WAKE_UP: u64 = 1;
const SET_MODE_FILTER: libc::c_uint = 1;
const FILTER_FLAG_NEW_LISTENER: libc::c_uint = 1 << 3;
const FILTER_FLAG_WAIT_KILLABLE_RECV: libc::c_uint = 1 << 5;

fn ioctl_ptr<T>(fd: RawFd, req: u64, arg: *mut T) -> io::Result<libc::c_int> {
    // SAFETY: `arg` points to a live, correctly sized value of the layout the request expects;
    // the kernel reads/writes only that value.
    let r = unsafe { libc::ioctl(fd, req as libc::c_ulong, arg) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// The supervisor's end of a seccomp filter: receives notifications and answers them.
#[derive(Debug)]
pub struct Listener {
    fd: OwnedFd,
}

impl Listener {
    pub fn from_fd(fd: OwnedFd) -> Listener {
        Listener { fd }
    }

    /// A second handle on the same listener (for a thread that answers one notification
    /// later, such as the open of a FIFO that waits for its other end).
    pub fn try_clone(&self) -> io::Result<Listener> {
        Ok(Listener {
            fd: self.fd.try_clone()?,
        })
    }

    /// Ask the kernel to hand the tracee's CPU to the supervisor synchronously (Linux 6.6+).
    /// Returns false where the kernel does not support it.
    pub fn set_sync_wake_up(&self) -> bool {
        let r =
            // SAFETY: SET_FLAGS takes its argument by value; no memory is passed.
            unsafe { libc::ioctl(self.fd.as_raw_fd(), NOTIF_SET_FLAGS as libc::c_ulong, USER_NOTIF_FD_SYNC_WAKE_UP) };
        r == 0
    }

    /// Block until a notification arrives. ENOENT means its tracee went away meanwhile.
    pub fn recv(&self) -> io::Result<Notif> {
        let mut n = Notif::default(); // the kernel requires a zeroed buffer
        ioctl_ptr(self.fd.as_raw_fd(), NOTIF_RECV, &mut n)?;
        Ok(n)
    }

    /// Has the last process under the filter gone (the listener reports POLLHUP)?
    pub fn hung_up(&self) -> bool {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on one live pollfd, without waiting.
        let r = unsafe { libc::poll(&mut pfd, 1, 0) };
        r > 0 && pfd.revents & libc::POLLHUP != 0
    }

    /// Is the notification still pending (its tracee not killed or interrupted)?
    pub fn id_valid(&self, id: u64) -> bool {
        let mut id = id;
        ioctl_ptr(self.fd.as_raw_fd(), NOTIF_ID_VALID, &mut id).is_ok()
    }

    fn send(&self, mut resp: NotifResp) -> io::Result<()> {
        match ioctl_ptr(self.fd.as_raw_fd(), NOTIF_SEND, &mut resp) {
            Ok(_) => Ok(()),
            // The tracee was interrupted or died: nothing to answer any more.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Let the kernel run the system call as if it had not been intercepted.
    pub fn continue_syscall(&self, id: u64) -> io::Result<()> {
        self.send(NotifResp {
            id,
            val: 0,
            error: 0,
            flags: USER_NOTIF_FLAG_CONTINUE,
        })
    }

    /// Complete the system call with return value `val`.
    pub fn reply_value(&self, id: u64, val: i64) -> io::Result<()> {
        self.send(NotifResp {
            id,
            val,
            error: 0,
            flags: 0,
        })
    }

    /// Fail the system call with `errno`.
    pub fn reply_errno(&self, id: u64, errno: i32) -> io::Result<()> {
        self.send(NotifResp {
            id,
            val: 0,
            error: -errno,
            flags: 0,
        })
    }

    /// Install `fd` in the tracee as the system call's result (the new fd number is returned
    /// to it). `cloexec` sets O_CLOEXEC on the tracee's copy; `writable`: `fd` is open for
    /// writing.
    ///
    /// A writable descriptor's own copy here is closed after the tracee has its copy and
    /// before the answer lets it go on: a file still open for writing here would make the
    /// tracee's next exec of it fail with ETXTBSY (pjdfstest's `truncate::etxtbsy` copies a
    /// program, closes it and runs it at once). So it is installed and answered in two steps,
    /// which a signal cannot split while the tracee waits killably (see
    /// [`install_filter_with_listener`]); any other descriptor in one
    /// (`SECCOMP_ADDFD_FLAG_SEND`), a system call fewer. ENOENT: the call was interrupted or
    /// its thread is gone.
    pub fn reply_with_fd(
        &self,
        id: u64,
        fd: OwnedFd,
        cloexec: bool,
        writable: bool,
    ) -> io::Result<i32> {
        let mut a = NotifAddfd {
            id,
            flags: if writable { 0 } else { ADDFD_FLAG_SEND },
            srcfd: fd.as_raw_fd() as u32,
            newfd: 0,
            newfd_flags: if cloexec { libc::O_CLOEXEC as u32 } else { 0 },
        };
        let newfd = ioctl_ptr(self.fd.as_raw_fd(), NOTIF_ADDFD, &mut a)?;
        if !writable {
            return Ok(newfd);
        }
        drop(fd);
        let mut resp = NotifResp {
            id,
            val: i64::from(newfd),
            error: 0,
            flags: 0,
        };
        ioctl_ptr(self.fd.as_raw_fd(), NOTIF_SEND, &mut resp)?;
        Ok(newfd)
    }
}

/// Install a seccomp filter program that creates a notification listener.
///
/// Called in the child between fork and exec: it only makes system calls (async-signal-safe).
/// `program` is a `struct sock_filter` array in the kernel's binary layout.
///
/// Once the supervisor has received a notification, the program waits for the answer
/// killably only (`WAIT_KILLABLE_RECV`, Linux 5.19): a signal that is not fatal waits for
/// the answer. Without it such a signal interrupts the wait and the kernel restarts the
/// call, after the supervisor may already have made its change: a mkdir made twice says
/// EEXIST, an unlink ENOENT. Older kernels refuse the flag (EINVAL) and get the filter
/// without it.
pub fn install_filter_with_listener(program: &[u8]) -> io::Result<OwnedFd> {
    let fd = match install(
        program,
        FILTER_FLAG_NEW_LISTENER | FILTER_FLAG_WAIT_KILLABLE_RECV,
    ) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            install(program, FILTER_FLAG_NEW_LISTENER)?
        }
        r => r?,
    };
    // SAFETY: the kernel returned a new file descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

fn install(program: &[u8], flags: libc::c_uint) -> io::Result<libc::c_long> {
    #[repr(C)]
    struct SockFprog {
        len: libc::c_ushort,
        filter: *const u8,
    }
    let prog = SockFprog {
        len: (program.len() / 8) as libc::c_ushort,
        filter: program.as_ptr(),
    };
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `prog` points at `program`, which outlives the call; the kernel copies it.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SET_MODE_FILTER,
            flags,
            &prog as *const SockFprog,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// Can this process start a seccomp supervisor? The kernel refuses a second listener in a
/// filter chain (EBUSY), so under vrift (or another seccomp-notify sandbox) it cannot. A
/// forked child tries to install a filter that allows everything, with a listener.
pub fn listener_available() -> bool {
    let in_filter = std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Seccomp:") && l.trim_end().ends_with('2'))
        })
        .unwrap_or(false);
    if !in_filter {
        return true;
    }
    // One instruction: BPF_RET|BPF_K SECCOMP_RET_ALLOW.
    let allow: [u8; 8] = {
        let mut b = [0u8; 8];
        b[..2].copy_from_slice(&0x06u16.to_ne_bytes());
        b[4..].copy_from_slice(&0x7fff_0000u32.to_ne_bytes());
        b
    };
    // SAFETY: the child only makes system calls (prctl, seccomp, _exit) on data prepared
    // before the fork, so it is sound in a multi-threaded parent.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let ok = install_filter_with_listener(&allow).is_ok();
        // SAFETY: _exit ends the child without running the parent's destructors.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    if pid < 0 {
        return true; // cannot tell; the real attempt will report
    }
    let mut status = 0;
    // SAFETY: waiting for the child just forked.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_the_kernel_headers() {
        // Values from <linux/seccomp.h> on x86_64.
        assert_eq!(NOTIF_RECV, 0xc050_2100);
        assert_eq!(NOTIF_SEND, 0xc018_2101);
        assert_eq!(NOTIF_ID_VALID, 0x4008_2102);
        assert_eq!(NOTIF_ADDFD, 0x4018_2103);
        assert_eq!(NOTIF_SET_FLAGS, 0x4008_2104);
    }
}
