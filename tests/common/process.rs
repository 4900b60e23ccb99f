//! Running the examples as users do: the built binaries, their flags, their output.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub const WAIT: Duration = Duration::from_secs(20);

pub fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// An example binary cargo built next to this test (`cargo test` builds the examples).
pub fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let binary = profile_dir.join("examples").join(name);
    assert!(
        binary.exists(),
        "{} is missing: run the whole suite with `cargo test` (it builds the examples), or `cargo build --examples` first",
        binary.display()
    );
    binary
}

pub fn echo_server_binary() -> PathBuf {
    example_binary("echo_server")
}

/// Lines a child prints, collected by a thread as they come.
pub struct Lines {
    rx: Receiver<String>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Lines {
    pub fn collect(stream: impl std::io::Read + Send + 'static) -> Self {
        let (tx, rx) = channel();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let all = seen.clone();
        thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                all.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        Self { rx, seen }
    }

    /// Waits for a line that `matches`; fails with everything seen if none comes.
    pub fn wait_for(&self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.rx.recv_timeout(left) {
                Ok(line) if matches(&line) => return line,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        panic!("no {what} line; saw {:#?}", self.all());
    }

    pub fn all(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

pub fn wait_exit(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "process did not exit");
        thread::sleep(Duration::from_millis(10));
    }
}

/// The example, started with `--listen 127.0.0.1:0` and the shipped certificates.
pub struct EchoServer {
    pub child: Child,
    pub addr: String,
    pub stdout: Lines,
    pub stderr: Lines,
}

impl EchoServer {
    pub fn start(flags: &[&str]) -> Self {
        let mut child = Command::new(echo_server_binary())
            .args(["--listen", "127.0.0.1:0"])
            .arg("--cert")
            .arg(repo("certs/server.crt"))
            .arg("--key")
            .arg(repo("certs/server.key"))
            .args(flags)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = Lines::collect(child.stdout.take().unwrap());
        let stderr = Lines::collect(child.stderr.take().unwrap());
        let line = stdout.wait_for("listening", |l| l.starts_with("listening on "));
        let addr = line.trim_start_matches("listening on ").to_owned();
        assert!(!addr.ends_with(":0"), "the real port, not 0: {line}");
        Self {
            child,
            addr,
            stdout,
            stderr,
        }
    }

    /// SIGTERM; returns the exit status and the final stats line.
    pub fn terminate(mut self) -> (ExitStatus, String, Vec<String>) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let status = wait_exit(&mut self.child);
        let stats = self
            .stdout
            .wait_for("final stats", |l| l.starts_with("stats: "));
        (status, stats, self.stderr.all())
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn openssl() -> Command {
    let probe = Command::new("openssl").arg("version").output();
    assert!(
        probe.is_ok_and(|out| out.status.success()),
        "the `openssl` command-line tool is missing: install the Debian package `openssl` \
         (apt-get install openssl); .ci/run does this"
    );
    Command::new("openssl")
}

/// Runs `openssl s_client` once: connects with `version` (`-tls1_2`, `-tls1_3`),
/// verifying against `certs/ca.crt`, saves (`-sess_out`) or offers (`-sess_in`) the
/// session in `session`, sends `line`, waits for its echo, then closes. Returns the
/// `New, ...` or `Reused, ...` line and everything s_client printed on stdout.
pub fn s_client_output(
    addr: &str,
    version: &str,
    session: (&str, &Path),
    line: &str,
) -> (String, Vec<String>) {
    let mut child = openssl()
        .args([
            "s_client",
            "-connect",
            addr,
            version,
            "-verify_return_error",
        ])
        .arg("-CAfile")
        .arg(repo("certs/ca.crt"))
        .arg(session.0)
        .arg(session.1)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = Lines::collect(child.stdout.take().unwrap());
    let _stderr = Lines::collect(child.stderr.take().unwrap());
    let mut stdin: ChildStdin = child.stdin.take().unwrap();
    writeln!(stdin, "{line}").unwrap();
    stdin.flush().unwrap();
    let summary = stdout.wait_for("New/Reused", |l| {
        l.starts_with("New, ") || l.starts_with("Reused, ")
    });
    // The echo comes after any TLS 1.3 tickets, so once it is here the session is saved.
    stdout.wait_for("echo", |l| l == line);
    drop(stdin);
    assert!(
        wait_exit(&mut child).success(),
        "s_client failed: {:#?}",
        stdout.all()
    );
    let verified = stdout
        .all()
        .iter()
        .any(|l| l.trim() == "Verify return code: 0 (ok)");
    assert!(
        verified,
        "the certificate did not verify against certs/ca.crt"
    );
    (summary, stdout.all())
}

/// As [`s_client_output`], returning only the `New`/`Reused` line.
pub fn s_client(addr: &str, version: &str, session: (&str, &Path), line: &str) -> String {
    s_client_output(addr, version, session, line).0
}

/// The value of the counter `name` in a `stats:` line.
pub fn stat(line: &str, name: &str) -> u64 {
    line.split_whitespace()
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {name}= in {line}"))
        .parse()
        .unwrap()
}

/// Runs the binary with `flags`; it must fail with exactly one line on stderr.
pub fn fails_with_one_line(flags: &[&str]) -> String {
    let out = Command::new(echo_server_binary())
        .args(["--listen", "127.0.0.1:0"])
        .args(flags)
        .current_dir(repo(""))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!out.status.success(), "{flags:?} should fail");
    assert_eq!(stderr.lines().count(), 1, "{flags:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "never said it was listening: {:?}",
        out.stdout
    );
    stderr
}
