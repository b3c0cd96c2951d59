//! `cargo xtask bench remote`: `vrift push`/`pull` to a Garage on 127.0.0.1, side by side
//! with `rclone copy` of the same tree to the same server.
//!
//! Each run uses fresh key prefixes, so every "first" transfer really starts from nothing;
//! vrift and rclone steps are interleaved so that load on the machine hits both alike.
//! Steps: first push / first `rclone copy`; unchanged push / unchanged `rclone copy`; push /
//! `rclone copy` after one file changed (a new manifest: every blob checked, one sent); pull
//! into an empty store / `rclone copy` back into an empty directory; `vrift run --manifest
//! HASH -- true` on an empty store (pull and start-up together).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};
use vrift_tests::garage::{Garage, ACCESS_KEY, BUCKET, REGION, SECRET_KEY};

use crate::gen;
use crate::timing::{median, secs, sync, timed};

struct Opts {
    runs: usize,
    files: u64,
    dirs: u64,
    large: u64,
    large_mib: usize,
    jobs: usize,
    vrift: Option<PathBuf>,
}

fn parse(args: &[String]) -> anyhow::Result<Opts> {
    let mut o = Opts {
        runs: 3,
        files: 50_000,
        dirs: 500,
        large: 4,
        large_mib: 64,
        jobs: 16,
        vrift: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .cloned()
                .with_context(|| format!("{a} needs a value"))
        };
        match a.as_str() {
            "--runs" => o.runs = val()?.parse()?,
            "--files" => o.files = val()?.parse()?,
            "--dirs" => o.dirs = val()?.parse()?,
            "--large" => o.large = val()?.parse()?,
            "--large-mib" => o.large_mib = val()?.parse()?,
            "--jobs" => o.jobs = val()?.parse()?,
            "--vrift" => o.vrift = Some(val()?.into()),
            other => bail!(
                "unknown option {other:?}; options: --runs N --files N --dirs N --large N \
                 --large-mib N --jobs N --vrift PATH"
            ),
        }
    }
    if o.runs == 0 || o.jobs == 0 {
        bail!("--runs and --jobs must be at least 1");
    }
    Ok(o)
}

fn vrift_binary(o: &Opts) -> anyhow::Result<PathBuf> {
    if let Some(p) = &o.vrift {
        return Ok(p.clone());
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    eprintln!("building the release vrift ...");
    let st = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "-p", "vrift-supervisor"])
        .current_dir(root)
        .status()?;
    if !st.success() {
        bail!("cargo build --release -p vrift-supervisor failed");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    Ok(target.join("release/vrift"))
}

struct Bench {
    vrift: PathBuf,
    garage: Garage,
    jobs: usize,
}

impl Bench {
    fn vrift(&self, home: &Path, cwd: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(&self.vrift);
        c.args(args)
            .current_dir(cwd)
            .env("VRIFT_HOME", home)
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("VRIFT_REMOTE_JOBS", self.jobs.to_string());
        c
    }

    fn add_remote(&self, home: &Path, name: &str, prefix: &str) -> anyhow::Result<()> {
        let url = format!("s3://{BUCKET}/{prefix}");
        let ep = self.garage.endpoint();
        timed(&mut self.vrift(
            home,
            Path::new("/"),
            &[
                "remote",
                "add",
                name,
                &url,
                "--endpoint",
                &ep,
                "--region",
                REGION,
            ],
        ))?;
        Ok(())
    }

    /// `rclone copy FROM TO` with the server configured through the environment, with
    /// vrift's number of transfers and existence checks.
    fn rclone(&self, from: &str, to: &str) -> anyhow::Result<Duration> {
        sync()?;
        let (t, _) = timed(
            Command::new("rclone")
                .args(["copy", from, to, "--transfers"])
                // A CA bundle set for HTTPS elsewhere makes rclone refuse a plain-http endpoint.
                .env_remove("AWS_CA_BUNDLE")
                .arg(self.jobs.to_string())
                .args(["--checkers", "64", "--exclude", "/vrift.manifest"])
                .env("RCLONE_CONFIG_G_TYPE", "s3")
                .env("RCLONE_CONFIG_G_PROVIDER", "Other")
                .env("RCLONE_CONFIG_G_ENDPOINT", self.garage.endpoint())
                .env("RCLONE_CONFIG_G_REGION", REGION)
                .env("RCLONE_CONFIG_G_ACCESS_KEY_ID", ACCESS_KEY)
                .env("RCLONE_CONFIG_G_SECRET_ACCESS_KEY", SECRET_KEY)
                .env("RCLONE_CONFIG_G_FORCE_PATH_STYLE", "true"),
        )?;
        Ok(t)
    }
}

fn json(out: &std::process::Output) -> anyhow::Result<serde_json::Value> {
    serde_json::from_slice(&out.stdout)
        .with_context(|| format!("not JSON: {}", String::from_utf8_lossy(&out.stdout)))
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-9)
}

