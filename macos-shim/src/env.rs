//! What vrift tells the shim, through the environment, and what the shim hands on to
//! children. The names are part of the contract with the launcher
//! (`vrift-supervisor/src/projection/shim/`).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// The view's root: absolute, canonical.
pub const ROOT: &str = "VRIFT_SHIM_ROOT";
/// The memory-mapped manifest index.
pub const INDEX: &str = "VRIFT_SHIM_INDEX";
/// The run's directory: change log, generation, private copies, an empty directory.
pub const RUN: &str = "VRIFT_SHIM_RUN";
/// The store's root (blobs are read from it, never written).
pub const STORE: &str = "VRIFT_SHIM_STORE";
/// "uid:gid" every entry reports as its owner.
pub const OWNER: &str = "VRIFT_SHIM_OWNER";
/// The st_dev the view reports.
pub const DEV: &str = "VRIFT_SHIM_DEV";
/// The cwd this process starts in (the parent's, which may be a view directory).
pub const CWD: &str = "VRIFT_SHIM_CWD";
/// The shim library's own path, put back into LD_PRELOAD / DYLD_INSERT_LIBRARIES.
pub const LIB: &str = "VRIFT_SHIM_LIB";
/// Absolute paths under the root that are the real tree's (the filters excluded them from
/// the manifest), one per line: calls on them and below go to the kernel.
pub const PASSTHROUGH: &str = "VRIFT_SHIM_PASSTHROUGH";
/// The view descriptors a parent handed down across exec: `fd,d|f,hex(view path)` lines.
pub const FDS: &str = "VRIFT_SHIM_FDS";
/// Set to anything: print a line per refused or failed set-up to stderr.
pub const DEBUG: &str = "VRIFT_SHIM_DEBUG";
/// Set (to "1") when a seccomp supervisor serves the run behind the shim (`--projection
/// shim+supervisor`): the shim answers reads while the view is unchanged and leaves every
/// change, and every call once the view has changed, to the supervisor (see `core::Shim`).
pub const NET: &str = "VRIFT_SHIM_NET";
/// With a supervisor that serves the view without mounts (no namespaces here): the run's
/// link farm, whose directories stand for the view's. The kernel cannot enter a view path
/// then, so a chdir into the view is an fchdir into the farm, directories the shim opens
/// are the farm's, and the cwd the kernel reports is named back as the view path.
pub const FARM: &str = "VRIFT_SHIM_FARM";
/// The value the shim puts in the spare sixth argument register of the system calls it
/// makes itself, so the supervisor's filter lets them through unnotified.
pub const MARKER: u64 = 0x7672_6966_745f_7368;
/// Where the shim counts the calls it answered itself in a run with a supervisor: an
/// 8-byte file every process of the run adds to (outside the store, which is read-only to
/// the program then).
pub const SERVED: &str = "VRIFT_SHIM_SERVED";

/// The variable the loader reads.
#[cfg(target_os = "macos")]
pub const PRELOAD: &str = "DYLD_INSERT_LIBRARIES";
#[cfg(not(target_os = "macos"))]
pub const PRELOAD: &str = "LD_PRELOAD";

/// Names inside the run directory.
pub const LOG: &str = "changes.log";
pub const GENERATION: &str = "generation";
pub const WRITES: &str = "w";
pub const EMPTY: &str = "empty";

