//! What the watcher makes of each inotify event: whether it can change the project's
//! manifest (then the change counter moves on, and the next run walks the project again),
//! and what the watcher must do about it (watch a new directory, look the tree over again,
//! rebuild the filter, stop). Pure: the daemon feeds it the kernel's events and carries out
//! what it says, and the unit tests feed it events of their own.

use std::collections::HashMap;
use std::hash::Hash;

use vrift_common::filters::ExcludeReason;
use vrift_common::manifest::RelPath;

/// The kinds of event the watcher asks the kernel for, and the two it always gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A file's content (`IN_MODIFY`, `IN_CLOSE_WRITE`).
    Modified,
    /// Mode, owner, times, xattrs or link count (`IN_ATTRIB`).
    Attrib,
    Created {
        dir: bool,
    },
    Deleted {
        dir: bool,
    },
    MovedFrom {
        dir: bool,
    },
    MovedTo {
        dir: bool,
    },
    /// The watched directory itself was removed or moved (`IN_DELETE_SELF`, `IN_MOVE_SELF`).
    SelfGone,
    /// The kernel dropped the watch (`IN_IGNORED`: the directory is gone or was unwatched).
    Ignored,
    /// The kernel's queue overflowed: events were lost (`IN_Q_OVERFLOW`).
    Overflow,
}

#[derive(Clone, Debug)]
pub struct Event<W> {
    pub wd: Option<W>,
    pub kind: Kind,
    pub name: Option<Vec<u8>>,
}

/// What the daemon does after an event.
#[derive(Debug, PartialEq, Eq)]
pub enum Follow {
    Nothing,
    /// A directory appeared at this path: watch it and every directory under it.
    WatchSubtree(RelPath),
}

/// The directory under `.git` whose `exclude` file the filters read.
pub const GIT_INFO: &[u8] = b".git/info";

/// Names whose change can change what the filters keep.
fn is_filter_input(dir: &[u8], name: &[u8]) -> bool {
    // The root's names include the project markers (Cargo.toml, package.json...) that
    // choose the default exclusions; a change there is rare, so any is taken as one.
    dir.is_empty() || dir == GIT_INFO || name == b".gitignore" || name == b".vriftignore"
}

pub struct Tracker<W> {
    /// Events that could change the manifest, since the watcher started.
    pub events: u64,
    /// Each watch's directory, relative to the project root (empty: the root).
    dirs: HashMap<W, RelPath>,
    /// Paths may be stale (a directory moved) or events lost: look the whole tree over.
    pub rescan: bool,
    /// A file the filters read changed: rebuild them, then rescan.
    pub filter_stale: bool,
    /// The project's root is gone or moved: nothing to watch any more.
    pub root_gone: bool,
}

impl<W: Copy + Eq + Hash> Default for Tracker<W> {
    fn default() -> Self {
        Tracker {
            events: 0,
            dirs: HashMap::new(),
            rescan: false,
            filter_stale: false,
            root_gone: false,
        }
    }
}

fn join(dir: &[u8], name: &[u8]) -> RelPath {
    if dir.is_empty() {
        return name.to_vec();
    }
    let mut p = Vec::with_capacity(dir.len() + 1 + name.len());
    p.extend_from_slice(dir);
    p.push(b'/');
    p.extend_from_slice(name);
    p
}

impl<W: Copy + Eq + Hash> Tracker<W> {
    /// `wd` watches the directory `rel` (a new watch, or one the kernel gave again for a
    /// directory that moved: its path is now `rel`).
    pub fn watching(&mut self, wd: W, rel: RelPath) {
        self.dirs.insert(wd, rel);
    }

    pub fn watched(&self) -> usize {
        self.dirs.len()
    }

    /// The watches whose directory `keep` does not name any more (after a rescan).
    pub fn drop_unless(&mut self, keep: impl Fn(&W) -> bool) -> Vec<W> {
        let gone: Vec<W> = self.dirs.keys().filter(|w| !keep(w)).copied().collect();
        for w in &gone {
            self.dirs.remove(w);
        }
        gone
    }

