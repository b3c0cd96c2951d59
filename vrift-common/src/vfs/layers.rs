//! Layers and the merged view over them.
//!
//! A [`View`] stacks read-only layers (manifests; lowest first, the last one is the upper
//! manifest) under a writable [`Delta`]. Lookup takes the topmost layer that has the path; a
//! directory merges its children from every layer below it that has a directory there, until
//! a layer has a non-directory at that path (which hides the rest) or the delta has a whiteout
//! or an opaque directory. A layer's whiteout (a manifest's `whiteouts`, see
//! `Manifest::with_whiteouts`) hides the path in every layer below it, as the delta's does.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::delta::{direct_children, Delta, DeltaNode};
use super::entry::{path_ino, Content, DeltaId, Node, ViewEntry};
use super::perm::Owner;
use crate::manifest::{Entry, Manifest, RelPath};
use crate::origin::Origin;

/// A read-only layer: anything that can look up a path and list a directory.
pub trait LayerSource {
    fn get(&self, path: &[u8]) -> Option<&Entry>;
    /// Direct children of `dir` as (file name, entry).
    fn children(&self, dir: &[u8]) -> Vec<(&[u8], &Entry)>;
    /// True if this layer removes `path` from the layers below it.
    fn is_whiteout(&self, _path: &[u8]) -> bool {
        false
    }
    /// Where the entry at `path` came from on disk, if the layer knows (an index built
    /// with origins, see [`crate::origin`]).
    fn origin(&self, _path: &[u8]) -> Option<Origin> {
        None
    }
    /// [`LayerSource::get`] and [`LayerSource::origin`] of one path, found once.
    fn get_with_origin(&self, path: &[u8]) -> Option<(&Entry, Option<Origin>)> {
        self.get(path).map(|e| (e, self.origin(path)))
    }
    /// [`LayerSource::children`], each with its [`LayerSource::origin`].
    fn children_with_origins(&self, dir: &[u8]) -> Vec<(&[u8], &Entry, Option<Origin>)> {
        self.children(dir)
            .into_iter()
            .map(|(n, e)| (n, e, self.origin(&join(dir, n))))
            .collect()
    }
    /// How many direct children of `dir` are directories (a directory's `st_nlink` is 2
    /// more). A layer that can count them without handing out its entries says so here.
    fn subdir_count(&self, dir: &[u8]) -> usize {
        self.children(dir)
            .iter()
            .filter(|(_, e)| e.kind == crate::manifest::EntryKind::Dir)
            .count()
    }
}

impl LayerSource for BTreeMap<RelPath, Entry> {
    fn get(&self, path: &[u8]) -> Option<&Entry> {
        BTreeMap::get(self, path)
    }
    fn children(&self, dir: &[u8]) -> Vec<(&[u8], &Entry)> {
        direct_children(self, dir)
    }
}

impl LayerSource for Manifest {
    fn get(&self, path: &[u8]) -> Option<&Entry> {
        Manifest::get(self, path)
    }
    fn children(&self, dir: &[u8]) -> Vec<(&[u8], &Entry)> {
        Manifest::children(self, dir)
    }
    fn is_whiteout(&self, path: &[u8]) -> bool {
        Manifest::is_whiteout(self, path)
    }
}

/// A layer behind a reference or an `Arc` is that layer: every method forwards, so a
/// layer's own faster answers (the index's) are kept.
macro_rules! forward_layer_source {
    ($($wrapper:ty),*) => {$(
        impl<T: LayerSource + ?Sized> LayerSource for $wrapper {
            fn get(&self, path: &[u8]) -> Option<&Entry> {
                (**self).get(path)
            }
            fn children(&self, dir: &[u8]) -> Vec<(&[u8], &Entry)> {
                (**self).children(dir)
            }
            fn is_whiteout(&self, path: &[u8]) -> bool {
                (**self).is_whiteout(path)
            }
            fn origin(&self, path: &[u8]) -> Option<Origin> {
                (**self).origin(path)
            }
            fn get_with_origin(&self, path: &[u8]) -> Option<(&Entry, Option<Origin>)> {
                (**self).get_with_origin(path)
            }
            fn children_with_origins(&self, dir: &[u8]) -> Vec<(&[u8], &Entry, Option<Origin>)> {
                (**self).children_with_origins(dir)
            }
            fn subdir_count(&self, dir: &[u8]) -> usize {
                (**self).subdir_count(dir)
            }
        }
    )*};
}

