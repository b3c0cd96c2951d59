//! `vrift run --isolate`: the program sees only what vrift gives it.
//!
//! The run's mount namespace gets a new root (a directory of the run, `runs/<id>/iroot`),
//! holding:
//! - the root file system: the `--base` manifests, read-only, served by overlayfs over the
//!   store like any view; or, without a base, the minimal set ([`MINIMAL_DIRS`]): the
//!   host's system directories read-only, and a small `/etc` of vrift's own;
//! - a private `/tmp` (tmpfs), a `/proc` of the run's pid namespace, and a minimal `/dev`
//!   (null, zero, full, random, urandom, tty bound from the host; fd, stdin, stdout, stderr
//!   links; a tmpfs `/dev/shm`);
//! - the view itself, at its usual path, served by the run's projection.
//!
//! The run pivots into it, and the old root is detached. The program also gets its own
//! user, UTS (hostname `vrift`), IPC and (unless `--net`) network namespaces, no descriptor
//! but 0, 1 and 2 from vrift, no new privileges, and with `--memory`/`--pids` a cgroup of
//! its own (`super::cgroup`: v2 where the controllers are delegated, else v1 as root).

//!
//! Only [`IsolateArgs`] is built off Linux, where `--isolate` is refused (see `super::run`).

#[cfg(target_os = "linux")]
use {
    super::cgroup::{parse_size, Limits, RunCgroup},
    crate::mounts::{cstring, Mount},
    crate::projection::overlay::layer::{self, Flavor},
    crate::sys::ns,
    anyhow::{bail, Context, Result},
    std::ffi::CString,
    std::path::{Path, PathBuf},
    vrift_common::manifest::Manifest,
    vrift_common::store::Store,
};

/// What `--isolate` and its companions ask for.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct IsolateArgs {
    /// Run the program isolated: its own root file system (the --base manifests, or the
    /// minimal set of docs/ARCHITECTURE.md), private /tmp, /proc and /dev, its own user,
    /// pid, hostname, IPC and network namespaces; see docs/SECURITY.md.
    #[arg(long)]
    pub isolate: bool,
    /// With --isolate: keep the host's network (loopback and every interface).
    #[arg(long, requires = "isolate")]
    pub net: bool,
    /// With --isolate: the program's memory limit (bytes, or with K, M, G), through a
    /// cgroup (v2 where the memory controller is delegated, else v1 as root).
    #[arg(long, value_name = "SIZE", requires = "isolate")]
    pub memory: Option<String>,
    /// With --isolate: the most processes and threads the program may have at once,
    /// through a cgroup (v2 where the pids controller is delegated, else v1 as root).
    #[arg(long, value_name = "N", requires = "isolate")]
    pub pids: Option<u64>,
}

#[cfg(target_os = "linux")]
/// The host directories the minimal set shows read-only, when they exist (a symlink, as
/// `/bin -> usr/bin` on merged-/usr systems, is copied as a symlink).
pub const MINIMAL_DIRS: &[&str] = &[
    "usr",
    "bin",
    "sbin",
    "lib",
    "lib32",
    "lib64",
    "libx32",
    "etc/alternatives",
];

#[cfg(target_os = "linux")]
/// Host files of `/etc` the minimal set shows read-only, when they exist: what the dynamic
/// loader and name lookups of a local program read.
const MINIMAL_ETC_FILES: &[&str] = &["ld.so.cache", "ld.so.conf", "nsswitch.conf", "localtime"];

#[cfg(target_os = "linux")]
/// Device nodes of the minimal `/dev`, bound from the host's.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

#[cfg(target_os = "linux")]
/// The hostname an isolated program sees.
pub const HOSTNAME: &str = "vrift";

#[cfg(target_os = "linux")]
/// What the life cycle keeps while an isolated run goes on.
pub struct Prepared {
    /// The run's cgroups (removed on drop), with `--memory`/`--pids`.
    pub cgroup: Option<RunCgroup>,
}

#[cfg(target_os = "linux")]
impl Prepared {
    /// Say why the program was killed, when its cgroup saw it run out of memory.
    pub fn report_end(&self, status: u8) {
        if let Some(cg) = &self.cgroup {
            if i32::from(status) == 128 + libc::SIGKILL && cg.oom_killed() {
                eprintln!(
                    "vrift: the program ran out of memory: the kernel killed it at the --memory \
                     limit"
                );
            }
        }
    }
}

/// Where the root file system comes from.
#[cfg(target_os = "linux")]
enum RootFs {
    /// The `--base` manifests' layers (upper-most first), read-only.
    Base(Vec<PathBuf>),
    Minimal,
}

