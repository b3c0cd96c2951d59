//! The writable top layer of a view: what one run (or one named session) changed.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use super::entry::{Content, DeltaId, Node, ViewEntry, NEW_INO_BIT};
use crate::manifest::RelPath;

/// One path in the delta.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeltaNode {
    /// Deleted: hides this path and everything below it in the lower layers.
    Whiteout,
    /// New or changed. An `opaque` directory shows only the delta's children, never the lower
    /// layers' (a directory made again over a deleted one must not bring the old files back).
    Entry { entry: ViewEntry, opaque: bool },
}

/// New and changed entries and whiteouts, by path, plus the counters for new inode numbers
/// and pending-write ids. Every change goes through [`Delta::insert`] and
/// [`Delta::remove_tree`], which keep the index of pending files right.
#[derive(Clone, Debug, Default)]
pub struct Delta {
    nodes: BTreeMap<RelPath, DeltaNode>,
    pending: BTreeMap<DeltaId, BTreeSet<RelPath>>,
    /// The delta's paths of each inode number that is not a directory's: more than one for
    /// hard links made in the run (their `st_nlink`).
    names: BTreeMap<u64, BTreeSet<RelPath>>,
    /// Status changes of an inode as a whole (a name of it removed or replaced), so that
    /// every name shows them without each being rewritten.
    inode_ctimes: BTreeMap<u64, i64>,
    next_id: u64,
    next_ino: u64,
    /// While a change is being carried out: what each path it touched held before, oldest
    /// first, so a change the projection could not carry out can be taken back whole.
    undo: Option<Vec<(RelPath, Option<DeltaNode>)>>,
}

impl Delta {
    pub fn new() -> Delta {
        Delta::default()
    }
    pub fn get(&self, path: &[u8]) -> Option<&DeltaNode> {
        self.nodes.get(path)
    }
    /// Does the delta hold a node at `rel` or at any directory above it (the root too)?
    /// When it holds none, a lookup of `rel` is the layers' alone.
    pub(crate) fn holds_path_or_above(&self, rel: &[u8]) -> bool {
        if self.nodes.is_empty() {
            return false;
        }
        if self.nodes.contains_key(rel) || self.nodes.contains_key(&b""[..]) {
            return true;
        }
        rel.iter()
            .enumerate()
            .filter(|&(_, &b)| b == b'/')
            .any(|(i, _)| self.nodes.contains_key(&rel[..i]))
    }

    /// Does the delta hold a node anywhere below the directory `rel`?
    pub(crate) fn holds_below(&self, rel: &[u8]) -> bool {
        if rel.is_empty() {
            return self.nodes.keys().any(|k| !k.is_empty());
        }
        let mut prefix = rel.to_vec();
        prefix.push(b'/');
        self.nodes
            .range::<[u8], _>((Bound::Included(prefix.as_slice()), Bound::Unbounded))
            .next()
            .is_some_and(|(k, _)| k.starts_with(&prefix))
    }

