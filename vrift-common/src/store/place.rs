//! Moving a finished temp file to its blob name without ever replacing an existing blob.
//!
//! Linux: one `renameat2(RENAME_NOREPLACE)`. Elsewhere, or on a file system without it:
//! `link(2)` (which also refuses an existing name) and then unlinking the temp name.

use std::fs;
use std::io;
use std::path::Path;

/// Give `temp`'s file the name `dest`; `AlreadyExists` if `dest` exists (then `temp` is left
/// as it was). On success `temp` no longer exists.
pub(super) fn place_noreplace(temp: &Path, dest: &Path) -> io::Result<()> {
    match rename_noreplace(temp, dest) {
        Err(e) if unsupported(&e) => {
            fs::hard_link(temp, dest)?;
            let _ = fs::remove_file(temp);
            Ok(())
        }
        other => other,
    }
}

fn unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP)
    )
}

fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    renameat2(from, to, RENAME_NOREPLACE)
}

/// renameat2(2)'s flag that refuses to replace an existing name.
pub const RENAME_NOREPLACE: u32 = 1;

/// renameat2(2) with Linux's RENAME_* flags (NOREPLACE, EXCHANGE, WHITEOUT): the one
/// wrapper of it in vrift. ENOSYS where the system has no renameat2.
#[cfg(target_os = "linux")]
pub fn renameat2(from: &Path, to: &Path, flags: u32) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
    };
    let (from, to) = (c(from)?, c(to)?);
    // SAFETY: both pointers come from live, NUL-terminated CStrings that outlive the call;
    // AT_FDCWD makes the relative-path semantics those of rename(2); no memory is written.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            flags as libc::c_uint,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
pub fn renameat2(_from: &Path, _to: &Path, _flags: u32) -> io::Result<()> {
    Err(io::Error::from_raw_os_error(libc::ENOSYS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_replaces_and_falls_back() {
        let d = tempfile::tempdir().unwrap();
        let (a, b, c) = (d.path().join("a"), d.path().join("b"), d.path().join("c"));
        fs::write(&a, b"new").unwrap();
        fs::write(&b, b"old").unwrap();
        let e = place_noreplace(&a, &b).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&b).unwrap(), b"old");
        assert!(a.exists());
        place_noreplace(&a, &c).unwrap();
        assert!(!a.exists());
        assert_eq!(fs::read(&c).unwrap(), b"new");
        assert!(unsupported(&io::Error::from_raw_os_error(libc::EINVAL)));
    }
}
