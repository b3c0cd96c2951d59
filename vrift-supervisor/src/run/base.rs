//! `--base M` (repeatable, lowest first): manifests stacked under the view's own, as the
//! layers of a view stack. The program sees the merged tree; its writes land in the top
//! layer only (the `--manifest` file or the project), and the base manifests never change.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use vrift_common::manifest::{display_path, Manifest, RelPath};
use vrift_common::vfs::{Owner, View};

use crate::view::spec::{Stacked, ViewSpec};

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
    Ok(spec)
}

/// What a run's result means for its destination: the manifest the destination started
/// from, and the new one. Over bases, the new top layer holds what the run changed or made
/// (and whatever the top already had); an entry equal to the base's stays in the base.
pub fn unstack(spec: &ViewSpec, result: Manifest) -> Result<(&Manifest, Manifest)> {
    let Some(st) = &spec.stacked else {
        return Ok((&spec.manifest, result));
    };
    Ok((&st.top, top_layer(st, &result)))
}

/// The new top layer of a stacked view that ended as `result`.
fn top_layer(st: &Stacked, result: &Manifest) -> Manifest {
    let mut keep: HashSet<RelPath> = HashSet::new();
    for (path, entry) in result.iter() {
        if st.top.get(path).is_some() || st.base.get(path) != Some(entry) {
            // With its directories, so the layer is a tree of its own.
            let mut p = path;
            keep.insert(p.to_vec());
            while let Some(i) = p.iter().rposition(|&b| b == b'/') {
                p = &p[..i];
                keep.insert(p.to_vec());
            }
            keep.insert(Vec::new());
        }
    }
    for (path, _) in st.base.iter() {
        if !path.is_empty() && result.get(path).is_none() && st.top.get(path).is_none() {
            eprintln!(
                "vrift: warning: {}: removed in the run, but it comes from a --base layer, \
                 and a manifest cannot record a removal (no whiteouts): it shows again in the \
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
        let out = top_layer(&st, &Manifest::from_entries(entries));
        let paths: Vec<String> = out.iter().map(|(p, _)| display_path(p)).collect();
        assert_eq!(paths, [".", "app", "bin", "bin/sh", "etc", "etc/new"]);
        assert_eq!(out.get(b"bin/sh"), Some(&file(3)));
    }
}
