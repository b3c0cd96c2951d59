//! `vrift doctor`: probe what each projection needs, and say what works, what is missing and
//! what to do about it.

#[cfg(target_os = "linux")]
use std::ffi::CString;
use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;

#[cfg(target_os = "linux")]
use crate::sys::probe;

#[derive(clap::Args)]
#[command(after_help = "Examples:
  vrift doctor           # a line per check: ok or missing, what needs it, what to do
  vrift doctor --json    # the same as one JSON object")]
pub struct Args {
    /// Print the checks as JSON.
    #[arg(long)]
    json: bool,
}

/// One check's outcome.
struct Check {
    name: &'static str,
    ok: bool,
    /// What needs it.
    needed_by: &'static str,
    /// What was found.
    found: String,
    /// What to do when it is missing.
    fix: &'static str,
}

#[cfg(target_os = "linux")]
fn kernel_version() -> (u32, u32) {
    let r = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut it = r
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|s| s.parse().ok());
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

#[cfg(target_os = "linux")]
fn outcome(r: std::io::Result<()>) -> (bool, String) {
    match r {
        Ok(()) => (true, "works".into()),
        Err(e) => (false, e.to_string()),
    }
}

/// Mount an overlay with a data-only layer in a child's namespaces (a user namespace for
/// `userxattr`, or root's own).
#[cfg(target_os = "linux")]
fn overlay_probe(userxattr: bool) -> std::io::Result<()> {
    let t = tempfile::tempdir()?;
    let (lower, data, mnt) = (t.path().join("l"), t.path().join("d"), t.path().join("m"));
    for d in [&lower, &data, &mnt] {
        std::fs::create_dir(d)?;
    }
    let mut o = format!("lowerdir={}::{}", lower.display(), data.display());
    if userxattr {
        o.push_str(",userxattr");
    }
    let o = CString::new(o)?;
    let mnt = CString::new(mnt.display().to_string())?;
    probe::in_child(|| {
        let flags = if userxattr {
            libc::CLONE_NEWUSER | libc::CLONE_NEWNS
        } else {
            libc::CLONE_NEWNS
        };
        probe::unshare(flags)?;
        probe::mount_fs(c"overlay", &mnt, &o)
    })
}

