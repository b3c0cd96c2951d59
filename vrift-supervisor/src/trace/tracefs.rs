//! tracefs: finding (or mounting) it, and reading tracepoint record layouts from it, since
//! the `sched_process_fork` / `sched_process_exit` records differ between kernels.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

/// Where tracefs is mounted on current kernels, and its older location under debugfs.
const TRACEFS_DIRS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// The tracefs mount holding `events/`, mounting it at `/sys/kernel/tracing` when no mount
/// is there (which needs root). On error, says what was tried.
pub fn ensure_mounted() -> Result<PathBuf, String> {
    if let Some(dir) = find() {
        return Ok(dir);
    }
    let target = Path::new(TRACEFS_DIRS[0]);
    if !target.is_dir() {
        return Err(format!(
            "{} does not exist (kernel without tracefs?)",
            target.display()
        ));
    }
    mount_tracefs(target).map_err(|err| {
        format!(
            "tracefs is not mounted and mounting it at {} failed: {err}",
            target.display()
        )
    })?;
    find().ok_or_else(|| {
        format!(
            "mounted tracefs at {} but it has no events/",
            target.display()
        )
    })
}

fn find() -> Option<PathBuf> {
    TRACEFS_DIRS
        .iter()
        .map(PathBuf::from)
        .find(|dir| dir.join("events").is_dir())
}

fn mount_tracefs(target: &Path) -> io::Result<()> {
    nix::mount::mount(
        Some("tracefs"),
        target,
        Some("tracefs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .map_err(io::Error::from)
}

/// The text of `events/<category>/<name>/format` under `tracefs`.
pub fn read_format(tracefs: &Path, category: &str, name: &str) -> Result<String, String> {
    let path = tracefs
        .join("events")
        .join(category)
        .join(name)
        .join("format");
    fs::read_to_string(&path).map_err(|err| format!("cannot read {}: {err}", path.display()))
}

/// The byte offset of `field` in a tracepoint `format` text, e.g. 20 for
/// `field:pid_t child_pid;\toffset:20;\tsize:4;\tsigned:1;`.
pub fn field_offset(format: &str, field: &str) -> Option<u32> {
    format.lines().find_map(|line| {
        let decl = line.trim().strip_prefix("field:")?;
        let (decl, rest) = decl.split_once(';')?;
        // The field name is the last word of the declaration, minus any array suffix.
        let name = decl.rsplit([' ', '\t']).next()?;
        let name = name.split('[').next()?;
        if name != field {
            return None;
        }
        let offset = rest.trim().strip_prefix("offset:")?;
        offset.split(';').next()?.trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORK_6_18: &str = "name: sched_process_fork
ID: 366
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:__data_loc char[] parent_comm;\toffset:8;\tsize:4;\tsigned:0;
\tfield:pid_t parent_pid;\toffset:12;\tsize:4;\tsigned:1;
\tfield:__data_loc char[] child_comm;\toffset:16;\tsize:4;\tsigned:0;
\tfield:pid_t child_pid;\toffset:20;\tsize:4;\tsigned:1;

print fmt: \"comm=%s pid=%d child_comm=%s child_pid=%d\"";

    const FORK_6_1: &str = "format:
\tfield:char parent_comm[16];\toffset:8;\tsize:16;\tsigned:0;
\tfield:pid_t parent_pid;\toffset:24;\tsize:4;\tsigned:1;
\tfield:char child_comm[16];\toffset:28;\tsize:16;\tsigned:0;
\tfield:pid_t child_pid;\toffset:44;\tsize:4;\tsigned:1;";

    const EXIT_6_18: &str = "format:
\tfield:char comm[16];\toffset:8;\tsize:16;\tsigned:0;
\tfield:pid_t pid;\toffset:24;\tsize:4;\tsigned:1;
\tfield:int prio;\toffset:28;\tsize:4;\tsigned:1;
\tfield:bool group_dead;\toffset:32;\tsize:1;\tsigned:0;";

    #[test]
    fn finds_fields_in_both_fork_layouts() {
        assert_eq!(field_offset(FORK_6_18, "child_pid"), Some(20));
        assert_eq!(field_offset(FORK_6_18, "parent_pid"), Some(12));
        assert_eq!(field_offset(FORK_6_1, "child_pid"), Some(44));
        assert_eq!(field_offset(FORK_6_1, "child_comm"), Some(28));
    }

    #[test]
    fn optional_fields_are_absent_on_older_kernels() {
        assert_eq!(field_offset(EXIT_6_18, "group_dead"), Some(32));
        assert_eq!(field_offset(FORK_6_1, "group_dead"), None);
        // A name that is only a prefix or suffix of a field must not match.
        assert_eq!(field_offset(EXIT_6_18, "dead"), None);
        assert_eq!(field_offset(FORK_6_18, "pid"), None);
    }

    #[test]
    fn the_running_kernel_describes_fork_and_exit() {
        let Some(dir) = find() else {
            eprintln!("skipped: tracefs is not mounted");
            return;
        };
        let fork = read_format(&dir, "sched", "sched_process_fork").unwrap();
        assert!(field_offset(&fork, "child_pid").is_some(), "{fork}");
        let exit = read_format(&dir, "sched", "sched_process_exit").unwrap();
        assert!(field_offset(&exit, "pid").is_some(), "{exit}");
    }
}
