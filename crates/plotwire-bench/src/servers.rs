//! Starting, probing and stopping the two servers under test.
//!
//! Each server is a child process owned by a [`ServerProcess`] guard that kills it when
//! dropped: at the end of the run, on an error, and when Ctrl-C cancels the run.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{sleep, timeout, Instant};

use crate::client::Endpoint;
use crate::error::{err, Context, Result};

/// The app path both servers are reached under. Bokeh serves `target.py` as `/target`;
/// plotwire treats any app path as an empty Bokeh app.
pub const APP: &str = "target";

/// Both servers check for unused sessions this often (ms) …
const CHECK_UNUSED_SESSIONS_MS: &str = "500";

/// … and drop a session this long (ms) after its last connection closed, so that one
/// run's documents do not inflate the next run's RSS.
const UNUSED_SESSION_LIFETIME_MS: &str = "1000";

/// How long after its last connection closed a session is surely gone.
pub const SESSION_CLEANUP: Duration = Duration::from_millis(1600);

/// The longest server log line forwarded whole.
const MAX_LOG_LINE: usize = 300;

/// A temporary directory, removed when dropped.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates a fresh directory under the system temp dir.
    ///
    /// # Errors
    /// When the directory cannot be created.
    pub fn new(prefix: &str) -> Result<TempDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).context(|| format!("creating {}", path.display()))?;
        Ok(TempDir { path })
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A running server process. Dropping it kills the process and reaps it.
pub struct ServerProcess {
    /// `plotwire` or `bokeh`.
    pub name: &'static str,
    /// Where its Bokeh websocket is.
    pub endpoint: Endpoint,
    child: Child,
    /// Kept alive until the process is gone (Bokeh reads `target.py` from it).
    _workdir: Option<TempDir>,
    /// The API key the bench's REST producers present (`Authorization: Bearer`), when
    /// the server runs with access control.
    pub key: Option<String>,
}

impl ServerProcess {
    /// The process id (of the server itself: the bench spawns it directly, and the
    /// `bokeh` launcher `exec`s Python, so the id stays the same).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails if the process has exited.
    ///
    /// # Errors
    /// The process is gone (its exit status is quoted), or its status cannot be read.
    pub fn check_alive(&mut self) -> Result<()> {
        match self
            .child
            .try_wait()
            .context(|| format!("{}: checking the process", self.name))?
        {
            Some(status) => Err(err(format!("{} exited: {status}", self.name))),
            None => Ok(()),
        }
    }

    /// Whether the process is still running (not exited, not a zombie), from `/proc`.
    pub fn is_running(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).is_ok_and(|stat| {
            stat.rfind(')')
                .and_then(|i| stat.get(i + 1..))
                .and_then(|rest| rest.split_whitespace().next())
                .is_some_and(|state| state != "Z" && state != "X")
        })
    }

    /// The resident set size in KiB (`VmRSS` of `/proc/<pid>/status`).
    ///
    /// # Errors
    /// When the file cannot be read or has no `VmRSS` line.
    pub fn rss_kib(&self) -> Result<u64> {
        read_status_kib(self.pid(), "VmRSS:")
    }

    /// The CPU time the process has used so far, if `/proc` tells.
    pub fn cpu_time(&self) -> Option<CpuTime> {
        cpu_time(&format!("/proc/{}/stat", self.pid()))
    }

    /// Starts measuring the process: CPU time from now, and RSS sampled every 50 ms.
    pub fn usage(&self) -> Usage {
        Usage::start(self.pid())
    }

    /// Waits `min` (for the last run's sessions to be dropped), then until the process is
    /// idle (under 5 % of a core over 300 ms), at most `limit` in all; returns how long it
    /// took. A server still working through a backlog from the last run would otherwise
    /// skew the next one.
    pub async fn settle(&self, min: Duration, limit: Duration) -> Duration {
        let start = Instant::now();
        sleep(min.min(limit)).await;
        let step = Duration::from_millis(300);
        let max_steps = limit.as_millis() / step.as_millis() + 1;
        for _ in 0..max_steps {
            let before = self.cpu_time();
            sleep(step).await;
            let used = match (before, self.cpu_time()) {
                (Some(a), Some(b)) => b.since(a).total(),
                _ => break,
            };
            if used.as_secs_f64() < 0.05 * step.as_secs_f64() || start.elapsed() >= limit {
                break;
            }
        }
        start.elapsed()
    }
}

