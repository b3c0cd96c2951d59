//! The cgroup of an isolated run with `--memory`/`--pids`: where the limits can be set, the
//! run's own cgroup there, and what it saw (an OOM kill).
//!
//! Each controller is looked for in cgroup v2 first (the cgroup vrift runs in, when the
//! controller is delegated to it), then in cgroup v1 (the controller's own hierarchy, as
//! on hybrid systems, where root may make child cgroups). The run's cgroup is a child of
//! the one vrift is in, named after the run, in every hierarchy that serves a limit; the
//! program's process joins them all before it unshares, and they are removed when the run
//! ends.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The limits asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Bytes.
    pub memory: Option<u64>,
    pub pids: Option<u64>,
}

/// A cgroup controller a limit needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Controller {
    Memory,
    Pids,
}

impl Controller {
    pub fn name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Pids => "pids",
        }
    }
}

/// Which cgroup version serves a controller, and the cgroup vrift is in there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Home {
    /// cgroup v2, delegated: vrift's own cgroup.
    V2(PathBuf),
    /// cgroup v1: vrift's cgroup in the controller's hierarchy.
    V1(PathBuf),
}

impl Home {
    pub fn dir(&self) -> &Path {
        match self {
            Home::V2(d) | Home::V1(d) => d,
        }
    }
    pub fn version(&self) -> &'static str {
        match self {
            Home::V2(_) => "v2",
            Home::V1(_) => "v1",
        }
    }
}

/// Where `controller` can be used by this process, or why it cannot (both versions said).
pub fn home(controller: Controller) -> std::result::Result<Home, String> {
    let v2 = match own_v2() {
        Ok(dir) => {
            let has = read(&dir.join("cgroup.controllers"));
            if has.split_whitespace().any(|c| c == controller.name()) {
                return Ok(Home::V2(dir));
            }
            format!(
                "cgroup v2 at {} has no {} controller here (it has: {})",
                dir.display(),
                controller.name(),
                none_if_empty(&has)
            )
        }
        Err(why) => format!("cgroup v2: {why}"),
    };
    let v1 = match own_v1(controller) {
        Ok(dir) => {
            if nix::unistd::access(&dir, nix::unistd::AccessFlags::W_OK).is_ok() {
                return Ok(Home::V1(dir));
            }
            format!(
                "cgroup v1 {} at {} is not writable by you (only root can make cgroups there)",
                controller.name(),
                dir.display()
            )
        }
        Err(why) => format!("cgroup v1: {why}"),
    };
    Err(format!("{v2}; {v1}"))
}

/// A run's cgroups (one per hierarchy that serves a limit), removed on drop.
#[derive(Debug)]
pub struct RunCgroup {
    /// Each cgroup made for the run (one for every controller under v2).
    dirs: Vec<Home>,
    /// The one holding the memory limit, where an OOM kill is counted.
    memory: Option<Home>,
}

impl RunCgroup {
    /// Make the run's cgroups with `limits`; None when no limit is asked for.
    pub fn make(limits: Limits, run_id: &str) -> Result<Option<RunCgroup>> {
        let mut wanted = Vec::new();
        if let Some(m) = limits.memory {
            wanted.push((Controller::Memory, m));
        }
        if let Some(n) = limits.pids {
            wanted.push((Controller::Pids, n));
        }
        if wanted.is_empty() {
            return Ok(None);
        }
        let mut cg = RunCgroup {
            dirs: Vec::new(),
            memory: None,
        };
        for (controller, value) in wanted {
            let flag = format!("--{}", controller.name());
            let home = home(controller).map_err(|why| {
                anyhow::anyhow!(
                    "{flag}: no cgroup can take the limit here: {why}. Run as root (cgroup v1), \
                     or where cgroup v2 is delegated (e.g. systemd-run --user -p Delegate=yes \
                     --scope vrift run ...), or without {flag}"
                )
            })?;
            let dir = cg.child(&home, controller, run_id)?;
            for (file, value) in limit_files(&home, controller, value) {
                let p = dir.join(file);
                if OPTIONAL.contains(&file) && !p.exists() {
                    continue; // no swap accounting in this kernel
                }
                std::fs::write(&p, &value)
                    .with_context(|| format!("{flag}: setting {}", p.display()))?;
            }
            if controller == Controller::Memory {
                cg.memory = Some(match home {
                    Home::V2(_) => Home::V2(dir),
                    Home::V1(_) => Home::V1(dir),
                });
            }
        }
        Ok(Some(cg))
    }

