//! LifeCode filters: which paths of a project are virtualized and which pass through.
//!
//! A [`Filter`] is built once per project root and answers one question,
//! [`Filter::is_excluded`], for ingest (which prunes excluded paths) and for `vrift run` (which
//! lets excluded paths through to the real disk). Rules, first match wins:
//!
//! 1. vrift's own files (`vrift.manifest` at the root, any `.vrift`) are always excluded;
//! 2. the user's rules: `.vriftignore` at the root, then `--exclude` patterns, both in
//!    gitignore syntax (`!pattern` re-includes, overriding everything below);
//! 3. default filters (unless turned off): VCS metadata anywhere, then per project type the
//!    build outputs (these never apply inside a dependency tree);
//! 4. dependency trees (`node_modules/`, `.venv/`, `venv/`) and everything in them are kept,
//!    whatever `.gitignore` says: they are what vrift deduplicates;
//! 5. `.gitignore` files (nested ones too) and `.git/info/exclude`, unless turned off.
//!
//! As in git, nothing inside an excluded directory can be re-included.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::Match;

/// Name of the per-project user filter file (gitignore syntax).
pub const VRIFTIGNORE: &str = ".vriftignore";
/// The project manifest file name; never ingested.
pub const MANIFEST_FILE: &str = "vrift.manifest";
/// Temp files `Manifest::save_atomic` leaves beside `vrift.manifest` while writing it.
const MANIFEST_TEMP_PREFIX: &str = ".vrift.manifest.tmp";
/// vrift's per-project state directory name; never ingested, at any depth.
pub const STATE_DIR: &str = ".vrift";

/// Directory names of dependency trees, kept even when `.gitignore` lists them.
pub const DEPENDENCY_DIRS: &[&str] = &["node_modules", ".venv", "venv"];

/// Version-control metadata, excluded anywhere by the default filters.
const VCS_RULES: &[&str] = &[".git", ".hg/", ".svn/", ".bzr/"];
/// Caches inside dependency trees that are build state, not dependencies.
const DEPENDENCY_CACHE_RULES: &[&str] = &["**/node_modules/.cache/"];

/// A kind of project, recognised by a marker file at its root.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProjectType {
    Cargo,
    Npm,
    Python,
    Go,
}

impl ProjectType {
    pub const ALL: [ProjectType; 4] = [
        ProjectType::Cargo,
        ProjectType::Npm,
        ProjectType::Python,
        ProjectType::Go,
    ];

    /// Short lower-case name: "cargo", "npm", "python", "go".
    pub fn name(self) -> &'static str {
        match self {
            ProjectType::Cargo => "cargo",
            ProjectType::Npm => "npm",
            ProjectType::Python => "python",
            ProjectType::Go => "go",
        }
    }

    /// Marker files (relative to the project root) that identify this type.
    pub fn markers(self) -> &'static [&'static str] {
        match self {
            ProjectType::Cargo => &["Cargo.toml"],
            ProjectType::Npm => &["package.json"],
            ProjectType::Python => &[
                "pyproject.toml",
                "setup.py",
                "requirements.txt",
                "pyvenv.cfg",
                ".venv/pyvenv.cfg",
                "venv/pyvenv.cfg",
            ],
            ProjectType::Go => &["go.mod"],
        }
    }

    /// Build outputs this type's default filter excludes (gitignore syntax, relative to the
    /// project root). Conservative on purpose: only what the tool always regenerates.
    pub fn build_outputs(self) -> &'static [&'static str] {
        match self {
            ProjectType::Cargo => &["/target/"],
            // dist/ and build/ are left to .gitignore: some npm projects keep sources there.
            ProjectType::Npm => &[
                "/.next/",
                "/.nuxt/",
                "/.svelte-kit/",
                "/.parcel-cache/",
                "/.turbo/",
            ],
            ProjectType::Python => &[
                "__pycache__/",
                "*.py[co]",
                "/build/",
                "/dist/",
                "*.egg-info/",
                ".pytest_cache/",
                ".mypy_cache/",
                ".ruff_cache/",
            ],
            ProjectType::Go => &[],
        }
    }
}

impl fmt::Display for ProjectType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One detected project type and the marker that gave it away.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Detection {
    pub kind: ProjectType,
    /// The marker file found, relative to the root (e.g. "Cargo.toml").
    pub marker: &'static str,
}

