//! Comparing two manifests: a merge of two sorted entry lists.

use std::cmp::Ordering;
use std::fmt;

use super::{Entry, RelPath};

/// A field of an entry that differs between two manifests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    Kind,
    /// The content hash of a file.
    Content,
    Size,
    Mode,
    Mtime,
    /// The target of a symlink.
    Target,
    /// Owner or group (format version 2).
    Owner,
    /// Extended attributes (format version 2).
    Xattrs,
    /// Hard-link group membership (format version 2).
    Links,
}

impl Field {
    pub fn name(self) -> &'static str {
        match self {
            Field::Kind => "kind",
            Field::Content => "content",
            Field::Size => "size",
            Field::Mode => "mode",
            Field::Mtime => "mtime",
            Field::Target => "target",
            Field::Owner => "owner",
            Field::Xattrs => "xattrs",
            Field::Links => "links",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One difference between two manifests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// In the second manifest only.
    Added { path: RelPath, entry: Entry },
    /// In the first manifest only.
    Removed { path: RelPath, entry: Entry },
    /// In both, with different fields (`fields` is never empty).
    Changed {
        path: RelPath,
        old: Entry,
        new: Entry,
        fields: Vec<Field>,
    },
}

impl Change {
    pub fn path(&self) -> &[u8] {
        match self {
            Change::Added { path, .. } | Change::Removed { path, .. } => path,
            Change::Changed { path, .. } => path,
        }
    }
}

/// Which fields differ between two entries of one path.
pub fn changed_fields(old: &Entry, new: &Entry) -> Vec<Field> {
    let mut fields = Vec::new();
    if old.kind != new.kind {
        fields.push(Field::Kind);
    }
    if old.hash != new.hash {
        fields.push(Field::Content);
    }
    if old.size != new.size {
        fields.push(Field::Size);
    }
    if old.mode != new.mode {
        fields.push(Field::Mode);
    }
    if old.mtime_ns != new.mtime_ns {
        fields.push(Field::Mtime);
    }
    if old.target != new.target {
        fields.push(Field::Target);
    }
    if old.meta.owner != new.meta.owner {
        fields.push(Field::Owner);
    }
    if old.meta.xattrs != new.meta.xattrs {
        fields.push(Field::Xattrs);
    }
    // Group numbers are positions, not identities: only being linked or not is compared
    // here (a group that gains or loses a name shows as that name's change).
    if (old.meta.link == 0) != (new.meta.link == 0) {
        fields.push(Field::Links);
    }
    fields
}

pub(super) fn diff(a: &[(RelPath, Entry)], b: &[(RelPath, Entry)]) -> Vec<Change> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < a.len() || j < b.len() {
        let order = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => x.0.cmp(&y.0),
            (Some(_), None) => Ordering::Less,
            (None, _) => Ordering::Greater,
        };
        match order {
            Ordering::Less => {
                out.push(Change::Removed {
                    path: a[i].0.clone(),
                    entry: a[i].1.clone(),
                });
                i += 1;
            }
            Ordering::Greater => {
                out.push(Change::Added {
                    path: b[j].0.clone(),
                    entry: b[j].1.clone(),
                });
                j += 1;
            }
            Ordering::Equal => {
                let fields = changed_fields(&a[i].1, &b[j].1);
                if !fields.is_empty() {
                    out.push(Change::Changed {
                        path: a[i].0.clone(),
                        old: a[i].1.clone(),
                        new: b[j].1.clone(),
                        fields,
                    });
                }
                i += 1;
                j += 1;
            }
        }
    }
    out
}
