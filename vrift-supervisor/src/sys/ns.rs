//! Namespace and mount set-up for the child, between fork and exec.
//!
//! Everything here is prepared in the parent ([`NsPlan`]) and only *executed* in the child,
//! which may therefore make system calls but must not allocate.

use std::ffi::CString;
use std::io;

/// One bind mount to make in the child's private mount namespace.
#[derive(Debug)]
pub struct Bind {
    pub src: CString,
    pub dst: CString,
    pub readonly: bool,
}

/// One child of the directory a missing view root hangs from, re-created on the staging
/// tmpfs: a placeholder bind-mounted to the original, or a copied symlink.
#[derive(Debug)]
pub enum StageEntry {
    Dir { src: CString, dst: CString },
    File { src: CString, dst: CString },
    Symlink { target: CString, dst: CString },
}

/// How to make a view root that does not exist on disk appear: its nearest existing ancestor
/// (`anchor`) is covered by a tmpfs (`stage`) holding bind mounts of all of the anchor's
/// children plus the missing directories. When the anchor is `/`, the tmpfs becomes the new
/// root (pivot_root) instead.
#[derive(Debug)]
pub struct MissingRoot {
    pub stage: CString,
    pub anchor: CString,
    pub entries: Vec<StageEntry>,
    /// The missing directories, as paths on the stage, parents first.
    pub mkdirs: Vec<CString>,
    /// `Some(put_old)` (a path on the stage) when the anchor is `/`.
    pub pivot_old: Option<(CString, CString)>,
}