    /// Take in one event. `exclusion` is the filters' verdict on a path relative to the
    /// root (as `Filter::exclusion`: its parents are kept, since only kept directories are
    /// watched).
    pub fn on_event(
        &mut self,
        ev: &Event<W>,
        exclusion: &dyn Fn(&[u8], bool) -> Option<ExcludeReason>,
    ) -> Follow {
        if ev.kind == Kind::Overflow {
            self.events += 1;
            self.rescan = true;
            return Follow::Nothing;
        }
        let Some(dir) = ev.wd.and_then(|w| self.dirs.get(&w)).cloned() else {
            // A watch it no longer knows (dropped in a rescan, its events still queued):
            // counted, since it cannot tell what it was.
            if ev.kind != Kind::Ignored {
                self.events += 1;
            }
            return Follow::Nothing;
        };
        let is_root = dir.is_empty();
        match ev.kind {
            Kind::Ignored => {
                if let Some(w) = ev.wd {
                    self.dirs.remove(&w);
                }
                if is_root {
                    self.root_gone = true;
                }
                return Follow::Nothing;
            }
            Kind::SelfGone => {
                self.events += 1;
                if is_root {
                    self.root_gone = true;
                } else {
                    // Its parent reports the name's removal or move; a move leaves the
                    // paths of the watches under it stale.
                    self.rescan = true;
                }
                return Follow::Nothing;
            }
            _ => {}
        }
        let Some(name) = ev.name.as_deref() else {
            // An event on the directory itself (its mode, times).
            self.events += 1;
            return Follow::Nothing;
        };
        let rel = join(&dir, name);
        let is_dir = matches!(
            ev.kind,
            Kind::Created { dir: true }
                | Kind::Deleted { dir: true }
                | Kind::MovedFrom { dir: true }
                | Kind::MovedTo { dir: true }
        );
        let in_git_info = dir == GIT_INFO;
        let reason = if in_git_info {
            None
        } else {
            exclusion(&rel, is_dir)
        };
        // vrift's own files (vrift.manifest and its temporary, .vrift) are written by every
        // refresh; they are not part of the tree.
        if reason == Some(ExcludeReason::Internal) {
            return Follow::Nothing;
        }
        if is_filter_input(&dir, name) {
            self.filter_stale = true;
        }
        let excluded = reason.is_some();
        match ev.kind {
            // What an excluded file holds is the disk's, passed through: only its coming
            // and going changes the view.
            Kind::Modified | Kind::Attrib if excluded => Follow::Nothing,
            Kind::Modified | Kind::Attrib => {
                self.events += 1;
                Follow::Nothing
            }
            Kind::Created { dir } | Kind::MovedTo { dir } => {
                self.events += 1;
                if dir && !excluded && !in_git_info {
                    Follow::WatchSubtree(rel)
                } else {
                    Follow::Nothing
                }
            }
            Kind::MovedFrom { dir } => {
                self.events += 1;
                if dir {
                    self.rescan = true;
                }
                Follow::Nothing
            }
            Kind::Deleted { .. } => {
                self.events += 1;
                Follow::Nothing
            }
            Kind::SelfGone | Kind::Ignored | Kind::Overflow => unreachable!("handled above"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(rel: &[u8], _dir: bool) -> Option<ExcludeReason> {
        if rel == b"vrift.manifest" || rel.ends_with(b".vrift") {
            Some(ExcludeReason::Internal)
        } else if rel == b"target" || rel.starts_with(b"target/") || rel.ends_with(b".o") {
            Some(ExcludeReason::Vriftignore)
        } else {
            None
        }
    }

    fn ev(wd: i32, kind: Kind, name: &str) -> Event<i32> {
        Event {
            wd: Some(wd),
            kind,
            name: (!name.is_empty()).then(|| name.as_bytes().to_vec()),
        }
    }

    fn tracker() -> Tracker<i32> {
        let mut t = Tracker::default();
        t.watching(1, b"".to_vec());
        t.watching(2, b"src".to_vec());
        t
    }

    #[test]
    fn a_change_to_a_kept_file_or_directory_is_counted() {
        let mut t = tracker();
        for (k, kind) in [
            Kind::Modified,
            Kind::Attrib,
            Kind::Created { dir: false },
            Kind::Deleted { dir: false },
            Kind::MovedFrom { dir: false },
            Kind::MovedTo { dir: false },
            Kind::Deleted { dir: true },
        ]
        .into_iter()
        .enumerate()
        {
            assert_eq!(t.on_event(&ev(2, kind, "a.c"), &filter), Follow::Nothing);
            assert_eq!(t.events, k as u64 + 1, "{kind:?}");
        }
        // The directory's own mode or times.
        t.on_event(&ev(2, Kind::Attrib, ""), &filter);
        assert_eq!(t.events, 8);
    }

    #[test]
    fn vrifts_own_files_are_not_counted() {
        let mut t = tracker();
        t.on_event(
            &ev(1, Kind::MovedTo { dir: false }, "vrift.manifest"),
            &filter,
        );
        t.on_event(&ev(1, Kind::Created { dir: true }, ".vrift"), &filter);
        assert_eq!(t.events, 0);
        assert!(!t.filter_stale);
    }

    #[test]
    fn an_excluded_files_content_is_not_counted_but_its_coming_and_going_is() {
        let mut t = tracker();
        t.on_event(&ev(2, Kind::Modified, "a.o"), &filter);
        t.on_event(&ev(2, Kind::Attrib, "a.o"), &filter);
        assert_eq!(t.events, 0);
        t.on_event(&ev(2, Kind::Created { dir: false }, "a.o"), &filter);
        t.on_event(&ev(2, Kind::Deleted { dir: false }, "a.o"), &filter);
        assert_eq!(t.events, 2);
    }

    #[test]
    fn a_new_kept_directory_is_watched_and_an_excluded_one_is_not() {
        let mut t = tracker();
        assert_eq!(
            t.on_event(&ev(2, Kind::Created { dir: true }, "sub"), &filter),
            Follow::WatchSubtree(b"src/sub".to_vec())
        );
        assert_eq!(
            t.on_event(&ev(1, Kind::MovedTo { dir: true }, "lib"), &filter),
            Follow::WatchSubtree(b"lib".to_vec())
        );
        assert_eq!(
            t.on_event(&ev(1, Kind::Created { dir: true }, "target"), &filter),
            Follow::Nothing
        );
        assert_eq!(
            t.events, 3,
            "an excluded directory's appearance still counts"
        );
    }

    #[test]
    fn a_directory_moved_away_or_lost_events_ask_for_a_rescan() {
        let mut t = tracker();
        t.on_event(&ev(1, Kind::MovedFrom { dir: true }, "src"), &filter);
        assert!(t.rescan);
        let mut t = tracker();
        t.on_event(&ev(2, Kind::SelfGone, ""), &filter);
        assert!(t.rescan && !t.root_gone);
        let mut t = tracker();
        t.on_event(
            &Event {
                wd: None,
                kind: Kind::Overflow,
                name: None,
            },
            &filter,
        );
        assert!(t.rescan);
        assert_eq!(t.events, 1);
    }

    #[test]
    fn the_root_gone_ends_the_watch() {
        let mut t = tracker();
        t.on_event(&ev(1, Kind::SelfGone, ""), &filter);
        assert!(t.root_gone);
        let mut t = tracker();
        t.on_event(&ev(1, Kind::Ignored, ""), &filter);
        assert!(t.root_gone);
        assert_eq!(t.watched(), 1);
    }

    #[test]
    fn the_filters_inputs_make_it_rebuild_the_filters() {
        for (wd, name) in [(2, ".gitignore"), (1, ".vriftignore"), (1, "Cargo.toml")] {
            let mut t = tracker();
            t.on_event(&ev(wd, Kind::Modified, name), &filter);
            assert!(t.filter_stale, "{name}");
            assert_eq!(t.events, 1);
        }
        let mut t = tracker();
        t.watching(3, GIT_INFO.to_vec());
        t.on_event(&ev(3, Kind::Modified, "exclude"), &filter);
        assert!(t.filter_stale);
        assert_eq!(
            t.events, 1,
            ".git/info/exclude counts though .git is excluded"
        );
        let mut t = tracker();
        t.on_event(&ev(2, Kind::Modified, "main.c"), &filter);
        assert!(!t.filter_stale);
    }

    #[test]
    fn an_event_of_an_unknown_watch_is_counted() {
        let mut t = tracker();
        t.on_event(&ev(9, Kind::Modified, "x"), &filter);
        assert_eq!(t.events, 1);
        t.on_event(&ev(9, Kind::Ignored, ""), &filter);
        assert_eq!(t.events, 1);
    }

    #[test]
    fn a_rescan_drops_the_watches_it_did_not_find() {
        let mut t = tracker();
        let gone = t.drop_unless(|w| *w == 1);
        assert_eq!(gone, vec![2]);
        assert_eq!(t.watched(), 1);
    }
}
