//! Where the program starts: `-C/--cwd DIR`, else the caller's working directory. With
//! `--mount`, a working directory inside the mount that the view does not have, or (with
//! `--isolate`) one outside the view, which the program cannot see, gives the view's root.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::RunOptions;
use crate::view::spec::ViewSpec;

pub fn dir(opts: &RunOptions, spec: &ViewSpec, cwd: &Path) -> Result<PathBuf> {
    if let Some(dir) = &opts.start {
        let dir = if dir.is_absolute() {
            dir.clone()
        } else {
            cwd.join(dir)
        };
        return std::path::absolute(&dir).with_context(|| format!("-C {}", dir.display()));
    }
    let Ok(rel) = cwd.strip_prefix(&spec.root) else {
        if opts.isolate.isolate {
            return Ok(spec.root.clone());
        }
        return Ok(cwd.to_path_buf());
    };
    if opts.mount.is_none() {
        return Ok(cwd.to_path_buf());
    }
    use std::os::unix::ffi::OsStrExt;
    let in_view = spec
        .manifest
        .get(rel.as_os_str().as_bytes())
        .is_some_and(|e| e.kind == vrift_common::manifest::EntryKind::Dir);
    Ok(if in_view {
        cwd.to_path_buf()
    } else {
        spec.root.clone()
    })
}
