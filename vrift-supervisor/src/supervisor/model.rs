//! The supervisor's view model: what the view holds and who may do what with it.
//!
//! TEMPORARY: a minimal resolver over the manifest's entries, until the layered view and
//! RFC-0047 state machine of vrift-common are wired in.

use std::collections::HashMap;

use vrift_common::manifest::{Entry, EntryKind};

use super::creds::Cred;
use super::statbuf::StatInfo;

/// Access rights asked for (a bit set, like R_OK/W_OK/X_OK).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access(u8);

impl Access {
    pub const READ: Access = Access(4);
    pub const WRITE: Access = Access(2);
    pub const EXEC: Access = Access(1);
    pub fn empty() -> Access {
        Access(0)
    }
    pub fn bits(self) -> u32 {
        self.0 as u32
    }
}

impl std::ops::BitOr for Access {
    type Output = Access;
    fn bitor(self, o: Access) -> Access {
        Access(self.0 | o.0)
    }
}

impl std::ops::BitOrAssign for Access {
    fn bitor_assign(&mut self, o: Access) {
        self.0 |= o.0
    }
}

/// Where a path inside the view's root leads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolved {
    /// Out of the view (".." above the root, or a symlink pointing outside).
    Outside,
    /// In the view: the resolved relative path and, if it exists, its metadata.
    View {
        rel: Vec<u8>,
        info: Option<StatInfo>,
    },
}

pub struct Model {
    root: Vec<u8>,
    /// Real paths bind-mounted through the view (excluded by the filters).
    passthrough: std::collections::HashSet<Vec<u8>>,
    entries: HashMap<Vec<u8>, (StatInfo, Vec<u8>)>,
    owner: (u32, u32),
}

const MAX_SYMLINKS: usize = 40;

impl Model {
    pub fn new(
        root: Vec<u8>,
        entries: impl Iterator<Item = (Vec<u8>, Entry)>,
        passthrough: &[(Vec<u8>, crate::farm::PlaceholderKind)],
        owner: (u32, u32),
        dev: u64,
    ) -> Model {
        let mut map = HashMap::new();
        for (path, e) in entries {
            let ino = inode_of(&path);
            let info = StatInfo {
                kind: e.kind,
                perm: e.mode & 0o7777,
                size: if e.kind == EntryKind::Dir {
                    4096
                } else {
                    e.size
                },
                mtime_ns: e.mtime_ns,
                ino,
                nlink: 1,
                uid: owner.0,
                gid: owner.1,
                dev,
            };
            map.insert(path, (info, e.target));
        }
        // Directories: 2 + number of subdirectories, as on a real file system.
        let mut sub: HashMap<Vec<u8>, u64> = HashMap::new();
        for (p, (i, _)) in &map {
            if i.kind == EntryKind::Dir && !p.is_empty() {
                let parent = parent_of(p).to_vec();
                *sub.entry(parent).or_default() += 1;
            }
        }
        for (p, (i, _)) in map.iter_mut() {
            if i.kind == EntryKind::Dir {
                i.nlink = 2 + sub.get(p).copied().unwrap_or(0);
            }
        }
        Model {
            root,
            passthrough: passthrough.iter().map(|(p, _)| p.clone()).collect(),
            entries: map,
            owner,
        }
    }

    /// The view's absolute root path, without a trailing slash.
    pub fn root(&self) -> &[u8] {
        &self.root
    }

