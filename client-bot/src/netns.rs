//! `netns-loss`: runs a command in a fresh network namespace whose loopback drops packets at
//! random in the kernel (`iptables -m statistic`), so TCP really retransmits (and stalls every
//! later message: head-of-line blocking) while QUIC datagrams do not wait. The message-level
//! conditioner of `swarm` ([`crate::link`]) cannot show that difference: it drops and delays
//! whole messages above either transport.
//!
//! The namespace is named `tickroom-loss-<pid>` unless `--name` says otherwise; it is removed
//! when the command ends, when setting it up fails half-way, and on SIGINT, SIGTERM or SIGHUP
//! (forwarded to the command, which is waited for). The command sees
//! [`KERNEL_LOSS_ENV`]`=<fraction>`, which a swarm records in its report as `link.kernel_loss`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use clap::Args;
use tokio::signal::unix::{signal, SignalKind};

use crate::cli::parse_percent;

/// The variable the command runs with: the kernel loss as a fraction (`0.02` for `--loss 2%`).
pub const KERNEL_LOSS_ENV: &str = "TICKROOM_KERNEL_LOSS";
/// Prefix of the default namespace name (`tickroom-loss-<pid>`).
pub const DEFAULT_NAME_PREFIX: &str = "tickroom-loss-";
/// Exit code when `netns-loss` itself failed before or while setting up the namespace (as
/// `env` and `timeout` use 125): the command did not run.
pub const EXIT_NETNS_SETUP: u8 = 125;
/// What to install (as root) for real loss.
pub const NEEDS: &str = "real loss needs root and iptables: apt-get install -y iptables iproute2";
/// How long processes left in the namespace get after SIGTERM before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(3);
/// How long SIGKILLed processes get to be gone before the namespace is removed anyway.
const KILL_GRACE: Duration = Duration::from_secs(2);
/// How often the namespace is checked for processes while they end.
const POLL: Duration = Duration::from_millis(20);
/// Longest namespace name accepted (a file name under /run/netns, kept short for logs).
const MAX_NAME_LEN: usize = 64;
/// Directories searched for `ip` and `iptables` after `PATH` (a non-login root shell may lack
/// the sbin directories).
const SBIN_DIRS: [&str; 3] = ["/usr/sbin", "/sbin", "/usr/local/sbin"];

/// Flags of `netns-loss`.
#[derive(Debug, Clone, Args)]
pub struct NetnsLossArgs {
    /// Chance that the kernel drops each packet on the namespace's loopback, e.g. 2% (every
    /// loopback packet passes INPUT once, so each direction loses this much).
    #[arg(long, value_parser = parse_percent)]
    pub loss: f64,
    /// Name of the namespace to create (default: tickroom-loss-<pid>); it must not exist yet.
    #[arg(long, value_parser = parse_netns_name)]
    pub name: Option<String>,
    /// The command to run inside, after `--`, with its arguments.
    #[arg(last = true, required = true, num_args = 1.., value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

/// Why `netns-loss` could not run the command, or could not clean up after it.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// Not running as root.
    #[error("netns-loss runs as root (effective uid is {uid}); {NEEDS}")]
    NotRoot {
        /// The effective user id.
        uid: u32,
    },
    /// `ip` (iproute2) or `iptables` is not installed.
    #[error("`{tool}` not found; {NEEDS}")]
    ToolMissing {
        /// The missing program.
        tool: &'static str,
    },
    /// The kernel or the sandbox refused a step (no CAP_SYS_ADMIN/CAP_NET_ADMIN, or no
    /// `statistic` match).
    #[error("{step} was refused: {detail}; {NEEDS}, with namespaces and the iptables statistic match allowed")]
    NotPermitted {
        /// The command that was refused.
        step: String,
        /// What it printed.
        detail: String,
    },
    /// A step failed for another reason (e.g. the namespace name is already in use).
    #[error("{step} failed: {detail}")]
    Step {
        /// The command that failed.
        step: String,
        /// What it printed.
        detail: String,
    },
    /// A program could not be started or waited for.
    #[error("cannot run {what}: {source}")]
    Io {
        /// What was being run.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The namespace could not be removed after the command.
    #[error(
        "namespace {name} could not be removed: {detail} (remove it with `ip netns del {name}`)"
    )]
    Cleanup {
        /// The namespace.
        name: String,
        /// Why.
        detail: String,
    },
}

impl NetnsError {
    /// True when this machine cannot do real loss at all (not root, tools missing, refused by
    /// the kernel): a test may skip on it outside CI.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            NetnsError::NotRoot { .. }
                | NetnsError::ToolMissing { .. }
                | NetnsError::NotPermitted { .. }
        )
    }
}

