//! The few system facilities the core needs that std has no safe API for. Every `unsafe`
//! block of the core is here.

use std::sync::atomic::{AtomicU64, Ordering};

/// The caller's effective ids and supplementary groups.
pub fn ids() -> (u32, u32, Vec<u32>) {
    // SAFETY: geteuid/getegid cannot fail and take no pointers.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let mut groups = vec![0 as libc::gid_t; 256];
    // SAFETY: the buffer holds `groups.len()` gid_t values, the size passed.
    let n = unsafe { libc::getgroups(groups.len() as libc::c_int, groups.as_mut_ptr()) };
    groups.truncate(n.max(0) as usize);
    (uid, gid, groups)
}

/// The process's umask, read by setting it and putting it back (at start-up, before the
/// program has threads of its own; later changes are tracked by the umask hook).
pub fn read_umask() -> u32 {
    // SAFETY: umask takes and returns a plain value and cannot fail.
    unsafe {
        let old = libc::umask(0o022);
        libc::umask(old);
        old as u32
    }
}

/// An 8-byte file mapped shared: the run's generation, the length of its change log that
/// every process may read.
pub struct SharedCounter {
    map: Mapping,
}

/// A counter's mapping: writable, or read-only for a counter another process keeps.
enum Mapping {
    Write(memmap2::MmapMut),
    Read(memmap2::Mmap),
}

