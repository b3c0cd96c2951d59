//! Path resolution inside the view.

use super::fixture::*;
use crate::vfs::*;

fn found(v: &View<Layer>, path: &str, follow: bool) -> (String, Option<ViewEntry>) {
    match v.resolve(path.as_bytes(), ROOT, follow).unwrap() {
        Resolved::View { rel, entry, .. } => (String::from_utf8(rel).unwrap(), entry),
        Resolved::Outside(p) => panic!("outside: {}", String::from_utf8_lossy(&p)),
    }
}

fn rel_of(v: &View<Layer>, path: &str, cwd: &str) -> String {
    match v.resolve(path.as_bytes(), cwd.as_bytes(), true).unwrap() {
        Resolved::View { rel, .. } => String::from_utf8(rel).unwrap(),
        Resolved::Outside(p) => panic!("outside: {}", String::from_utf8_lossy(&p)),
    }
}

fn outside(v: &View<Layer>, path: &str, cwd: &str) -> String {
    match v.resolve(path.as_bytes(), cwd.as_bytes(), true).unwrap() {
        Resolved::Outside(p) => String::from_utf8(p).unwrap(),
        r => panic!("inside: {r:?}"),
    }
}

fn err(v: &View<Layer>, path: &str, follow: bool) -> Errno {
    v.resolve(path.as_bytes(), ROOT, follow).unwrap_err()
}

#[test]
fn absolute_path_into_the_view_resolves_to_its_entry() {
    let v = view();
    let (rel, e) = found(&v, "/home/u/proj/src/main.rs", true);
    assert_eq!(rel, "src/main.rs");
    assert_eq!(e.unwrap().content(), Some(Content::Blob(blob("main"))));
}

#[test]
fn relative_path_resolves_against_cwd_in_the_view() {
    let v = view();
    assert_eq!(rel_of(&v, "main.rs", "/home/u/proj/src"), "src/main.rs");
    assert_eq!(rel_of(&v, "src/main.rs", "/home/u/proj"), "src/main.rs");
}

#[test]
fn relative_path_from_cwd_outside_can_enter_the_view() {
    let v = view();
    assert_eq!(rel_of(&v, "proj/src", "/home/u"), "src");
    assert_eq!(rel_of(&v, "../u/proj/src", "/home/other"), "src");
}

#[test]
fn the_root_by_name_is_the_empty_rel() {
    let v = view();
    let (rel, e) = found(&v, "/home/u/proj", true);
    assert_eq!(rel, "");
    assert!(e.unwrap().is_dir());
}

#[test]
fn dot_and_repeated_slashes_are_ignored() {
    let v = view();
    assert_eq!(rel_of(&v, ".//src/./deep//x.rs", ROOT_STR), "src/deep/x.rs");
}

const ROOT_STR: &str = "/home/u/proj";

#[test]
fn dotdot_goes_up_inside_the_view() {
    let v = view();
    assert_eq!(rel_of(&v, "src/deep/../main.rs", ROOT_STR), "src/main.rs");
}

#[test]
fn dotdot_above_the_root_leaves_the_view() {
    let v = view();
    assert_eq!(outside(&v, "../x", ROOT_STR), "/home/u/x");
    assert_eq!(outside(&v, "src/../../other", ROOT_STR), "/home/u/other");
}

#[test]
fn dotdot_above_the_root_and_back_in_re_enters_the_view() {
    let v = view();
    assert_eq!(rel_of(&v, "../proj/src", ROOT_STR), "src");
}

#[test]
fn dotdot_of_slash_is_slash() {
    let v = view();
    assert_eq!(outside(&v, "/../../etc", ROOT_STR), "/etc");
}

#[test]
fn path_outside_the_view_is_outside() {
    let v = view();
    assert_eq!(outside(&v, "/etc/passwd", ROOT_STR), "/etc/passwd");
    assert_eq!(outside(&v, "/home/u/projX/a", ROOT_STR), "/home/u/projX/a");
}

