//! `vrift promote NAME [-m MSG] [--author A] [--onto REV]`: turn a session into a commit at
//! `refs/vibes/NAME`. Blobs, trees and the commit go into the repository's object database;
//! the ref moves by compare-and-swap from the value this session last promoted (or from
//! nothing), so of two promotes at once exactly one wins. HEAD, branches and the index never
//! move.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use gix::refs::transaction::{Change, LogChange, PreviousValue, RefEdit, RefLog};
use gix::refs::Target;
use vrift_common::manifest::display_path;
use vrift_common::store::Store;

use crate::session::{self, base, enter, tree, Session};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The session to promote.
    pub name: String,
    /// The commit message (default: "vrift session NAME").
    #[arg(short, long)]
    pub message: Option<String>,
    /// The author, as "Name <email>" (default: user.name and user.email of the repository's
    /// configuration, else "vrift <vrift@localhost>").
    #[arg(long)]
    pub author: Option<String>,
    /// Merge the session's changes onto REV (3-way, from the session's base): the commit's
    /// parent is REV. On conflict nothing moves, the paths are listed and the exit status is 1.
    #[arg(long, value_name = "REV")]
    pub onto: Option<String>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    session::validate_name(&args.name)?;
    let store = Store::open_default()?;
    let _lock = store.lock_shared()?;
    let cwd = std::env::current_dir().context("current directory")?;
    let repo = session::discover(&cwd)?;
    let git_dir = repo.git_dir().canonicalize()?;
    let Some(mut s) = Session::open(&store, &git_dir, &args.name)? else {
        bail!("no session named {} in {}", args.name, git_dir.display());
    };
    let view = enter::current_view(&store, &s)?;
    let base_commit = gix::ObjectId::from_hex(s.record.base_commit.as_bytes())?;
    let base_tree = repo.find_commit(base_commit)?.tree_id()?.detach();
    let written = tree::write(&store, &repo, &view, base_tree)?;
    for d in &written.empty_dirs {
        eprintln!(
            "vrift: {}/: an empty directory cannot be stored in git; left out",
            display_path(d)
        );
    }
    let (tree_id, parent) = match &args.onto {
        None => {
            let parent = match &s.record.promoted {
                Some(p) => gix::ObjectId::from_hex(p.as_bytes())?,
                None => base_commit,
            };
            (written.tree, parent)
        }
        Some(onto) => {
            let onto_commit = base::resolve_commit(&repo, onto)?;
            let onto_tree = repo.find_commit(onto_commit)?.tree_id()?.detach();
            let labels = gix::merge::blob::builtin_driver::text::Labels {
                ancestor: Some("base".into()),
                current: Some(args.name.as_str().into()),
                other: Some(onto.as_str().into()),
            };
            let options = repo.tree_merge_options()?;
            let mut outcome =
                repo.merge_trees(base_tree, written.tree, onto_tree, labels, options)?;
            let how = gix::merge::tree::TreatAsUnresolved::default();
            if outcome.has_unresolved_conflicts(how) {
                let mut paths: Vec<String> = outcome
                    .conflicts
                    .iter()
                    .filter(|c| c.is_unresolved(how))
                    .map(|c| c.ours.location().to_string())
                    .collect();
                paths.sort();
                paths.dedup();
                eprintln!(
                    "vrift: session {} does not merge cleanly onto {onto}; nothing was \
                     promoted. Conflicting paths:",
                    args.name
                );
                for p in paths {
                    println!("{p}");
                }
                return Ok(ExitCode::from(1));
            }
            (outcome.tree.write()?.detach(), onto_commit)
        }
    };
    let now = gix::date::Time::now_local_or_utc();
    let author = signature(&repo, args.author.as_deref(), now)?;
    let message = args
        .message
        .clone()
        .unwrap_or_else(|| format!("vrift session {}", args.name));
    let commit = gix::objs::Commit {
        tree: tree_id,
        parents: [parent].into_iter().collect(),
        author: author.clone(),
        committer: author,
        encoding: None,
        message: format!("{}\n", message.trim_end()).into(),
        extra_headers: Vec::new(),
    };
    let id = repo.write_object(&commit)?.detach();
    let name = format!("refs/vibes/{}", args.name);
    let expected = match &s.record.promoted {
        Some(p) => {
            PreviousValue::MustExistAndMatch(Target::Object(gix::ObjectId::from_hex(p.as_bytes())?))
        }
        None => PreviousValue::MustNotExist,
    };
    let edit = RefEdit {
        change: Change::Update {
            log: LogChange {
                mode: RefLog::AndReference,
                force_create_reflog: false,
                message: format!("vrift promote: {}", message.lines().next().unwrap_or("")).into(),
            },
            expected,
            new: Target::Object(id),
        },
        name: name.as_str().try_into()?,
        deref: false,
    };
    if let Err(e) = repo.edit_reference(edit) {
        bail!(
            "{name} was not updated: it moved since this session last promoted (another \
             promote won?): {e}"
        );
    }
    s.record.promoted = Some(id.to_hex().to_string());
    s.save()?;
    println!("{id}");
    eprintln!("vrift: promoted session {} to {name}", args.name);
    Ok(ExitCode::SUCCESS)
}

/// "Name <email>" as given, else the repository's user, else vrift's own.
fn signature(
    repo: &gix::Repository,
    given: Option<&str>,
    time: gix::date::Time,
) -> Result<gix::actor::Signature> {
    let (name, email) = match given {
        Some(a) => {
            let (n, rest) = a
                .split_once('<')
                .with_context(|| format!("--author {a:?}: expected \"Name <email>\""))?;
            let email = rest
                .strip_suffix('>')
                .with_context(|| format!("--author {a:?}: expected \"Name <email>\""))?;
            (n.trim().to_string(), email.trim().to_string())
        }
        None => {
            let cfg = repo.config_snapshot();
            let name = cfg.string("user.name").map(|s| s.to_string());
            let email = cfg.string("user.email").map(|s| s.to_string());
            (
                name.unwrap_or_else(|| "vrift".into()),
                email.unwrap_or_else(|| "vrift@localhost".into()),
            )
        }
    };
    Ok(gix::actor::Signature {
        name: name.into(),
        email: email.into(),
        time,
    })
}
