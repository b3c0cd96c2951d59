//! Path resolution inside a view, with the kernel's rules: ".", "..", repeated and trailing
//! slashes, symlinks (at most 40 per lookup), search permission on every directory walked.
//!
//! The part of a path outside the view is handled lexically: the view root and the caller's
//! cwd are taken to be canonical (no symlinks), so ".." is applied to them directly. Once a
//! path goes through a name outside the view that is not an ancestor of the root (it may be a
//! symlink on the real file system), a later ".." is not interpreted: the path is handed back
//! as [`Resolved::Outside`] for the kernel to resolve.

use super::entry::{Node, ViewEntry};
use super::errno::Errno;
use super::layers::{join, parent_of, LayerSource, Mask, View};
use super::perm::{permits, Cred, MAY_EXEC};
use crate::manifest::RelPath;

/// Longest path the kernel accepts, counting the terminating NUL.
pub const PATH_MAX: usize = 4096;
/// Longest file name.
pub const NAME_MAX: usize = 255;
/// Symlinks followed in one lookup before ELOOP.
pub const MAXSYMLINKS: u32 = 40;

/// What the last component of a path was (the kernel's LAST_NORM, LAST_DOT, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Last {
    /// A name.
    Normal,
    Dot,
    DotDot,
    /// No component at all: the path was "/".
    Root,
}

/// Where a path leads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolved {
    /// Inside the view. `entry` is `None` when the parent directory exists but the last
    /// component does not (what O_CREAT, mkdir and friends need).
    View {
        rel: RelPath,
        entry: Option<ViewEntry>,
        last: Last,
        trailing_slash: bool,
    },
    /// Outside the view: the absolute path for the kernel to use (it may differ from the
    /// caller's path when a symlink in the view points out of it).
    Outside(Vec<u8>),
}

/// How to treat the last component.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Follow {
    /// Follow a symlink; a trailing slash requires a directory.
    Yes,
    /// Do not follow, except that a trailing slash forces it (as lstat("link/") does).
    No,
    /// The "parent" lookup of unlink, rmdir, mkdir, rename, link: never follow the last
    /// component, and leave trailing-slash rules to the operation.
    Parent,
}

enum Pos {
    Out {
        path: Vec<u8>,
        canonical: bool,
    },
    In {
        rel: RelPath,
        entry: ViewEntry,
        mask: Mask,
    },
}

impl<L: LayerSource> View<L> {
    /// Resolve `path` (absolute, or relative to the absolute `cwd`) without permission checks.
    pub fn resolve(&self, path: &[u8], cwd: &[u8], follow_last: bool) -> Result<Resolved, Errno> {
        self.walk(
            None,
            path,
            cwd,
            if follow_last { Follow::Yes } else { Follow::No },
        )
    }

    /// Like [`View::resolve`], checking search (x) permission on every view directory walked
    /// for `cred` (EACCES), as the kernel does.
    pub fn resolve_as(
        &self,
        cred: &Cred,
        path: &[u8],
        cwd: &[u8],
        follow_last: bool,
    ) -> Result<Resolved, Errno> {
        self.walk(
            Some(cred),
            path,
            cwd,
            if follow_last { Follow::Yes } else { Follow::No },
        )
    }

    /// The hot path: an absolute path with no ".", ".." or "//" that does not start with the
    /// root never enters the view.
    fn plainly_outside(&self, path: &[u8]) -> Option<Vec<u8>> {
        if path[0] != b'/' || self.root == b"/" {
            return None;
        }
        let enters = path.starts_with(&self.root)
            && (path.len() == self.root.len() || path[self.root.len()] == b'/');
        let plain = !path.windows(2).any(|w| w == b"//" || w == b"/.");
        (!enters && plain).then(|| path.to_vec())
    }

    fn is_root_or_ancestor(&self, abs: &[u8]) -> bool {
        abs == b"/"
            || (self.root.starts_with(abs)
                && (self.root.len() == abs.len() || self.root[abs.len()] == b'/'))
    }

    fn enter(&self, path: Vec<u8>, canonical: bool) -> Pos {
        if canonical && path == self.root {
            let (entry, mask) = self.root_node();
            Pos::In {
                rel: Vec::new(),
                entry,
                mask,
            }
        } else {
            Pos::Out { path, canonical }
        }
    }