/// The CPU time and peak RSS of a process over a window (see [`ServerProcess::usage`]).
pub struct Usage {
    pid: u32,
    start_kib: Option<u64>,
    cpu_start: Option<CpuTime>,
    started: Instant,
    peak_kib: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    sampler: tokio::task::JoinHandle<()>,
}

/// What a [`Usage`] measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct UsageReport {
    /// Wall time of the window.
    pub wall: Duration,
    /// CPU time (user + system) used in the window, from `/proc/<pid>/stat`.
    pub cpu: Option<Duration>,
    /// The highest VmRSS sampled in the window (and at its end), in KiB.
    pub peak_rss_kib: Option<u64>,
    /// VmRSS when the window started, in KiB.
    pub start_rss_kib: Option<u64>,
}

impl UsageReport {
    /// Cores used on average: CPU seconds per wall second.
    pub fn cores(&self) -> Option<f64> {
        let wall = self.wall.as_secs_f64();
        self.cpu
            .filter(|_| wall > 0.0)
            .map(|c| c.as_secs_f64() / wall)
    }
}

/// RSS samples are taken this often.
const RSS_INTERVAL: Duration = Duration::from_millis(50);

/// A window never samples for longer than this (the sampler is bounded).
const MAX_USAGE_WINDOW: Duration = Duration::from_secs(1800);

impl Usage {
    /// Starts a window on process `pid`.
    fn start(pid: u32) -> Usage {
        let start_kib = read_status_kib(pid, "VmRSS:").ok();
        let peak_kib = Arc::new(AtomicU64::new(start_kib.unwrap_or(0)));
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (peak, stop) = (Arc::clone(&peak_kib), Arc::clone(&stop));
            tokio::spawn(async move {
                let max = MAX_USAGE_WINDOW.as_millis() / RSS_INTERVAL.as_millis();
                for _ in 0..max {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    if let Ok(kib) = read_status_kib(pid, "VmRSS:") {
                        peak.fetch_max(kib, Ordering::Relaxed);
                    }
                    sleep(RSS_INTERVAL).await;
                }
            })
        };
        Usage {
            pid,
            start_kib,
            cpu_start: cpu_time(&format!("/proc/{pid}/stat")),
            started: Instant::now(),
            peak_kib,
            stop,
            sampler,
        }
    }

    /// Ends the window.
    pub fn finish(self) -> UsageReport {
        let wall = self.started.elapsed();
        let cpu = match (
            self.cpu_start,
            cpu_time(&format!("/proc/{}/stat", self.pid)),
        ) {
            (Some(a), Some(b)) => Some(b.since(a).total()),
            _ => None,
        };
        self.stop.store(true, Ordering::Relaxed);
        self.sampler.abort();
        let end = read_status_kib(self.pid, "VmRSS:").ok();
        if let Some(kib) = end {
            self.peak_kib.fetch_max(kib, Ordering::Relaxed);
        }
        let peak = self.peak_kib.load(Ordering::Relaxed);
        UsageReport {
            wall,
            cpu,
            peak_rss_kib: (peak > 0).then_some(peak),
            start_rss_kib: self.start_kib,
        }
    }
}

impl ServerProcess {
    /// Kills the process with SIGKILL (`kill -9`) and waits for it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP port on 127.0.0.1 (bound, read, released).
///
/// # Errors
/// When no port can be bound.
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context(|| "binding a free port")?;
    Ok(listener
        .local_addr()
        .context(|| "reading the free port")?
        .port())
}

/// Removes the environment variables that would change either server's configuration
/// (`PLOTWIRE_*` flags, `BOKEH_*` signing and origin settings), so both run on defaults.
fn clean_env(command: &mut Command) {
    for (key, _) in std::env::vars_os() {
        let key_text = key.to_string_lossy();
        if key_text.starts_with("PLOTWIRE_") || key_text.starts_with("BOKEH_") {
            command.env_remove(&key);
        }
    }
}

/// Spawns `command` with stdout discarded and stderr forwarded line by line, prefixed
/// with `[name]`, to the bench's stderr.
fn spawn(name: &'static str, mut command: Command) -> Result<Child> {
    clean_env(&mut command);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .context(|| format!("{name}: starting {command:?}"))?;
    if let Some(stderr) = child.stderr.take() {
        // Ends at EOF, when the process exits; never joined, so it cannot block shutdown.
        std::thread::spawn(move || {
            let mut repeats = LogRepeats::default();
            for line in BufReader::new(stderr).lines() {
                match line {
                    Ok(line) => match repeats.count(&line) {
                        n if n <= MAX_REPEATS => eprintln!("[{name}] {}", shorten(&line)),
                        n if n == MAX_REPEATS + 1 => {
                            eprintln!("[{name}] (further repeats of that line are not shown)");
                        }
                        _ => {}
                    },
                    Err(_) => break,
                }
            }
        });
    }
    Ok(child)
}

