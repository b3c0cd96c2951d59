//! Planning the child's mounts in the parent: everything is turned into C strings here, so
//! the child only makes system calls.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::sys::ns::{MissingRoot, StageEntry};

pub fn cstring(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes()).with_context(|| format!("{}: NUL in path", p.display()))
}

/// Plan how a view root that does not exist on disk is made to appear (see [`MissingRoot`]).
/// `stage` is an empty directory vrift owns, used as the tmpfs mount point.
pub fn missing_root(root: &Path, stage: &Path) -> Result<MissingRoot> {
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
    let mut entries = Vec::new();
    let listing = std::fs::read_dir(&anchor).with_context(|| format!("{}", anchor.display()))?;
    for e in listing {
        let e = e.with_context(|| format!("{}", anchor.display()))?;
        let src = e.path();
        let dst = stage.join(e.file_name());
        let ft = e
            .file_type()
            .with_context(|| format!("{}", src.display()))?;
        entries.push(if ft.is_symlink() {
            let target = std::fs::read_link(&src).with_context(|| format!("{}", src.display()))?;
            StageEntry::Symlink {
                target: cstring(&target)?,
                dst: cstring(&dst)?,
            }
        } else if ft.is_dir() {
            StageEntry::Dir {
                src: cstring(&src)?,
                dst: cstring(&dst)?,
            }
        } else {
            StageEntry::File {
                src: cstring(&src)?,
                dst: cstring(&dst)?,
            }
        });
    }
    let missing = root.strip_prefix(&anchor).expect("anchor is an ancestor");
    let mut mkdirs = Vec::new();
    let mut cur = stage.to_path_buf();
    for c in missing.components() {
        cur.push(c);
        mkdirs.push(cstring(&cur)?);
    }
    const OLD: &str = ".vrift-old-root";
    let pivot_old = if anchor == Path::new("/") {
        Some((
            cstring(&stage.join(OLD))?,
            cstring(&Path::new("/").join(OLD))?,
        ))
    } else {
        None
    };
    Ok(MissingRoot {
        stage: cstring(stage)?,
        anchor: cstring(&anchor)?,
        entries,
        mkdirs,
        pivot_old,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_from_the_nearest_existing_ancestor() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("keep")).unwrap();
        std::fs::write(t.path().join("f"), "x").unwrap();
        std::os::unix::fs::symlink("keep", t.path().join("l")).unwrap();
        let root = t.path().join("a/b");
        let stage = Path::new("/stage");
        let plan = missing_root(&root, stage).unwrap();
        assert_eq!(plan.anchor.as_bytes(), t.path().as_os_str().as_bytes());
        assert_eq!(plan.entries.len(), 3);
        assert_eq!(
            plan.mkdirs,
            vec![
                CString::new("/stage/a").unwrap(),
                CString::new("/stage/a/b").unwrap()
            ]
        );
        assert!(plan.pivot_old.is_none());
        let plan = missing_root(Path::new("/vrift-no-such-dir/project"), stage).unwrap();
        assert!(plan.pivot_old.is_some());
    }
}