#[cfg(target_os = "linux")]
/// Everything the isolated launch plan is made from.
pub struct Plan<'a> {
    pub store: &'a Store,
    pub bases: &'a [PathBuf],
    pub run_dir: &'a Path,
    /// The view's root, as the program sees it.
    pub view_root: &'a Path,
    /// Where the program starts.
    pub start_dir: &'a Path,
    pub runner_uid: u32,
    pub runner_gid: u32,
    /// The projection's mounts (the last bind puts the view at `view_root`).
    pub projection_mounts: Vec<Mount>,
}

#[cfg(target_os = "linux")]
/// The isolated mount plan.
pub fn mounts(p: Plan) -> Result<Vec<Mount>> {
    if p.view_root == Path::new("/") {
        bail!(
            "--isolate with --mount /: the view would hide the root file system; give the \
             root file system with --base and mount the view below it"
        );
    }
    let new_root = p.run_dir.join("iroot");
    std::fs::create_dir(&new_root).with_context(|| format!("{}", new_root.display()))?;
    let at = |rel: &str| -> Result<CString> { cstring(&new_root.join(rel)) };
    let rootfs = if p.bases.is_empty() {
        RootFs::Minimal
    } else {
        RootFs::Base(base_layers(p.store, p.bases, p.runner_uid)?)
    };
    let mut steps = vec![Mount::PrivateRoot];
    match &rootfs {
        RootFs::Base(layers) => {
            let skel = p.run_dir.join("iskel");
            make_skeleton(&skel, p.view_root)?;
            steps.push(Mount::Overlay {
                dst: cstring(&new_root)?,
                options: base_options(p.store, &skel, layers, p.runner_uid)?,
            });
        }
        RootFs::Minimal => {
            steps.push(Mount::Tmpfs {
                dst: cstring(&new_root)?,
            });
            for d in ["dev", "proc", "tmp", "etc"] {
                steps.push(Mount::Mkdir { path: at(d)? });
            }
            for rel in MINIMAL_DIRS {
                let host = Path::new("/").join(rel);
                let Ok(meta) = host.symlink_metadata() else {
                    continue;
                };
                if meta.file_type().is_symlink() {
                    let target =
                        std::fs::read_link(&host).with_context(|| format!("{}", host.display()))?;
                    steps.push(Mount::Symlink {
                        target: cstring(&target)?,
                        path: at(rel)?,
                    });
                } else if meta.is_dir() {
                    steps.push(Mount::Mkdir { path: at(rel)? });
                    steps.push(Mount::Bind {
                        src: cstring(&host)?,
                        dst: at(rel)?,
                        readonly: true,
                    });
                }
            }
            let etc = p.run_dir.join("ietc");
            std::fs::create_dir(&etc).with_context(|| format!("{}", etc.display()))?;
            let own = own_etc(&etc, p.runner_uid, p.runner_gid)?;
            let host_etc = MINIMAL_ETC_FILES
                .iter()
                .map(|f| Path::new("/etc").join(f))
                .filter(|f| f.is_file());
            for src in own.into_iter().chain(host_etc) {
                let name = src.file_name().map(Path::new).unwrap_or(Path::new(""));
                let dst = cstring(&new_root.join("etc").join(name))?;
                steps.push(Mount::MakeFile { path: dst.clone() });
                steps.push(Mount::Bind {
                    src: cstring(&src)?,
                    dst,
                    readonly: true,
                });
            }
        }
    }
    steps.push(Mount::Tmpfs { dst: at("tmp")? });
    steps.extend(dev_mounts(&new_root)?);
    steps.push(Mount::ProcAt { dst: at("proc")? });
    // The view's root and the directories above it: made in the new root (on a tmpfs), or
    // already there in the base's skeleton.
    let rel_root = p.view_root.strip_prefix("/").unwrap_or(p.view_root);
    let mut cur = new_root.clone();
    for c in rel_root.components() {
        cur.push(c);
        let on_tmpfs = matches!(rootfs, RootFs::Minimal) || cur.starts_with(new_root.join("tmp"));
        let made = ["dev", "proc", "tmp", "etc"]
            .iter()
            .any(|d| cur == new_root.join(d));
        if on_tmpfs && !made && !is_host_bound(&new_root, &cur) {
            steps.push(Mount::Mkdir {
                path: cstring(&cur)?,
            });
        }
    }
    let view_dst = cstring(p.view_root)?;
    let inside = cstring(&new_root.join(rel_root))?;
    for step in p.projection_mounts {
        steps.push(match step {
            Mount::Bind { src, dst, readonly } if dst == view_dst => Mount::Bind {
                src,
                dst: inside.clone(),
                readonly,
            },
            other => other,
        });
    }
    const OLD: &str = "tmp/.vrift-old-root";
    steps.push(Mount::PivotRoot {
        new_root: cstring(&new_root)?,
        put_old: at(OLD)?,
        old_after: cstring(&Path::new("/").join(OLD))?,
    });
    steps.push(Mount::Chdir {
        path: cstring(p.start_dir)?,
    });
    Ok(steps)
}

