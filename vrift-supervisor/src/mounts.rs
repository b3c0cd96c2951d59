//! The child's mount plan: a list of values, made in the parent (every path turned into a C
//! string here, so the child only makes system calls) and applied in the child through one
//! small interface, [`MountSys`]. A test applies a plan to a recording fake, without a
//! kernel.

use std::ffi::{CStr, CString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

pub fn cstring(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes()).with_context(|| format!("{}: NUL in path", p.display()))
}

/// One step of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mount {
    /// Make every mount of the new namespace private (nothing propagates out).
    PrivateRoot,
    /// A recursive bind of `src` on `dst`; `readonly` remounts it read-only (keeping the
    /// flags a user namespace may not clear).
    Bind {
        src: CString,
        dst: CString,
        readonly: bool,
    },
    Tmpfs {
        dst: CString,
    },
    /// overlayfs: `options` is the whole option string (lowerdir, upperdir, workdir...).
    Overlay {
        dst: CString,
        options: CString,
    },
    /// A /proc of the program's pid namespace; a refusal is tolerated (some containers lock
    /// /proc), since /proc/self is still right then.
    Proc,
    /// A /proc of the program's pid namespace at `dst` (an isolated run's new root, before
    /// the pivot: the kernel lets a user namespace mount proc only while one is visible).
    ProcAt {
        dst: CString,
    },
    Mkdir {
        path: CString,
    },
    /// An empty file to bind a file over.
    MakeFile {
        path: CString,
    },
    Symlink {
        target: CString,
        path: CString,
    },
    /// pivot_root into `new_root`, then detach and remove the old root (`put_old` on the new
    /// root before the pivot, `old_after` after it).
    PivotRoot {
        new_root: CString,
        put_old: CString,
        old_after: CString,
    },
    /// The program's working directory.
    Chdir {
        path: CString,
    },
}

/// What applying a plan needs from the kernel. The real one is `sys::mount::Kernel`.
pub trait MountSys {
    fn make_private(&mut self, path: &CStr) -> io::Result<()>;
    fn bind(&mut self, src: &CStr, dst: &CStr, readonly: bool) -> io::Result<()>;
    fn mount_fs(&mut self, fstype: &CStr, dst: &CStr, options: &CStr) -> io::Result<()>;
    fn mkdir(&mut self, path: &CStr, mode: u32) -> io::Result<()>;
    fn make_file(&mut self, path: &CStr) -> io::Result<()>;
    fn symlink(&mut self, target: &CStr, path: &CStr) -> io::Result<()>;
    fn pivot_root(&mut self, new_root: &CStr, put_old: &CStr) -> io::Result<()>;
    fn detach(&mut self, path: &CStr) -> io::Result<()>;
    fn rmdir(&mut self, path: &CStr) -> io::Result<()>;
    fn chdir(&mut self, path: &CStr) -> io::Result<()>;
}

/// Apply `plan` in order. Allocates nothing (it runs between fork and exec); a failure names
/// the step by its index.
pub fn apply(plan: &[Mount], sys: &mut impl MountSys) -> Result<(), (usize, io::Error)> {
    for (i, step) in plan.iter().enumerate() {
        let r = match step {
            Mount::PrivateRoot => sys.make_private(c"/"),
            Mount::Bind { src, dst, readonly } => sys.bind(src, dst, *readonly),
            Mount::Tmpfs { dst } => sys.mount_fs(c"tmpfs", dst, c"mode=0755"),
            Mount::Overlay { dst, options } => sys.mount_fs(c"overlay", dst, options),
            Mount::Proc => {
                let _ = sys.mount_fs(c"proc", c"/proc", c"");
                Ok(())
            }
            Mount::ProcAt { dst } => sys.mount_fs(c"proc", dst, c""),
            Mount::Mkdir { path } => sys.mkdir(path, 0o755),
            Mount::MakeFile { path } => sys.make_file(path),
            Mount::Symlink { target, path } => sys.symlink(target, path),
            Mount::PivotRoot {
                new_root,
                put_old,
                old_after,
            } => sys
                .mkdir(put_old, 0o700)
                .and_then(|()| sys.pivot_root(new_root, put_old))
                .and_then(|()| sys.chdir(c"/"))
                .and_then(|()| sys.detach(old_after))
                .and_then(|()| sys.rmdir(old_after)),
            Mount::Chdir { path } => sys.chdir(path),
        };
        r.map_err(|e| (i, e))?;
    }
    Ok(())
}