/// Project types whose markers exist at `root`, in [`ProjectType::ALL`] order.
pub fn detect(root: &Path) -> Vec<Detection> {
    ProjectType::ALL
        .iter()
        .filter_map(|&kind| {
            kind.markers()
                .iter()
                .find(|m| root.join(m).is_file())
                .map(|&marker| Detection { kind, marker })
        })
        .collect()
}

/// What the user asked for.
#[derive(Clone, Debug)]
pub struct FilterOptions {
    /// Honour `.gitignore` files and `.git/info/exclude`.
    pub gitignore: bool,
    /// Apply the VCS and per-project-type build-output exclusions.
    pub default_filters: bool,
    /// Read `<root>/.vriftignore` if present.
    pub vriftignore: bool,
    /// Extra patterns (gitignore syntax, relative to the root), applied after `.vriftignore`.
    pub exclude: Vec<String>,
}

impl Default for FilterOptions {
    fn default() -> Self {
        FilterOptions {
            gitignore: true,
            default_filters: true,
            vriftignore: true,
            exclude: Vec::new(),
        }
    }
}

/// Errors building a filter; each names the file (or `--exclude`) concerned.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("{path}: {reason}")]
    BadFile { path: PathBuf, reason: String },
    #[error("--exclude {pattern:?}: {reason}")]
    BadPattern { pattern: String, reason: String },
}

/// Why a path was excluded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExcludeReason {
    /// vrift's own files: `vrift.manifest`, `.vrift`.
    Internal,
    /// A `.vriftignore` rule.
    Vriftignore,
    /// An `--exclude` pattern.
    ExcludeFlag,
    /// Version-control metadata (default filter).
    Vcs,
    /// A build output or cache of this project type (default filter); `None` for caches that
    /// belong to no single type (e.g. `node_modules/.cache`).
    BuildOutput(Option<ProjectType>),
    /// A `.gitignore` (or `.git/info/exclude`) rule; the file, relative to the root.
    Gitignore(PathBuf),
    /// Not a filter: ingest could not read it (permission denied), so it stays on disk as
    /// it is and passes through, exactly as unreadable, to the view.
    Unreadable,
}

impl fmt::Display for ExcludeReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExcludeReason::Internal => f.write_str("vrift's own file"),
            ExcludeReason::Vriftignore => f.write_str(VRIFTIGNORE),
            ExcludeReason::ExcludeFlag => f.write_str("--exclude"),
            ExcludeReason::Vcs => f.write_str("VCS metadata"),
            ExcludeReason::BuildOutput(Some(t)) => write!(f, "{t} build output"),
            ExcludeReason::BuildOutput(None) => f.write_str("build cache"),
            ExcludeReason::Gitignore(p) => write!(f, "{}", p.display()),
            ExcludeReason::Unreadable => f.write_str("unreadable, passed through as it is"),
        }
    }
}

/// The exclusion decision for one project root. Cheap to clone; safe to share across threads.
#[derive(Clone)]
pub struct Filter {
    inner: Arc<Inner>,
}

struct Inner {
    root: PathBuf,
    options: FilterOptions,
    detected: Vec<Detection>,
    /// `.vriftignore` lines, then `--exclude` lines (later lines win).
    user: Gitignore,
    user_rule_count: usize,
    vcs: Gitignore,
    dependency_caches: Gitignore,
    build_outputs: Vec<(ProjectType, Gitignore)>,
    git_info_exclude: Option<Gitignore>,
    /// `.gitignore` matcher per directory (relative path), loaded on first use.
    gitignores: Mutex<HashMap<Vec<u8>, Option<Arc<Gitignore>>>>,
}

impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Filter")
            .field("root", &self.inner.root)
            .field("options", &self.inner.options)
            .field("detected", &self.inner.detected)
            .finish()
    }
}

fn os(bytes: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(bytes))
}

fn matcher(root: &Path, lines: &[&str]) -> Gitignore {
    let mut b = GitignoreBuilder::new(root);
    for line in lines {
        b.add_line(None, line).expect("built-in filter pattern");
    }
    b.build().expect("built-in filter patterns")
}

fn is_dependency_dir(name: &[u8]) -> bool {
    DEPENDENCY_DIRS.iter().any(|d| d.as_bytes() == name)
}

