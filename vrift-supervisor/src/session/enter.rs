//! `vrift run --session NAME [--from REV|worktree] -- CMD`: make the session on first use,
//! then run CMD in it.
//!
//! The view is the overlay projection's, with the session's persistent upper directory: the
//! base manifest's metadata layer (built once per manifest and shared by every session and
//! run of it) over the store's blobs, and, stacked on it, an overlay per directory a plain
//! run passes through (`.git`, `target/`...) over the real one, each with its own upper
//! directory in the session. Nothing is harvested or written back when the program ends:
//! the upper directories are the session, and `promote` turns them into a commit.
//!
//! Sessions are overlayfs upper directories, so all of it but the flags is Linux's: off
//! Linux `vrift run --session` is refused (`crate::run`), and reading a session's view
//! ([`current_view`]) says it needs Linux.

#[cfg(target_os = "linux")]
use std::collections::HashSet;
#[cfg(target_os = "linux")]
use std::ffi::OsStr;
#[cfg(target_os = "linux")]
use std::os::fd::OwnedFd;
#[cfg(target_os = "linux")]
use std::os::unix::ffi::OsStrExt;
#[cfg(target_os = "linux")]
use std::os::unix::fs::MetadataExt;
#[cfg(target_os = "linux")]
use std::path::{Path, PathBuf};
#[cfg(target_os = "linux")]
use std::sync::Arc;

use anyhow::Result;
#[cfg(target_os = "linux")]
use anyhow::{bail, Context as _};
use vrift_common::manifest::Manifest;
#[cfg(target_os = "linux")]
use vrift_common::manifest::RelPath;
use vrift_common::store::Store;

use super::Session;
#[cfg(target_os = "linux")]
use super::{members, Record, BASE, MNT, UPPER, WORK};
#[cfg(target_os = "linux")]
use crate::mounts::{cstring, Mount};
#[cfg(target_os = "linux")]
use crate::projection::overlay::{self, layer, layer::Flavor};
#[cfg(target_os = "linux")]
use crate::projection::supervisor::served::ServedStats;
#[cfg(target_os = "linux")]
use crate::projection::{Choice, Kind, Projection};
#[cfg(target_os = "linux")]
use crate::run::{Finished, RunOptions};
#[cfg(target_os = "linux")]
use crate::sys::ns;
#[cfg(target_os = "linux")]
use crate::view::spec::{Destination, PassthroughKind, ViewSpec};

/// The session flags of `vrift run`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Run in the named session of the current git repository: made on first use (from
    /// --from), continued afterwards. Its changes stay in the session (see `vrift session`
    /// and `vrift promote`); the working tree and .git are never touched.
    #[arg(long, value_name = "NAME")]
    pub session: Option<String>,
    /// What a new session starts from: a revision (tracked files from its tree, read from
    /// the object database; untracked and ignored files from the working tree), or
    /// `worktree` (the working tree as it is). Default HEAD.
    #[arg(long, value_name = "REV|worktree", requires = "session")]
    pub from: Option<String>,
}

impl Args {
    pub fn into_options(self) -> Result<Option<Options>> {
        let Some(name) = self.session else {
            return Ok(None);
        };
        super::validate_name(&name)?;
        Ok(Some(Options {
            name,
            from: self.from,
        }))
    }
}

#[derive(Debug)]
pub struct Options {
    pub name: String,
    pub from: Option<String>,
}