/// Checks a namespace name: 1–64 of `A-Z a-z 0-9 _ . -`, not starting with `.` or `-`.
pub fn parse_netns_name(text: &str) -> Result<String, String> {
    let ok_chars = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    let ok_start = !text.starts_with(['.', '-']);
    if text.is_empty() || text.len() > MAX_NAME_LEN || !ok_chars || !ok_start {
        return Err(format!(
            "`{text}` is not a namespace name: 1 to {MAX_NAME_LEN} of A-Z a-z 0-9 _ . - (not starting with . or -)"
        ));
    }
    Ok(text.to_owned())
}

/// The kernel loss the process runs under, from [`KERNEL_LOSS_ENV`] (set by `netns-loss`);
/// `None` when unset or not a fraction between 0 and 1.
pub fn kernel_loss_from_env() -> Option<f64> {
    let text = std::env::var(KERNEL_LOSS_ENV).ok()?;
    let loss = parse_kernel_loss(&text);
    if loss.is_none() {
        tracing::warn!("{KERNEL_LOSS_ENV}={text:?} is not a fraction between 0 and 1: ignored");
    }
    loss
}

/// Parses a fraction between 0 and 1 (`0.02`).
pub fn parse_kernel_loss(text: &str) -> Option<f64> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| (0.0..=1.0).contains(v))
}

/// Runs `netns-loss` and returns the exit code: the command's (128 + the signal when a signal
/// ended it), [`EXIT_NETNS_SETUP`] when the namespace could not be set up; errors go to stderr.
pub async fn run_netns_loss(args: &NetnsLossArgs) -> u8 {
    match run(args).await {
        Ok(code) => code,
        Err((e, code)) => {
            eprintln!("tickroom-bot netns-loss: {e}");
            code
        }
    }
}

/// The tools found on this machine.
struct Tools {
    ip: PathBuf,
    iptables: PathBuf,
    ip6tables: Option<PathBuf>,
}

async fn run(args: &NetnsLossArgs) -> Result<u8, (NetnsError, u8)> {
    let setup = |e| (e, EXIT_NETNS_SETUP);
    let tools = preflight().map_err(setup)?;
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("{DEFAULT_NAME_PREFIX}{}", std::process::id()));
    // Listen before the namespace exists: from here a signal is forwarded or ends the setup,
    // never the process with the namespace left behind.
    let mut signals = Signals::new().map_err(setup)?;
    let namespace = Namespace::create(&tools.ip, &name).map_err(setup)?;
    namespace.setup(&tools, args.loss).map_err(setup)?;
    if let Some(sig) = signals.pending().await {
        namespace.remove().map_err(setup)?;
        return Ok(128 + sig.number());
    }
    eprintln!(
        "tickroom-bot netns-loss: namespace {name}, kernel drops {}% of loopback packets",
        args.loss * 100.0
    );
    let mut child = tokio::process::Command::new(&tools.ip)
        .args(["netns", "exec", &name])
        .args(&args.command)
        .env(KERNEL_LOSS_ENV, args.loss.to_string())
        .spawn()
        .map_err(|source| {
            setup(NetnsError::Io {
                what: format!("ip netns exec {name}"),
                source,
            })
        })?;
    let pid = child.id();
    let waited = loop {
        tokio::select! {
            status = child.wait() => break status,
            sig = signals.next() => {
                if let Some(pid) = pid {
                    forward(pid, sig);
                }
            }
        }
    };
    let cleaned = namespace.remove();
    let code = match waited {
        Ok(status) => exit_code(status),
        Err(source) => {
            return Err((
                NetnsError::Io {
                    what: "wait for the command".into(),
                    source,
                },
                EXIT_NETNS_SETUP,
            ))
        }
    };
    match cleaned {
        Ok(()) => Ok(code),
        // The command's failure says more than ours; a clean run still must not exit 0.
        Err(e) => Err((e, if code == 0 { EXIT_NETNS_SETUP } else { code })),
    }
}

/// Root, `ip` and `iptables` (and `ip6tables` when there).
fn preflight() -> Result<Tools, NetnsError> {
    let uid = effective_uid();
    if uid != Some(0) {
        return Err(NetnsError::NotRoot {
            uid: uid.unwrap_or(u32::MAX),
        });
    }
    let ip = find_tool("ip").ok_or(NetnsError::ToolMissing { tool: "ip" })?;
    let iptables = find_tool("iptables").ok_or(NetnsError::ToolMissing { tool: "iptables" })?;
    Ok(Tools {
        ip,
        iptables,
        ip6tables: find_tool("ip6tables"),
    })
}

/// The effective user id, from `/proc/self/status`.
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_effective_uid(&status)
}

/// The second number of the `Uid:` line (real, effective, saved, filesystem).
fn parse_effective_uid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// `name` in `PATH`, then in the sbin directories.
fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(SBIN_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The exit code for a finished command: its own, or 128 + the signal that ended it.
fn exit_code(status: ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code & 0xff).unwrap_or(u8::MAX),
        (None, Some(sig)) => u8::try_from(128 + (sig & 0x7f)).unwrap_or(u8::MAX),
        (None, None) => u8::MAX,
    }
}

