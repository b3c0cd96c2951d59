//! What format version 2 adds to an entry: its owner, its extended attributes and its
//! hard-link group. A version 1 manifest carries none of them (`EntryMeta::default()`).
//!
//! Link groups are canonical: `from_entries` numbers them 1, 2, ... in the path order of
//! their first member, drops groups of one, and detaches a member whose inode fields (kind,
//! content, size, mode, mtime, owner, xattrs) differ from its group's first member, so one
//! tree has one encoding and a group's members always agree.

use std::collections::HashMap;

use super::{Entry, EntryKind, RelPath};

/// The longest xattr name Linux accepts (XATTR_NAME_MAX).
pub const XATTR_NAME_MAX: usize = 255;
/// The largest xattr value Linux accepts (XATTR_SIZE_MAX).
pub const XATTR_SIZE_MAX: usize = 65536;

/// The numeric owner and group of an entry, as the disk had them at ingest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryOwner {
    pub uid: u32,
    pub gid: u32,
}

/// One extended attribute: full name with its namespace (`user.mime`,
/// `system.posix_acl_access`) and raw value.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Xattr {
    pub name: Vec<u8>,
    pub value: Vec<u8>,
}

/// The version 2 fields of an entry; the default is "nothing recorded".
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct EntryMeta {
    /// Recorded only when ingest was asked for owners (see `IngestOptions::owners`); `None`
    /// means the view's owner (the user running it).
    pub owner: Option<EntryOwner>,
    /// Extended attributes, sorted by name, names unique.
    pub xattrs: Vec<Xattr>,
    /// Hard-link group: entries with the same non-zero number are one inode. 0: not linked.
    pub link: u64,
}

impl EntryMeta {
    pub fn is_empty(&self) -> bool {
        self.owner.is_none() && self.xattrs.is_empty() && self.link == 0
    }

    pub fn xattr(&self, name: &[u8]) -> Option<&[u8]> {
        self.xattrs
            .binary_search_by(|x| x.name.as_slice().cmp(name))
            .ok()
            .map(|i| self.xattrs[i].value.as_slice())
    }
}

/// The xattr namespaces a manifest keeps: what a user's tools set and read back (`user.*`)
/// and POSIX ACLs. `trusted.*`, `user.overlay.*` and `security.*` belong to the machine (overlayfs's own
/// attributes, SELinux labels, file capabilities) and are not part of a tree's content.
pub fn is_kept_xattr(name: &[u8]) -> bool {
    // `user.overlay.*` is overlayfs's own in an ordinary user's mount (`userxattr`).
    (name.starts_with(b"user.") && !name.starts_with(b"user.overlay."))
        || name == b"system.posix_acl_access"
        || name == b"system.posix_acl_default"
}

/// Can an entry of this kind be one of several names of an inode? Directories cannot;
/// symlinks can on Linux but no tool relies on it, so a manifest does not keep it.
pub fn kind_links(kind: EntryKind) -> bool {
    matches!(kind, EntryKind::File | EntryKind::Fifo)
}

/// Sort and dedupe xattrs (the last value of a name wins) and drop invalid names.
pub(super) fn normalize_xattrs(xattrs: &mut Vec<Xattr>) {
    xattrs.retain(|x| valid_xattr(x).is_ok());
    // Stable sort, then keep the last of each run of equal names.
    xattrs.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out: Vec<Xattr> = Vec::with_capacity(xattrs.len());
    for x in xattrs.drain(..) {
        match out.last_mut() {
            Some(last) if last.name == x.name => *last = x,
            _ => out.push(x),
        }
    }
    *xattrs = out;
}

/// Why an xattr cannot be in a manifest, if it cannot.
pub(super) fn valid_xattr(x: &Xattr) -> Result<(), String> {
    if x.name.is_empty() || x.name.len() > XATTR_NAME_MAX || x.name.contains(&0) {
        return Err(format!("bad xattr name {:?}", super::escape_bytes(&x.name)));
    }
    if x.value.len() > XATTR_SIZE_MAX {
        return Err(format!(
            "xattr {:?} value is {} bytes (at most {XATTR_SIZE_MAX})",
            super::escape_bytes(&x.name),
            x.value.len()
        ));
    }
    Ok(())
}

/// The fields all names of one inode share.
fn same_inode(a: &Entry, b: &Entry) -> bool {
    a.kind == b.kind
        && a.hash == b.hash
        && a.size == b.size
        && a.mode == b.mode
        && a.mtime_ns == b.mtime_ns
        && a.meta.owner == b.meta.owner
        && a.meta.xattrs == b.meta.xattrs
}