    /// Resolve a path below the root (may hold ".", ".." and symlinks).
    pub fn resolve(&self, rel: &[u8], follow_last: bool) -> Result<Resolved, i32> {
        let mut todo: Vec<Vec<u8>> = rel
            .split(|&b| b == b'/')
            .filter(|c| !c.is_empty())
            .rev()
            .map(|c| c.to_vec())
            .collect();
        let trailing_slash = rel.ends_with(b"/");
        let mut cur: Vec<u8> = Vec::new();
        let mut links = 0;
        while let Some(comp) = todo.pop() {
            match comp.as_slice() {
                b"." => continue,
                b".." => {
                    if cur.is_empty() {
                        return Ok(Resolved::Outside);
                    }
                    cur = parent_of(&cur).to_vec();
                    continue;
                }
                _ => {}
            }
            match self.entries.get(&cur) {
                Some((i, _)) if i.kind == EntryKind::Dir => {}
                Some(_) => return Err(libc::ENOTDIR),
                None => return Err(libc::ENOENT),
            }
            let next = if cur.is_empty() {
                comp.clone()
            } else {
                [cur.as_slice(), b"/", &comp].concat()
            };
            if self.is_passthrough(&next) {
                return Ok(Resolved::Outside);
            }
            let last = todo.is_empty();
            match self.entries.get(&next) {
                Some((i, target))
                    if i.kind == EntryKind::Symlink && (!last || follow_last || trailing_slash) =>
                {
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return Err(libc::ELOOP);
                    }
                    if target.first() == Some(&b'/') {
                        match crate::supervisor::paths::under_root(target, &self.root) {
                            Some(r) => {
                                cur.clear();
                                push_components(&mut todo, r);
                            }
                            None => return Ok(Resolved::Outside),
                        }
                    } else {
                        push_components(&mut todo, target);
                    }
                }
                Some(_) => cur = next,
                None if last => {
                    return Ok(Resolved::View {
                        rel: next,
                        info: None,
                    })
                }
                None => return Err(libc::ENOENT),
            }
        }
        let info = self.entries.get(&cur).map(|(i, _)| *i);
        if trailing_slash {
            if let Some(i) = info {
                if i.kind != EntryKind::Dir {
                    return Err(libc::ENOTDIR);
                }
            }
        }
        Ok(Resolved::View { rel: cur, info })
    }

    fn is_passthrough(&self, rel: &[u8]) -> bool {
        self.passthrough.contains(rel)
    }

    /// Does the mode grant `want` to every caller (so no credentials need reading)?
    pub fn granted_to_all(&self, info: &StatInfo, want: Access) -> bool {
        let w = want.bits();
        info.perm & w == w && (info.perm >> 3) & w == w && (info.perm >> 6) & w == w
    }

    /// Judge `want` as the kernel would for `cred` on an entry owned by the view's owner.
    pub fn check(&self, info: &StatInfo, want: Access, cred: &Cred) -> Result<(), i32> {
        let w = want.bits();
        if cred.privileged {
            // CAP_DAC_OVERRIDE: everything but exec of a file with no x bit at all.
            let exec_ok = w & 1 == 0 || info.kind == EntryKind::Dir || info.perm & 0o111 != 0;
            return if exec_ok { Ok(()) } else { Err(libc::EACCES) };
        }
        let bits = if cred.uid == self.owner.0 {
            (info.perm >> 6) & 7
        } else if cred.gid == self.owner.1 || cred.groups.contains(&self.owner.1) {
            (info.perm >> 3) & 7
        } else {
            info.perm & 7
        };
        if bits & w == w {
            Ok(())
        } else {
            Err(libc::EACCES)
        }
    }
}

fn push_components(todo: &mut Vec<Vec<u8>>, path: &[u8]) {
    for c in path.split(|&b| b == b'/').filter(|c| !c.is_empty()).rev() {
        todo.push(c.to_vec());
    }
}

fn parent_of(p: &[u8]) -> &[u8] {
    match p.iter().rposition(|&b| b == b'/') {
        Some(i) => &p[..i],
        None => b"",
    }
}

/// Stable inode numbers: derived from the path, high bit set so they do not collide with
/// real inode numbers of the same device in practice.
fn inode_of(path: &[u8]) -> u64 {
    let h = blake3::hash(path);
    u64::from_le_bytes(h.as_bytes()[..8].try_into().unwrap()) | (1 << 63)
}