#[test]
fn dotdot_after_an_unknown_outside_name_is_left_to_the_kernel() {
    let v = view();
    // /tmp/l may be a symlink on the real disk: "/tmp/l/.." is not "/tmp".
    assert_eq!(outside(&v, "/tmp/l/../x", ROOT_STR), "/tmp/l/../x");
}

#[test]
fn relative_symlink_resolves_inside_the_view() {
    let v = view();
    let (rel, e) = found(&v, "link_main", true);
    assert_eq!(rel, "src/main.rs");
    assert!(e.unwrap().is_file());
}

#[test]
fn symlink_in_the_middle_is_followed() {
    let v = view();
    assert_eq!(rel_of(&v, "link_src/deep/x.rs", ROOT_STR), "src/deep/x.rs");
}

#[test]
fn absolute_symlink_into_the_view_root_resolves_inside() {
    let v = view();
    assert_eq!(rel_of(&v, "abs_src/main.rs", ROOT_STR), "src/main.rs");
}

#[test]
fn absolute_symlink_out_of_the_view_is_outside_with_the_target_path() {
    let v = view();
    assert_eq!(outside(&v, "out_etc/passwd", ROOT_STR), "/etc/passwd");
}

#[test]
fn relative_symlink_climbing_out_is_outside() {
    let v = view();
    assert_eq!(outside(&v, "up_link", ROOT_STR), "/home/u/other");
}

#[test]
fn last_symlink_not_followed_when_asked() {
    let v = view();
    let (rel, e) = found(&v, "link_main", false);
    assert_eq!(rel, "link_main");
    assert!(e.unwrap().is_symlink());
}

#[test]
fn trailing_slash_forces_following_the_last_symlink() {
    let v = view();
    let (rel, e) = found(&v, "link_src/", false);
    assert_eq!(rel, "src");
    assert!(e.unwrap().is_dir());
}

#[test]
fn trailing_slash_on_a_file_is_enotdir() {
    let v = view();
    assert_eq!(err(&v, "src/main.rs/", true), Errno::ENOTDIR);
}

#[test]
fn file_used_as_a_directory_is_enotdir() {
    let v = view();
    assert_eq!(err(&v, "src/main.rs/x", true), Errno::ENOTDIR);
}

#[test]
fn missing_middle_component_is_enoent() {
    let v = view();
    assert_eq!(err(&v, "nope/x", true), Errno::ENOENT);
}

#[test]
fn missing_last_component_gives_no_entry_under_an_existing_parent() {
    let v = view();
    let r = v.resolve(b"src/new.rs", ROOT, true).unwrap();
    assert_eq!(
        r,
        Resolved::View {
            rel: rel("src/new.rs"),
            entry: None,
            last: Last::Normal,
            trailing_slash: false
        }
    );
}

#[test]
fn dangling_symlink_followed_gives_no_entry_at_its_target() {
    let v = view();
    let (rel, e) = found(&v, "dangling", true);
    assert_eq!(rel, "nothing");
    assert!(e.is_none());
}

#[test]
fn symlink_loop_is_eloop() {
    let v = view();
    assert_eq!(err(&v, "loop", true), Errno::ELOOP);
}

#[test]
fn forty_symlinks_resolve_and_forty_one_are_eloop() {
    let mut entries = vec![
        ("".to_string(), dir(0o755)),
        ("f".to_string(), file("f", 0o644)),
    ];
    for i in 1..=41 {
        let target = if i == 1 {
            "f".to_string()
        } else {
            format!("l{}", i - 1)
        };
        entries.push((format!("l{i}"), symlink(&target)));
    }
    let l: Layer = entries
        .into_iter()
        .map(|(p, e)| (p.into_bytes(), e))
        .collect();
    let v = View::new(ROOT, OWNER, vec![l]).unwrap();
    // l40 -> l39 -> ... -> l1 -> f: 40 links followed.
    assert!(matches!(
        v.resolve(b"l40", ROOT, true).unwrap(),
        Resolved::View { entry: Some(_), .. }
    ));
    assert_eq!(v.resolve(b"l41", ROOT, true).unwrap_err(), Errno::ELOOP);
}