/// The signals forwarded to the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sig {
    Int,
    Term,
    Hup,
}

impl Sig {
    fn number(self) -> u8 {
        match self {
            Sig::Hup => 1,
            Sig::Int => 2,
            Sig::Term => 15,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Sig::Hup => "HUP",
            Sig::Int => "INT",
            Sig::Term => "TERM",
        }
    }
}

/// SIGINT, SIGTERM and SIGHUP, caught instead of ending this process.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Result<Signals, NetnsError> {
        let listen = |kind| {
            signal(kind).map_err(|source| NetnsError::Io {
                what: "the signal handlers".into(),
                source,
            })
        };
        Ok(Signals {
            int: listen(SignalKind::interrupt())?,
            term: listen(SignalKind::terminate())?,
            hup: listen(SignalKind::hangup())?,
        })
    }

    /// The next signal.
    async fn next(&mut self) -> Sig {
        tokio::select! {
            _ = self.int.recv() => Sig::Int,
            _ = self.term.recv() => Sig::Term,
            _ = self.hup.recv() => Sig::Hup,
        }
    }

    /// A signal that arrived already, if any (does not wait).
    async fn pending(&mut self) -> Option<Sig> {
        tokio::select! {
            biased;
            sig = self.next() => Some(sig),
            () = std::future::ready(()) => None,
        }
    }
}

/// Sends `sig` to `pid` (the command this process started).
fn forward(pid: u32, sig: Sig) {
    let _ = Command::new("kill")
        .arg(format!("-{}", sig.name()))
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A namespace this process created: removed (its processes ended first) by [`Namespace::remove`]
/// or, failing that, when dropped.
struct Namespace {
    ip: PathBuf,
    name: String,
    removed: bool,
}

impl Namespace {
    /// `ip netns add NAME`.
    fn create(ip: &Path, name: &str) -> Result<Namespace, NetnsError> {
        run_step(ip, &["netns", "add", name])?;
        Ok(Namespace {
            ip: ip.to_path_buf(),
            name: name.to_owned(),
            removed: false,
        })
    }

    /// Loopback up and the DROP rules (IPv4 and, with ip6tables, IPv6).
    fn setup(&self, tools: &Tools, loss: f64) -> Result<(), NetnsError> {
        self.exec(&self.ip, &["link", "set", "lo", "up"])?;
        if loss > 0.0 {
            let probability = loss.to_string();
            let rule = [
                "-A",
                "INPUT",
                "-m",
                "statistic",
                "--mode",
                "random",
                "--probability",
                &probability,
                "-j",
                "DROP",
            ];
            self.exec(&tools.iptables, &rule)?;
            if let Some(ip6tables) = &tools.ip6tables {
                if let Err(e) = self.exec(ip6tables, &rule) {
                    eprintln!("tickroom-bot netns-loss: IPv6 loopback keeps its packets: {e}");
                }
            }
        }
        Ok(())
    }

    /// Runs `program ARGS` inside the namespace.
    fn exec(&self, program: &Path, args: &[&str]) -> Result<(), NetnsError> {
        let mut full: Vec<&str> = vec!["netns", "exec", &self.name];
        let program = program.to_string_lossy();
        full.push(&program);
        full.extend_from_slice(args);
        run_step(&self.ip, &full)
    }

    /// The processes inside, by pid.
    fn pids(&self) -> Vec<u32> {
        let out = Command::new(&self.ip)
            .args(["netns", "pids", &self.name])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output();
        out.map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
    }

    /// Sends `sig` to every process inside and waits up to `grace` for them to be gone; true
    /// when none is left.
    fn end_processes(&self, sig: &str, grace: Duration) -> bool {
        let pids = self.pids();
        if pids.is_empty() {
            return true;
        }
        let _ = Command::new("kill")
            .arg(format!("-{sig}"))
            .args(pids.iter().map(u32::to_string))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if self.pids().is_empty() {
                return true;
            }
            std::thread::sleep(POLL);
        }
        self.pids().is_empty()
    }

    /// Ends what still runs inside (TERM, then KILL) and deletes the namespace.
    fn remove(mut self) -> Result<(), NetnsError> {
        self.removed = true;
        self.remove_now()
    }

    fn remove_now(&self) -> Result<(), NetnsError> {
        if !self.end_processes("TERM", TERM_GRACE) {
            self.end_processes("KILL", KILL_GRACE);
        }
        run_step(&self.ip, &["netns", "del", &self.name]).map_err(|e| NetnsError::Cleanup {
            name: self.name.clone(),
            detail: e.to_string(),
        })
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        if !self.removed {
            if let Err(e) = self.remove_now() {
                eprintln!("tickroom-bot netns-loss: {e}");
            }
        }
    }
}

