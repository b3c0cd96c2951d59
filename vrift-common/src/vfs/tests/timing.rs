//! A rough cost probe, not a benchmark: `cargo test -p vrift-common --release -- --ignored
//! --nocapture timing_probe`.

use std::time::Instant;

use super::fixture::*;
use crate::vfs::*;

#[test]
#[ignore]
fn timing_probe() {
    // 100k files: 1000 packages of 100 files, 3 levels deep.
    let mut l = Layer::new();
    l.insert(Vec::new(), dir(0o755));
    l.insert(b"node_modules".to_vec(), dir(0o755));
    for p in 0..1000 {
        let pkg = format!("node_modules/pkg{p}");
        l.insert(pkg.clone().into_bytes(), dir(0o755));
        l.insert(format!("{pkg}/lib").into_bytes(), dir(0o755));
        for f in 0..100 {
            l.insert(format!("{pkg}/lib/f{f}.js").into_bytes(), file("x", 0o644));
        }
    }
    let mut v = View::new(ROOT, OWNER, vec![l]).unwrap();
    let u = user();
    let n = 200_000u32;
    let time = |what: &str, f: &mut dyn FnMut()| {
        let t = Instant::now();
        for _ in 0..n {
            f();
        }
        println!(
            "{what}: {:.0} ns/op",
            t.elapsed().as_nanos() as f64 / n as f64
        );
    };
    time(
        "resolve outside (/usr/lib/x86_64-linux-gnu/libc.so.6)",
        &mut || {
            let _ = v.resolve(b"/usr/lib/x86_64-linux-gnu/libc.so.6", ROOT, true);
        },
    );
    time("stat node_modules/pkg500/lib/f50.js", &mut || {
        let _ = v.stat(&at(&u), b"node_modules/pkg500/lib/f50.js", true);
    });
    time("open O_RDONLY same file", &mut || {
        let _ = v.open(
            &at(&u),
            b"node_modules/pkg500/lib/f50.js",
            OpenFlags::read_only(),
            0,
        );
    });
    let t = Instant::now();
    for p in 0..1000 {
        let path = format!("node_modules/pkg{p}/lib/new.js");
        let _ = v.open(
            &at(&u),
            path.as_bytes(),
            OpenFlags::write_only().creat(),
            0o644,
        );
    }
    println!(
        "create 1000 files: {:.0} ns/op",
        t.elapsed().as_nanos() as f64 / 1000.0
    );
    let t = Instant::now();
    let _ = v.rename(&at(&u), b"node_modules", b"nm2", RenameMode::Replace);
    println!(
        "rename dir with 101k entries: {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    let t = Instant::now();
    let pending = v.pending();
    for (id, _) in pending {
        v.commit(id, blob("y"), 1, NOW);
    }
    let flat = v.flatten().unwrap();
    println!(
        "commit 1000 + flatten {} entries: {:.1} ms",
        flat.len(),
        t.elapsed().as_secs_f64() * 1e3
    );
}