#[cfg(target_os = "linux")]
fn checks() -> Vec<Check> {
    let (major, minor) = kernel_version();
    let at_least = |a: u32, b: u32| (major, minor) >= (a, b);
    let root = nix::unistd::geteuid().is_root();
    let actions =
        std::fs::read_to_string("/proc/sys/kernel/seccomp/actions_avail").unwrap_or_default();
    let notif = actions.split_whitespace().any(|a| a == "user_notif");
    let mut out = vec![
        Check {
            name: "seccomp user notification",
            ok: notif && crate::sys::notify::listener_available(),
            needed_by: "supervisor",
            found: if !notif {
                "the kernel lists no user_notif action".into()
            } else if !crate::sys::notify::listener_available() {
                "this process already runs under a seccomp listener (vrift in vrift?)".into()
            } else {
                format!("available (kernel {major}.{minor})")
            },
            fix: "a kernel 5.0+ with CONFIG_SECCOMP_FILTER, outside another seccomp supervisor",
        },
        Check {
            name: "seccomp ADDFD",
            ok: notif && at_least(5, 9),
            needed_by: "supervisor",
            found: format!("kernel {major}.{minor} (ADDFD is 5.9+)"),
            fix: "a kernel 5.9 or later",
        },
        Check {
            name: "SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP",
            ok: notif && at_least(6, 6),
            needed_by: "supervisor (faster answers; optional)",
            found: format!("kernel {major}.{minor} (6.6+)"),
            fix: "a kernel 6.6 or later; without it the supervisor still works",
        },
    ];
    let (ok, found) = outcome(probe::in_child(|| probe::unshare(libc::CLONE_NEWUSER)));
    out.push(Check {
        name: "user namespaces",
        ok,
        needed_by: "every mounting projection as an ordinary user; --isolate",
        found,
        fix: "sysctl user.max_user_namespaces > 0 (and kernel.unprivileged_userns_clone = 1 \
              where it exists); in a container, a seccomp profile that allows unshare",
    });
    let (ok, found) = if root {
        outcome(overlay_probe(false))
    } else {
        (false, "needs root (trusted.* xattrs)".into())
    };
    out.push(Check {
        name: "overlay data-only layers (trusted xattrs)",
        ok,
        needed_by: "overlay, as root",
        found,
        fix: "a kernel 6.5 or later with overlayfs; otherwise auto uses the supervisor",
    });
    let (ok, found) = outcome(overlay_probe(true));
    out.push(Check {
        name: "overlay data-only layers (userxattr)",
        ok,
        needed_by: "overlay, as an ordinary user; --isolate --base",
        found,
        fix: "a kernel 6.5 or later with overlayfs and user namespaces",
    });
    let tracefs = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .iter()
        .find(|p| std::path::Path::new(p).join("events").is_dir());
    out.push(Check {
        name: "eBPF and tracefs",
        ok: root && tracefs.is_some(),
        needed_by: "vrift trace (its eBPF columns; optional)",
        found: match (root, tracefs) {
            (false, _) => "needs root (CAP_BPF and CAP_PERFMON)".into(),
            (true, None) => "tracefs is not mounted".into(),
            (true, Some(p)) => format!("tracefs at {p}"),
        },
        fix: "run as root, with tracefs mounted (mount -t tracefs tracefs /sys/kernel/tracing)",
    });
    use crate::run::cgroup::{home, Controller};
    let homes: Vec<_> = [Controller::Memory, Controller::Pids]
        .into_iter()
        .map(|c| (c, home(c)))
        .collect();
    out.push(Check {
        name: "cgroup limits",
        ok: homes.iter().all(|(_, h)| h.is_ok()),
        needed_by: "--isolate --memory/--pids (optional)",
        found: homes
            .iter()
            .map(|(c, h)| match h {
                Ok(h) => format!(
                    "{}: cgroup {} at {}",
                    c.name(),
                    h.version(),
                    h.dir().display()
                ),
                Err(why) => format!("{}: none ({why})", c.name()),
            })
            .collect::<Vec<_>>()
            .join("; "),
        fix: "cgroup v2 with memory and pids delegated to your cgroup (systemd-run --user \
              -p Delegate=yes --scope ...), or run as root where cgroup v1 has them",
    });
    out
}

/// Off Linux (macOS) only the shim projection runs; what the others need is Linux's.
#[cfg(not(target_os = "linux"))]
fn checks() -> Vec<Check> {
    let os = std::env::consts::OS;
    let library = crate::projection_shim::find_library();
    vec![
        Check {
            name: "shim library",
            ok: library.is_ok(),
            needed_by: "shim (vrift run)",
            found: match &library {
                Ok(p) => format!("{}", p.display()),
                Err(e) => format!("{e:#}"),
            },
            fix: "build it beside vrift (cargo build --release -p vrift-shim), or set \
                  VRIFT_SHIM_LIBRARY",
        },
        Check {
            name: "Linux (seccomp user notification, namespaces, overlayfs, eBPF, cgroups)",
            ok: false,
            needed_by: "overlay, supervisor, shim+supervisor, --isolate, --session, vrift trace",
            found: format!("this is {os}"),
            fix: "run those on Linux; here `vrift run` uses the shim projection, for dynamically \
                  linked programs outside SIP",
        },
    ]
}

pub fn run(args: Args, quiet: bool) -> Result<ExitCode> {
    let checks = checks();
    if args.json {
        let list: Vec<_> = checks
            .iter()
            .map(|c| {
                json!({"check": c.name, "ok": c.ok, "needed_by": c.needed_by,
                       "found": c.found, "fix": if c.ok { "" } else { c.fix }})
            })
            .collect();
        super::display::print_json(&json!({ "checks": list }))?;
    } else {
        let colour = super::style::Colour::stdout();
        for c in &checks {
            if quiet && c.ok {
                continue;
            }
            let mark = if c.ok {
                colour.green("ok     ")
            } else {
                colour.red("missing")
            };
            println!("{mark} {}: {} [{}]", c.name, c.found, c.needed_by);
            if !c.ok {
                println!("        what to do: {}", c.fix);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