impl SharedCounter {
    /// Add one (a count every process of the run adds to).
    pub fn add_one(&self) {
        if let Mapping::Write(_) = self.map {
            self.atomic().fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn open(file: &std::fs::File) -> std::io::Result<SharedCounter> {
        // SAFETY: the file is the run's 8-byte generation file, created by vrift before the
        // program started and never truncated during the run; other processes change it only
        // through the same atomic accesses as below.
        let map = unsafe { memmap2::MmapMut::map_mut(file)? };
        if map.len() < 8 {
            return Err(std::io::Error::other(
                "generation file shorter than 8 bytes",
            ));
        }
        Ok(SharedCounter {
            map: Mapping::Write(map),
        })
    }

    /// A counter this process only reads (see [`SharedCounter::load`]).
    pub fn open_read_only(file: &std::fs::File) -> std::io::Result<SharedCounter> {
        // SAFETY: as for `open`; this process never writes through the mapping.
        let map = unsafe { memmap2::Mmap::map(file)? };
        if map.len() < 8 {
            return Err(std::io::Error::other(
                "generation file shorter than 8 bytes",
            ));
        }
        Ok(SharedCounter {
            map: Mapping::Read(map),
        })
    }

    fn atomic(&self) -> &AtomicU64 {
        let p = match &self.map {
            Mapping::Write(m) => m.as_ptr(),
            Mapping::Read(m) => m.as_ptr(),
        } as *const AtomicU64;
        // SAFETY: the mapping is at least 8 bytes and page aligned (so aligned for u64), it
        // lives as long as `self`, and every access to these bytes, in any process, is atomic.
        unsafe { &*p }
    }

    pub fn load(&self) -> u64 {
        self.atomic().load(Ordering::Acquire)
    }

    /// Only on a counter opened with [`SharedCounter::open`] (a read-only mapping would
    /// fault): the change log's writer.
    pub fn store(&self, v: u64) {
        if let Mapping::Write(_) = self.map {
            self.atomic().store(v, Ordering::Release)
        }
    }
}

/// Close a descriptor the core opened and will not hand out.
pub fn close(fd: i32) {
    // SAFETY: `fd` was opened by the core for this call and is owned by nobody else.
    unsafe {
        libc::close(fd);
    }
}

/// Write a line to stderr without allocating (for warnings that must not re-enter).
pub fn write_stderr(msg: &[u8]) {
    // SAFETY: the pointer and length describe `msg`, which outlives the call.
    unsafe {
        libc::write(2, msg.as_ptr() as *const libc::c_void, msg.len());
    }
}

/// End the process at once, without running exit handlers (the program has not started).
pub fn exit(status: i32) -> ! {
    // SAFETY: _exit takes a plain value and does not return.
    unsafe { libc::_exit(status) }
}

/// Is `fd` an open descriptor of this process?
pub fn is_open(fd: i32) -> bool {
    // SAFETY: F_GETFD only reads the descriptor's flags; any fd value is allowed.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// Register fork handlers (pthread_atfork).
#[allow(dead_code)]
pub fn at_fork(prepare: extern "C" fn(), parent: extern "C" fn(), child: extern "C" fn()) {
    // SAFETY: three plain functions that live as long as the process (the library is never
    // unloaded: it is loaded at start-up).
    unsafe {
        libc::pthread_atfork(Some(prepare), Some(parent), Some(child));
    }
}

/// openat(2) as a raw system call carrying [`crate::env::MARKER`] in its sixth argument:
/// the shim's own opens (a blob, a private copy, a directory), which a supervisor's filter
/// lets through unnotified. Returns the descriptor or the errno.
#[cfg(target_os = "linux")]
pub fn openat_marked(path: &std::ffi::CStr, flags: i32, mode: u32) -> Result<i32, i32> {
    openat_marked_at(libc::AT_FDCWD, path, flags, mode)
}

/// openat(2) relative to the directory `dir`, marked as [`openat_marked`]: a blob opened by
/// its short name under the store's blob directory, which spares the kernel the walk of
/// the store's whole path on every open. Returns the descriptor or the errno.
#[cfg(target_os = "linux")]
pub fn openat_marked_in(dir: i32, name: &std::ffi::CStr, flags: i32) -> Result<i32, i32> {
    openat_marked_at(dir, name, flags, 0)
}

#[cfg(target_os = "linux")]
fn openat_marked_at(dir: i32, path: &std::ffi::CStr, flags: i32, mode: u32) -> Result<i32, i32> {
    // SAFETY: openat takes a directory descriptor (a bad one is EBADF, not undefined), a
    // NUL-terminated path that outlives the call and integers; the unused fifth and sixth
    // argument registers are ignored by the kernel.
    let r = unsafe {
        libc::syscall(
            libc::SYS_openat,
            dir,
            path.as_ptr(),
            flags,
            mode,
            0,
            crate::env::MARKER,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO))
    } else {
        Ok(r as i32)
    }
}

/// A system call of up to five arguments with [`crate::env::MARKER`] in the sixth register:
/// a call the shim passes to the kernel for a path outside the view, which a supervisor's
/// filter then lets through unnotified. Returns what `syscall(2)` returns (errno set).
///
/// # Safety
/// `nr` and the arguments form a valid call of that system call (pointers valid for it).
#[cfg(target_os = "linux")]
pub unsafe fn marked(
    nr: libc::c_long,
    a: usize,
    b: usize,
    c: usize,
    d: usize,
    e: usize,
) -> libc::c_long {
    // SAFETY: the caller's contract; the kernel ignores the sixth register of these calls.
    unsafe { libc::syscall(nr, a, b, c, d, e, crate::env::MARKER) }
}

/// openat(2) for reading (with `flags`, closed on exec) as a raw system call without the
/// marker: with a supervisor behind the shim, it answers (for a view path, with a
/// descriptor of the farm's object). Returns the descriptor or the errno.
#[cfg(target_os = "linux")]
pub fn open_unmarked(path: &std::ffi::CStr, flags: i32) -> Result<i32, i32> {
    // SAFETY: openat takes a NUL-terminated path that outlives the call and integers.
    let r = unsafe {
        libc::syscall(
            libc::SYS_openat,
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC | flags,
            0,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO))
    } else {
        Ok(r as i32)
    }
}

/// fchdir(2) as a raw system call (not through the shim's own hook).
#[cfg(target_os = "linux")]
pub fn fchdir_raw(fd: i32) -> Result<(), i32> {
    // SAFETY: fchdir takes an integer.
    let r = unsafe { libc::syscall(libc::SYS_fchdir, fd) };
    if r < 0 {
        Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO))
    } else {
        Ok(())
    }
}

/// What this process's descriptor `fd` names, as the kernel says it (a marked readlinkat
/// of /proc/self/fd/N, so a supervisor behind the shim does not rename a farm path).
#[cfg(target_os = "linux")]
pub fn fd_target_marked(fd: i32) -> Option<Vec<u8>> {
    let link = std::ffi::CString::new(format!("/proc/self/fd/{fd}")).ok()?;
    let mut buf = vec![0u8; 4096];
    // SAFETY: readlinkat takes a NUL-terminated path and a buffer of `buf.len()` bytes,
    // both alive for the call.
    let n = unsafe {
        marked(
            libc::SYS_readlinkat,
            libc::AT_FDCWD as usize,
            link.as_ptr() as usize,
            buf.as_mut_ptr() as usize,
            buf.len(),
            0,
        )
    };
    if n <= 0 {
        return None;
    }
    buf.truncate(n as usize);
    Some(buf)
}