/// Open the session `name` of the repository around `cwd`, making it if it does not exist.
#[cfg(target_os = "linux")]
pub fn open_or_create(
    store: &Store,
    repo: &gix::Repository,
    name: &str,
    from: Option<&str>,
) -> Result<Session> {
    let git_dir = repo.git_dir().canonicalize()?;
    if let Some(s) = Session::open(store, &git_dir, name)? {
        if let Some(from) = from {
            if from != s.record.from {
                bail!(
                    "session {name} exists (made from {}); --from only applies when a session \
                     is made (discard it first to start again from {from})",
                    s.record.from
                );
            }
        }
        return Ok(s);
    }
    let from = from.unwrap_or("HEAD");
    let base = super::base::make(store, repo, from)?;
    let dir = Session::dir_of(store, &git_dir, name);
    let tmp = super::aside(&dir, "new");
    std::fs::create_dir_all(&tmp).with_context(|| format!("{}", tmp.display()))?;
    let root = super::view_root(repo).canonicalize()?;
    let mut record = Record::new(
        name,
        root,
        git_dir.clone(),
        base.commit.to_hex().to_string(),
        from.to_string(),
    );
    record.cow = base.cow;
    let session = Session {
        dir: tmp.clone(),
        record,
    };
    for d in [UPPER, WORK, MNT] {
        std::fs::create_dir(session.join(d))?;
    }
    for i in 0..session.record.cow.len() {
        let c = session.cow_dir(i);
        std::fs::create_dir_all(c.join(UPPER))?;
        std::fs::create_dir_all(c.join(WORK))?;
    }
    start_git_state(repo, &session, base.commit)?;
    save_base(store, &git_dir, &base.manifest, &session.join(BASE))?;
    session.save()?;
    std::fs::rename(&tmp, &dir).with_context(|| format!("{}", dir.display()))?;
    store.register_root(&dir.join(BASE))?;
    let session = Session {
        dir,
        record: session.record,
    };
    eprintln!(
        "vrift: session {name} made from {from} ({})",
        &session.record.base_commit[..12]
    );
    Ok(session)
}

/// A session from a revision starts with git's state saying so: an index of the revision's
/// tree (unless the real index already matches it), and HEAD detached at it when it is not
/// HEAD's commit. Both are written into the
/// upper directory of the session's `.git`, so the real ones are untouched. (`--from
/// worktree` keeps the real index and HEAD, staged changes included; a bare repository has
/// no index.)
#[cfg(target_os = "linux")]
fn start_git_state(repo: &gix::Repository, session: &Session, commit: gix::ObjectId) -> Result<()> {
    if session.record.from == "worktree" || repo.workdir().is_none() {
        return Ok(());
    }
    let Some(i) = session.record.cow.iter().position(|c| c.path == ".git") else {
        return Ok(());
    };
    let upper = session.cow_dir(i).join(UPPER);
    let tree = repo.find_commit(commit)?.tree_id()?.detach();
    let index = repo.index_from_tree(&tree)?;
    let head = repo.head_id().ok().map(|h| h.detach());
    // The real index already says the same (the usual case: a clean checkout of HEAD): the
    // session reads it through its overlay and costs no copy of it.
    let same = |real: &gix::index::File| {
        let key = |f: &gix::index::File| -> Vec<(Vec<u8>, gix::ObjectId, u32)> {
            f.entries()
                .iter()
                .map(|e| (e.path(f).to_vec(), e.id, e.mode.bits()))
                .collect()
        };
        key(real) == key(&index)
    };
    if head == Some(commit) && repo.open_index().is_ok_and(|real| same(&real)) {
        return Ok(());
    }
    let path = upper.join("index");
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(&path).with_context(|| format!("{}", path.display()))?,
    );
    index
        .write_to(&mut out, gix::index::write::Options::default())
        .with_context(|| format!("{}", path.display()))?;
    std::io::Write::flush(&mut out)?;
    if head != Some(commit) {
        crate::rundir::write_atomic(&upper.join("HEAD"), format!("{commit}\n").as_bytes())?;
    }
    Ok(())
}

/// Save the base manifest at `dest`, as a hard link to one copy per distinct base in the
/// repository's sessions directory (sessions of one base share it, as they share its layer).
#[cfg(target_os = "linux")]
fn save_base(store: &Store, git_dir: &Path, manifest: &Manifest, dest: &Path) -> Result<()> {
    // A ref name component cannot start with '.', so no session is called `.bases`.
    let bases = super::repo_dir(store, git_dir).join(".bases");
    std::fs::create_dir_all(&bases).with_context(|| format!("{}", bases.display()))?;
    let shared = bases.join(format!("{}.manifest", manifest.hash().to_hex()));
    if !shared.exists() {
        manifest.save_atomic(&shared)?;
    }
    if std::fs::hard_link(&shared, dest).is_err() {
        manifest.save_atomic(dest)?;
    }
    Ok(())
}

