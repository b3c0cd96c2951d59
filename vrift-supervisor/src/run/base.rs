//! `--base M` (repeatable, lowest first): manifests stacked under the view's own, as the
//! layers of a view stack. The program sees the merged tree; its writes land in the top
//! layer only (the `--manifest` file or the project), and the base manifests never change.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use vrift_common::manifest::{display_path, EntryKind, Manifest, RelPath};
use vrift_common::vfs::{Owner, View};

use crate::view::spec::{Destination, Stacked, ViewSpec};

/// The manifests `layers` (lowest first) merged into one tree.
pub fn merge(layers: Vec<Arc<Manifest>>) -> Result<Manifest> {
    let view = View::new(b"/", Owner { uid: 0, gid: 0 }, layers).context("merging layers")?;
    let entries = view.flatten().context("merging layers")?;
    Ok(Manifest::from_entries(entries))
}

/// `spec` over the `bases`: its manifest becomes the merged tree.
pub fn stack(mut spec: ViewSpec, bases: &[PathBuf]) -> Result<ViewSpec> {
    if bases.is_empty() {
        return Ok(spec);
    }
    let mut layers = Vec::new();
    for b in bases {
        layers.push(Arc::new(
            Manifest::load(b).with_context(|| format!("--base {}", b.display()))?,
        ));
    }
    let base = merge(layers.clone())?;
    layers.push(Arc::new(spec.manifest.clone()));
    let merged = merge(layers)?;
    let top = std::mem::replace(&mut spec.manifest, merged);
    spec.stacked = Some(Stacked { base, top });
    // The merged tree is not what was ingested from disk.
    spec.origins = None;
    Ok(spec)
}

/// What a run's result means for its destination: the manifest the destination started
/// from, and the new one. Over bases, the new top layer holds what the run changed or made
/// (and whatever the top already had); an entry equal to the base's stays in the base, and
/// a base entry the run removed is a whiteout of the top layer. A project directory cannot
/// hold whiteouts: such a removal is named on stderr and shows again next time.
pub fn unstack(spec: &ViewSpec, result: Manifest) -> Result<(&Manifest, Manifest)> {
    let Some(st) = &spec.stacked else {
        // A top layer run on its own keeps its whiteouts, but for paths the run made again.
        let kept: Vec<RelPath> = spec
            .manifest
            .whiteouts()
            .iter()
            .filter(|p| result.get(p).is_none())
            .cloned()
            .collect();
        return Ok((&spec.manifest, result.with_whiteouts(kept)));
    };
    let whiteouts = matches!(spec.destination, Destination::ManifestFile(_));
    Ok((&st.top, top_layer(st, &result, whiteouts)))
}

/// The new top layer of a stacked view that ended as `result`, with whiteouts for the base
/// entries it removed if `whiteouts` is set.
fn top_layer(st: &Stacked, result: &Manifest, whiteouts: bool) -> Manifest {
    let mut keep: HashSet<RelPath> = HashSet::new();
    // `path` with its directories, so the layer is a tree of its own.
    let keep_with_parents = |keep: &mut HashSet<RelPath>, mut p: &[u8]| {
        keep.insert(p.to_vec());
        while let Some(i) = p.iter().rposition(|&b| b == b'/') {
            p = &p[..i];
            keep.insert(p.to_vec());
        }
        keep.insert(Vec::new());
    };
    for (path, entry) in result.iter() {
        if st.top.get(path).is_some() || st.base.get(path) != Some(entry) {
            keep_with_parents(&mut keep, path);
        }
    }
    // The base entries the run removed: only the topmost of a removed subtree needs a
    // whiteout (a whiteout of a directory hides what is below it, and a file made in its
    // place hides it too), so those whose parent is still a directory.
    let mut gone = Vec::new();
    for (path, _) in st.base.iter() {
        if path.is_empty() || result.get(path).is_some() {
            continue;
        }
        let parent = parent_of(path);
        if result.get(parent).is_none_or(|e| e.kind != EntryKind::Dir) {
            continue;
        }
        if whiteouts {
            keep_with_parents(&mut keep, parent);
            gone.push(path.to_vec());
        } else {
            eprintln!(
                "vrift: warning: {}: removed in the run, but it comes from a --base layer, \
                 and a project directory cannot record a removal of a base entry (use \
                 --manifest FILE, which records it as a whiteout): it shows again in the \
                 next run",
                display_path(path)
            );
        }
    }
    Manifest::from_entries(
        result
            .iter()
            .filter(|(p, _)| keep.contains(*p))
            .map(|(p, e)| (p.to_vec(), e.clone())),
    )
    .with_whiteouts(gone)
}