#[cfg(target_os = "linux")]
/// Whether `path` (in the new root) lies in a host directory the minimal set binds.
fn is_host_bound(new_root: &Path, path: &Path) -> bool {
    MINIMAL_DIRS
        .iter()
        .any(|d| path.starts_with(new_root.join(d)) && Path::new("/").join(d).is_dir())
}

#[cfg(target_os = "linux")]
/// The layers of the `--base` manifests (upper-most first): those of their merged tree,
/// built once and cached in the store like a view's. The bases are merged first (with
/// their whiteouts) rather than stacked as layers of their own: overlayfs follows a
/// metadata layer's redirect into the blobs only from the lowest layer (metacopy=on, which
/// would allow more, is refused with userxattr).
fn base_layers(store: &Store, bases: &[PathBuf], uid: u32) -> Result<Vec<PathBuf>> {
    let flavor = Flavor::for_uid(uid);
    let mut manifests = Vec::new();
    for base in bases {
        manifests.push(std::sync::Arc::new(
            Manifest::load(base).with_context(|| format!("--base {}", base.display()))?,
        ));
    }
    let manifest = match manifests.len() {
        1 => std::sync::Arc::unwrap_or_clone(manifests.remove(0)),
        _ => super::base::merge(manifests)?,
    };
    let top = bases.last().expect("at least one base");
    let key = std::path::absolute(top).with_context(|| format!("{}", top.display()))?;
    // Built once per manifest (with a progress bar on a terminal when it takes a while).
    let stack = layer::ensure_stack(store, &manifest, flavor, uid, &key)
        .with_context(|| format!("--base {}: building its layer", top.display()))?;
    tracing::info!("base layer {} ({})", stack.layers[0].display(), stack.how);
    Ok(stack.layers)
}

#[cfg(target_os = "linux")]
/// A read-only overlay of the base layers, with the run's skeleton (mount points) on top.
fn base_options(store: &Store, skel: &Path, layers: &[PathBuf], uid: u32) -> Result<CString> {
    let mut lower = vec![skel.display().to_string()];
    lower.extend(layers.iter().map(|l| l.display().to_string()));
    let mut o = format!(
        "lowerdir={}::{}",
        lower.join(":"),
        store.root().join("blobs").display()
    );
    if Flavor::for_uid(uid) == Flavor::User {
        o.push_str(",userxattr");
    }
    if o.len() >= 4096 {
        bail!("the base's overlay options are longer than a page: {o}");
    }
    Ok(CString::new(o)?)
}

#[cfg(target_os = "linux")]
/// The directories the base root file system needs as mount points: dev, proc, tmp and the
/// view's root with its ancestors.
fn make_skeleton(skel: &Path, view_root: &Path) -> Result<()> {
    for d in ["dev", "proc", "tmp"] {
        std::fs::create_dir_all(skel.join(d)).with_context(|| format!("{}", skel.display()))?;
    }
    let rel = view_root.strip_prefix("/").unwrap_or(view_root);
    if !rel.starts_with("tmp") {
        let d = skel.join(rel);
        std::fs::create_dir_all(&d).with_context(|| format!("{}", d.display()))?;
    }
    Ok(())
}

#[cfg(target_os = "linux")]
/// `/etc/passwd`, `/etc/group`, `/etc/hostname` and `/etc/hosts` naming only root, the
/// runner and `nobody`, written in `dir`; returns their paths.
fn own_etc(dir: &Path, uid: u32, gid: u32) -> Result<Vec<PathBuf>> {
    let mut passwd = String::from("root:x:0:0:root:/root:/bin/sh\n");
    let mut group = String::from("root:x:0:\n");
    if uid != 0 && uid != 65534 {
        passwd.push_str(&format!("user:x:{uid}:{gid}:user:/tmp:/bin/sh\n"));
    }
    if gid != 0 && gid != 65534 {
        group.push_str(&format!("user:x:{gid}:\n"));
    }
    passwd.push_str("nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n");
    group.push_str("nogroup:x:65534:\n");
    let files = [
        ("passwd", passwd),
        ("group", group),
        ("hostname", format!("{HOSTNAME}\n")),
        (
            "hosts",
            format!("127.0.0.1 localhost {HOSTNAME}\n::1 localhost {HOSTNAME}\n"),
        ),
    ];
    let mut out = Vec::new();
    for (name, text) in files {
        let p = dir.join(name);
        std::fs::write(&p, text).with_context(|| format!("{}", p.display()))?;
        out.push(p);
    }
    Ok(out)
}

