//! What a written-back path keeps besides its content and mode: owner, group and extended
//! attributes, as the manifest says, or as the file it replaces had them.
//!
//! Order matters: chown clears set-id bits and an ACL sets group bits, so the owner comes
//! first, then the xattrs, and the caller sets the mode after both.

use std::fs::Metadata;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use vrift_common::manifest::{Entry, EntryKind};
use vrift_common::sys::xattr;

/// The owner a written path should end with: the manifest's, else the one the replaced
/// file had (a program that rewrites a file in place keeps its owner; `sed -i`, `cp -p`
/// and editors put it back themselves), else none to set (a new file is the runner's).
fn wanted_owner(e: &Entry, replaced: Option<&Metadata>) -> Option<(u32, u32)> {
    e.meta
        .owner
        .map(|o| (o.uid, o.gid))
        .or_else(|| replaced.map(|m| (m.uid(), m.gid())))
}

/// Give `p` the owner, group and kept xattrs `e` should have; `replaced` is the metadata of
/// the file `p` replaces (taken before it was replaced), if any.
///
/// A chown the kernel refuses (an ordinary user giving a file away) is left undone, as the
/// same chown on disk would be; the view made the same judgement during the run.
pub fn apply(p: &Path, e: &Entry, replaced: Option<&Metadata>) -> io::Result<()> {
    let now = std::fs::symlink_metadata(p)?;
    if let Some((uid, gid)) = wanted_owner(e, replaced) {
        if (now.uid(), now.gid()) != (uid, gid) {
            match std::os::unix::fs::lchown(p, Some(uid), Some(gid)) {
                Err(err) if err.raw_os_error() == Some(libc::EPERM) => {}
                r => r?,
            }
        }
    }
    // Symlinks cannot carry user.* xattrs on Linux. Reading and setting user.* needs read
    // and write permission, which a mode the run gave (0000) may deny even the owner.
    if e.kind != EntryKind::Symlink {
        let written =
            crate::sys::fsops::with_owner_access(p, || xattr::write_kept(p, &e.meta.xattrs));
        match written {
            // A file system without xattrs: nothing it could keep.
            Err(err) if err.raw_os_error() == Some(libc::ENOTSUP) && e.meta.xattrs.is_empty() => {}
            r => r?,
        }
    }
    Ok(())
}
