//! The integration test binary: drives the real `dlcount-pipe` through pipes,
//! signals and files, and checks `report --json --detail` for exact values.
//!
//! Modules by theme; shared helpers live here. No test depends on the
//! machine's speed: waiting is always "poll until a condition holds", with a
//! generous deadline that only a hang can reach.

#[path = "../support/mod.rs"]
mod support;

mod cases;
mod errors;
mod faults;
mod follow;
mod generated;
mod identity;
mod import;
mod listen;
mod migrate;
mod outage;
mod pages;
mod pipe;
mod privacy;
mod privs;
mod servers;
mod spool;
mod store;

use serde_json::Value;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_dlcount-pipe")
}

/// The binary as a command that reads no config file unless a test gives
/// one (`--config`, or `DLCOUNT_CONFIG` set again): a machine's own
/// `/etc/dlcount/dlcount.toml` must not change what a test sees.
pub fn cmd() -> Command {
    let mut c = Command::new(bin());
    c.env("DLCOUNT_CONFIG", "");
    c
}

/// A scratch directory with a database path and a download root.
pub struct Site {
    pub dir: tempfile::TempDir,
    pub db: PathBuf,
    pub root: PathBuf,
}

impl Site {
    #[allow(clippy::new_without_default)]
    pub fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        Site {
            db: dir.path().join("dl.sqlite"),
            root,
            dir,
        }
    }

    /// `report --json --detail`, parsed. A failing `report` fails the test:
    /// turning it into `{}` would let "nothing counted" pass when nothing ran.
    pub fn report(&self) -> Value {
        self.try_report().unwrap_or_else(|| {
            panic!(
                "report: no database at {} (nothing ran?)",
                self.db.display()
            )
        })
    }

    /// For polling while a logger starts: `None` only while the database
    /// does not exist yet or has no schema yet; any other failure panics.
    pub fn try_report(&self) -> Option<Value> {
        let out = cmd()
            .args(["report", "--json", "--detail", "--db"])
            .arg(&self.db)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() && (err.contains("no database at") || err.contains("(no schema)"))
        {
            return None;
        }
        assert!(
            out.status.success(),
            "report on {} failed ({}): {err}",
            self.db.display(),
            out.status,
        );
        Some(serde_json::from_slice(&out.stdout).unwrap())
    }

    /// Sum of one figure, for polling (see [`Site::try_report`]): `None` before the database exists.
    pub fn try_total(&self, figure: &str) -> Option<u64> {
        self.try_report().map(|r| total(&r, figure))
    }

    /// Pipe mode with `lines` on stdin, to EOF; returns (exit code, stderr).
    pub fn pipe_all(&self, lines: &[u8], extra: &[&str]) -> (i32, String) {
        let mut p = self.spawn_pipe(extra);
        p.write(lines);
        p.finish()
    }

    pub fn spawn_pipe(&self, extra: &[&str]) -> Pipe {
        let mut cmd = cmd();
        cmd.arg("--db")
            .arg(&self.db)
            .arg("--root")
            .arg(&self.root)
            .args(extra);
        Pipe::spawn(cmd)
    }

    pub fn import(&self, files: &[&Path]) -> (i32, String) {
        self.import_with(files, &[])
    }

    /// `import` with extra options (`--format …`).
    pub fn import_with(&self, files: &[&Path], extra: &[&str]) -> (i32, String) {
        let out = cmd()
            .arg("import")
            .arg("--db")
            .arg(&self.db)
            .args(extra)
            .args(files)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Every byte of the database files (main, WAL), for the privacy checks.
    pub fn db_bytes(&self) -> Vec<u8> {
        let mut all = Vec::new();
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut p = self.db.clone().into_os_string();
            p.push(suffix);
            if let Ok(b) = std::fs::read(&p) {
                all.extend(b);
            }
        }
        all
    }
}

/// A running pipe-mode process whose stderr is collected as it comes.
pub struct Pipe {
    pub child: Child,
    stderr: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Pipe {
    pub fn spawn(mut cmd: Command) -> Pipe {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().unwrap();
        let sink = Arc::clone(&stderr);
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Pipe {
            child,
            stderr,
            reader: Some(reader),
        }
    }

    pub fn write(&mut self, bytes: &[u8]) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(bytes).unwrap();
        stdin.flush().unwrap();
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig).unwrap();
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Closes stdin (EOF) and waits; returns (exit code, stderr).
    pub fn finish(mut self) -> (i32, String) {
        drop(self.child.stdin.take());
        let status = self.child.wait().unwrap();
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        (status.code().unwrap_or(-1), self.stderr())
    }
}

/// A finished command exited 0 (its stderr is the failure message).
pub fn assert_succeeded(out: &std::process::Output) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Polls `cond` until it holds; panics with `what` after a minute (a hang, not slowness).
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sum of one figure over all files and months of a detailed report.
pub fn total(report: &Value, figure: &str) -> u64 {
    report
        .as_object()
        .unwrap()
        .values()
        .flat_map(|months| months.as_object().unwrap().values())
        .map(|m| m[figure].as_u64().unwrap())
        .sum()
}

/// A combined-format line for a counted GET.
pub fn line(ip: &str, day: u32, sec: u32, path: &str, status: u16, bytes: u64) -> String {
    format!(
        "{ip} - - [{day:02}/Nov/2026:10:{:02}:{:02} +0100] \"GET {path} HTTP/1.1\" {status} {bytes} \"-\" \"Wget/1.21\"\n",
        sec / 60 % 60,
        sec % 60
    )
}