    /// The run's cgroup under `home` for `controller`, made now if need be.
    fn child(&mut self, home: &Home, controller: Controller, run_id: &str) -> Result<PathBuf> {
        let dir = home.dir().join(format!("vrift-{run_id}"));
        if self.dirs.iter().any(|h| h.dir() == dir) {
            return Ok(dir); // v2: one cgroup holds every controller
        }
        if let Home::V2(parent) = home {
            enable_v2(parent, controller)?;
        }
        std::fs::create_dir(&dir).with_context(|| {
            format!(
                "--{}: making the run's cgroup {}",
                controller.name(),
                dir.display()
            )
        })?;
        self.dirs.push(match home {
            Home::V2(_) => Home::V2(dir.clone()),
            Home::V1(_) => Home::V1(dir.clone()),
        });
        Ok(dir)
    }

    /// The `cgroup.procs` files the program's process writes itself into.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs
            .iter()
            .map(|h| h.dir().join("cgroup.procs"))
            .collect()
    }

    /// Which versions serve the limits, for `-v`.
    pub fn describe(&self) -> String {
        self.dirs
            .iter()
            .map(|h| format!("{} {}", h.version(), h.dir().display()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// True if the kernel killed a process of the run for reaching the memory limit.
    pub fn oom_killed(&self) -> bool {
        let Some(m) = &self.memory else {
            return false;
        };
        let file = match m {
            Home::V2(d) => d.join("memory.events"),
            Home::V1(d) => d.join("memory.oom_control"),
        };
        read(&file).lines().any(|l| {
            l.strip_prefix("oom_kill ")
                .and_then(|n| n.trim().parse::<u64>().ok())
                .is_some_and(|n| n > 0)
        })
    }
}

impl Drop for RunCgroup {
    fn drop(&mut self) {
        // Empty by now: the program's pid namespace ended with it.
        for h in &self.dirs {
            let _ = std::fs::remove_dir(h.dir());
        }
    }
}

/// Limit files a kernel without swap accounting lacks.
const OPTIONAL: &[&str] = &["memory.memsw.limit_in_bytes", "memory.swap.max"];

/// The files that set `controller`'s limit to `value`.
fn limit_files(home: &Home, controller: Controller, value: u64) -> Vec<(&'static str, String)> {
    let v = value.to_string();
    match (home, controller) {
        (Home::V2(_), Controller::Memory) => {
            vec![("memory.max", v.clone()), ("memory.swap.max", "0".into())]
        }
        (Home::V2(_), Controller::Pids) | (Home::V1(_), Controller::Pids) => vec![("pids.max", v)],
        // memsw (memory + swap) must not be below the memory limit: set after it, the same,
        // so the program cannot go past the limit into swap.
        (Home::V1(_), Controller::Memory) => vec![
            ("memory.limit_in_bytes", v.clone()),
            ("memory.memsw.limit_in_bytes", v),
        ],
    }
}

/// Let vrift's cgroup v2 hand `controller` down to its children.
fn enable_v2(parent: &Path, controller: Controller) -> Result<()> {
    let ctl = parent.join("cgroup.subtree_control");
    if read(&ctl)
        .split_whitespace()
        .any(|c| c == controller.name())
    {
        return Ok(());
    }
    std::fs::OpenOptions::new()
        .write(true)
        .open(&ctl)
        .and_then(|mut f| f.write_all(format!("+{}", controller.name()).as_bytes()))
        .with_context(|| {
            format!(
                "{}: enabling the {} controller for vrift's cgroups (a cgroup with processes \
                 of its own cannot hand controllers down: run vrift in a delegated cgroup of \
                 its own)",
                ctl.display(),
                controller.name()
            )
        })
}

/// The cgroup v2 directory vrift runs in, if cgroup v2 is mounted and writable there.
fn own_v2() -> std::result::Result<PathBuf, String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| e.to_string())?;
    let rel = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or("this system has no cgroup v2 hierarchy")?;
    let mount = cgroup_mounts()
        .into_iter()
        .find(|m| m.fstype == "cgroup2")
        .ok_or("not mounted")?;
    let dir = mount.dir_of(rel)?;
    if read(&dir.join("cgroup.controllers")).trim().is_empty() {
        return Err(format!("{} has no controllers here", mount.point.display()));
    }
    if nix::unistd::access(&dir, nix::unistd::AccessFlags::W_OK).is_err() {
        return Err(format!("{} is not writable by you", dir.display()));
    }
    Ok(dir)
}