/// How many times the same server log message is forwarded (Bokeh logs one line per
/// closed viewer with a pending write: a thousand at once in the fan-out).
const MAX_REPEATS: u64 = 3;

/// The most distinct log messages counted.
const MAX_DISTINCT_MESSAGES: usize = 10_000;

/// Counts log messages, ignoring a leading timestamp (anything before the first letter).
#[derive(Default)]
struct LogRepeats {
    seen: std::collections::HashMap<String, u64>,
}

impl LogRepeats {
    /// How many times this message has been seen, this one included.
    fn count(&mut self, line: &str) -> u64 {
        let message = line.trim_start_matches(|c: char| !c.is_alphabetic());
        if let Some(n) = self.seen.get_mut(message) {
            *n += 1;
            return *n;
        }
        if self.seen.len() < MAX_DISTINCT_MESSAGES {
            self.seen.insert(message.to_owned(), 1);
        }
        1
    }
}

/// At most [`MAX_LOG_LINE`] characters of a server's log line, noting how much was cut
/// (Bokeh logs whole `sys.modules` dumps on one line).
fn shorten(line: &str) -> String {
    match line.char_indices().nth(MAX_LOG_LINE) {
        Some((end, _)) => format!("{} [... {} more bytes]", &line[..end], line.len() - end),
        None => line.to_owned(),
    }
}

/// Starts `plotwire serve` on `port` and waits until it answers HTTP.
///
/// # Errors
/// When it cannot be started, exits, or does not answer within `startup`.
pub async fn start_plotwire(
    bin: &Path,
    port: u16,
    max_message_bytes: usize,
    startup: Duration,
) -> Result<ServerProcess> {
    // In memory, as `bokeh serve`: the durable store has its own workloads.
    let args = [
        "--websocket-max-message-size".to_owned(),
        max_message_bytes.to_string(),
        "--data-dir".to_owned(),
        "none".to_owned(),
    ];
    start_plotwire_with(bin, port, &args, startup).await
}

/// Starts `plotwire serve` on `port` with `args` added, and waits until it answers HTTP.
///
/// # Errors
/// When it cannot be started, exits, or does not answer within `startup`.
pub async fn start_plotwire_with(
    bin: &Path,
    port: u16,
    args: &[String],
    startup: Duration,
) -> Result<ServerProcess> {
    start_plotwire_over(bin, port, args, startup, None).await
}