pub struct Config {
    pub root: Vec<u8>,
    pub index: PathBuf,
    pub run: PathBuf,
    pub store: PathBuf,
    pub owner: (u32, u32),
    pub dev: u64,
    pub cwd: Option<Vec<u8>>,
    /// A supervisor serves the run behind the shim ([`NET`]).
    pub net: bool,
    /// The served-calls counter ([`SERVED`]).
    pub served: Option<PathBuf>,
    /// The link farm of a view served without mounts ([`FARM`]).
    pub farm: Option<Vec<u8>>,
    pub passthrough: Vec<Vec<u8>>,
    /// Descriptors inherited from the parent: (fd, is a directory, view path).
    pub fds: Vec<(i32, bool, Vec<u8>)>,
    /// The variables a child must keep: every VRIFT_SHIM_* but the cwd, and the preload.
    pub child_env: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Does a supervisor serve the run behind the shim ([`NET`])?
pub fn supervised() -> bool {
    var(NET).is_some_and(|v| v == b"1")
}

fn var(name: &str) -> Option<Vec<u8>> {
    std::env::var_os(name).map(|v| v.as_bytes().to_vec())
}

fn path(name: &str) -> Result<PathBuf, String> {
    var(name)
        .map(|v| PathBuf::from(OsStr::from_bytes(&v)))
        .ok_or_else(|| format!("{name} is not set"))
}

impl Config {
    /// `Ok(None)` when VRIFT_SHIM_ROOT is unset: not in a run.
    pub fn read() -> Result<Option<Config>, String> {
        let Some(root) = var(ROOT) else {
            return Ok(None);
        };
        let owner = var(OWNER).unwrap_or_default();
        let owner = std::str::from_utf8(&owner)
            .ok()
            .and_then(|s| s.split_once(':'))
            .and_then(|(u, g)| Some((u.parse().ok()?, g.parse().ok()?)))
            .ok_or_else(|| format!("{OWNER} is not \"uid:gid\""))?;
        let dev = var(DEV)
            .and_then(|v| std::str::from_utf8(&v).ok()?.parse().ok())
            .unwrap_or(0);
        let mut child_env = Vec::new();
        for name in [
            ROOT,
            INDEX,
            RUN,
            STORE,
            OWNER,
            DEV,
            LIB,
            DEBUG,
            PASSTHROUGH,
            NET,
            SERVED,
            FARM,
        ] {
            if let Some(v) = var(name) {
                child_env.push((name.as_bytes().to_vec(), v));
            }
        }
        Ok(Some(Config {
            root,
            index: path(INDEX)?,
            run: path(RUN)?,
            store: path(STORE)?,
            owner,
            dev,
            cwd: var(CWD).filter(|c| c.first() == Some(&b'/')),
            net: var(NET).is_some_and(|v| v == b"1"),
            served: var(SERVED).map(|v| PathBuf::from(OsStr::from_bytes(&v))),
            farm: var(FARM).filter(|f| f.first() == Some(&b'/')),
            fds: var(FDS).map(|v| decode_fds(&v)).unwrap_or_default(),
            passthrough: var(PASSTHROUGH)
                .unwrap_or_default()
                .split(|&b| b == b'\n')
                .filter(|p| p.first() == Some(&b'/'))
                .map(|p| p.to_vec())
                .collect(),
            child_env,
        }))
    }
}

/// `envp` with the shim's variables set as `keep` says, the preload variable holding the
/// shim's library (added in front if the program dropped it), and the cwd handed on. An
/// `envp` naming another run (a vrift started inside the run, which prepared its own run's
/// environment) is left as it is: the child belongs to that run.
pub fn merge_child_env(
    envp: Vec<Vec<u8>>,
    keep: &[(Vec<u8>, Vec<u8>)],
    cwd: &[u8],
) -> Vec<Vec<u8>> {
    let run_line = |(n, v): &(Vec<u8>, Vec<u8>)| {
        let mut l = n.clone();
        l.push(b'=');
        l.extend_from_slice(v);
        l
    };
    if let Some(ours) = keep.iter().find(|(n, _)| n == RUN.as_bytes()).map(run_line) {
        let prefix = format!("{RUN}=");
        if envp
            .iter()
            .any(|l| l.starts_with(prefix.as_bytes()) && *l != ours)
        {
            return envp;
        }
    }
    let lib = keep
        .iter()
        .find(|(n, _)| n == LIB.as_bytes())
        .map(|(_, v)| v.clone());
    let is = |line: &[u8], name: &[u8]| {
        line.len() > name.len() && line.starts_with(name) && line[name.len()] == b'='
    };
    let mut out: Vec<Vec<u8>> = Vec::with_capacity(envp.len() + keep.len() + 2);
    let mut preload_seen = false;
    for line in envp {
        if line.starts_with(b"VRIFT_SHIM_") {
            // Ours are added below; a program's stale copy is dropped.
            continue;
        }
        if is(&line, PRELOAD.as_bytes()) {
            preload_seen = true;
            let value = &line[PRELOAD.len() + 1..];
            match &lib {
                Some(lib)
                    if !value
                        .split(|&b| b == b':' || b == b' ')
                        .any(|p| p == lib.as_slice()) =>
                {
                    let mut l = format!("{PRELOAD}=").into_bytes();
                    l.extend_from_slice(lib);
                    if !value.is_empty() {
                        l.push(b':');
                        l.extend_from_slice(value);
                    }
                    out.push(l);
                }
                _ => out.push(line),
            }
            continue;
        }
        out.push(line);
    }
    if let (false, Some(lib)) = (preload_seen, &lib) {
        let mut l = format!("{PRELOAD}=").into_bytes();
        l.extend_from_slice(lib);
        out.push(l);
    }
    for (n, v) in keep {
        let mut l = n.clone();
        l.push(b'=');
        l.extend_from_slice(v);
        out.push(l);
    }
    let mut l = format!("{CWD}=").into_bytes();
    l.extend_from_slice(cwd);
    out.push(l);
    out
}

/// The value of [`FDS`] for `fds`.
pub fn encode_fds<'a>(fds: impl Iterator<Item = (i32, bool, &'a [u8])>) -> Vec<u8> {
    let mut out = Vec::new();
    for (fd, dir, rel) in fds {
        if !out.is_empty() {
            out.push(b'\n');
        }
        out.extend_from_slice(format!("{fd},{},", if dir { 'd' } else { 'f' }).as_bytes());
        for b in rel {
            out.extend_from_slice(format!("{b:02x}").as_bytes());
        }
    }
    out
}