/// What the child does before it installs its seccomp filter.
#[derive(Debug, Default)]
pub struct NsPlan {
    pub missing_root: Option<MissingRoot>,
    /// For a caller without root: `uid_map`/`gid_map` lines mapping the caller to itself in a
    /// new user namespace (so it may mount). None for root, who needs no user namespace.
    pub id_maps: Option<(CString, CString)>,
    pub binds: Vec<Bind>,
    /// Directory to enter after the mounts (the caller's cwd, re-entered through the mounts).
    pub cwd: CString,
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn write_file(path: &[u8], data: &[u8]) -> io::Result<()> {
    // SAFETY: `path` is NUL-terminated (callers pass literals ending in \0); `data` is a live
    // buffer of the given length.
    unsafe {
        let fd = libc::open(path.as_ptr().cast(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = libc::write(fd, data.as_ptr().cast(), data.len());
        let err = io::Error::last_os_error();
        libc::close(fd);
        if n != data.len() as isize {
            return Err(err);
        }
    }
    Ok(())
}

/// Mount flags a bind remount must keep: in a user namespace the kernel refuses to clear
/// flags it locked (nosuid, nodev, noexec, atime flags).
fn locked_flags(path: &CString) -> io::Result<libc::c_ulong> {
    // SAFETY: statvfs writes into the zeroed struct we pass; `path` is NUL-terminated.
    let mut sv: libc::statvfs = unsafe { std::mem::zeroed() };
    check(unsafe { libc::statvfs(path.as_ptr(), &mut sv) })?;
    let mut flags = 0;
    for (st, ms) in [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ] {
        if sv.f_flag & st != 0 {
            flags |= ms;
        }
    }
    Ok(flags)
}

/// Run in the child: enter new user (for a caller without root), mount and pid namespaces.
/// The caller's next child is the new pid namespace's init.
pub fn enter_namespaces(plan: &NsPlan) -> io::Result<()> {
    let mut flags = libc::CLONE_NEWNS | libc::CLONE_NEWPID;
    if plan.id_maps.is_some() {
        flags |= libc::CLONE_NEWUSER;
    }
    // SAFETY: unshare takes flags only; the child is single-threaded (just forked).
    check(unsafe { libc::unshare(flags) })?;
    if let Some((uid_map, gid_map)) = &plan.id_maps {
        write_file(b"/proc/self/setgroups\0", b"deny")?;
        write_file(b"/proc/self/uid_map\0", uid_map.as_bytes())?;
        write_file(b"/proc/self/gid_map\0", gid_map.as_bytes())?;
    }
    Ok(())
}

/// Run in the program's process, inside the new namespaces: the plan's mounts, a /proc of
/// the new pid namespace (so /proc/PID agrees with getpid), and the working directory.
pub fn make_mounts(plan: &NsPlan) -> io::Result<()> {
    // SAFETY: mount(2) with NUL-terminated strings or null pointers where the kernel allows.
    unsafe {
        check(libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ))?;
        if let Some(m) = &plan.missing_root {
            make_missing_root(m)?;
        }
        for b in &plan.binds {
            check(libc::mount(
                b.src.as_ptr(),
                b.dst.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND | libc::MS_REC,
                std::ptr::null(),
            ))?;
            if b.readonly {
                let keep = locked_flags(&b.dst)?;
                check(libc::mount(
                    std::ptr::null(),
                    b.dst.as_ptr(),
                    std::ptr::null(),
                    libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | keep,
                    std::ptr::null(),
                ))?;
            }
        }
        // Where the kernel refuses (a /proc with locked mounts over it, in some containers),
        // the outer /proc stays: /proc/self is still right.
        let _ = libc::mount(
            c"proc".as_ptr(),
            c"/proc".as_ptr(),
            c"proc".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            std::ptr::null(),
        );
        check(libc::chdir(plan.cwd.as_ptr()))?;
    }
    Ok(())
}

/// Drop CAP_SYS_ADMIN from the bounding set, so the program (root included) can never get
/// it back: it cannot remount the view or the store writable, nor mount anything else.
pub fn drop_mount_capability() -> io::Result<()> {
    const CAP_SYS_ADMIN: libc::c_ulong = 21;
    // SAFETY: prctl with integer arguments.
    check(unsafe { libc::prctl(libc::PR_CAPBSET_DROP, CAP_SYS_ADMIN, 0, 0, 0) })
}

/// See [`MissingRoot`]. Runs in the child with only system calls.
fn make_missing_root(m: &MissingRoot) -> io::Result<()> {
    let null = std::ptr::null::<libc::c_char>();
    // SAFETY: every pointer is a NUL-terminated string prepared by the parent, or null where
    // mount(2) accepts it.
    unsafe {
        check(libc::mount(
            c"tmpfs".as_ptr(),
            m.stage.as_ptr(),
            c"tmpfs".as_ptr(),
            0,
            c"mode=0755".as_ptr().cast(),
        ))?;
        for e in &m.entries {
            match e {
                StageEntry::Dir { src, dst } => {
                    check(libc::mkdir(dst.as_ptr(), 0o755))?;
                    check(libc::mount(
                        src.as_ptr(),
                        dst.as_ptr(),
                        null,
                        libc::MS_BIND | libc::MS_REC,
                        std::ptr::null(),
                    ))?;
                }
                StageEntry::File { src, dst } => {
                    let fd = libc::open(
                        dst.as_ptr(),
                        libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                        0o644,
                    );
                    if fd < 0 {
                        return Err(io::Error::last_os_error());
                    }
                    libc::close(fd);
                    check(libc::mount(
                        src.as_ptr(),
                        dst.as_ptr(),
                        null,
                        libc::MS_BIND | libc::MS_REC,
                        std::ptr::null(),
                    ))?;
                }
                StageEntry::Symlink { target, dst } => {
                    check(libc::symlink(target.as_ptr(), dst.as_ptr()))?;
                }
            }
        }
        for d in &m.mkdirs {
            check(libc::mkdir(d.as_ptr(), 0o755))?;
        }
        match &m.pivot_old {
            None => check(libc::mount(
                m.stage.as_ptr(),
                m.anchor.as_ptr(),
                null,
                libc::MS_BIND | libc::MS_REC,
                std::ptr::null(),
            ))?,
            Some((put_old_on_stage, put_old_after)) => {
                check(libc::mkdir(put_old_on_stage.as_ptr(), 0o700))?;
                check(libc::syscall(
                    libc::SYS_pivot_root,
                    m.stage.as_ptr(),
                    put_old_on_stage.as_ptr(),
                ) as libc::c_int)?;
                check(libc::chdir(c"/".as_ptr()))?;
                check(libc::umount2(put_old_after.as_ptr(), libc::MNT_DETACH))?;
                check(libc::rmdir(put_old_after.as_ptr()))?;
            }
        }
    }
    Ok(())
}