/// The parent of a non-root relative path ("" for top-level names).
fn parent_of(rel: &[u8]) -> &[u8] {
    rel.iter()
        .rposition(|&b| b == b'/')
        .map_or(&[], |i| &rel[..i])
}

#[cfg(test)]
mod tests {
    use super::*;
    use vrift_common::hash::Hash;
    use vrift_common::manifest::Entry;

    fn file(h: u8) -> Entry {
        Entry::file(Hash([h; 32]), 1, 0o644, 1)
    }

    fn m(entries: &[(&str, Entry)]) -> Manifest {
        let mut v = vec![(Vec::new(), Entry::dir(0o755, 1))];
        v.extend(
            entries
                .iter()
                .map(|(p, e)| (p.as_bytes().to_vec(), e.clone())),
        );
        Manifest::from_entries(v)
    }

    #[test]
    fn the_top_layer_wins_and_writes_land_in_it() {
        let base = m(&[
            ("bin", Entry::dir(0o755, 1)),
            ("bin/sh", file(1)),
            ("etc", Entry::dir(0o755, 1)),
        ]);
        let top = m(&[
            ("app", file(2)),
            ("bin", Entry::dir(0o755, 1)),
            ("bin/sh", file(3)),
        ]);
        let merged = merge(vec![Arc::new(base.clone()), Arc::new(top.clone())]).unwrap();
        assert_eq!(merged.get(b"bin/sh"), Some(&file(3)));
        assert_eq!(merged.get(b"etc"), Some(&Entry::dir(0o755, 1)));
        assert_eq!(merged.get(b"app"), Some(&file(2)));
        let st = Stacked { base, top };
        // The run wrote etc/new and left the rest.
        let mut entries: Vec<_> = merged
            .iter()
            .map(|(p, e)| (p.to_vec(), e.clone()))
            .collect();
        entries.push((b"etc/new".to_vec(), file(4)));
        let out = top_layer(&st, &Manifest::from_entries(entries), true);
        let paths: Vec<String> = out.iter().map(|(p, _)| display_path(p)).collect();
        assert_eq!(paths, [".", "app", "bin", "bin/sh", "etc", "etc/new"]);
        assert_eq!(out.get(b"bin/sh"), Some(&file(3)));
    }

    #[test]
    fn removed_base_entries_are_whiteouts_of_the_top_layer() {
        let base = m(&[
            ("etc", Entry::dir(0o755, 1)),
            ("etc/a", file(1)),
            ("etc/b", file(2)),
            ("share", Entry::dir(0o755, 1)),
            ("share/x", file(3)),
            ("share/y", file(4)),
            ("tree", Entry::dir(0o755, 1)),
            ("tree/deep", Entry::dir(0o755, 1)),
            ("tree/deep/z", file(5)),
        ]);
        let top = m(&[]);
        let st = Stacked { base, top };
        // rm etc/a; rm -r share; mkdir share; touch share/new; rm -r tree.
        let result = m(&[
            ("etc", Entry::dir(0o755, 1)),
            ("etc/b", file(2)),
            ("share", Entry::dir(0o755, 9)),
            ("share/new", file(6)),
        ]);
        let out = top_layer(&st, &result, true);
        let w: Vec<String> = out.whiteouts().iter().map(|p| display_path(p)).collect();
        assert_eq!(w, ["etc/a", "share/x", "share/y", "tree"]);
        let paths: Vec<String> = out.iter().map(|(p, _)| display_path(p)).collect();
        assert_eq!(paths, [".", "etc", "share", "share/new"]);
        // Stacked again, the removals hold.
        let merged = merge(vec![Arc::new(st.base.clone()), Arc::new(out)]).unwrap();
        assert_eq!(merged, result);
        // Without whiteouts (a project destination) nothing is recorded.
        assert!(top_layer(&st, &result, false).whiteouts().is_empty());
    }
}