/// vrift's cgroup in the cgroup v1 hierarchy of `controller`.
fn own_v1(controller: Controller) -> std::result::Result<PathBuf, String> {
    let name = controller.name();
    let text = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| e.to_string())?;
    // "ID:controller,controller:path"
    let rel = text
        .lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctls, path) = (f.next()?, f.next()?, f.next()?);
            ctls.split(',').any(|c| c == name).then_some(path)
        })
        .ok_or_else(|| format!("no {name} hierarchy"))?;
    let mount = cgroup_mounts()
        .into_iter()
        .find(|m| m.fstype == "cgroup" && m.options.split(',').any(|o| o == name))
        .ok_or_else(|| format!("the {name} hierarchy is not mounted"))?;
    mount.dir_of(rel)
}

/// A cgroup file system mounted here (from /proc/self/mountinfo).
struct CgroupMount {
    /// The directory of the hierarchy the mount shows at its point.
    root: String,
    point: PathBuf,
    fstype: String,
    /// Super-block options: the v1 controllers.
    options: String,
}

impl CgroupMount {
    /// The directory of the cgroup `rel` (a path from /proc/self/cgroup).
    fn dir_of(&self, rel: &str) -> std::result::Result<PathBuf, String> {
        let root = self.root.trim_end_matches('/');
        let under = rel
            .strip_prefix(root)
            .filter(|r| r.is_empty() || r.starts_with('/'))
            .ok_or_else(|| {
                format!(
                    "vrift's cgroup {rel} is outside what {} shows ({})",
                    self.point.display(),
                    self.root
                )
            })?;
        Ok(match under.trim_start_matches('/') {
            "" => self.point.clone(),
            under => self.point.join(under),
        })
    }
}

fn cgroup_mounts() -> Vec<CgroupMount> {
    parse_mountinfo(&read(Path::new("/proc/self/mountinfo")))
}

fn parse_mountinfo(text: &str) -> Vec<CgroupMount> {
    text.lines()
        .filter_map(|l| {
            // id parent maj:min root point options [optional...] - fstype source superopts
            let (left, right) = l.split_once(" - ")?;
            let mut lf = left.split(' ');
            let root = lf.nth(3)?;
            let point = lf.next()?;
            let mut rf = right.split(' ');
            let fstype = rf.next()?;
            let options = rf.nth(1).unwrap_or("");
            fstype.starts_with("cgroup").then(|| CgroupMount {
                root: unescape(root),
                point: PathBuf::from(unescape(point)),
                fstype: fstype.to_string(),
                options: options.to_string(),
            })
        })
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as octal (`\040`).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

fn none_if_empty(s: &str) -> &str {
    match s.trim() {
        "" => "none",
        t => t,
    }
}

/// `512M`, `2G`, `1048576`: bytes.
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_uppercase() {
                'K' => 1u64 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => bail!("--memory {s}: unknown unit {c:?} (use K, M, G or T)"),
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    let n: u64 = num
        .parse()
        .with_context(|| format!("--memory {s}: not a size"))?;
    n.checked_mul(mult)
        .with_context(|| format!("--memory {s}: too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512M").unwrap(), 512 << 20);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("12X").is_err());
        assert!(parse_size("M").is_err());
    }

    #[test]
    fn mountinfo_gives_each_hierarchy_and_the_cgroup_directory() {
        let text = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 /sub /sys/fs/cgroup/pids rw,relatime shared:9 - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/uni\\040fied rw,relatime - cgroup2 cgroup2 rw
";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].options, "rw,memory");
        assert_eq!(
            m[0].dir_of("/process_api/x").unwrap(),
            Path::new("/sys/fs/cgroup/memory/process_api/x")
        );
        assert_eq!(
            m[1].dir_of("/sub/a").unwrap(),
            Path::new("/sys/fs/cgroup/pids/a")
        );
        assert!(m[1].dir_of("/other").is_err());
        assert!(m[1].dir_of("/subway").is_err());
        assert_eq!(m[2].point, Path::new("/sys/fs/cgroup/uni fied"));
        assert_eq!(
            m[2].dir_of("/").unwrap(),
            Path::new("/sys/fs/cgroup/uni fied")
        );
    }
}