#[cfg(target_os = "linux")]
/// A tmpfs /dev with the minimal devices bound from the host's, its usual links, and a
/// tmpfs /dev/shm.
fn dev_mounts(new_root: &Path) -> Result<Vec<Mount>> {
    let dev = new_root.join("dev");
    let mut steps = vec![Mount::Tmpfs {
        dst: cstring(&dev)?,
    }];
    for d in DEVICES {
        let host = Path::new("/dev").join(d);
        if !host.exists() {
            continue;
        }
        steps.push(Mount::MakeFile {
            path: cstring(&dev.join(d))?,
        });
        steps.push(Mount::Bind {
            src: cstring(&host)?,
            dst: cstring(&dev.join(d))?,
            readonly: false,
        });
    }
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        steps.push(Mount::Symlink {
            target: cstring(Path::new(target))?,
            path: cstring(&dev.join(name))?,
        });
    }
    steps.push(Mount::Mkdir {
        path: cstring(&dev.join("shm"))?,
    });
    steps.push(Mount::Tmpfs {
        dst: cstring(&dev.join("shm"))?,
    });
    Ok(steps)
}

#[cfg(target_os = "linux")]
/// The namespaces of an isolated run, and its cgroup.
pub fn namespaces(
    args: &IsolateArgs,
    run_id: &str,
    runner_uid: u32,
    runner_gid: u32,
) -> Result<(ns::Isolation, Prepared)> {
    let limits = Limits {
        memory: args.memory.as_deref().map(parse_size).transpose()?,
        pids: args.pids,
    };
    let cgroup = RunCgroup::make(limits, run_id)?;
    let mut procs = Vec::new();
    if let Some(cg) = &cgroup {
        tracing::info!("limits in cgroup {}", cg.describe());
        for f in cg.procs_files() {
            procs.push(cstring(&f)?);
        }
    }
    // Root gets a user namespace of its own too, entered once the mounts are made (its
    // overlay layers carry trusted.* xattrs, which only the initial namespace may use).
    let late_user = (runner_uid == 0).then(|| {
        (
            CString::new("0 0 1").expect("no NUL"),
            CString::new(format!("{runner_gid} {runner_gid} 1")).expect("no NUL"),
        )
    });
    Ok((
        ns::Isolation {
            net: args.net,
            hostname: CString::new(HOSTNAME).expect("no NUL"),
            late_user,
            cgroup_procs: procs,
        },
        Prepared { cgroup },
    ))
}

#[cfg(target_os = "linux")]
#[cfg(test)]
mod tests {
    use super::*;
    use crate::mounts::{apply, fake::Recorder};

    #[test]
    fn the_minimal_plan_pivots_into_a_root_holding_the_view() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(&t.path().join("store")).unwrap();
        let run_dir = t.path().join("run");
        std::fs::create_dir(&run_dir).unwrap();
        let view = Path::new("/work/proj");
        let plan = mounts(Plan {
            store: &store,
            bases: &[],
            run_dir: &run_dir,
            view_root: view,
            start_dir: view,
            runner_uid: 1000,
            runner_gid: 1000,
            projection_mounts: vec![Mount::Bind {
                src: c"/farm".into(),
                dst: c"/work/proj".into(),
                readonly: true,
            }],
        })
        .unwrap();
        let mut rec = Recorder::default();
        apply(&plan, &mut rec).unwrap();
        let root = run_dir.join("iroot").display().to_string();
        let calls = rec.calls.join("\n");
        for want in [
            format!("mount tmpfs {root} mode=0755"),
            format!("bind /usr {root}/usr ro"),
            format!("mount tmpfs {root}/tmp mode=0755"),
            format!("bind /dev/null {root}/dev/null"),
            format!("mount proc {root}/proc "),
            format!("mkdir {root}/work/proj 755"),
            format!("bind /farm {root}/work/proj ro"),
            format!("pivot_root {root} {root}/tmp/.vrift-old-root"),
            "detach /tmp/.vrift-old-root".to_string(),
            "chdir /work/proj".to_string(),
        ] {
            assert!(calls.contains(&want), "{want:?} missing from:\n{calls}");
        }
        assert!(
            !calls.contains("bind /farm /work/proj"),
            "the view is bound inside the new root only:\n{calls}"
        );
        assert!(calls.ends_with("chdir /work/proj"));
    }
}
