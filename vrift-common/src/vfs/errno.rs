//! The error a view operation returns to the program: an errno value, exactly as the kernel
//! would give it. Values are the platform's own (`libc`), so the shim on macOS and the
//! supervisor on Linux hand them back unchanged.

use std::fmt;

/// An errno value (`libc::ENOENT`, ...). `Errno::ENOENT` and friends name the ones a view uses.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

impl Errno {
    pub const EPERM: Errno = Errno(libc::EPERM);
    pub const ENOENT: Errno = Errno(libc::ENOENT);
    pub const EACCES: Errno = Errno(libc::EACCES);
    pub const EBUSY: Errno = Errno(libc::EBUSY);
    pub const EEXIST: Errno = Errno(libc::EEXIST);
    pub const EXDEV: Errno = Errno(libc::EXDEV);
    pub const ENOTDIR: Errno = Errno(libc::ENOTDIR);
    pub const EISDIR: Errno = Errno(libc::EISDIR);
    pub const EINVAL: Errno = Errno(libc::EINVAL);
    pub const ENAMETOOLONG: Errno = Errno(libc::ENAMETOOLONG);
    pub const ENOTEMPTY: Errno = Errno(libc::ENOTEMPTY);
    pub const ELOOP: Errno = Errno(libc::ELOOP);
    pub const EOPNOTSUPP: Errno = Errno(libc::EOPNOTSUPP);
    /// No such extended attribute (Linux's value for ENOATTR).
    pub const ENODATA: Errno = Errno(libc::ENODATA);
    pub const ERANGE: Errno = Errno(libc::ERANGE);
    pub const E2BIG: Errno = Errno(libc::E2BIG);

    /// The raw value, for a syscall's `-errno` return.
    pub fn raw(self) -> i32 {
        self.0
    }

    /// The symbolic name, e.g. "ENOENT" (or "errno N" for values this module does not name).
    pub fn name(self) -> String {
        let known = [
            (Self::EPERM, "EPERM"),
            (Self::ENOENT, "ENOENT"),
            (Self::EACCES, "EACCES"),
            (Self::EBUSY, "EBUSY"),
            (Self::EEXIST, "EEXIST"),
            (Self::EXDEV, "EXDEV"),
            (Self::ENOTDIR, "ENOTDIR"),
            (Self::EISDIR, "EISDIR"),
            (Self::EINVAL, "EINVAL"),
            (Self::ENAMETOOLONG, "ENAMETOOLONG"),
            (Self::ENOTEMPTY, "ENOTEMPTY"),
            (Self::ELOOP, "ELOOP"),
            (Self::EOPNOTSUPP, "EOPNOTSUPP"),
            (Self::ENODATA, "ENODATA"),
            (Self::ERANGE, "ERANGE"),
            (Self::E2BIG, "E2BIG"),
        ];
        known
            .iter()
            .find(|(e, _)| *e == self)
            .map(|(_, n)| n.to_string())
            .unwrap_or_else(|| format!("errno {}", self.0))
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({})",
            self.name(),
            std::io::Error::from_raw_os_error(self.0)
        )
    }
}

impl std::error::Error for Errno {}