/// Make link groups canonical over entries sorted by path (see the module comment).
pub(super) fn canonical_links(entries: &mut [(RelPath, Entry)]) {
    // Group by the caller's numbers; the first member (in path order) leads.
    let mut first: HashMap<u64, usize> = HashMap::new();
    let mut members: HashMap<u64, usize> = HashMap::new();
    for i in 0..entries.len() {
        let e = &entries[i].1;
        if e.meta.link == 0 || !kind_links(e.kind) {
            continue;
        }
        let link = e.meta.link;
        match first.get(&link) {
            None => {
                first.insert(link, i);
                members.insert(link, 1);
            }
            Some(&lead) if same_inode(&entries[lead].1, e) => {
                *members.get_mut(&link).expect("counted") += 1;
            }
            Some(_) => {}
        }
    }
    let mut renumber: HashMap<u64, u64> = HashMap::new();
    let mut next = 1;
    for i in 0..entries.len() {
        let link = entries[i].1.meta.link;
        let keep = link != 0
            && kind_links(entries[i].1.kind)
            && members.get(&link).is_some_and(|&n| n >= 2)
            && first
                .get(&link)
                .is_some_and(|&lead| same_inode(&entries[lead].1, &entries[i].1));
        entries[i].1.meta.link = if keep {
            *renumber.entry(link).or_insert_with(|| {
                next += 1;
                next - 1
            })
        } else {
            0
        };
    }
}

/// Check that link groups read from a file are canonical: numbered in order of first
/// appearance, at least two members each, members agreeing. `Err` names the first entry
/// that breaks it.
pub(super) fn check_links(entries: &[(RelPath, Entry)]) -> Result<(), (usize, String)> {
    let mut lead: Vec<usize> = Vec::new(); // lead[g - 1]: index of group g's first member
    let mut count: Vec<usize> = Vec::new();
    for (i, (_, e)) in entries.iter().enumerate() {
        let g = e.meta.link;
        if g == 0 {
            continue;
        }
        if !kind_links(e.kind) {
            return Err((i, format!("a {} cannot be in a link group", e.kind.name())));
        }
        if g == lead.len() as u64 + 1 {
            lead.push(i);
            count.push(1);
        } else if g == 0 || g > lead.len() as u64 {
            return Err((i, format!("link group {g} is out of order")));
        } else {
            let first = &entries[lead[(g - 1) as usize]].1;
            if !same_inode(first, e) {
                return Err((i, format!("differs from the other names of link group {g}")));
            }
            count[(g - 1) as usize] += 1;
        }
    }
    if let Some(g) = count.iter().position(|&n| n < 2) {
        return Err((lead[g], format!("link group {} has one member", g + 1)));
    }
    Ok(())
}

/// The names of each link group, in path order, indexed by group number - 1.
pub(super) fn groups(entries: &[(RelPath, Entry)]) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    for (i, (_, e)) in entries.iter().enumerate() {
        let g = e.meta.link as usize;
        if g == 0 {
            continue;
        }
        if out.len() < g {
            out.resize_with(g, Vec::new);
        }
        out[g - 1].push(i);
    }
    out
}

/// See `Manifest::follow_link_writes`.
pub(super) fn follow_link_writes(base: &super::Manifest, entries: &mut [(RelPath, Entry)]) {
    let index: HashMap<&[u8], usize> = entries
        .iter()
        .enumerate()
        .map(|(i, (p, _))| (p.as_slice(), i))
        .collect();
    let mut updates: Vec<(usize, usize)> = Vec::new(); // (member, source)
    for group in base.link_groups() {
        let Some(old) = base.get(group[0]) else {
            continue;
        };
        let members: Vec<usize> = group
            .iter()
            .filter_map(|p| index.get(p).copied())
            .filter(|&i| entries[i].1.meta.link != 0 && kind_links(entries[i].1.kind))
            .collect();
        // The newest state written through a name; ties go to the first name.
        let source = members
            .iter()
            .copied()
            .filter(|&i| !same_inode(&entries[i].1, old))
            .max_by(|&a, &b| {
                entries[a]
                    .1
                    .mtime_ns
                    .cmp(&entries[b].1.mtime_ns)
                    .then(b.cmp(&a))
            });
        if let Some(src) = source {
            updates.extend(members.iter().map(|&m| (m, src)));
        }
    }
    for (m, src) in updates {
        if m != src {
            let mut e = entries[src].1.clone();
            e.meta.link = entries[m].1.meta.link;
            entries[m].1 = e;
        }
    }
}