/// Words for a step, in an error message.
pub fn describe(step: &Mount) -> String {
    let s = |c: &CString| String::from_utf8_lossy(c.as_bytes()).into_owned();
    match step {
        Mount::PrivateRoot => "making the run's mounts private".into(),
        Mount::Bind { src, dst, .. } => format!("bind-mounting {} on {}", s(src), s(dst)),
        Mount::Tmpfs { dst } => format!("mounting a tmpfs on {}", s(dst)),
        Mount::Overlay { dst, .. } => format!("mounting the overlay view on {}", s(dst)),
        Mount::Proc => "mounting /proc".into(),
        Mount::ProcAt { dst } => format!("mounting a /proc at {}", s(dst)),
        Mount::Mkdir { path } => format!("making the directory {}", s(path)),
        Mount::MakeFile { path } => format!("making the mount point {}", s(path)),
        Mount::Symlink { path, .. } => format!("making the symlink {}", s(path)),
        Mount::PivotRoot { new_root, .. } => format!("pivot_root into {}", s(new_root)),
        Mount::Chdir { path } => format!("entering the directory {}", s(path)),
    }
}

/// Bind each real path that passes through (`rel` under `real_dir`) onto its placeholder in
/// `staged`, then bind `staged` (recursively, so with them) at the view's `root`. Binding
/// onto the staged tree first lets the sources resolve to the real tree before the view
/// covers it.
pub fn stage_at_root<'a>(
    real_dir: &Path,
    passthrough: impl IntoIterator<Item = &'a Path>,
    staged: &Path,
    root: &Path,
    readonly: bool,
) -> Result<Vec<Mount>> {
    let mut steps = Vec::new();
    for rel in passthrough {
        steps.push(Mount::Bind {
            src: cstring(&real_dir.join(rel))?,
            dst: cstring(&staged.join(rel))?,
            readonly: false,
        });
    }
    steps.push(Mount::Bind {
        src: cstring(staged)?,
        dst: cstring(root)?,
        readonly,
    });
    Ok(steps)
}

/// The steps that make a view root that does not exist on disk appear: its nearest existing
/// ancestor (the anchor) is covered by a tmpfs (`stage`, an empty directory vrift owns)
/// holding bind mounts of all of the anchor's children plus the missing directories. When the
/// anchor is `/`, the tmpfs becomes the new root (pivot_root) instead.
pub fn missing_root(root: &Path, stage: &Path) -> Result<Vec<Mount>> {
    let anchor: PathBuf = root
        .ancestors()
        .skip(1)
        .find(|a| a.exists())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    if !anchor.is_dir() {
        bail!(
            "{}: not a directory, so {} cannot be made there",
            anchor.display(),
            root.display()
        );
    }
    let mut steps = vec![Mount::Tmpfs {
        dst: cstring(stage)?,
    }];
    let listing = std::fs::read_dir(&anchor).with_context(|| format!("{}", anchor.display()))?;
    for e in listing {
        let e = e.with_context(|| format!("{}", anchor.display()))?;
        let src = e.path();
        let dst = cstring(&stage.join(e.file_name()))?;
        let ft = e
            .file_type()
            .with_context(|| format!("{}", src.display()))?;
        if ft.is_symlink() {
            let target = std::fs::read_link(&src).with_context(|| format!("{}", src.display()))?;
            steps.push(Mount::Symlink {
                target: cstring(&target)?,
                path: dst,
            });
            continue;
        }
        steps.push(if ft.is_dir() {
            Mount::Mkdir { path: dst.clone() }
        } else {
            Mount::MakeFile { path: dst.clone() }
        });
        steps.push(Mount::Bind {
            src: cstring(&src)?,
            dst,
            readonly: false,
        });
    }
    let missing = root
        .strip_prefix(&anchor)
        .with_context(|| format!("{}: outside {}", root.display(), anchor.display()))?;
    let mut cur = stage.to_path_buf();
    for c in missing.components() {
        cur.push(c);
        steps.push(Mount::Mkdir {
            path: cstring(&cur)?,
        });
    }
    const OLD: &str = ".vrift-old-root";
    if anchor == Path::new("/") {
        steps.push(Mount::PivotRoot {
            new_root: cstring(stage)?,
            put_old: cstring(&stage.join(OLD))?,
            old_after: cstring(&Path::new("/").join(OLD))?,
        });
    } else {
        steps.push(Mount::Bind {
            src: cstring(stage)?,
            dst: cstring(&anchor)?,
            readonly: false,
        });
    }
    Ok(steps)
}

#[cfg(test)]
pub mod fake {
    //! A [`MountSys`] that records its calls.
    use super::*;

    #[derive(Default)]
    pub struct Recorder {
        pub calls: Vec<String>,
        /// Fail the call whose text starts with this.
        pub fail_on: Option<String>,
    }

    impl Recorder {
        fn note(&mut self, call: String) -> io::Result<()> {
            let fail = self.fail_on.as_deref().is_some_and(|f| call.starts_with(f));
            self.calls.push(call);
            if fail {
                Err(io::Error::from_raw_os_error(libc::EPERM))
            } else {
                Ok(())
            }
        }
    }