impl Filter {
    /// Build the filter for the project at `root` (detects the project type).
    pub fn new(root: &Path, options: &FilterOptions) -> Result<Filter, FilterError> {
        let detected = detect(root);
        let mut user = GitignoreBuilder::new(root);
        let vriftignore = root.join(VRIFTIGNORE);
        if options.vriftignore && vriftignore.is_file() {
            if let Some(err) = user.add(&vriftignore) {
                return Err(FilterError::BadFile {
                    path: vriftignore,
                    reason: err.to_string(),
                });
            }
        }
        for pattern in &options.exclude {
            user.add_line(None, pattern)
                .map_err(|e| FilterError::BadPattern {
                    pattern: pattern.clone(),
                    reason: e.to_string(),
                })?;
        }
        let user = user.build().map_err(|e| FilterError::BadFile {
            path: vriftignore.clone(),
            reason: e.to_string(),
        })?;
        let user_rule_count = user.len();

        let build_outputs = detected
            .iter()
            .filter(|d| !d.kind.build_outputs().is_empty())
            .map(|d| (d.kind, matcher(root, d.kind.build_outputs())))
            .collect();
        let git_info_exclude = if options.gitignore {
            let path = root.join(".git/info/exclude");
            if path.is_file() {
                let mut b = GitignoreBuilder::new(root);
                // A broken line in git's own exclude file should not stop ingest; git skips
                // such lines too.
                let _ = b.add(&path);
                b.build().ok()
            } else {
                None
            }
        } else {
            None
        };
        Ok(Filter {
            inner: Arc::new(Inner {
                root: root.to_path_buf(),
                options: options.clone(),
                detected,
                user,
                user_rule_count,
                vcs: matcher(root, VCS_RULES),
                dependency_caches: matcher(root, DEPENDENCY_CACHE_RULES),
                build_outputs,
                git_info_exclude,
                gitignores: Mutex::new(HashMap::new()),
            }),
        })
    }

    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    pub fn options(&self) -> &FilterOptions {
        &self.inner.options
    }

    /// Project types detected at the root.
    pub fn detected(&self) -> &[Detection] {
        &self.inner.detected
    }

    /// Is `rel_path` (relative to the root, '/'-separated raw bytes) left out of the view?
    /// True when the path or any directory above it is excluded.
    pub fn is_excluded(&self, rel_path: &[u8], is_dir: bool) -> bool {
        let mut start = 0;
        for (i, &b) in rel_path.iter().enumerate() {
            if b == b'/' {
                if i > start && self.exclusion(&rel_path[..i], true).is_some() {
                    return true;
                }
                start = i + 1;
            }
        }
        !rel_path.is_empty() && self.exclusion(rel_path, is_dir).is_some()
    }

    /// Why `rel_path` itself is excluded, if it is, assuming the directories above it are not
    /// (a top-down walk has already pruned those). `None`: included.
    pub fn exclusion(&self, rel_path: &[u8], is_dir: bool) -> Option<ExcludeReason> {
        let inner = &*self.inner;
        let name = rel_path.rsplit(|&b| b == b'/').next().unwrap_or(rel_path);
        if rel_path == MANIFEST_FILE.as_bytes()
            || name == STATE_DIR.as_bytes()
            || rel_path.starts_with(MANIFEST_TEMP_PREFIX.as_bytes())
        {
            return Some(ExcludeReason::Internal);
        }
        let path = os(rel_path);
        match inner.user.matched(path, is_dir) {
            Match::Ignore(glob) => {
                return Some(if glob.from().is_some() {
                    ExcludeReason::Vriftignore
                } else {
                    ExcludeReason::ExcludeFlag
                })
            }
            Match::Whitelist(_) => return None,
            Match::None => {}
        }
        let in_dependency_tree = {
            let mut comps = rel_path.split(|&b| b == b'/').peekable();
            let mut found = false;
            while let Some(c) = comps.next() {
                let last = comps.peek().is_none();
                if is_dependency_dir(c) && (is_dir || !last) {
                    found = true;
                    break;
                }
            }
            found
        };
        if inner.options.default_filters {
            if inner.vcs.matched(path, is_dir).is_ignore() {
                return Some(ExcludeReason::Vcs);
            }
            if inner.dependency_caches.matched(path, is_dir).is_ignore() {
                return Some(ExcludeReason::BuildOutput(None));
            }
            if !in_dependency_tree {
                for (kind, m) in &inner.build_outputs {
                    if m.matched(path, is_dir).is_ignore() {
                        return Some(ExcludeReason::BuildOutput(Some(*kind)));
                    }
                }
            }
        }
        if in_dependency_tree || !inner.options.gitignore {
            return None;
        }
        self.gitignore_exclusion(rel_path, is_dir)
    }