/// Runs `program ARGS` to its end; a failure is [`NetnsError::NotPermitted`] when the kernel
/// refused it, else [`NetnsError::Step`].
fn run_step(program: &Path, args: &[&str]) -> Result<(), NetnsError> {
    let step = format!("{} {}", program.display(), args.join(" "));
    let out: Output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| NetnsError::Io {
            what: step.clone(),
            source,
        })?;
    if out.status.success() {
        return Ok(());
    }
    let detail = String::from_utf8_lossy(&out.stderr).trim().to_string();
    Err(classify(step, detail))
}

/// Refusals (permissions, a kernel without the table or match) versus other failures.
fn classify(step: String, detail: String) -> NetnsError {
    const REFUSALS: [&str; 6] = [
        "Operation not permitted",
        "Permission denied",
        "Couldn't load match",
        "can't initialize",
        "Table does not exist",
        "Protocol not supported",
    ];
    if REFUSALS.iter().any(|r| detail.contains(r)) {
        NetnsError::NotPermitted { step, detail }
    } else {
        NetnsError::Step { step, detail }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;

    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command as Sub};

    fn parse(args: &[&str]) -> Result<NetnsLossArgs, clap::Error> {
        let cli = Cli::try_parse_from(["tickroom-bot", "netns-loss"].iter().chain(args))?;
        match cli.command {
            Sub::NetnsLoss(a) => Ok(a),
            _ => panic!("not netns-loss"),
        }
    }

    #[test]
    fn the_command_follows_a_double_dash() {
        let a = parse(&["--loss", "2%", "--", "sh", "-c", "echo --loss"]).unwrap();
        assert_eq!(a.loss, 0.02);
        assert_eq!(a.name, None);
        assert_eq!(a.command, ["sh", "-c", "echo --loss"]);
        let a = parse(&["--loss", "0.5%", "--name", "t-1", "--", "true"]).unwrap();
        assert_eq!(a.name.as_deref(), Some("t-1"));
        assert!(parse(&["--loss", "2%"]).is_err(), "a command is required");
        assert!(parse(&["--loss", "2", "--", "true"]).is_err(), "needs %");
        assert!(parse(&["--", "true"]).is_err(), "--loss is required");
        assert!(parse(&["--loss", "2%", "--name", "a/b", "--", "true"]).is_err());
    }

    #[test]
    fn names() {
        assert!(parse_netns_name("tickroom-loss-12").is_ok());
        assert!(parse_netns_name("a.b_c").is_ok());
        for bad in ["", ".", "..", "-x", "a/b", "a b", &"x".repeat(65)] {
            assert!(parse_netns_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn kernel_loss_is_a_fraction() {
        assert_eq!(parse_kernel_loss("0.02"), Some(0.02));
        assert_eq!(parse_kernel_loss(" 1 "), Some(1.0));
        assert_eq!(parse_kernel_loss("2%"), None);
        assert_eq!(parse_kernel_loss("1.5"), None);
        assert_eq!(parse_kernel_loss("-0.1"), None);
        // What the subcommand writes reads back as the same number.
        assert_eq!(parse_kernel_loss(&0.005f64.to_string()), Some(0.005));
    }

    #[test]
    fn exit_codes_follow_the_shell() {
        assert_eq!(exit_code(ExitStatus::from_raw(0)), 0);
        assert_eq!(exit_code(ExitStatus::from_raw(7 << 8)), 7);
        assert_eq!(exit_code(ExitStatus::from_raw(15)), 143, "SIGTERM");
        assert_eq!(exit_code(ExitStatus::from_raw(9)), 137, "SIGKILL");
    }

    #[test]
    fn effective_uid_is_the_second_number() {
        let status = "Name:\tx\nUid:\t1000\t0\t0\t0\nGid:\t5\t5\t5\t5\n";
        assert_eq!(parse_effective_uid(status), Some(0));
        assert_eq!(parse_effective_uid("Name: x\n"), None);
        assert!(effective_uid().is_some());
    }

    #[test]
    fn refusals_are_told_apart() {
        let refused = classify(
            "ip netns add x".into(),
            "mount --make-shared /run/netns failed: Operation not permitted".into(),
        );
        assert!(refused.is_unavailable());
        assert!(refused.to_string().contains(NEEDS), "{refused}");
        let taken = classify(
            "ip netns add x".into(),
            "Cannot create namespace file \"/run/netns/x\": File exists".into(),
        );
        assert!(!taken.is_unavailable());
        let missing = NetnsError::ToolMissing { tool: "iptables" };
        assert!(missing.is_unavailable());
        assert_eq!(
            missing.to_string(),
            "`iptables` not found; real loss needs root and iptables: apt-get install -y iptables iproute2"
        );
    }
}