    /// Where a relative path starts: the cwd, in the view or not.
    fn start_at(&self, cwd: &[u8]) -> Result<Pos, Errno> {
        if !cwd.starts_with(b"/") {
            return Err(Errno::EINVAL);
        }
        let mut canon = Vec::new();
        for c in cwd
            .split(|&b| b == b'/')
            .filter(|c| !c.is_empty() && *c != b".")
        {
            canon.push(b'/');
            canon.extend_from_slice(c);
        }
        if canon.is_empty() {
            canon.push(b'/');
        }
        let inside = if self.root == b"/" {
            Some(&canon[1..])
        } else if canon == self.root {
            Some(&canon[..0])
        } else if canon.starts_with(&self.root) && canon[self.root.len()] == b'/' {
            Some(&canon[self.root.len() + 1..])
        } else {
            None
        };
        match inside {
            None => Ok(Pos::Out {
                path: canon,
                canonical: true,
            }),
            Some(rel) => {
                // A cwd that was removed from the view: relative lookups fail like in a
                // deleted directory.
                let (entry, mask) = self.locate(rel).ok_or(Errno::ENOENT)?;
                if !entry.is_dir() {
                    return Err(Errno::ENOENT);
                }
                Ok(Pos::In {
                    rel: rel.to_vec(),
                    entry,
                    mask,
                })
            }
        }
    }

    /// Resolve `path` as the kernel would (see the module's comment), checking search
    /// permission for `cred` when given.
    pub(crate) fn walk(
        &self,
        cred: Option<&Cred>,
        path: &[u8],
        cwd: &[u8],
        follow: Follow,
    ) -> Result<Resolved, Errno> {
        if let Some(found) = self.plainly_in_layer(cred, path, follow) {
            return Ok(found);
        }
        self.walk_general(cred, path, cwd, follow)
    }

    /// The other hot path, taken by every stat of a file the run has not touched: in a view
    /// of one layer, an absolute path under the root made of plain names (no ".", "..",
    /// empty or over-long ones) that the delta holds nothing of is the layer's own entry,
    /// found by one lookup, when every directory above it is the layer's directory and an
    /// unprivileged caller may search each. `None` leaves every other case (symlinks to
    /// follow, misses, refusals) to [`View::walk_general`], which gives the same answers
    /// with all of the kernel's rules, one name at a time.
    fn plainly_in_layer(
        &self,
        cred: Option<&Cred>,
        path: &[u8],
        follow: Follow,
    ) -> Option<Resolved> {
        let [layer] = self.layers.as_slice() else {
            return None;
        };
        let rel = if self.root == b"/" {
            path.strip_prefix(b"/")?
        } else {
            path.strip_prefix(self.root.as_slice())?
                .strip_prefix(b"/")?
        };
        let plain = |name: &[u8]| {
            !name.is_empty() && name != b"." && name != b".." && name.len() <= NAME_MAX
        };
        if !rel.split(|&b| b == b'/').all(plain) || self.delta.holds_path_or_above(rel) {
            return None;
        }
        let searcher = cred.filter(|c| !c.privileged);
        if let Some(c) = searcher {
            let (root, _) = self.root_node();
            if !permits(c, self.owner_of(&root), &root, MAY_EXEC) {
                return None;
            }
        }
        for (i, _) in rel.iter().enumerate().filter(|&(_, &b)| b == b'/') {
            let dir = layer.get(&rel[..i])?;
            if dir.kind != crate::manifest::EntryKind::Dir {
                return None;
            }
            if let Some(c) = searcher {
                let dir = ViewEntry::from_layer(dir);
                if !permits(c, self.owner_of(&dir), &dir, MAY_EXEC) {
                    return None;
                }
            }
        }
        let (found, origin) = layer.get_with_origin(rel)?;
        if found.kind == crate::manifest::EntryKind::Symlink && follow == Follow::Yes {
            return None;
        }
        let mut entry = ViewEntry::from_layer(found);
        self.fill_identity_from(&mut entry, origin, || rel.to_vec());
        Some(Resolved::View {
            rel: rel.to_vec(),
            entry: Some(entry),
            last: Last::Normal,
            trailing_slash: false,
        })
    }