    /// git's rule: the deepest `.gitignore` with a matching line decides; then
    /// `.git/info/exclude`.
    fn gitignore_exclusion(&self, rel_path: &[u8], is_dir: bool) -> Option<ExcludeReason> {
        let mut end = rel_path.len();
        loop {
            let slash = rel_path[..end].iter().rposition(|&b| b == b'/');
            let (dir, below) = match slash {
                Some(s) => (&rel_path[..s], &rel_path[s + 1..]),
                None => (&rel_path[..0], rel_path),
            };
            if let Some(m) = self.dir_gitignore(dir) {
                match m.matched(os(below), is_dir) {
                    Match::Ignore(_) => {
                        let file = Path::new(OsStr::from_bytes(dir)).join(".gitignore");
                        return Some(ExcludeReason::Gitignore(file));
                    }
                    Match::Whitelist(_) => return None,
                    Match::None => {}
                }
            }
            match slash {
                Some(s) => end = s,
                None => break,
            }
        }
        match &self.inner.git_info_exclude {
            Some(m) if m.matched(os(rel_path), is_dir).is_ignore() => {
                Some(ExcludeReason::Gitignore(PathBuf::from(".git/info/exclude")))
            }
            _ => None,
        }
    }

    /// The `.gitignore` matcher of directory `dir` (relative; empty for the root), cached.
    fn dir_gitignore(&self, dir: &[u8]) -> Option<Arc<Gitignore>> {
        let mut cache = self
            .inner
            .gitignores
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(m) = cache.get(dir) {
            return m.clone();
        }
        let abs_dir = self.inner.root.join(os(dir));
        let file = abs_dir.join(".gitignore");
        let m = if file.is_file() {
            let mut b = GitignoreBuilder::new(&abs_dir);
            // Like git, skip lines that do not parse rather than fail the whole ingest.
            let _ = b.add(&file);
            b.build().ok().filter(|g| !g.is_empty()).map(Arc::new)
        } else {
            None
        };
        cache.insert(dir.to_vec(), m.clone());
        m
    }

