//! Remote stores through the binary, against a real Garage on 127.0.0.1: two stores (two
//! `VRIFT_HOME`s, standing for two machines) share trees through it; pushes are
//! incremental and resumable; nothing from the remote enters a store unverified; failures
//! give clear errors; remote gc deletes only what nothing references.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use vrift_common::hash::Hash;
use vrift_common::manifest::{EntryKind, Manifest};
use vrift_common::store::Store;
use vrift_tests::garage::{self, Garage, BUCKET, REGION, SECRET_KEY};
use vrift_tests::{output_within, run_expect, write, Env, RUN_TIMEOUT};

const PREFIX: &str = "team/cache";

/// A Garage for one test, or a printed reason and `None`.
fn garage() -> Option<Garage> {
    Garage::start()
}

/// `vrift ARGS` in `cwd` with this env's store and the server's credentials.
fn vr(env: &Env, g: &Garage, cwd: &Path, args: &[&str]) -> Command {
    let mut c = env.vrift(cwd, args);
    g.creds(&mut c);
    c
}

fn ok(cmd: &mut Command) -> Output {
    let out = output_within(cmd, RUN_TIMEOUT);
    assert!(
        out.status.success(),
        "{cmd:?}: {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Run, expect failure; returns stderr.
fn fails(cmd: &mut Command) -> String {
    let out = output_within(cmd, RUN_TIMEOUT);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success(),
        "{cmd:?} succeeded\nstdout:\n{}\nstderr:\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    stderr
}

fn json(cmd: &mut Command) -> Value {
    let out = ok(cmd);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn add_remote(env: &Env, g: &Garage, name: &str) {
    let url = format!("s3://{BUCKET}/{PREFIX}");
    let endpoint = g.endpoint();
    ok(&mut env.vrift(
        env.dir.path(),
        &[
            "remote",
            "add",
            name,
            &url,
            "--endpoint",
            &endpoint,
            "--region",
            REGION,
        ],
    ));
}

/// `n` files of a few hundred bytes to a few KB under `dir`, named and filled from `tag`,
/// plus a script.
fn tree(dir: &Path, tag: &str, n: usize) {
    for i in 0..n {
        let len = 100 + (i * 37) % 3000;
        let body: String = format!("{tag}-{i};").repeat(len / 8 + 1);
        write(&dir.join(format!("src/d{}/{tag}{i}.txt", i / 40)), body);
    }
    write(
        &dir.join("bin/hello.sh"),
        "#!/bin/sh\necho hello from the view\n",
    );
    let mut perm = std::fs::metadata(dir.join("bin/hello.sh"))
        .unwrap()
        .permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(dir.join("bin/hello.sh"), perm).unwrap();
}

/// Ingest `dir` into env's store (`vrift init`); the manifest's hash.
fn init(env: &Env, dir: &Path) -> Hash {
    ok(&mut env.vrift(dir, &["init"]));
    Manifest::load(&dir.join("vrift.manifest")).unwrap().hash()
}

/// What the test program prints in a view: every path, every file's content digest, and
/// the output of a script run from the view.
const PROGRAM: &str =
    "find . | LC_ALL=C sort; find . -type f | LC_ALL=C sort | xargs cat | cksum; ./bin/hello.sh";

fn run_in_view(env: &Env, g: &Garage, manifest: &str) -> String {
    let work = tempfile::tempdir_in(env.dir.path()).unwrap();
    let out = ok(&mut vr(
        env,
        g,
        work.path(),
        &["run", "--manifest", manifest, "--", "sh", "-c", PROGRAM],
    ));
    String::from_utf8(out.stdout).unwrap()
}

fn file_hashes(m: &Manifest) -> Vec<Hash> {
    let mut v: Vec<Hash> = m
        .iter()
        .filter(|(_, e)| e.kind == EntryKind::File)
        .map(|(_, e)| e.hash)
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Every blob of the store is what its name says, and no temp file is left.
fn store_sound(env: &Env) {
    let store = Store::open(&env.home()).unwrap();
    for (h, _) in store.list_blobs().unwrap() {
        assert!(store.verify_blob(&h).unwrap(), "blob {h} is corrupt");
    }
    assert!(store.tmp_leftovers().unwrap().is_empty());
}

#[test]
fn two_stores_share_trees_through_the_remote() {
    let Some(g) = garage() else { return };
    let (a, b, c) = (Env::new(), Env::new(), Env::new());
    for env in [&a, &b, &c] {
        add_remote(env, &g, "team");
    }
    let proj = a.mkdir("proj");
    tree(&proj, "a", 300);
    // One blob large enough to go up in parts.
    let big: Vec<u8> = (0..(40u32 << 20) / 4)
        .flat_map(|i| i.to_le_bytes())
        .collect();
    write(&proj.join("big.bin"), &big);
    let hash = init(&a, &proj);
    let hex = hash.to_hex();
    let manifest = Manifest::load(&proj.join("vrift.manifest")).unwrap();
    let blobs = file_hashes(&manifest);

    let pushed = json(&mut vr(&a, &g, &proj, &["push", "--json", "--ref", "main"]));
    assert_eq!(pushed["manifests"][0], hex.as_str());
    assert_eq!(pushed["uploaded"], blobs.len());
    assert_eq!(pushed["already_complete"], 0);
    let remote = g.remote("check", PREFIX);
    let on_remote = remote.list_raw("blobs").unwrap();
    assert_eq!(
        on_remote.len(),
        blobs.len() + 1,
        "every blob and the manifest"
    );
    let big_key = format!("blobs/{}", Hash::of(&big).to_hex());
    assert!(on_remote.contains(&(big_key, big.len() as u64)));
    assert_eq!(
        remote.get_raw("refs/main").unwrap(),
        format!("{hex}\n").into_bytes()
    );

    // What A's program sees over its own store.
    let a_manifest = a.dir.path().join("a.manifest");
    std::fs::copy(proj.join("vrift.manifest"), &a_manifest).unwrap();
    let a_out = run_in_view(&a, &g, a_manifest.to_str().unwrap());
    assert!(a_out.contains("./src/d0/a0.txt") && a_out.contains("hello from the view"));

    // B never sees A's store: move it out of reach.
    let hidden = a.dir.path().join("store-elsewhere");
    std::fs::rename(a.home(), &hidden).unwrap();

    let work = b.mkdir("work");
    let pulled = json(&mut vr(&b, &g, &work, &["pull", "--json", &hex]));
    assert_eq!(pulled["manifest"], hex.as_str());
    assert_eq!(pulled["fetched"], blobs.len());
    let b_store = Store::open(&b.home()).unwrap();
    for h in &blobs {
        assert!(b_store.contains(h), "{h} not pulled");
    }
    store_sound(&b);
    let path = pulled["path"].as_str().unwrap().to_string();
    assert_eq!(Manifest::load(Path::new(&path)).unwrap().hash(), hash);
    // Running by hash uses what was pulled, and sees exactly A's tree.
    assert_eq!(run_in_view(&b, &g, &hex), a_out);
    // A second pull fetches nothing.
    let again = json(&mut vr(&b, &g, &work, &["pull", "--json", &hex]));
    assert_eq!(again["fetched"], 0);

    // C runs by hash without a pull: vrift run fetches what it needs from the default remote.
    assert_eq!(run_in_view(&c, &g, &hex), a_out);
    store_sound(&c);
    // A ref names the same manifest.
    let by_ref = json(&mut vr(&c, &g, &work, &["pull", "--json", "main"]));
    assert_eq!(by_ref["manifest"], hex.as_str());
    assert_eq!(by_ref["fetched"], 0);

    // A hash the remote does not have: a clear error naming the object.
    let absent = Hash::of(b"no such manifest").to_hex();
    let err = fails(&mut vr(
        &c,
        &g,
        &work,
        &["run", "--manifest", &absent, "--", "true"],
    ));
    assert!(
        err.contains(&format!("blobs/{absent}")) && err.contains("not found"),
        "{err}"
    );
}

#[test]
fn a_second_push_sends_no_blob() {
    let Some(g) = garage() else { return };
    let a = Env::new();
    add_remote(&a, &g, "team");
    let proj = a.mkdir("proj");
    tree(&proj, "p", 200);
    let hash = init(&a, &proj);
    let blobs = file_hashes(&Manifest::load(&proj.join("vrift.manifest")).unwrap()).len();

    let first = json(&mut vr(&a, &g, &proj, &["push", "--json"]));
    assert_eq!(first["uploaded"], blobs);
    let remote = g.remote("check", PREFIX);
    let before = remote.list_raw("blobs").unwrap();

    let second = json(&mut vr(&a, &g, &proj, &["push", "--json"]));
    assert_eq!(second["uploaded"], 0, "{second}");
    assert_eq!(second["uploaded_bytes"], 0);
    assert_eq!(second["already_complete"], 1);
    assert_eq!(remote.list_raw("blobs").unwrap(), before);

    // One changed file: exactly that blob goes up (and the new manifest).
    write(&proj.join("src/d0/p0.txt"), "changed content\n");
    let changed = init(&a, &proj);
    assert_ne!(changed, hash);
    let third = json(&mut vr(&a, &g, &proj, &["push", "--json"]));
    assert_eq!(third["uploaded"], 1, "{third}");
    assert_eq!(third["uploaded_bytes"], "changed content\n".len());
    assert_eq!(third["checked"], blobs);
    assert_eq!(remote.list_raw("blobs").unwrap().len(), before.len() + 2);
}

#[test]
fn a_corrupt_object_on_the_remote_is_refused() {
    let Some(g) = garage() else { return };
    let (a, b) = (Env::new(), Env::new());
    add_remote(&a, &g, "team");
    add_remote(&b, &g, "team");
    let proj = a.mkdir("proj");
    tree(&proj, "c", 60);
    let hash = init(&a, &proj);
    ok(&mut vr(&a, &g, &proj, &["push"]));
    let manifest = Manifest::load(&proj.join("vrift.manifest")).unwrap();
    let victim = file_hashes(&manifest)[7];
    let key = format!("blobs/{}", victim.to_hex());
    let remote = g.remote("evil", PREFIX);
    let good = remote.get_raw(&key).unwrap();
    let mut bad = good.clone();
    bad[0] ^= 1;
    remote.put_raw(&key, bad.clone()).unwrap();

    let work = b.mkdir("work");
    let err = fails(&mut vr(&b, &g, &work, &["pull", &hash.to_hex()]));
    assert!(err.contains(&key), "the message names the object: {err}");
    assert!(err.contains("does not match"), "{err}");
    let store = Store::open(&b.home()).unwrap();
    assert!(!store.contains(&victim));
    assert!(
        !store.contains(&Hash::of(&bad)),
        "the bad content is not kept either"
    );
    store_sound(&b);
    // Nothing registered a manifest whose blobs are not all there.
    assert!(store.roots().unwrap().is_empty());

    // Repaired on the remote, the same pull completes.
    remote.put_raw(&key, good).unwrap();
    let pulled = json(&mut vr(&b, &g, &work, &["pull", "--json", &hash.to_hex()]));
    assert!(pulled["fetched"].as_u64().unwrap() >= 1);
    assert!(store.contains(&victim));
    store_sound(&b);

    // A tampered manifest object is refused the same way.
    let c = Env::new();
    add_remote(&c, &g, "team");
    let mkey = format!("blobs/{}", hash.to_hex());
    let mut mbytes = remote.get_raw(&mkey).unwrap();
    let last = mbytes.len() - 1;
    mbytes[last] ^= 0xff;
    remote.put_raw(&mkey, mbytes).unwrap();
    let err = fails(&mut vr(&c, &g, &work, &["pull", &hash.to_hex()]));
    assert!(
        err.contains(&mkey) && err.contains("does not match"),
        "{err}"
    );
    assert!(Store::open(&c.home())
        .unwrap()
        .list_blobs()
        .unwrap()
        .is_empty());
}

#[test]
fn a_push_cut_off_by_the_server_dying_completes_when_retried() {
    let Some(mut g) = garage() else { return };
    let (a, b) = (Env::new(), Env::new());
    add_remote(&a, &g, "team");
    add_remote(&b, &g, "team");
    let proj = a.mkdir("proj");
    tree(&proj, "k", 1500);
    let hash = init(&a, &proj);
    let total = file_hashes(&Manifest::load(&proj.join("vrift.manifest")).unwrap()).len();

    // One upload at a time, so the push is certainly still going when the server dies.
    let mut push = vr(&a, &g, &proj, &["push", "--json"]);
    push.env("VRIFT_REMOTE_JOBS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = push.spawn().unwrap();
    let remote = g.remote("watch", PREFIX);
    let mut seen = 0;
    let started = vrift_tests::wait_until(RUN_TIMEOUT, || {
        seen = remote.list_raw("blobs").map(|l| l.len()).unwrap_or(0);
        seen >= 20
    });
    assert!(started, "the push never got going");
    g.kill();
    let t = Instant::now();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot reach"), "{stderr}");
    assert!(t.elapsed() < Duration::from_secs(90), "gave up too slowly");
    assert!(!stderr.contains(SECRET_KEY));
    // The remote holds no marker: it never claims the manifest.
    g.spawn();
    assert!(remote.list_raw("manifests").unwrap().is_empty());

    let retried = json(&mut vr(&a, &g, &proj, &["push", "--json"]));
    let sent = retried["uploaded"].as_u64().unwrap() as usize;
    assert!(
        sent <= total - seen,
        "the retry resends at most what was missing ({sent})"
    );
    assert_eq!(retried["checked"], total);
    assert_eq!(remote.list_raw("manifests").unwrap().len(), 1);

    let work = b.mkdir("work");
    let pulled = json(&mut vr(&b, &g, &work, &["pull", "--json", &hash.to_hex()]));
    assert_eq!(pulled["fetched"], total);
    store_sound(&b);
}

#[test]
fn bad_credentials_missing_bucket_and_unreachable_endpoint_are_clear_errors() {
    let Some(g) = garage() else { return };
    let a = Env::new();
    add_remote(&a, &g, "team");
    let proj = a.mkdir("proj");
    tree(&proj, "e", 5);
    init(&a, &proj);
    let home = a.dir.path().to_path_buf();

    // A wrong secret, then an unknown key: refused, and the secret is never printed.
    let wrong = "0000000000000000000000000000000000000000000000000000000000000bad";
    let mut c = vr(&a, &g, &proj, &["push"]);
    c.env("AWS_SECRET_ACCESS_KEY", wrong);
    let err = fails(&mut c);
    assert!(err.contains("access denied"), "{err}");
    assert!(!err.contains(wrong) && !err.contains(SECRET_KEY), "{err}");
    let mut c = vr(&a, &g, &proj, &["push"]);
    c.env("AWS_ACCESS_KEY_ID", "GK000000000000000000000000");
    let err = fails(&mut c);
    assert!(err.contains("access denied"), "{err}");

    // No credentials at all.
    let mut c = a.vrift(&proj, &["push"]);
    c.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_PROFILE")
        .env("HOME", &home)
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join("none"))
        .env("AWS_CONFIG_FILE", home.join("none"));
    assert!(fails(&mut c).contains("no AWS credentials"));
    // ... which can come from the shared credentials file instead.
    write(
        &home.join(".aws/credentials"),
        format!(
            "[default]\naws_access_key_id = {}\naws_secret_access_key = {SECRET_KEY}\n",
            garage::ACCESS_KEY
        ),
    );
    let mut c = a.vrift(&proj, &["push"]);
    c.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SHARED_CREDENTIALS_FILE")
        .env_remove("AWS_CONFIG_FILE")
        .env("HOME", &home);
    ok(&mut c);

    // A bucket that does not exist.
    let endpoint = g.endpoint();
    ok(&mut a.vrift(
        &proj,
        &[
            "remote",
            "add",
            "nobucket",
            "s3://no-such-bucket",
            "--endpoint",
            &endpoint,
            "--region",
            REGION,
        ],
    ));
    let err = fails(&mut vr(&a, &g, &proj, &["push", "--remote", "nobucket"]));
    assert!(
        err.contains("no-such-bucket") && err.contains("does not exist"),
        "{err}"
    );

    // An endpoint nobody answers at: a prompt, clear failure.
    let dead = format!("http://127.0.0.1:{}", garage::free_port());
    ok(&mut a.vrift(
        &proj,
        &[
            "remote",
            "add",
            "dead",
            "s3://vrift-test",
            "--endpoint",
            &dead,
            "--region",
            REGION,
        ],
    ));
    let t = Instant::now();
    let err = fails(&mut vr(&a, &g, &proj, &["push", "--remote", "dead"]));
    assert!(err.contains("cannot reach") && err.contains(&dead), "{err}");
    assert!(
        t.elapsed() < Duration::from_secs(60),
        "took {:?}",
        t.elapsed()
    );
    let err = fails(&mut vr(
        &a,
        &g,
        &proj,
        &["pull", "--remote", "dead", &Hash::of(b"x").to_hex()],
    ));
    assert!(err.contains("cannot reach"), "{err}");
}

#[test]
fn concurrent_pushes_of_overlapping_trees_from_two_stores() {
    let Some(g) = garage() else { return };
    let (a, b, c) = (Env::new(), Env::new(), Env::new());
    for env in [&a, &b, &c] {
        add_remote(env, &g, "team");
    }
    let (pa, pb) = (a.mkdir("proj"), b.mkdir("proj"));
    tree(&pa, "shared", 300);
    tree(&pb, "shared", 300);
    tree(&pa.join("own"), "a", 100);
    tree(&pb.join("own"), "b", 100);
    let (ha, hb) = (init(&a, &pa), init(&b, &pb));
    let blobs_a = file_hashes(&Manifest::load(&pa.join("vrift.manifest")).unwrap());
    let blobs_b = file_hashes(&Manifest::load(&pb.join("vrift.manifest")).unwrap());
    let mut all = blobs_a.clone();
    all.extend(&blobs_b);
    all.sort();
    all.dedup();
    assert!(
        all.len() < blobs_a.len() + blobs_b.len(),
        "the trees overlap"
    );

    let spawn = |env: &Env, dir: &Path| {
        let mut cmd = vr(env, &g, dir, &["push", "--json"]);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.spawn().unwrap()
    };
    let (ca, cb) = (spawn(&a, &pa), spawn(&b, &pb));
    for child in [ca, cb] {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let remote = g.remote("check", PREFIX);
    assert_eq!(remote.list_raw("blobs").unwrap().len(), all.len() + 2);
    assert_eq!(remote.list_raw("manifests").unwrap().len(), 2);

    let work = c.mkdir("work");
    for h in [ha, hb] {
        ok(&mut vr(&c, &g, &work, &["pull", &h.to_hex()]));
    }
    let store = Store::open(&c.home()).unwrap();
    for h in &all {
        assert!(store.contains(h));
    }
    store_sound(&c);
    let report = json(&mut vr(
        &c,
        &g,
        &work,
        &["gc", "--remote", "team", "--json"],
    ));
    assert_eq!(report["unreferenced_blobs"], 0, "{report}");
    assert_eq!(report["referenced"], all.len() + 2);
}

#[test]
fn remote_gc_deletes_only_what_no_pushed_manifest_or_ref_references() {
    let Some(g) = garage() else { return };
    let (a, b) = (Env::new(), Env::new());
    add_remote(&a, &g, "team");
    add_remote(&b, &g, "team");
    let proj = a.mkdir("proj");
    tree(&proj, "g", 30);
    let hash = init(&a, &proj);
    ok(&mut vr(&a, &g, &proj, &["push", "--ref", "main"]));
    let remote = g.remote("check", PREFIX);
    let stray = b"left by an interrupted push".to_vec();
    let stray_key = format!("blobs/{}", Hash::of(&stray).to_hex());
    remote.put_raw(&stray_key, stray).unwrap();
    remote
        .put_raw("blobs/README", b"not vrift's".to_vec())
        .unwrap();
    let before = remote.list_raw("blobs").unwrap();

    let dry = json(&mut vr(
        &a,
        &g,
        &proj,
        &["gc", "--remote", "team", "--json", "--min-age", "0"],
    ));
    assert_eq!(dry["unreferenced_blobs"], 1, "{dry}");
    assert!(dry["unreferenced"][0]["key"]
        .as_str()
        .unwrap()
        .ends_with(&stray_key));
    assert_eq!(
        remote.list_raw("blobs").unwrap(),
        before,
        "a dry run deletes nothing"
    );
    // Young garbage is kept by default: it may belong to a push under way.
    let young = json(&mut vr(
        &a,
        &g,
        &proj,
        &["gc", "--remote", "team", "--json", "--delete"],
    ));
    assert_eq!(young["young"], 1);
    assert_eq!(remote.list_raw("blobs").unwrap(), before);

    // The ref alone keeps the manifest once its marker is gone.
    let marker = format!("manifests/{}", hash.to_hex());
    assert!(remote
        .list_raw("manifests")
        .unwrap()
        .iter()
        .any(|(k, _)| *k == marker));
    remote.delete_raw(&marker).unwrap();
    let deleted = json(&mut vr(
        &a,
        &g,
        &proj,
        &[
            "gc",
            "--remote",
            "team",
            "--json",
            "--delete",
            "--min-age",
            "0",
        ],
    ));
    assert_eq!(deleted["unreferenced_blobs"], 1);
    let after = remote.list_raw("blobs").unwrap();
    assert_eq!(after.len(), before.len() - 1);
    assert!(!after.iter().any(|(k, _)| *k == stray_key));
    assert!(
        after.iter().any(|(k, _)| k == "blobs/README"),
        "foreign objects stay"
    );

    let work = b.mkdir("work");
    ok(&mut vr(&b, &g, &work, &["pull", "main"]));
    store_sound(&b);
    assert!(Store::open(&b.home()).unwrap().contains(&hash));
}

#[test]
fn remotes_are_added_listed_defaulted_and_removed() {
    let a = Env::new();
    let dir = a.mkdir("proj");
    let list = |env: &Env| -> Value {
        let out = run_expect(&mut env.vrift(&dir, &["remote", "list", "--json"]), true);
        serde_json::from_slice(&out.stdout).unwrap()
    };
    run_expect(
        &mut a.vrift(
            &dir,
            &[
                "remote",
                "add",
                "one",
                "s3://bucket-one/p",
                "--endpoint",
                "http://127.0.0.1:1",
            ],
        ),
        true,
    );
    run_expect(
        &mut a.vrift(&dir, &["remote", "add", "two", "s3://bucket-two"]),
        true,
    );
    let v = list(&a);
    assert_eq!(v["default"], "one");
    assert_eq!(v["remotes"]["one"]["url"], "s3://bucket-one/p");
    assert_eq!(v["remotes"]["two"]["url"], "s3://bucket-two");

    // Bad input: a clear message naming it, non-zero exit, nothing changed.
    let out = run_expect(
        &mut a.vrift(&dir, &["remote", "add", "x", "bucket-three"]),
        false,
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"bucket-three\": not a remote URL"));
    let out = run_expect(
        &mut a.vrift(&dir, &["remote", "add", "one", "s3://bucket-x"]),
        false,
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("exists already"));
    let out = run_expect(&mut a.vrift(&dir, &["remote", "remove", "nope"]), false);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no remote named \"nope\""));
    assert_eq!(list(&a)["remotes"].as_object().unwrap().len(), 2);

    run_expect(&mut a.vrift(&dir, &["remote", "default", "two"]), true);
    assert_eq!(list(&a)["default"], "two");
    run_expect(
        &mut a.vrift(&dir, &["remote", "default", "one", "--project"]),
        true,
    );
    assert_eq!(
        std::fs::read_to_string(dir.join(".vrift/remote")).unwrap(),
        "one\n"
    );
    run_expect(&mut a.vrift(&dir, &["remote", "remove", "two"]), true);
    let v = list(&a);
    assert_eq!(v["default"], Value::Null);
    assert!(v["remotes"].get("two").is_none());
    // Text listing marks nothing as default now, and names the endpoint.
    let out = run_expect(&mut a.vrift(&dir, &["remote", "list"]), true);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("one\ts3://bucket-one/p\tendpoint http://127.0.0.1:1"),
        "{text}"
    );
}