#[cfg(target_os = "linux")]
pub fn run(store: &Store, opts: &RunOptions, s: &Options, cwd: &Path) -> Result<Finished> {
    match opts.projection {
        Choice::Auto | Choice::Overlay => {}
        Choice::Supervisor | Choice::Shim | Choice::ShimSupervisor => bail!(
            "--session runs under the overlay projection only (a session is a persistent \
             overlay upper directory shared by its runs; the {} projection keeps a run's \
             changes in memory and a journal of its own)",
            match opts.projection {
                Choice::Shim => "shim",
                Choice::ShimSupervisor => "shim+supervisor",
                _ => "supervisor",
            }
        ),
    }
    if opts.manifest.is_some() || opts.mount.is_some() {
        bail!(
            "--session shows the git repository around the current directory, at its own \
             path: it cannot be combined with --manifest or --mount"
        );
    }
    if let Some(why) = overlay::unavailable(store) {
        bail!("--session needs the overlay projection, which cannot be used here: {why}");
    }
    let repo = super::discover(cwd)?;
    let git_dir = repo.git_dir().canonicalize()?;
    let lock_path =
        super::repo_dir(store, &git_dir).join(format!("{}.lock", super::dir_name(&s.name)));
    let start = members::lock_start(&lock_path)?;
    let session = open_or_create(store, &repo, &s.name, s.from.as_deref())?;
    let root = session.record.root.clone();
    let cwd = cwd.canonicalize().unwrap_or_else(|_| cwd.to_path_buf());
    if !cwd.starts_with(&root) {
        bail!(
            "{}: outside the repository's view {}",
            cwd.display(),
            root.display()
        );
    }
    let base = session.base()?;
    let spec = ViewSpec {
        manifest: base,
        root: root.clone(),
        passthrough: Vec::new(),
        destination: Destination::ManifestFile(session.join(BASE)),
        stacked: None,
        origins: None,
    };
    let runner = vrift_common::vfs::Owner {
        uid: nix::unistd::geteuid().as_raw(),
        gid: nix::unistd::getegid().as_raw(),
    };
    let live = members::live(&session, true);
    let projection: Arc<dyn Projection> =
        Arc::new(SessionView::prepare(store, &session, &spec, runner.uid)?);
    let (mut plan, _) =
        crate::run::launch_plan(store, opts, &spec, &cwd, runner, projection.as_ref(), None)?;
    if let Some(join) = live.iter().find_map(|pid| join_of(*pid)) {
        // Another run has the view mounted: use its mounts (a private copy of its mount
        // namespace, so the same overlay) rather than mount the upper directory twice.
        tracing::info!("session {}: joining a running session", s.name);
        if let Some(ns) = plan.ns.as_mut() {
            ns.id_maps = None;
            ns.join = Some(join);
        }
        plan.mounts = vec![
            Mount::PrivateRoot,
            Mount::Proc,
            Mount::Chdir {
                path: cstring(&cwd)?,
            },
        ];
    }
    let member = members::register(&session)?;
    let mut start = Some(start);
    let finished = crate::run::start_and_wait(&opts.cmd, &[], plan, projection, None, None, || {
        start.take();
    });
    drop(member);
    finished
}

/// The namespaces to join of the run of member `pid` (its child, the keeper, holds them).
#[cfg(target_os = "linux")]
fn join_of(pid: u32) -> Option<ns::Join> {
    let keeper = *crate::run::children_of(pid).first()?;
    let open = |name: &str| -> Option<(OwnedFd, u64)> {
        let p = format!("/proc/{keeper}/ns/{name}");
        let f = std::fs::File::open(&p).ok()?;
        let ino = f.metadata().ok()?.ino();
        Some((OwnedFd::from(f), ino))
    };
    let (user, user_ino) = open("user")?;
    let (mnt, _) = open("mnt")?;
    let own_user = std::fs::metadata("/proc/self/ns/user").ok()?.ino();
    Some(ns::Join {
        user: (user_ino != own_user).then_some(user),
        mnt,
    })
}

/// The session's view: the base's metadata layer under the session's upper directory, and
/// the copy-on-write directories stacked on it.
#[cfg(target_os = "linux")]
struct SessionView {
    options: std::ffi::CString,
    mnt: PathBuf,
    root: PathBuf,
    cow: Vec<(PathBuf, std::ffi::CString)>,
}