forward_layer_source!(&T, Arc<T>);

/// Which read-only layers still contribute below a directory (bit i = `layers[i]`).
pub(crate) type Mask = u64;

/// A view cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("view root {root:?}: must be an absolute path")]
    RootNotAbsolute { root: String },
    #[error("view root {root:?}: must not contain \".\" or \"..\" (give the canonical path)")]
    RootNotCanonical { root: String },
    #[error("view root {root:?}: {count} layers given, at most 64 are supported")]
    TooManyLayers { root: String, count: usize },
}

/// The merged tree cannot be saved as a manifest yet.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FlattenError {
    #[error("files still being written (commit them first): {}", list(paths))]
    Pending { paths: Vec<RelPath> },
}

fn list(paths: &[RelPath]) -> String {
    paths
        .iter()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A project's tree as programs see it: layers, a delta, a root path and an owner.
#[derive(Clone, Debug)]
pub struct View<L> {
    /// Absolute, canonical, no trailing '/' (except "/" itself).
    pub(crate) root: Vec<u8>,
    pub(crate) owner: Owner,
    pub(crate) dev: u64,
    pub(crate) layers: Vec<L>,
    pub(crate) delta: Delta,
}

/// `parent/name`, or `name` under the root, or `parent` for an empty name.
pub(crate) fn join(parent: &[u8], name: &[u8]) -> RelPath {
    let mut p = Vec::with_capacity(parent.len() + 1 + name.len());
    p.extend_from_slice(parent);
    if !parent.is_empty() && !name.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// The parent of a non-root relative path ("" for top-level names).
pub(crate) fn parent_of(rel: &[u8]) -> &[u8] {
    match rel.iter().rposition(|&b| b == b'/') {
        Some(i) => &rel[..i],
        None => &[],
    }
}

impl<L: LayerSource> View<L> {
    /// A view of `layers` (lowest first; the last is the upper manifest) with an empty delta,
    /// projected at the absolute, canonical path `root`, whose entries all report `owner`.
    pub fn new(root: &[u8], owner: Owner, layers: Vec<L>) -> Result<View<L>, ViewError> {
        let shown = || String::from_utf8_lossy(root).into_owned();
        if !root.starts_with(b"/") {
            return Err(ViewError::RootNotAbsolute { root: shown() });
        }
        let comps: Vec<&[u8]> = root
            .split(|&b| b == b'/')
            .filter(|c| !c.is_empty())
            .collect();
        if comps.iter().any(|c| *c == b"." || *c == b"..") {
            return Err(ViewError::RootNotCanonical { root: shown() });
        }
        if layers.len() > 64 {
            return Err(ViewError::TooManyLayers {
                root: shown(),
                count: layers.len(),
            });
        }
        let mut canon = Vec::new();
        for c in &comps {
            canon.push(b'/');
            canon.extend_from_slice(c);
        }
        if canon.is_empty() {
            canon.push(b'/');
        }
        Ok(View {
            root: canon,
            owner,
            dev: 0,
            layers,
            delta: Delta::new(),
        })
    }

    /// Continue a session: use `delta` as the writable layer.
    pub fn with_delta(mut self, delta: Delta) -> View<L> {
        self.delta = delta;
        self
    }
    /// The `st_dev` that `stat` reports.
    pub fn with_dev(mut self, dev: u64) -> View<L> {
        self.dev = dev;
        self
    }
    pub fn root(&self) -> &[u8] {
        &self.root
    }
    pub fn owner(&self) -> Owner {
        self.owner
    }
    /// The owner and group `e` reports: its own where it records one (a manifest with
    /// owners, an entry made by another user, a chown in the run), else the view's.
    pub fn owner_of(&self, e: &ViewEntry) -> Owner {
        e.meta.owner.map_or(self.owner, |o| Owner {
            uid: o.uid,
            gid: o.gid,
        })
    }
    pub fn layers(&self) -> &[L] {
        &self.layers
    }
    pub fn delta(&self) -> &Delta {
        &self.delta
    }
    pub fn into_delta(self) -> Delta {
        self.delta
    }

    /// The absolute path of a view entry (for getcwd and /proc answers).
    pub fn abs_path(&self, rel: &[u8]) -> Vec<u8> {
        if rel.is_empty() {
            return self.root.clone();
        }
        let mut p = self.root.clone();
        if p != b"/" {
            p.push(b'/');
        }
        p.extend_from_slice(rel);
        p
    }

    /// The merged entry at `rel`, if the view has one (no permission checks, no symlinks
    /// followed).
    pub fn lookup(&self, rel: &[u8]) -> Option<ViewEntry> {
        self.locate(rel).map(|(e, _)| e)
    }

    /// The merged children of the directory `rel` by name; `None` if it is not a directory.
    pub fn children(&self, rel: &[u8]) -> Option<Vec<(Vec<u8>, ViewEntry)>> {
        let (e, mask) = self.locate(rel)?;
        if !e.is_dir() {
            return None;
        }
        Some(
            self.merged_children(rel, mask)
                .into_iter()
                .map(|(n, e, _)| (n, e))
                .collect(),
        )
    }

    /// Files being written and not yet committed, with their paths.
    /// Undo a create whose result could not be delivered (the caller was interrupted and
    /// will restart the call): put back the delta node `prev` that [`Delta::get`] gave for
    /// `rel` before it, so a restarted O_EXCL create does not fail with EEXIST.
    pub fn undo_create(&mut self, rel: &[u8], prev: Option<DeltaNode>) {
        self.delta.restore(rel, prev);
    }

    /// Start recording a change, so that [`View::roll_back`] can take it back whole when the
    /// projection cannot carry it out behind the view.
    pub fn begin_change(&mut self) {
        self.delta.begin_change();
    }

    /// Keep the change recorded since [`View::begin_change`].
    pub fn end_change(&mut self) {
        self.delta.end_change();
    }

    /// Put the view back as it was at [`View::begin_change`].
    pub fn roll_back(&mut self) {
        self.delta.roll_back();
    }

    pub fn pending(&self) -> Vec<(DeltaId, RelPath)> {
        self.delta.pending()
    }

    /// The whole merged tree as manifest entries (root included, sorted by path), ready for
    /// `Manifest::from_entries`. Fails while any file is still pending. FIFOs are kept, as
    /// a disk keeps them (sockets are not: they never reach the view's entries).
    pub fn flatten(&self) -> Result<Vec<(RelPath, Entry)>, FlattenError> {
        let (root, mask) = self.root_node();
        let mut out = Vec::new();
        let mut pending = Vec::new();
        // Inode number of each non-directory, to keep names of one inode one link group.
        let mut inos: Vec<(RelPath, u64)> = Vec::new();
        out.push((Vec::new(), root.to_manifest().expect("root is a dir")));
        let mut stack = vec![(Vec::new(), mask)];
        while let Some((dir, mask)) = stack.pop() {
            for (name, e, m) in self.merged_children_with(&dir, mask, false) {
                let path = join(&dir, &name);
                match &e.node {
                    Node::File(Content::Pending(_)) => pending.push(path),
                    Node::Special { .. } => {}
                    Node::Dir => {
                        out.push((path.clone(), e.to_manifest().expect("dir")));
                        stack.push((path, m));
                    }
                    _ => {
                        inos.push((path.clone(), e.ino));
                        out.push((path, e.to_manifest().expect("file or symlink")));
                    }
                }
            }
        }
        if !pending.is_empty() {
            pending.sort();
            return Err(FlattenError::Pending { paths: pending });
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        link_shared_inodes(&mut out, &inos);
        Ok(out)
    }

    // ---- merging -------------------------------------------------------------------------

    fn all_layers(&self) -> Mask {
        if self.layers.len() == 64 {
            u64::MAX
        } else {
            (1u64 << self.layers.len()) - 1
        }
    }

    /// The root directory: the delta's, else the topmost layer's, else a plain 0755 dir.
    pub(crate) fn root_node(&self) -> (ViewEntry, Mask) {
        if let Some(DeltaNode::Entry { entry, .. }) = self.delta.get(b"") {
            return (entry.clone(), self.all_layers());
        }
        let from_layer = self.layers.iter().rev().find_map(|l| l.get(b"")).map(|e| {
            let mut v = ViewEntry::from_layer(e);
            self.fill_identity(&mut v, b"");
            v
        });
        let mut e = from_layer.unwrap_or(ViewEntry {
            node: Node::Dir,
            size: 0,
            mode: 0o755,
            mtime_ns: 0,
            ino: path_ino(b""),
            meta: Default::default(),
            atime_ns: 0,
            ctime_ns: 0,
        });
        // The root is a directory whatever a layer says.
        e.node = Node::Dir;
        e.size = 0;
        (e, self.all_layers())
    }

    /// Look up `name` in the directory `parent` whose contributing layers are `mask`.
    pub(crate) fn child(
        &self,
        parent: &[u8],
        mask: Mask,
        name: &[u8],
    ) -> Option<(ViewEntry, Mask)> {
        let path = join(parent, name);
        let mut found: Option<ViewEntry> = None;
        let mut below: Mask = 0;
        match self.delta.get(&path) {
            Some(DeltaNode::Whiteout) => return None,
            Some(DeltaNode::Entry { entry, opaque }) => {
                if !entry.is_dir() || *opaque {
                    return Some((entry.clone(), 0));
                }
                found = Some(entry.clone());
            }
            None => {}
        }
        for i in (0..self.layers.len()).rev() {
            if mask & (1 << i) == 0 {
                continue;
            }
            let Some(le) = self.layers[i].get(&path) else {
                if self.layers[i].is_whiteout(&path) {
                    // Gone from here down: what a higher layer gave is all there is.
                    break;
                }
                continue;
            };
            let is_dir = le.kind == crate::manifest::EntryKind::Dir;
            match &found {
                None => {
                    found = Some(ViewEntry::from_layer(le));
                    if !is_dir {
                        break;
                    }
                    below |= 1 << i;
                }
                Some(_) if is_dir => below |= 1 << i,
                // A non-directory in a lower layer ends the merge of this directory.
                Some(_) => break,
            }
        }
        found.map(|e| (e, below))
    }

    /// Give an entry straight from a layer (inode number not assigned yet) its identity: the
    /// inode number and ctime its file had on disk when the view's one layer records them
    /// (a project's view, see [`crate::origin`]), else the number derived from its path or
    /// its link group. An entry of the delta keeps the number it has.
    pub(crate) fn fill_identity(&self, e: &mut ViewEntry, path: &[u8]) {
        let origin = match self.layers.as_slice() {
            [layer] if e.ino == 0 => layer.origin(path),
            _ => None,
        };
        self.fill_identity_from(e, origin, || path.to_vec());
    }

    /// [`View::fill_identity`] with the origin the view's one layer gave for the entry
    /// already in hand; `path` is made only when the number is derived from it.
    pub(crate) fn fill_identity_from(
        &self,
        e: &mut ViewEntry,
        origin: Option<Origin>,
        path: impl FnOnce() -> RelPath,
    ) {
        if e.ino != 0 {
            return;
        }
        if let (Some(o), 1) = (origin, self.layers.len()) {
            e.ino = o.ino;
            if e.ctime_ns == 0 {
                e.ctime_ns = o.ctime_ns;
            }
            return;
        }
        // A link group's number does not depend on the path.
        let path = if e.meta.link != 0 { Vec::new() } else { path() };
        e.fill_ino(&path);
    }

    /// Walk from the root to `rel` (no symlinks followed).
    pub(crate) fn locate(&self, rel: &[u8]) -> Option<(ViewEntry, Mask)> {
        let (mut e, mask) = self.locate_no_ino(rel)?;
        self.fill_identity(&mut e, rel);
        Some((e, mask))
    }

    /// [`View::locate`] without assigning the inode number of an entry from a layer.
    fn locate_no_ino(&self, rel: &[u8]) -> Option<(ViewEntry, Mask)> {
        let (mut e, mut mask) = self.root_node();
        if rel.is_empty() {
            return Some((e, mask));
        }
        let mut at: usize = 0;
        for name in rel.split(|&b| b == b'/') {
            if !e.is_dir() {
                return None;
            }
            let parent = &rel[..at.saturating_sub(1)];
            let (c, m) = self.child(parent, mask, name)?;
            e = c;
            mask = m;
            at += name.len() + 1;
        }
        Some((e, mask))
    }

    /// The merged children of directory `dir` (with its `mask`), sorted by name, with their
    /// inode numbers.
    pub(crate) fn merged_children(
        &self,
        dir: &[u8],
        mask: Mask,
    ) -> Vec<(Vec<u8>, ViewEntry, Mask)> {
        self.merged_children_with(dir, mask, true)
    }

    /// [`View::merged_children`], assigning inode numbers only if `ino` is set.
    fn merged_children_with(
        &self,
        dir: &[u8],
        mask: Mask,
        ino: bool,
    ) -> Vec<(Vec<u8>, ViewEntry, Mask)> {
        let delta_kids = self.delta.children(dir);
        if delta_kids.is_empty() && mask.count_ones() == 1 {
            // One layer and no changes here: its children are the merged children.
            let i = mask.trailing_zeros() as usize;
            return self.layers[i]
                .children_with_origins(dir)
                .into_iter()
                .map(|(n, le, origin)| {
                    let mut e = ViewEntry::from_layer(le);
                    if ino {
                        self.fill_identity_from(&mut e, origin, || join(dir, n));
                    }
                    let below = if e.is_dir() { mask } else { 0 };
                    (n.to_vec(), e, below)
                })
                .collect();
        }
        let mut names: Vec<Vec<u8>> = delta_kids.into_iter().map(|(n, _)| n.to_vec()).collect();
        for i in 0..self.layers.len() {
            if mask & (1 << i) != 0 {
                names.extend(
                    self.layers[i]
                        .children(dir)
                        .into_iter()
                        .map(|(n, _)| n.to_vec()),
                );
            }
        }
        names.sort();
        names.dedup();
        names
            .into_iter()
            .filter_map(|n| {
                self.child(dir, mask, &n).map(|(mut e, m)| {
                    if ino {
                        self.fill_identity(&mut e, &join(dir, &n));
                    }
                    (n, e, m)
                })
            })
            .collect()
    }

    /// Every merged entry at and below `rel`, paths relative to `rel` ("" is `rel`).
    pub(crate) fn subtree(&self, rel: &[u8]) -> Vec<(RelPath, ViewEntry)> {
        let Some((top, mask)) = self.locate(rel) else {
            return Vec::new();
        };
        let mut out = vec![(Vec::new(), top.clone())];
        if !top.is_dir() {
            return out;
        }
        let mut stack = vec![(Vec::new(), mask)];
        while let Some((sub, mask)) = stack.pop() {
            for (name, e, m) in self.merged_children(&join(rel, &sub), mask) {
                let p = join(&sub, &name);
                if e.is_dir() {
                    stack.push((p.clone(), m));
                }
                out.push((p, e));
            }
        }
        out
    }

    /// Number of links of a directory: 2 + its subdirectories.
    pub(crate) fn dir_nlink(&self, rel: &[u8], mask: Mask) -> u64 {
        if let Some(n) = self.layer_dir_nlink(rel) {
            return n;
        }
        2 + self
            .merged_children_with(rel, mask, false)
            .iter()
            .filter(|(_, e, _)| e.is_dir())
            .count() as u64
    }

    /// A directory's number of links counted in the view's one layer, without merging, when
    /// the delta holds nothing at, above or below it (its children are the layer's alone).
    pub(crate) fn layer_dir_nlink(&self, rel: &[u8]) -> Option<u64> {
        let [layer] = self.layers.as_slice() else {
            return None;
        };
        if self.delta.holds_path_or_above(rel) || self.delta.holds_below(rel) {
            return None;
        }
        Some(2 + layer.subdir_count(rel) as u64)
    }

    // ---- changing the delta ----------------------------------------------------------------

    /// Does any read-only layer have an entry at `rel` (visible or not)?
    pub(crate) fn lower_has(&self, rel: &[u8]) -> bool {
        self.layers.iter().any(|l| l.get(rel).is_some())
    }

    /// Change an existing entry in place (copying it up into the delta if needed).
    pub(crate) fn update(&mut self, rel: &[u8], f: impl FnOnce(&mut ViewEntry)) {
        if matches!(self.delta.get(rel), Some(DeltaNode::Entry { .. })) {
            self.delta.modify(rel, f);
            return;
        }
        let Some(mut e) = self.lookup(rel) else {
            return;
        };
        f(&mut e);
        self.delta.insert(
            rel.to_vec(),
            DeltaNode::Entry {
                entry: e,
                opaque: false,
            },
        );
    }

    /// Change the entry at `rel` and every other name the delta has for its inode (names
    /// hard-linked during the run): mode and times belong to the inode, not to a name.
    pub(crate) fn update_inode(&mut self, rel: &[u8], f: impl Fn(&mut ViewEntry)) {
        let ino = self.lookup(rel).filter(|e| !e.is_dir()).map(|e| e.ino);
        self.update(rel, &f);
        if let Some(ino) = ino {
            for other in self.delta.names_of(ino) {
                if other != rel {
                    self.update(&other, &f);
                }
            }
        }
    }

    /// Make the names `paths` of a layer's hard-link group (which share one inode number,
    /// [`crate::vfs::link_ino`]) names of one inode for the run, as names linked during the
    /// run are: each is copied up into the delta, whose index of names per inode then gives
    /// their shared `st_nlink`, and carries a write, a chmod or a utimensat through one name
    /// to the others. Paths that do not show a member of a group are left alone.
    pub fn share_link_group(&mut self, paths: &[&[u8]]) {
        for p in paths {
            if self
                .lookup(p)
                .is_some_and(|e| e.meta.link != 0 && !e.is_dir())
            {
                self.update(p, |_| {});
            }
        }
    }

    /// Put a new entry at `rel`, where the view has none. A new directory is opaque: nothing
    /// from the lower layers shows through it.
    pub(crate) fn create(&mut self, rel: &[u8], entry: ViewEntry) {
        self.delta.remove_tree(rel);
        self.delta.insert(
            rel.to_vec(),
            DeltaNode::Entry {
                entry,
                opaque: true,
            },
        );
    }

    /// Remove the entry at `rel` and everything below it.
    pub(crate) fn remove(&mut self, rel: &[u8]) {
        self.delta.remove_tree(rel);
        if self.lower_has(rel) {
            self.delta.insert(rel.to_vec(), DeltaNode::Whiteout);
        }
    }

    /// Set a directory's mtime (entries were added or removed in it).
    pub(crate) fn touch_dir(&mut self, rel: &[u8], now_ns: i64) {
        self.update(rel, |e| {
            e.mtime_ns = now_ns;
            e.ctime_ns = now_ns;
        });
    }
}

/// Names of one inode in the view (a manifest's link group, or names linked during the run)
/// get one link group number in the flattened entries: the group's own where a name carries
/// one, else a number above any a manifest uses. `Manifest::from_entries` makes them canonical.
fn link_shared_inodes(out: &mut [(RelPath, Entry)], inos: &[(RelPath, u64)]) {
    let mut names: std::collections::HashMap<u64, Vec<&[u8]>> = Default::default();
    // 0: an entry straight from a layer, whose number is not assigned yet; its group, if
    // any, is the manifest's own.
    for (p, ino) in inos.iter().filter(|(_, ino)| *ino != 0) {
        names.entry(*ino).or_default().push(p);
    }
    for (ino, paths) in names {
        if paths.len() < 2 {
            continue;
        }
        let idx: Vec<usize> = paths
            .iter()
            .filter_map(|p| out.binary_search_by(|(q, _)| q.as_slice().cmp(p)).ok())
            .collect();
        let group = idx
            .iter()
            .map(|&i| out[i].1.meta.link)
            .find(|&g| g != 0)
            .unwrap_or((1 << 62) | (ino & ((1 << 62) - 1)));
        for i in idx {
            out[i].1.meta.link = group;
        }
    }
}
