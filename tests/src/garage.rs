//! A real Garage S3 server for the remote-store tests: single node on 127.0.0.1, free
//! ports, its own directories, one bucket and one key, stopped when dropped.
//!
//! `scripts/setup.sh` installs the binary (`cargo install --locked garage@2.5.0`); a test
//! that finds none says why and skips.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const ACCESS_KEY: &str = "GK0123456789abcdef01234567";
pub const SECRET_KEY: &str = "5ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e7aaaa";
pub const BUCKET: &str = "vrift-test";
pub const REGION: &str = "garage";

/// The garage binary: `$GARAGE_BIN`, else `garage` on PATH, else `~/.cargo/bin/garage`.
pub fn binary() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("GARAGE_BIN") {
        return Ok(PathBuf::from(p));
    }
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("garage"))
                .collect()
        })
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(Path::new(&home).join(".cargo/bin/garage"));
    }
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| "no garage binary on PATH or in ~/.cargo/bin (scripts/setup.sh installs it with `cargo install --locked garage@2.5.0`)".into())
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Garage {
    bin: PathBuf,
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
}

impl Garage {
    /// Start a server, or `None` (with the reason printed) when there is no garage binary.
    pub fn start() -> Option<Garage> {
        let bin = match binary() {
            Ok(b) => b,
            // CI runs scripts/setup.sh, which installs Garage: there, a missing binary is a
            // failure, never a skip.
            Err(why) if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("{why} (scripts/setup.sh installs it)")
            }
            Err(why) => {
                eprintln!("SKIP: {why}");
                return None;
            }
        };
        let dir = tempfile::Builder::new()
            .prefix("vrift-garage")
            .tempdir()
            .unwrap();
        let port = free_port();
        let rpc = free_port();
        let conf = format!(
            r#"metadata_dir = "{meta}"
data_dir = "{data}"
db_engine = "lmdb"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{secret}"

[s3_api]
s3_region = "{REGION}"
api_bind_addr = "127.0.0.1:{port}"
root_domain = ".s3.garage.localhost"
"#,
            meta = dir.path().join("meta").display(),
            data = dir.path().join("data").display(),
            secret = "0".repeat(64),
        );
        std::fs::write(dir.path().join("garage.toml"), conf).unwrap();
        let mut g = Garage {
            bin,
            dir,
            port,
            child: None,
        };
        g.spawn();
        Some(g)
    }

    /// Start the server process (again, over the same directories and port) and wait until
    /// it serves the bucket.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "garage already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("garage.log"))
            .unwrap();
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(self.dir.path().join("garage.toml"))
            .args(["server", "--single-node", "--default-bucket"])
            .env("GARAGE_DEFAULT_ACCESS_KEY", ACCESS_KEY)
            .env("GARAGE_DEFAULT_SECRET_KEY", SECRET_KEY)
            .env("GARAGE_DEFAULT_BUCKET", BUCKET)
            .env("RUST_LOG", "garage=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start garage");
        self.child = Some(child);
        let port = self.port;
        let listening = crate::wait_until(Duration::from_secs(60), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok() || self.exited()
        });
        assert!(
            listening && !self.exited(),
            "garage did not start: {}",
            self.log()
        );
        // The port answers before the bucket and key exist: poll a listing until it works.
        let remote = self.remote("ready", "");
        let mut last = String::new();
        let ready = crate::wait_until(Duration::from_secs(60), || match remote.check_blocking() {
            Ok(()) => true,
            Err(e) => {
                last = e.to_string();
                false
            }
        });
        assert!(
            ready,
            "garage never served the bucket: {last}\n{}",
            self.log()
        );
    }

    fn exited(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(Some(_))))
    }

    /// Kill the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("garage.log")).unwrap_or_default()
    }

    /// A client on the bucket, under `prefix`, with the server's key.
    pub fn remote(&self, name: &str, prefix: &str) -> vrift_remote::Remote {
        let url = if prefix.is_empty() {
            format!("s3://{BUCKET}")
        } else {
            format!("s3://{BUCKET}/{prefix}")
        };
        let def = vrift_remote::RemoteDef {
            url,
            endpoint: Some(self.endpoint()),
            region: Some(REGION.into()),
        };
        vrift_remote::Remote::open_with(
            name,
            &def,
            vrift_remote::Credentials::new(ACCESS_KEY, SECRET_KEY),
        )
        .unwrap()
    }

    /// Give a `vrift` command this server's credentials (from the environment, as a user
    /// would), and nothing from the machine's own AWS set-up.
    pub fn creds(&self, cmd: &mut Command) {
        cmd.env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .env_remove("VRIFT_REMOTE");
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        self.kill();
    }
}