    /// Human-readable lines describing the active rules, for `vrift init` to print.
    pub fn describe(&self) -> Vec<String> {
        let inner = &*self.inner;
        let mut out = Vec::new();
        out.push(format!("always: {MANIFEST_FILE}, {STATE_DIR}/"));
        if inner.user_rule_count > 0 {
            let mut src = Vec::new();
            if inner.options.vriftignore && inner.root.join(VRIFTIGNORE).is_file() {
                src.push(VRIFTIGNORE.to_string());
            }
            for p in &inner.options.exclude {
                src.push(format!("--exclude {p}"));
            }
            out.push(format!(
                "user rules ({} patterns): {}",
                inner.user_rule_count,
                src.join(", ")
            ));
        }
        if inner.options.default_filters {
            out.push(format!(
                "default: VCS metadata {}, {}",
                VCS_RULES.join(" "),
                DEPENDENCY_CACHE_RULES.join(" ")
            ));
            for (kind, _) in &inner.build_outputs {
                out.push(format!(
                    "default ({kind}): {}",
                    kind.build_outputs().join(" ")
                ));
            }
        } else {
            out.push("default filters: off".to_string());
        }
        if inner.options.gitignore {
            out.push(format!(
                ".gitignore: honoured, except dependency trees {} are kept",
                DEPENDENCY_DIRS
                    .iter()
                    .map(|d| format!("{d}/"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ));
        } else {
            out.push(".gitignore: off".to_string());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, content) in files {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        dir
    }

    fn filter(dir: &tempfile::TempDir) -> Filter {
        Filter::new(dir.path(), &FilterOptions::default()).unwrap()
    }

    fn excluded(f: &Filter, p: &str, is_dir: bool) -> bool {
        f.is_excluded(p.as_bytes(), is_dir)
    }

    #[test]
    fn detects_each_type_by_marker() {
        let d = tree(&[("Cargo.toml", ""), ("go.mod", "")]);
        let kinds: Vec<_> = detect(d.path()).iter().map(|d| d.kind).collect();
        assert_eq!(kinds, vec![ProjectType::Cargo, ProjectType::Go]);
        let d = tree(&[("package.json", "{}")]);
        assert_eq!(detect(d.path())[0].kind, ProjectType::Npm);
        for marker in [
            "pyproject.toml",
            "setup.py",
            "requirements.txt",
            ".venv/pyvenv.cfg",
        ] {
            let d = tree(&[(marker, "")]);
            let det = detect(d.path());
            assert_eq!(det.len(), 1, "{marker}");
            assert_eq!(det[0].kind, ProjectType::Python);
            assert_eq!(det[0].marker, marker);
        }
        let d = tree(&[("README", "")]);
        assert!(detect(d.path()).is_empty());
    }

    #[test]
    fn vrift_own_files_always_excluded() {
        let d = tree(&[]);
        let f = Filter::new(
            d.path(),
            &FilterOptions {
                gitignore: false,
                default_filters: false,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(excluded(&f, "vrift.manifest", false));
        assert!(!excluded(&f, "sub/vrift.manifest", false));
        assert!(excluded(&f, ".vrift", true));
        assert!(excluded(&f, ".vrift.manifest.tmp123-0", false));
        assert!(excluded(&f, "a/b/.vrift/x", false));
        assert_eq!(f.exclusion(b".vrift", true), Some(ExcludeReason::Internal));
    }

    #[test]
    fn vcs_excluded_anywhere_with_defaults() {
        let d = tree(&[]);
        let f = filter(&d);
        assert!(excluded(&f, ".git", true));
        assert!(
            excluded(&f, ".git", false),
            "a .git file (worktree) is metadata too"
        );
        assert!(excluded(&f, "vendor/x/.git/HEAD", false));
        assert!(excluded(&f, ".hg", true));
        assert!(excluded(&f, ".svn", true));
        assert!(!excluded(&f, ".gitignore", false));
        assert!(!excluded(&f, ".github", true));
        assert_eq!(f.exclusion(b".git", true), Some(ExcludeReason::Vcs));
    }

    #[test]
    fn cargo_target_only_at_root() {
        let d = tree(&[("Cargo.toml", "")]);
        let f = filter(&d);
        assert!(excluded(&f, "target", true));
        assert!(excluded(&f, "target/debug/x", false));
        assert!(
            !excluded(&f, "target", false),
            "a file named target is source"
        );
        assert!(!excluded(&f, "src/target", true));
        assert_eq!(
            f.exclusion(b"target", true),
            Some(ExcludeReason::BuildOutput(Some(ProjectType::Cargo)))
        );
    }

    #[test]
    fn target_kept_when_not_cargo() {
        let d = tree(&[("package.json", "{}")]);
        let f = filter(&d);
        assert!(!excluded(&f, "target", true));
        assert!(excluded(&f, ".next", true));
        assert!(!excluded(&f, "dist", true));
        assert!(excluded(&f, "node_modules/.cache", true));
        assert!(!excluded(&f, "node_modules/.bin", true));
    }

    #[test]
    fn python_outputs() {
        let d = tree(&[("pyproject.toml", "")]);
        let f = filter(&d);
        assert!(excluded(&f, "pkg/__pycache__", true));
        assert!(excluded(&f, "pkg/mod.pyc", false));
        assert!(excluded(&f, "build", true));
        assert!(excluded(&f, "dist", true));
        assert!(!excluded(&f, "src/build", true));
        assert!(excluded(&f, "src/foo.egg-info", true));
        assert!(!excluded(&f, "pkg/mod.py", false));
        // inside a dependency tree the build-output rules do not apply
        assert!(!excluded(
            &f,
            ".venv/lib/python3.11/site-packages/x/__pycache__",
            true
        ));
        assert!(!excluded(&f, ".venv/lib/x/mod.pyc", false));
    }

    #[test]
    fn no_default_filters() {
        let d = tree(&[("Cargo.toml", "")]);
        let f = Filter::new(
            d.path(),
            &FilterOptions {
                default_filters: false,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(!excluded(&f, "target", true));
        assert!(!excluded(&f, ".git", true));
    }

    #[test]
    fn gitignore_honoured_nested_and_negated() {
        let d = tree(&[
            (".gitignore", "*.log\n/out/\nsecret*\n!secret.keep\n"),
            ("sub/.gitignore", "local.txt\n!important.log\n"),
        ]);
        let f = filter(&d);
        assert!(excluded(&f, "a.log", false));
        assert!(excluded(&f, "deep/er/a.log", false));
        assert!(excluded(&f, "out", true));
        assert!(!excluded(&f, "x/out", true));
        assert!(excluded(&f, "secret.txt", false));
        assert!(!excluded(&f, "secret.keep", false));
        assert!(excluded(&f, "sub/local.txt", false));
        assert!(!excluded(&f, "local.txt", false));
        assert!(
            !excluded(&f, "sub/important.log", false),
            "deeper file wins"
        );
        assert!(excluded(&f, "sub/other.log", false));
        assert_eq!(
            f.exclusion(b"sub/local.txt", false),
            Some(ExcludeReason::Gitignore(PathBuf::from("sub/.gitignore")))
        );
        assert_eq!(
            f.exclusion(b"a.log", false),
            Some(ExcludeReason::Gitignore(PathBuf::from(".gitignore")))
        );
    }

    #[test]
    fn git_info_exclude() {
        let d = tree(&[(".git/info/exclude", "private/\n")]);
        let f = filter(&d);
        assert!(excluded(&f, "private", true));
        assert_eq!(
            f.exclusion(b"private", true),
            Some(ExcludeReason::Gitignore(PathBuf::from(".git/info/exclude")))
        );
    }

    #[test]
    fn no_gitignore_option() {
        let d = tree(&[(".gitignore", "*.log\n")]);
        let f = Filter::new(
            d.path(),
            &FilterOptions {
                gitignore: false,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(!excluded(&f, "a.log", false));
    }

    #[test]
    fn dependency_trees_kept_despite_gitignore() {
        let d = tree(&[
            (".gitignore", "node_modules/\n.venv\nvenv/\n*.js\n"),
            // Python 3.13's venv writes a .gitignore containing "*" into the venv
            (".venv/.gitignore", "*\n"),
        ]);
        let f = filter(&d);
        assert!(!excluded(&f, "node_modules", true));
        assert!(!excluded(&f, "node_modules/left-pad/index.js", false));
        assert!(!excluded(&f, "pkg/node_modules/x.js", false));
        assert!(!excluded(&f, ".venv", true));
        assert!(!excluded(&f, ".venv/lib/site.py", false));
        assert!(!excluded(&f, "venv", true));
        assert!(excluded(&f, "app.js", false));
    }

    #[test]
    fn vriftignore_and_exclude_flags() {
        let d = tree(&[
            ("Cargo.toml", ""),
            (".gitignore", "*.tmp\n"),
            (
                ".vriftignore",
                "data/\n!target/\n!keep.tmp\nnode_modules/big/\n",
            ),
        ]);
        let f = Filter::new(
            d.path(),
            &FilterOptions {
                exclude: vec!["*.bin".into(), "!data/".into()],
                ..Default::default()
            },
        )
        .unwrap();
        assert!(
            !excluded(&f, "data", true),
            "--exclude !data/ overrides .vriftignore"
        );
        assert!(
            !excluded(&f, "target", true),
            ".vriftignore re-includes a default"
        );
        assert!(
            !excluded(&f, "keep.tmp", false),
            ".vriftignore re-includes a gitignored file"
        );
        assert!(excluded(&f, "other.tmp", false));
        assert!(
            excluded(&f, "node_modules/big", true),
            "user rules beat the dependency-tree rule"
        );
        assert!(excluded(&f, "x/y.bin", false));
        assert_eq!(
            f.exclusion(b"y.bin", false),
            Some(ExcludeReason::ExcludeFlag)
        );
        assert_eq!(
            f.exclusion(b"node_modules/big", true),
            Some(ExcludeReason::Vriftignore)
        );
    }

    #[test]
    fn parent_exclusion_cannot_be_undone() {
        let d = tree(&[(".gitignore", "out/\n!out/keep\n")]);
        let f = filter(&d);
        assert!(excluded(&f, "out/keep", false));
        // but exclusion() alone only looks at the path itself
        assert!(f.exclusion(b"out/keep", false).is_none());
    }

    #[test]
    fn non_utf8_paths() {
        let d = tree(&[(".gitignore", "*.log\n")]);
        let f = filter(&d);
        assert!(excluded(&f, "caf\u{e9}.log", false));
        assert!(f.is_excluded(b"bad\xff\xfe.log", false));
        assert!(!f.is_excluded(b"bad\xff\xfe.txt", false));
    }

    #[test]
    fn bad_exclude_pattern_is_an_error() {
        let d = tree(&[]);
        let err = Filter::new(
            d.path(),
            &FilterOptions {
                exclude: vec!["a{b".into()],
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("--exclude \"a{b\""), "{err}");
    }

    #[test]
    fn describe_names_active_rules() {
        let d = tree(&[("Cargo.toml", "")]);
        let text = filter(&d).describe().join("\n");
        assert!(text.contains("/target/"), "{text}");
        assert!(text.contains(".git"), "{text}");
        assert!(text.contains("node_modules/"), "{text}");
    }
}