    fn s(c: &CStr) -> String {
        c.to_string_lossy().into_owned()
    }

    impl MountSys for Recorder {
        fn make_private(&mut self, path: &CStr) -> io::Result<()> {
            self.note(format!("private {}", s(path)))
        }
        fn bind(&mut self, src: &CStr, dst: &CStr, readonly: bool) -> io::Result<()> {
            let ro = if readonly { " ro" } else { "" };
            self.note(format!("bind {} {}{ro}", s(src), s(dst)))
        }
        fn mount_fs(&mut self, fstype: &CStr, dst: &CStr, options: &CStr) -> io::Result<()> {
            self.note(format!("mount {} {} {}", s(fstype), s(dst), s(options)))
        }
        fn mkdir(&mut self, path: &CStr, mode: u32) -> io::Result<()> {
            self.note(format!("mkdir {} {mode:o}", s(path)))
        }
        fn make_file(&mut self, path: &CStr) -> io::Result<()> {
            self.note(format!("file {}", s(path)))
        }
        fn symlink(&mut self, target: &CStr, path: &CStr) -> io::Result<()> {
            self.note(format!("symlink {} {}", s(target), s(path)))
        }
        fn pivot_root(&mut self, new_root: &CStr, put_old: &CStr) -> io::Result<()> {
            self.note(format!("pivot_root {} {}", s(new_root), s(put_old)))
        }
        fn detach(&mut self, path: &CStr) -> io::Result<()> {
            self.note(format!("detach {}", s(path)))
        }
        fn rmdir(&mut self, path: &CStr) -> io::Result<()> {
            self.note(format!("rmdir {}", s(path)))
        }
        fn chdir(&mut self, path: &CStr) -> io::Result<()> {
            self.note(format!("chdir {}", s(path)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::Recorder;
    use super::*;

    #[test]
    fn plans_from_the_nearest_existing_ancestor() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("keep")).unwrap();
        std::fs::write(t.path().join("f"), "x").unwrap();
        std::os::unix::fs::symlink("keep", t.path().join("l")).unwrap();
        let root = t.path().join("a/b");
        let plan = missing_root(&root, Path::new("/stage")).unwrap();
        let mut rec = Recorder::default();
        apply(&plan, &mut rec).unwrap();
        let base = t.path().display().to_string();
        let mut calls = rec.calls.clone();
        // The anchor's listing comes in directory order.
        calls[1..6].sort();
        assert_eq!(
            calls,
            vec![
                "mount tmpfs /stage mode=0755".to_string(),
                format!("bind {base}/f /stage/f"),
                format!("bind {base}/keep /stage/keep"),
                "file /stage/f".to_string(),
                "mkdir /stage/keep 755".to_string(),
                "symlink keep /stage/l".to_string(),
                "mkdir /stage/a 755".to_string(),
                "mkdir /stage/a/b 755".to_string(),
                format!("bind /stage {base}"),
            ]
        );
    }

    #[test]
    fn a_root_hanging_off_slash_pivots() {
        let plan =
            missing_root(Path::new("/vrift-no-such-dir/project"), Path::new("/stage")).unwrap();
        let mut rec = Recorder::default();
        apply(&plan, &mut rec).unwrap();
        let tail: Vec<&str> = rec.calls.iter().rev().take(5).map(|s| s.as_str()).collect();
        assert_eq!(
            tail,
            vec![
                "rmdir /.vrift-old-root",
                "detach /.vrift-old-root",
                "chdir /",
                "pivot_root /stage /stage/.vrift-old-root",
                "mkdir /stage/.vrift-old-root 700",
            ]
        );
    }

    #[test]
    fn a_failing_step_is_named_by_its_index() {
        let plan = vec![
            Mount::PrivateRoot,
            Mount::Bind {
                src: c"/a".into(),
                dst: c"/b".into(),
                readonly: true,
            },
            Mount::Chdir { path: c"/b".into() },
        ];
        let mut rec = Recorder {
            fail_on: Some("bind".into()),
            ..Default::default()
        };
        let (i, e) = apply(&plan, &mut rec).unwrap_err();
        assert_eq!(i, 1);
        assert_eq!(e.raw_os_error(), Some(libc::EPERM));
        assert_eq!(describe(&plan[i]), "bind-mounting /a on /b");
        assert_eq!(rec.calls.len(), 2, "nothing after the failing step runs");
    }

    #[test]
    fn proc_may_be_refused() {
        let mut rec = Recorder {
            fail_on: Some("mount proc".into()),
            ..Default::default()
        };
        apply(&[Mount::Proc], &mut rec).unwrap();
    }
}