#[cfg(target_os = "linux")]
impl SessionView {
    fn prepare(store: &Store, session: &Session, spec: &ViewSpec, uid: u32) -> Result<SessionView> {
        let flavor = Flavor::for_uid(uid);
        let stack = layer::ensure_stack(store, &spec.manifest, flavor, uid, &session.dir)?;
        tracing::info!(
            "session layer {} ({})",
            stack.layers[0].display(),
            stack.how
        );
        let upper = session.join(UPPER);
        let blobs = store.root().join("blobs");
        let options = overlay::options(
            &stack.layers,
            Some(&blobs),
            &upper,
            &session.join(WORK),
            flavor,
        )?;
        // Mount points for the copy-on-write directories, in the upper directory.
        let placeholders: Vec<(RelPath, PassthroughKind)> = session
            .record
            .cow
            .iter()
            .map(|c| (c.path.as_bytes().to_vec(), PassthroughKind::Dir))
            .collect();
        overlay::make_placeholders(&upper, &spec.manifest, &placeholders)?;
        let mut cow = Vec::new();
        let mnt = session.join(MNT);
        for (i, c) in session.record.cow.iter().enumerate() {
            let src = c.source.as_os_str().as_bytes();
            if src.iter().any(|b| matches!(b, b',' | b':' | b'\\')) {
                bail!(
                    "{}: holds ',', ':' or '\\', which overlayfs options cannot name",
                    c.source.display()
                );
            }
            let d = session.cow_dir(i);
            let o = overlay::options(
                std::slice::from_ref(&c.source),
                None,
                &d.join(UPPER),
                &d.join(WORK),
                flavor,
            )?;
            cow.push((mnt.join(OsStr::from_bytes(c.path.as_bytes())), o));
        }
        Ok(SessionView {
            options,
            mnt,
            root: spec.root.clone(),
            cow,
        })
    }
}

#[cfg(target_os = "linux")]
impl Projection for SessionView {
    fn kind(&self) -> Kind {
        Kind::Overlay
    }

    fn dev(&self) -> u64 {
        0
    }

    fn mounts(&self) -> Result<Vec<Mount>> {
        let mut steps = vec![Mount::Overlay {
            dst: cstring(&self.mnt)?,
            options: self.options.clone(),
        }];
        for (dst, options) in &self.cow {
            steps.push(Mount::Overlay {
                dst: cstring(dst)?,
                options: options.clone(),
            });
        }
        steps.push(Mount::Bind {
            src: cstring(&self.mnt)?,
            dst: cstring(&self.root)?,
            readonly: false,
        });
        Ok(steps)
    }

    fn filter(&self) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }

    fn serve(&self, _listener: OwnedFd, _served: Option<Arc<ServedStats>>) -> Result<()> {
        bail!("a session's view has no seccomp listener to serve")
    }

    fn harvest(&self) -> Result<Manifest> {
        bail!("a session keeps its changes in its upper directories")
    }
}

/// The session's view now, as a manifest: the base with the upper directory's changes (the
/// files it holds are hashed into the store). The copy-on-write directories are left out.
#[cfg(target_os = "linux")]
pub fn current_view(store: &Store, session: &Session) -> Result<Manifest> {
    let base = session.base()?;
    let passthrough: HashSet<RelPath> = session
        .record
        .cow
        .iter()
        .map(|c| c.path.as_bytes().to_vec())
        .collect();
    let flavor = Flavor::for_uid(nix::unistd::geteuid().as_raw());
    // The session goes on: its upper directory keeps its files.
    overlay::harvest::harvest(
        store,
        &base,
        &session.join(UPPER),
        flavor,
        &passthrough,
        overlay::harvest::Take::Copy,
    )
}

/// Off Linux: a session's view is read from its overlayfs upper directory (whiteouts and
/// Linux's xattrs), which only Linux makes.
#[cfg(not(target_os = "linux"))]
pub fn current_view(_store: &Store, session: &Session) -> Result<Manifest> {
    anyhow::bail!(
        "session {}: reading a session needs Linux (it is an overlayfs upper directory); this \
         is {}",
        session.record.name,
        std::env::consts::OS
    )
}