    /// [`View::walk`] one name at a time, for any path.
    pub(crate) fn walk_general(
        &self,
        cred: Option<&Cred>,
        path: &[u8],
        cwd: &[u8],
        follow: Follow,
    ) -> Result<Resolved, Errno> {
        if path.is_empty() {
            return Err(Errno::ENOENT);
        }
        // The kernel's limit is on the argument a program gives. The projections make a
        // relative argument absolute against the caller's cwd, which may be deep, and check
        // the argument's own length where they read it: an absolute path here may be longer.
        if path.len() >= PATH_MAX && path[0] != b'/' {
            return Err(Errno::ENAMETOOLONG);
        }
        if let Some(out) = self.plainly_outside(path) {
            return Ok(Resolved::Outside(out));
        }
        let mut pos = if path[0] == b'/' {
            self.enter(b"/".to_vec(), true)
        } else {
            self.start_at(cwd)?
        };
        let mut rest = path.to_vec();
        let mut i = 0;
        let mut links = 0;
        let mut last = Last::Root;
        let mut trailing = false;
        loop {
            while i < rest.len() && rest[i] == b'/' {
                i += 1;
            }
            if i >= rest.len() {
                break;
            }
            let start = i;
            while i < rest.len() && rest[i] != b'/' {
                i += 1;
            }
            let name = rest[start..i].to_vec();
            let after = i;
            let is_last = rest[after..].iter().all(|&b| b == b'/');
            let slash_after = after < rest.len();
            if is_last {
                trailing = slash_after;
            }
            let follow_this = !is_last
                || match follow {
                    Follow::Yes => true,
                    Follow::No => slash_after,
                    Follow::Parent => false,
                };
            last = match name.as_slice() {
                b"." => Last::Dot,
                b".." => Last::DotDot,
                _ => Last::Normal,
            };
            pos = match pos {
                Pos::Out {
                    mut path,
                    canonical,
                } => match name.as_slice() {
                    b"." => Pos::Out { path, canonical },
                    b".." if canonical => {
                        let cut = path.iter().rposition(|&b| b == b'/').unwrap_or(0);
                        path.truncate(cut.max(1));
                        Pos::Out { path, canonical }
                    }
                    b".." => {
                        // A name outside the view may have been a symlink: let the kernel
                        // interpret the rest.
                        if path != b"/" {
                            path.push(b'/');
                        }
                        path.extend_from_slice(&rest[start..]);
                        return Ok(Resolved::Outside(path));
                    }
                    _ => {
                        if path != b"/" {
                            path.push(b'/');
                        }
                        path.extend_from_slice(&name);
                        let canonical = canonical && self.is_root_or_ancestor(&path);
                        self.enter(path, canonical)
                    }
                },
                Pos::In { rel, entry, mask } => {
                    if let Some(c) = cred {
                        if !permits(c, self.owner_of(&entry), &entry, MAY_EXEC) {
                            return Err(Errno::EACCES);
                        }
                    }
                    if name.len() > NAME_MAX {
                        return Err(Errno::ENAMETOOLONG);
                    }
                    match name.as_slice() {
                        b"." => Pos::In { rel, entry, mask },
                        // ".." of "/" is "/" itself.
                        b".." if rel.is_empty() && self.root == b"/" => {
                            Pos::In { rel, entry, mask }
                        }
                        b".." if rel.is_empty() => {
                            let mut up = self.root.clone();
                            let cut = up.iter().rposition(|&b| b == b'/').unwrap_or(0);
                            up.truncate(cut.max(1));
                            Pos::Out {
                                path: up,
                                canonical: true,
                            }
                        }
                        b".." => {
                            let up = parent_of(&rel).to_vec();
                            let (entry, mask) = self.locate(&up).ok_or(Errno::ENOENT)?;
                            Pos::In {
                                rel: up,
                                entry,
                                mask,
                            }
                        }
                        _ => match self.child(&rel, mask, &name) {
                            None if is_last => {
                                return Ok(Resolved::View {
                                    rel: join(&rel, &name),
                                    entry: None,
                                    last,
                                    trailing_slash: trailing,
                                })
                            }
                            None => return Err(Errno::ENOENT),
                            Some((c, m)) => {
                                if let (Node::Symlink(target), true) = (&c.node, follow_this) {
                                    links += 1;
                                    if links > MAXSYMLINKS {
                                        return Err(Errno::ELOOP);
                                    }
                                    if target.is_empty() {
                                        return Err(Errno::ENOENT);
                                    }
                                    let mut spliced = target.clone();
                                    spliced.extend_from_slice(&rest[after..]);
                                    rest = spliced;
                                    i = 0;
                                    if rest[0] == b'/' {
                                        last = Last::Root;
                                        self.enter(b"/".to_vec(), true)
                                    } else {
                                        Pos::In { rel, entry, mask }
                                    }
                                } else if !is_last && !c.is_dir() {
                                    return Err(Errno::ENOTDIR);
                                } else {
                                    Pos::In {
                                        rel: join(&rel, &name),
                                        entry: c,
                                        mask: m,
                                    }
                                }
                            }
                        },
                    }
                }
            };
        }
        match pos {
            Pos::Out { path, .. } => Ok(Resolved::Outside(path)),
            Pos::In { rel, mut entry, .. } => {
                self.fill_identity(&mut entry, &rel);
                if trailing && follow != Follow::Parent && !entry.is_dir() {
                    return Err(Errno::ENOTDIR);
                }
                Ok(Resolved::View {
                    rel,
                    entry: Some(entry),
                    last,
                    trailing_slash: trailing,
                })
            }
        }
    }
}