/// [`start_plotwire_with`], served over TLS when `tls` is given (`args` then hold the
/// server's `--ssl-certfile` and `--ssl-keyfile`, and `tls` trusts that certificate).
///
/// # Errors
/// When it cannot be started, exits, or does not answer within `startup`.
pub async fn start_plotwire_over(
    bin: &Path,
    port: u16,
    args: &[String],
    startup: Duration,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> Result<ServerProcess> {
    let mut command = Command::new(bin);
    command.args([
        "serve",
        "--port",
        &port.to_string(),
        "--check-unused-sessions",
        CHECK_UNUSED_SESSIONS_MS,
        "--unused-session-lifetime",
        UNUSED_SESSION_LIFETIME_MS,
        "--log-level",
        "warn",
    ]);
    command.args(args);
    let child = spawn("plotwire", command)?;
    let mut server = ServerProcess {
        name: "plotwire",
        endpoint: Endpoint {
            port,
            app: APP.to_owned(),
            tls,
        },
        child,
        _workdir: None,
        key: None,
    };
    wait_http(&mut server, startup).await?;
    Ok(server)
}

/// Starts `<python> -m bokeh serve <tmp>/target.py` (an empty app) on `port` and waits
/// until it answers HTTP. Running Python directly keeps the server's pid the child's.
///
/// # Errors
/// When it cannot be started, exits, or does not answer within `startup`.
pub async fn start_bokeh(
    python: &Path,
    port: u16,
    max_message_bytes: usize,
    startup: Duration,
) -> Result<ServerProcess> {
    let workdir = TempDir::new("plotwire-bench")?;
    let script = workdir.path().join(format!("{APP}.py"));
    std::fs::write(&script, "# empty app\n").context(|| format!("writing {}", script.display()))?;
    let origin = format!("127.0.0.1:{port}");
    let mut command = Command::new(python);
    command.args(["-m", "bokeh", "serve"]).arg(&script).args([
        "--port",
        &port.to_string(),
        "--address",
        "127.0.0.1",
        "--allow-websocket-origin",
        &origin,
        "--websocket-max-message-size",
        &max_message_bytes.to_string(),
        "--check-unused-sessions",
        CHECK_UNUSED_SESSIONS_MS,
        "--unused-session-lifetime",
        UNUSED_SESSION_LIFETIME_MS,
        "--log-level",
        "warning",
    ]);
    let child = spawn("bokeh", command)?;
    let mut server = ServerProcess {
        name: "bokeh",
        endpoint: Endpoint {
            port,
            app: APP.to_owned(),
            tls: None,
        },
        child,
        _workdir: Some(workdir),
        key: None,
    };
    wait_http(&mut server, startup).await?;
    Ok(server)
}

/// Polls `GET /` every 100 ms until any HTTP response comes back, the process exits, or
/// `startup` has passed.
async fn wait_http(server: &mut ServerProcess, startup: Duration) -> Result<()> {
    let deadline = Instant::now() + startup;
    let endpoint = server.endpoint.clone();
    let port = endpoint.port;
    let max_polls = startup.as_millis() / 100 + 1;
    for _ in 0..max_polls {
        server.check_alive()?;
        if timeout(Duration::from_secs(2), http_answers(&endpoint))
            .await
            .unwrap_or(false)
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            break;
        }
        sleep(Duration::from_millis(100)).await;
    }
    Err(err(format!(
        "{} did not answer HTTP on 127.0.0.1:{port} within {} s",
        server.name,
        startup.as_secs()
    )))
}

/// Whether `GET /` on the endpoint's port gets an HTTP status line back (over TLS if
/// the endpoint has it).
async fn http_answers(endpoint: &Endpoint) -> bool {
    let port = endpoint.port;
    let Ok(tcp) = TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    match &endpoint.tls {
        None => http_answers_on(tcp, port).await,
        Some(config) => match crate::client::tls_connect(config, tcp).await {
            Ok(tls) => http_answers_on(tls, port).await,
            Err(_) => false,
        },
    }
}

async fn http_answers_on<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, port: u16) -> bool {
    let request = format!("GET / HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut head = [0u8; 7];
    stream.read_exact(&mut head).await.is_ok() && &head == b"HTTP/1."
}

/// A `Key:   1234 kB` line of `/proc/<pid>/status`, in KiB.
fn read_status_kib(pid: u32, key: &str) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).context(|| format!("reading {path}"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(key))
        .context(|| format!("{path} has no {key} line"))?;
    line.trim_start_matches(key)
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .context(|| format!("parsing {line:?} of {path}"))
}

/// User and system CPU time of a process.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuTime {
    /// Time in user mode.
    pub user: Duration,
    /// Time in the kernel.
    pub system: Duration,
    /// Minor page faults (fresh pages of large allocations show up here).
    pub minor_faults: u64,
}

impl CpuTime {
    /// User plus system time.
    pub fn total(self) -> Duration {
        self.user + self.system
    }

    /// The time used since `earlier`.
    pub fn since(self, earlier: CpuTime) -> CpuTime {
        CpuTime {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
            minor_faults: self.minor_faults.saturating_sub(earlier.minor_faults),
        }
    }
}

/// The bench's own CPU time (all threads), if `/proc` tells.
pub fn own_cpu_time() -> Option<CpuTime> {
    cpu_time("/proc/self/stat")
}

/// utime and stime of a `/proc/<pid>/stat` file, assuming the usual 100 clock ticks per
/// second.
fn cpu_time(path: &str) -> Option<CpuTime> {
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name (field 2) may contain spaces; the fields after its ')' are fixed.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace();
    // After ')' come state (field 3) … minflt is field 10, utime 14, stime 15.
    let minor_faults: u64 = fields.nth(7)?.parse().ok()?;
    let utime: u64 = fields.nth(3)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(CpuTime {
        user: Duration::from_millis(utime.saturating_mul(10)),
        system: Duration::from_millis(stime.saturating_mul(10)),
        minor_faults,
    })
}