#[derive(Default)]
struct Samples {
    push: Vec<Duration>,
    rclone_push: Vec<Duration>,
    repush: Vec<Duration>,
    rclone_repush: Vec<Duration>,
    changed: Vec<Duration>,
    rclone_changed: Vec<Duration>,
    pull: Vec<Duration>,
    rclone_pull: Vec<Duration>,
    run: Vec<Duration>,
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let o = parse(args)?;
    let vrift = fs::canonicalize(vrift_binary(&o)?).context("the vrift binary")?;
    if Command::new("rclone").arg("version").output().is_err() {
        bail!("rclone not found (scripts/setup.sh installs it)");
    }
    let Some(garage) = Garage::start() else {
        bail!("no garage binary (scripts/setup.sh installs it)");
    };
    let b = Bench {
        vrift,
        garage,
        jobs: o.jobs,
    };
    let work = tempfile::Builder::new()
        .prefix("vrift-bench-remote")
        .tempdir()?;
    let src = work.path().join("tree");
    eprintln!(
        "generating {} small files in {} dirs + {} x {} MiB ...",
        o.files, o.dirs, o.large, o.large_mib
    );
    let stats = gen::tree(&src, o.files, o.dirs, o.large, o.large_mib << 20)?;
    let home_a = work.path().join("store-a");
    let (_, out) = timed(&mut b.vrift(&home_a, &src, &["init", "--json"]))?;
    let files = json(&out)?["files"].clone();
    let mut s = Samples::default();
    for i in 0..o.runs {
        eprintln!("run {}/{} ...", i + 1, o.runs);
        let name = format!("r{i}");
        b.add_remote(&home_a, &name, &format!("vrift{i}"))?;
        sync()?;
        let (t, out) = timed(&mut b.vrift(&home_a, &src, &["push", "--json", "--remote", &name]))?;
        let report = json(&out)?;
        if report["uploaded"] != report["blobs"] || report["blobs"] == 0 {
            bail!(
                "first push sent {} of {} blobs",
                report["uploaded"],
                report["blobs"]
            );
        }
        s.push.push(t);
        let dest = format!("g:{BUCKET}/rclone{i}");
        s.rclone_push.push(b.rclone(src.to_str().unwrap(), &dest)?);

        sync()?;
        let (t, out) = timed(&mut b.vrift(&home_a, &src, &["push", "--json", "--remote", &name]))?;
        if json(&out)?["uploaded"] != 0 {
            bail!("unchanged push sent blobs");
        }
        s.repush.push(t);
        s.rclone_repush
            .push(b.rclone(src.to_str().unwrap(), &dest)?);

        // One file changed: a new manifest, so every blob is checked and one is sent.
        let changed = src.join("pkg000/mod000/file0000.dat");
        fs::write(&changed, format!("changed in run {i}\n"))?;
        timed(&mut b.vrift(&home_a, &src, &["init"]))?;
        let hash = vrift_common::manifest::Manifest::load(&src.join("vrift.manifest"))?
            .hash()
            .to_hex();
        sync()?;
        let (t, out) = timed(&mut b.vrift(&home_a, &src, &["push", "--json", "--remote", &name]))?;
        let report = json(&out)?;
        if report["uploaded"] != 1 {
            bail!("push of one changed file sent {} blobs", report["uploaded"]);
        }
        s.changed.push(t);
        s.rclone_changed
            .push(b.rclone(src.to_str().unwrap(), &dest)?);

        let home_b = work.path().join(format!("store-b{i}"));
        b.add_remote(&home_b, &name, &format!("vrift{i}"))?;
        sync()?;
        let (t, out) = timed(&mut b.vrift(&home_b, work.path(), &["pull", "--json", &hash]))?;
        if json(&out)?["fetched"] != report["blobs"] {
            bail!(
                "pull fetched {} blobs, wanted {}",
                json(&out)?["fetched"],
                report["blobs"]
            );
        }
        s.pull.push(t);
        let back = work.path().join(format!("back{i}"));
        s.rclone_pull.push(b.rclone(&dest, back.to_str().unwrap())?);

        let home_c = work.path().join(format!("store-c{i}"));
        b.add_remote(&home_c, &name, &format!("vrift{i}"))?;
        let empty = work.path().join(format!("view{i}"));
        fs::create_dir_all(&empty)?;
        sync()?;
        let (t, _) =
            timed(&mut b.vrift(&home_c, &empty, &["run", "--manifest", &hash, "--", "true"]))?;
        s.run.push(t);
        for d in [home_b, home_c, back] {
            let _ = fs::remove_dir_all(d);
        }
    }

    let m = |v: &Vec<Duration>| median(v);
    let mib = stats.bytes as f64 / (1 << 20) as f64;
    let mut table = format!(
        "Tree: {files} files ({} small of 100 B-8 KiB in {} dirs; {} x {} MiB), {mib:.0} MiB. \
         Garage 2.5.0 single node on 127.0.0.1, `rclone copy` with `--transfers {j} --checkers 64`, \
         vrift with {j} transfers. Medians of {} runs.\n\n\
         | step | vrift | rclone copy | vrift / rclone |\n| --- | ---: | ---: | ---: |\n",
        o.files,
        stats.dirs,
        o.large,
        o.large_mib,
        o.runs,
        j = o.jobs
    );
    for (name, v, r) in [
        ("first push", m(&s.push), Some(m(&s.rclone_push))),
        ("unchanged push", m(&s.repush), Some(m(&s.rclone_repush))),
        (
            "push after one file changed",
            m(&s.changed),
            Some(m(&s.rclone_changed)),
        ),
        (
            "pull into an empty store",
            m(&s.pull),
            Some(m(&s.rclone_pull)),
        ),
        (
            "`vrift run --manifest HASH -- true`, empty store",
            m(&s.run),
            None,
        ),
    ] {
        match r {
            Some(r) => table.push_str(&format!(
                "| {name} | {} | {} | {:.3}x |\n",
                secs(v),
                secs(r),
                ratio(v, r)
            )),
            None => table.push_str(&format!("| {name} | {} | - | - |\n", secs(v))),
        }
    }
    table.push_str(&format!(
        "\nUnchanged push is {:.0}x faster than rclone's unchanged copy (target: 10x); first push \
         is {:.2}x rclone's time (target: within 1.2x).\n",
        ratio(m(&s.rclone_repush), m(&s.repush)),
        ratio(m(&s.push), m(&s.rclone_push))
    ));
    println!("{table}");
    Ok(())
}