/// Parse [`FDS`]; malformed lines are left out.
pub fn decode_fds(v: &[u8]) -> Vec<(i32, bool, Vec<u8>)> {
    let text = String::from_utf8_lossy(v);
    text.lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ',');
            let fd = parts.next()?.parse().ok()?;
            let dir = match parts.next()? {
                "d" => true,
                "f" => false,
                _ => return None,
            };
            let hex = parts.next()?;
            if hex.len() % 2 != 0 {
                return None;
            }
            let rel = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
                .collect::<Option<Vec<u8>>>()?;
            Some((fd, dir, rel))
        })
        .collect()
}

/// A warning on stderr, when VRIFT_SHIM_DEBUG is set.
pub fn warn(msg: &str) {
    if std::env::var_os(DEBUG).is_some() {
        crate::sys::write_stderr(format!("vrift-shim: {msg}\n").as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keep() -> Vec<(Vec<u8>, Vec<u8>)> {
        vec![
            (ROOT.as_bytes().to_vec(), b"/v".to_vec()),
            (LIB.as_bytes().to_vec(), b"/lib/shim.so".to_vec()),
        ]
    }

    #[test]
    fn descriptors_round_trip_and_junk_is_left_out() {
        let v = encode_fds([(3, false, &b"a/\xff b"[..]), (7, true, &b""[..])].into_iter());
        assert_eq!(
            decode_fds(&v),
            vec![(3, false, b"a/\xff b".to_vec()), (7, true, Vec::new())]
        );
        assert_eq!(decode_fds(b"x,f,00\n4,q,00\n5,f,0\n6,f,zz"), vec![]);
    }

    #[test]
    fn a_nested_runs_environment_is_left_alone() {
        let nested = vec![
            format!("{RUN}=/other/run").into_bytes(),
            format!("{PRELOAD}=/other/lib.so").into_bytes(),
        ];
        let mut ours = keep();
        ours.push((RUN.as_bytes().to_vec(), b"/this/run".to_vec()));
        assert_eq!(merge_child_env(nested.clone(), &ours, b"/v"), nested);
        let same = vec![format!("{RUN}=/this/run").into_bytes()];
        assert!(merge_child_env(same, &ours, b"/v").len() > 1);
    }

    #[test]
    fn a_cleared_environment_gets_the_shim_back() {
        let env = merge_child_env(vec![b"A=1".to_vec()], &keep(), b"/v/sub");
        let text: Vec<String> = env
            .iter()
            .map(|l| String::from_utf8_lossy(l).into())
            .collect();
        assert!(
            text.contains(&format!("{PRELOAD}=/lib/shim.so")),
            "{text:?}"
        );
        assert!(text.contains(&"VRIFT_SHIM_ROOT=/v".to_string()));
        assert!(text.contains(&"VRIFT_SHIM_CWD=/v/sub".to_string()));
        assert!(text.contains(&"A=1".to_string()));
    }

    #[test]
    fn a_rewritten_preload_keeps_the_other_libraries_and_stale_values_go() {
        let env = merge_child_env(
            vec![
                format!("{PRELOAD}=/other.so").into_bytes(),
                b"VRIFT_SHIM_ROOT=/stale".to_vec(),
                b"VRIFT_SHIM_CWD=/stale".to_vec(),
            ],
            &keep(),
            b"/v",
        );
        let text: Vec<String> = env
            .iter()
            .map(|l| String::from_utf8_lossy(l).into())
            .collect();
        assert!(
            text.contains(&format!("{PRELOAD}=/lib/shim.so:/other.so")),
            "{text:?}"
        );
        assert!(!text.iter().any(|l| l.contains("/stale")), "{text:?}");
        // Already there: left as it is.
        let again = merge_child_env(env, &keep(), b"/v");
        assert_eq!(
            again
                .iter()
                .filter(|l| l.starts_with(PRELOAD.as_bytes()))
                .count(),
            1
        );
        assert!(again.contains(&format!("{PRELOAD}=/lib/shim.so:/other.so").into_bytes()));
    }
}