#[test]
fn path_of_4096_bytes_is_enametoolong() {
    let v = view();
    let long = "a/".repeat(2048);
    assert_eq!(long.len(), 4096);
    assert_eq!(err(&v, &long, true), Errno::ENAMETOOLONG);
}

#[test]
fn path_of_4095_bytes_is_not_too_long() {
    let v = view();
    let mut p = "./".repeat(2047);
    p.push('.');
    assert_eq!(p.len(), 4095);
    assert_eq!(rel_of(&v, &p, ROOT_STR), "");
}

/// A projection makes a program's relative path absolute against its cwd; below a deep
/// cwd that is longer than PATH_MAX, and must still resolve.
#[test]
fn absolute_path_longer_than_path_max_resolves() {
    let v = view();
    let mut p = ROOT_STR.to_string();
    while p.len() < 5000 {
        p.push_str("/.");
    }
    p.push_str("/src");
    assert_eq!(rel_of(&v, &p, ROOT_STR), "src");
}

#[test]
fn name_over_255_bytes_is_enametoolong() {
    let v = view();
    assert_eq!(err(&v, &"n".repeat(256), true), Errno::ENAMETOOLONG);
    assert!(v.resolve("n".repeat(255).as_bytes(), ROOT, true).is_ok());
}

#[test]
fn empty_path_is_enoent() {
    let v = view();
    assert_eq!(err(&v, "", true), Errno::ENOENT);
}

#[test]
fn last_component_kinds_are_reported() {
    let v = view();
    let last = |p: &str| match v.resolve(p.as_bytes(), ROOT, true).unwrap() {
        Resolved::View { last, .. } => last,
        r => panic!("{r:?}"),
    };
    assert_eq!(last("src/."), Last::Dot);
    assert_eq!(last("src/.."), Last::DotDot);
    assert_eq!(last("src"), Last::Normal);
    let at_slash = View::new(b"/", OWNER, vec![base()]).unwrap();
    assert!(matches!(
        at_slash.resolve(b"/", b"/", true).unwrap(),
        Resolved::View {
            last: Last::Root,
            ..
        }
    ));
}

#[test]
fn view_at_slash_keeps_dotdot_at_the_root() {
    let v = View::new(b"/", OWNER, vec![base()]).unwrap();
    assert!(matches!(
        v.resolve(b"/../src/main.rs", b"/", true).unwrap(),
        Resolved::View { ref rel, .. } if rel == b"src/main.rs"
    ));
}

#[test]
fn search_permission_is_checked_on_each_directory() {
    let v = foreign_view();
    let u = user();
    // closed is 0700 and owned by 2000: uid 1000 may not search it.
    assert_eq!(
        v.resolve_as(&u, b"closed/f", ROOT, true).unwrap_err(),
        Errno::EACCES
    );
    // Without credentials (resolve) nothing is checked.
    assert!(v.resolve(b"closed/f", ROOT, true).is_ok());
}

#[test]
fn search_permission_is_bypassed_by_a_privileged_caller() {
    let v = foreign_view();
    assert!(v.resolve_as(&root(), b"closed/f", ROOT, true).is_ok());
}

#[test]
fn cwd_deleted_from_the_view_makes_relative_lookups_enoent() {
    let mut v = view();
    let u = user();
    ok(v.rmdir(&at(&u), b"empty"));
    assert_eq!(
        v.resolve(b"x", b"/home/u/proj/empty", true).unwrap_err(),
        Errno::ENOENT
    );
}

#[test]
fn lookups_see_the_delta() {
    let mut v = view();
    let u = user();
    ok(v.mkdir(&at(&u), b"new", 0o755));
    ok(v.symlink(&at(&u), b"new", b"to_new"));
    assert_eq!(rel_of(&v, "to_new/", ROOT_STR), "new");
}