    /// All nodes in path order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &DeltaNode)> + '_ {
        self.nodes.iter().map(|(p, n)| (p.as_slice(), n))
    }
    pub fn len(&self) -> usize {
        self.nodes.len()
    }
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
    /// Files being written (opened for write, created or truncated, not yet committed), with
    /// every path that currently shows each one.
    pub fn pending(&self) -> Vec<(DeltaId, RelPath)> {
        self.pending
            .iter()
            .flat_map(|(id, paths)| paths.iter().map(move |p| (*id, p.clone())))
            .collect()
    }
    /// The delta's paths that show the (non-directory) inode `ino`: every name of a file
    /// hard-linked during the run.
    pub fn names_of(&self, ino: u64) -> Vec<RelPath> {
        self.names
            .get(&ino)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// How many names the delta has for the (non-directory) inode `ino`.
    pub fn name_count(&self, ino: u64) -> usize {
        self.names.get(&ino).map_or(0, BTreeSet::len)
    }

    /// The last status change of inode `ino` as a whole, if the run made one.
    pub fn inode_ctime(&self, ino: u64) -> Option<i64> {
        self.inode_ctimes.get(&ino).copied()
    }

    /// The inode `ino` changed status (one of its names went): every name shows `now_ns`.
    pub(crate) fn touch_inode(&mut self, ino: u64, now_ns: i64) {
        self.inode_ctimes.insert(ino, now_ns);
    }

    /// Paths that currently show the pending file `id`.
    pub fn pending_paths(&self, id: DeltaId) -> Vec<RelPath> {
        self.pending
            .get(&id)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub(crate) fn new_id(&mut self) -> DeltaId {
        self.next_id += 1;
        DeltaId(self.next_id)
    }
    pub(crate) fn new_ino(&mut self) -> u64 {
        self.next_ino += 1;
        NEW_INO_BIT | self.next_ino
    }

    /// Start recording what changes, for [`Delta::roll_back`]; a recording already going on
    /// is dropped.
    pub fn begin_change(&mut self) {
        self.undo = Some(Vec::new());
    }

    /// Stop recording: the changes since [`Delta::begin_change`] stay.
    pub fn end_change(&mut self) {
        self.undo = None;
    }

    /// Put back every path changed since [`Delta::begin_change`] as it was, and stop
    /// recording.
    pub fn roll_back(&mut self) {
        let Some(log) = self.undo.take() else {
            return;
        };
        for (path, prev) in log.into_iter().rev() {
            if let Some(old) = self.nodes.remove(&path) {
                self.unindex(&path, &old);
            }
            if let Some(node) = prev {
                self.index(&path, &node);
                self.nodes.insert(path, node);
            }
        }
    }

    /// Remember what `path` holds now, if a change is being recorded.
    fn record(&mut self, path: &[u8]) {
        if let Some(log) = self.undo.as_mut() {
            log.push((path.to_vec(), self.nodes.get(path).cloned()));
        }
    }

    fn index(&mut self, path: &[u8], node: &DeltaNode) {
        if let DeltaNode::Entry { entry, .. } = node {
            if let Some(Content::Pending(id)) = entry.content() {
                self.pending.entry(id).or_default().insert(path.to_vec());
            }
            if !entry.is_dir() {
                self.names
                    .entry(entry.ino)
                    .or_default()
                    .insert(path.to_vec());
            }
        }
    }

    pub(crate) fn get_mut_entry(&mut self, path: &[u8]) -> Option<&mut ViewEntry> {
        match self.nodes.get_mut(path) {
            Some(DeltaNode::Entry { entry, .. }) => Some(entry),
            _ => None,
        }
    }

    /// Put `node` at `path`, replacing what was there (not what is below it).
    pub(crate) fn insert(&mut self, path: RelPath, node: DeltaNode) {
        self.record(&path);
        if let Some(old) = self.nodes.remove(&path) {
            self.unindex(&path, &old);
        }
        self.index(&path, &node);
        self.nodes.insert(path, node);
    }

    /// Put back exactly `prev` (what [`Delta::get`] returned before) at `path` alone.
    pub(crate) fn restore(&mut self, path: &[u8], prev: Option<DeltaNode>) {
        self.record(path);
        if let Some(old) = self.nodes.remove(path) {
            self.unindex(path, &old);
        }
        if let Some(node) = prev {
            self.insert(path.to_vec(), node);
        }
    }

    /// Change the entry at `path` in place; false if the delta has no entry there.
    pub(crate) fn modify(&mut self, path: &[u8], f: impl FnOnce(&mut ViewEntry)) -> bool {
        if !matches!(self.nodes.get(path), Some(DeltaNode::Entry { .. })) {
            return false;
        }
        self.record(path);
        let Some(DeltaNode::Entry { mut entry, opaque }) = self.nodes.remove(path) else {
            unreachable!("checked above");
        };
        self.unindex(
            path,
            &DeltaNode::Entry {
                entry: entry.clone(),
                opaque,
            },
        );
        f(&mut entry);
        self.insert(path.to_vec(), DeltaNode::Entry { entry, opaque });
        true
    }

    /// Remove `path` and everything below it; returns what was removed, in path order, with
    /// paths relative to `path` ("" is `path` itself).
    pub(crate) fn remove_tree(&mut self, path: &[u8]) -> Vec<(RelPath, DeltaNode)> {
        let mut out = Vec::new();
        self.record(path);
        if let Some(n) = self.nodes.remove(path) {
            self.unindex(path, &n);
            out.push((Vec::new(), n));
        }
        let keys: Vec<RelPath> = subtree_keys(&self.nodes, path);
        for k in keys {
            self.record(&k);
            if let Some(n) = self.nodes.remove(&k) {
                self.unindex(&k, &n);
                out.push((k[path.len() + usize::from(!path.is_empty())..].to_vec(), n));
            }
        }
        out
    }

    fn unindex(&mut self, path: &[u8], node: &DeltaNode) {
        if let DeltaNode::Entry { entry, .. } = node {
            if let Some(Content::Pending(id)) = entry.content() {
                if let Some(set) = self.pending.get_mut(&id) {
                    set.remove(path);
                    if set.is_empty() {
                        self.pending.remove(&id);
                    }
                }
            }
            if !entry.is_dir() {
                if let Some(set) = self.names.get_mut(&entry.ino) {
                    set.remove(path);
                    if set.is_empty() {
                        self.names.remove(&entry.ino);
                    }
                }
            }
        }
    }

    /// Direct children of `dir` (whiteouts included).
    pub(crate) fn children(&self, dir: &[u8]) -> Vec<(&[u8], &DeltaNode)> {
        direct_children(&self.nodes, dir)
    }

    /// Mark the pending file `id` committed as `hash`; returns the paths updated.
    pub(crate) fn commit(
        &mut self,
        id: DeltaId,
        hash: crate::hash::Hash,
        size: u64,
        mtime_ns: i64,
    ) -> Vec<RelPath> {
        let paths: Vec<RelPath> = self
            .pending
            .remove(&id)
            .map(|s| s.into_iter().collect())
            .unwrap_or_default();
        for p in &paths {
            if let Some(e) = self.get_mut_entry(p) {
                e.node = Node::File(Content::Blob(hash));
                e.size = size;
                e.mtime_ns = mtime_ns;
                // A ctime from disk (see `crate::origin`) may be older than the write.
                e.ctime_ns = e.ctime_ns.max(mtime_ns);
            }
        }
        paths
    }
}

/// Keys strictly below `dir` ("" means everything).
fn subtree_keys<V>(map: &BTreeMap<RelPath, V>, dir: &[u8]) -> Vec<RelPath> {
    if dir.is_empty() {
        return map.keys().filter(|k| !k.is_empty()).cloned().collect();
    }
    let mut prefix = dir.to_vec();
    prefix.push(b'/');
    map.range::<[u8], _>((Bound::Included(prefix.as_slice()), Bound::Unbounded))
        .take_while(|(k, _)| k.starts_with(&prefix))
        .map(|(k, _)| k.clone())
        .collect()
}

/// Direct children of `dir` in a map keyed by relative path, by name order. Skips over each
/// child's subtree with one range lookup, so the cost is per child, not per descendant.
pub(crate) fn direct_children<'a, V>(
    map: &'a BTreeMap<RelPath, V>,
    dir: &[u8],
) -> Vec<(&'a [u8], &'a V)> {
    let mut prefix = dir.to_vec();
    if !dir.is_empty() {
        prefix.push(b'/');
    }
    let mut out = Vec::new();
    let mut start: Bound<Vec<u8>> = if dir.is_empty() {
        Bound::Excluded(Vec::new())
    } else {
        Bound::Included(prefix.clone())
    };
    loop {
        let next = map
            .range::<[u8], _>((bound_ref(&start), Bound::Unbounded))
            .next();
        let Some((k, v)) = next else { break };
        if !k.starts_with(&prefix) {
            break;
        }
        let rest = &k[prefix.len()..];
        match rest.iter().position(|&b| b == b'/') {
            None => {
                out.push((rest, v));
                start = Bound::Excluded(k.clone());
            }
            Some(i) => {
                // A descendant: jump past everything under prefix + name + "/".
                let mut skip = prefix.clone();
                skip.extend_from_slice(&rest[..i]);
                skip.push(b'/' + 1);
                start = Bound::Included(skip);
            }
        }
    }
    out
}

fn bound_ref(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(v) => Bound::Included(v.as_slice()),
        Bound::Excluded(v) => Bound::Excluded(v.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}
