//! The swarm report: the JSON object of the operator contract (figures not measured are `null`,
//! never a made-up zero), its readable table, the scrape of the server's `/metrics`, and this
//! process's CPU time.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::link::LinkConfig;
use crate::stats::{count_errors, max_ms, quantile_ms, BotOutcome, Measurements, Samples};

/// Time allowed for the `/metrics` scrape.
pub const METRICS_TIMEOUT: Duration = Duration::from_secs(5);
/// The port of the server's metrics listener when it runs with its defaults (`--metrics
/// 127.0.0.1:7703`): a swarm scrapes it on the first gateway's host unless told otherwise.
pub const DEFAULT_METRICS_PORT: u16 = 7703;
/// Clock ticks per second of `/proc/self/stat` times (USER_HZ, 100 on every Linux ABI).
const USER_HZ: f64 = 100.0;
/// Bytes in a MiB.
const BYTES_PER_MB: f64 = 1024.0 * 1024.0;

/// The swarm report (`--report PATH`); keys and nesting are a contract.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub transport: String,
    pub mode: String,
    pub bots: usize,
    pub joined: usize,
    pub failed: usize,
    pub rooms: usize,
    pub duration_s: f64,
    pub errors: u64,
    pub errors_by_code: BTreeMap<String, u64>,
    pub reconnects: u64,
    /// Rooms joined again through the gateway after the old room's server was gone.
    pub rejoins: u64,
    /// Times a bot asked the gateway whether its room's server lives (the room went silent,
    /// or a resume was overdue).
    pub room_status_checks: u64,
    /// Sessions that resumed on their room's new server after its owner died (the room was
    /// taken over from its failover image), and the most such a resume took a match back.
    pub room_moves: u64,
    pub max_rollback_ms: f64,
    /// Gateway answers `503` (directory away, no room server free) the bots waited out and
    /// retried (`with_gateway_retries`; 0 from `build`).
    pub gateway_retries: u64,
    /// Matches the game ended (`MatchEnded` received), over all bots.
    pub matches_ended: u64,
    pub rtt_ms: RttMs,
    pub resume_ms: ResumeMs,
    /// Connection loss → `Joined` in the new room.
    pub rejoin_ms: SpreadMs,
    /// Ping → pong round trips (`--ping-interval`): the RTT of idle bots, which send no inputs.
    pub ping_rtt_ms: SpreadMs,
    /// Lockstep frames never received (gaps in the frame numbers); `null` unless lockstep.
    pub lost_frames: Option<u64>,
    pub interval_jitter_ms: JitterMs,
    pub bytes_per_bot_s: BytesPerBotS,
    pub server: ServerFigures,
    pub bot_cpu_ms_per_bot_s: Option<f64>,
    /// What the link did to the traffic: the bot's message-level conditioner and the kernel's
    /// packet loss (`netns-loss`).
    pub link: LinkReport,
}

/// The conditions the swarm ran under.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct LinkReport {
    /// The bot's message-level conditioner (`--latency`, `--jitter`, `--loss`): whole messages
    /// delayed or dropped above the transport, the same for WebSocket and QUIC.
    pub message_level: MessageLevel,
    /// The fraction of packets the kernel dropped on the loopback (`tickroom-bot netns-loss`,
    /// read from `TICKROOM_KERNEL_LOSS`); `null` when the swarm did not run under it.
    pub kernel_loss: Option<f64>,
}

/// The message-level conditioner's settings.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct MessageLevel {
    /// One-way latency added per direction, ms.
    pub latency_ms: f64,
    /// Uniform jitter (±), ms.
    pub jitter_ms: f64,
    /// Average fraction of unreliable messages dropped.
    pub loss: f64,
    /// Mean length of a loss burst, messages.
    pub mean_burst_len: f64,
}

impl LinkReport {
    /// The report section for a swarm whose bots ran with `conditioner`, under `kernel_loss`.
    pub fn new(conditioner: &LinkConfig, kernel_loss: Option<f64>) -> LinkReport {
        LinkReport {
            message_level: MessageLevel {
                latency_ms: conditioner.latency.as_secs_f64() * 1e3,
                jitter_ms: conditioner.jitter.as_secs_f64() * 1e3,
                loss: conditioner.loss,
                mean_burst_len: conditioner.mean_burst_len,
            },
            kernel_loss,
        }
    }
}

/// Input→ack RTT (state) or frame delivery latency (lockstep), in ms.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct RttMs {
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    pub p999: Option<f64>,
    pub max: Option<f64>,
}

/// Connection loss → resumed, in ms.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct ResumeMs {
    pub p50: Option<f64>,
    pub p99: Option<f64>,
}

/// A duration's median, 99th percentile and maximum, in ms.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct SpreadMs {
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

/// |snapshot/frame interval − nominal|, in ms.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct JitterMs {
    pub p99: Option<f64>,
}

/// Transport bytes per bot per second in the room.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct BytesPerBotS {
    pub up: Option<f64>,
    pub down: Option<f64>,
}

/// Figures scraped from the server's `/metrics` at the end.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct ServerFigures {
    pub tick_p99_ms: Option<f64>,
    pub overruns: Option<u64>,
    pub rss_mb: Option<f64>,
    /// The servers' CPU time during the swarm per bot-second played, in ms (from their
    /// `process_cpu_seconds_total` at the start and the end), beside `bot_cpu_ms_per_bot_s`.
    pub cpu_ms_per_bot_s: Option<f64>,
    /// The servers' context switches during the swarm (voluntary and involuntary, from their
    /// `tickroom_process_context_switches_total`) per message they received or sent.
    pub context_switches_per_msg: Option<f64>,
    /// The servers' `process_cpu_seconds_total` at this scrape (summed over servers).
    #[serde(skip)]
    pub cpu_s: Option<f64>,
    /// The servers' context switches so far (summed over kinds and servers).
    #[serde(skip)]
    pub switches: Option<f64>,
    /// The servers' messages received plus sent so far.
    #[serde(skip)]
    pub messages: Option<f64>,
}

/// What the report is built from.
#[derive(Debug)]
pub struct ReportInputs<'a> {
    /// `quic`, `ws` or `mixed`.
    pub transport: &'a str,
    /// The mode name.
    pub mode: &'a str,
    /// Bots asked for.
    pub bots: usize,
    /// Requested play duration.
    pub duration: Duration,
    /// Every bot's outcome (aborted bots included, with error `aborted`).
    pub outcomes: &'a [BotOutcome],
    /// CPU time this process used during the swarm, when readable.
    pub cpu: Option<Duration>,
    /// The servers' figures scraped at the swarm's start (CPU seconds, context switches and
    /// messages so far; the end is in `server`).
    pub server_at_start: ServerFigures,
    /// Server figures (all `None` when the scrape failed).
    pub server: ServerFigures,
}

impl Report {
    /// Builds the report; every figure without a sample is `None`.
    pub fn build(inputs: ReportInputs<'_>) -> Report {
        let mut all = Measurements::default();
        for o in inputs.outcomes {
            all.merge(&o.measurements);
        }
        let joined = inputs.outcomes.iter().filter(|o| o.joined).count();
        let rooms: HashSet<u64> = inputs.outcomes.iter().filter_map(|o| o.room_id).collect();
        let errors_by_code = count_errors(inputs.outcomes.iter().filter_map(|o| o.error));
        let errors = errors_by_code.values().sum();
        let per_bot_s = |total: u64| (all.played_s > 0.0).then(|| total as f64 / all.played_s);
        let cpu_ms_per_bot_s = inputs
            .cpu
            .filter(|_| all.played_s > 0.0)
            .map(|cpu| cpu.as_secs_f64() * 1e3 / all.played_s);
        let mut server = inputs.server;
        let start = &inputs.server_at_start;
        server.cpu_ms_per_bot_s = match (start.cpu_s, server.cpu_s) {
            (Some(a), Some(b)) if all.played_s > 0.0 && b >= a => {
                Some((b - a) * 1e3 / all.played_s)
            }
            _ => None,
        };
        server.context_switches_per_msg = match (
            start.switches,
            server.switches,
            start.messages,
            server.messages,
        ) {
            (Some(s0), Some(s1), Some(m0), Some(m1)) if m1 > m0 && s1 >= s0 => {
                Some((s1 - s0) / (m1 - m0))
            }
            _ => None,
        };
        Report {
            transport: inputs.transport.to_string(),
            mode: inputs.mode.to_string(),
            bots: inputs.bots,
            joined,
            failed: inputs.bots.saturating_sub(joined),
            rooms: rooms.len(),
            duration_s: inputs.duration.as_secs_f64(),
            errors,
            errors_by_code,
            reconnects: all.reconnects,
            rejoins: all.rejoins,
            room_status_checks: all.room_status_checks,
            gateway_retries: 0,
            room_moves: all.moves,
            max_rollback_ms: all.max_rollback_ms,
            matches_ended: all.matches_ended,
            rtt_ms: RttMs {
                p50: quantile_ms(&all.rtt, 0.5),
                p90: quantile_ms(&all.rtt, 0.9),
                p99: quantile_ms(&all.rtt, 0.99),
                p999: quantile_ms(&all.rtt, 0.999),
                max: max_ms(&all.rtt),
            },
            resume_ms: ResumeMs {
                p50: quantile_ms(&all.resume, 0.5),
                p99: quantile_ms(&all.resume, 0.99),
            },
            rejoin_ms: spread_ms(&all.rejoin),
            ping_rtt_ms: spread_ms(&all.pong),
            lost_frames: (all.frames > 0).then_some(all.lost_frames),
            interval_jitter_ms: JitterMs {
                p99: quantile_ms(&all.jitter, 0.99),
            },
            bytes_per_bot_s: BytesPerBotS {
                up: per_bot_s(all.bytes_out),
                down: per_bot_s(all.bytes_in),
            },
            server,
            bot_cpu_ms_per_bot_s: cpu_ms_per_bot_s,
            link: LinkReport::default(),
        }
    }

    /// The report with the link conditions it ran under (`build` leaves them at none).
    pub fn with_link(mut self, link: LinkReport) -> Report {
        self.link = link;
        self
    }

    /// The report with the gateway `503`s its bots waited out.
    pub fn with_gateway_retries(mut self, retries: u64) -> Report {
        self.gateway_retries = retries;
        self
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".to_string())
    }
}

/// The median, p99 and maximum of `samples`, in ms.
fn spread_ms(samples: &Samples) -> SpreadMs {
    SpreadMs {
        p50: quantile_ms(samples, 0.5),
        p99: quantile_ms(samples, 0.99),
        max: max_ms(samples),
    }
}

/// Formats an optional figure: `-` when not measured.
pub(crate) fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.decimals$}"))
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.rtt_ms;
        writeln!(
            f,
            "swarm: {} bots, mode {}, transport {}, {:.0} s each",
            self.bots, self.mode, self.transport, self.duration_s
        )?;
        writeln!(
            f,
            "  joined        {:>10}   failed {}   rooms {}",
            self.joined, self.failed, self.rooms
        )?;
        let by_code: Vec<String> = self
            .errors_by_code
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        writeln!(
            f,
            "  errors        {:>10}   {}",
            self.errors,
            by_code.join(" ")
        )?;
        writeln!(
            f,
            "  reconnects    {:>10}   room status checks {}   gateway 503s waited out {}",
            self.reconnects, self.room_status_checks, self.gateway_retries
        )?;
        writeln!(
            f,
            "  room moves    {:>10}   most rolled back {:.0} ms",
            self.room_moves, self.max_rollback_ms
        )?;
        writeln!(f, "  matches ended {:>10}", self.matches_ended)?;
        writeln!(
            f,
            "  rejoins       {:>10}   p50 {} ms  p99 {} ms  max {} ms",
            self.rejoins,
            opt(self.rejoin_ms.p50, 1),
            opt(self.rejoin_ms.p99, 1),
            opt(self.rejoin_ms.max, 1)
        )?;
        writeln!(
            f,
            "  rtt ms        p50 {}  p90 {}  p99 {}  p999 {}  max {}",
            opt(r.p50, 2),
            opt(r.p90, 2),
            opt(r.p99, 2),
            opt(r.p999, 2),
            opt(r.max, 2)
        )?;
        writeln!(
            f,
            "  ping rtt ms   p50 {}  p99 {}  max {}",
            opt(self.ping_rtt_ms.p50, 2),
            opt(self.ping_rtt_ms.p99, 2),
            opt(self.ping_rtt_ms.max, 2)
        )?;
        writeln!(
            f,
            "  resume ms     p50 {}  p99 {}",
            opt(self.resume_ms.p50, 1),
            opt(self.resume_ms.p99, 1)
        )?;
        writeln!(
            f,
            "  jitter ms     p99 {}",
            opt(self.interval_jitter_ms.p99, 2)
        )?;
        writeln!(
            f,
            "  lost frames   {:>10}",
            self.lost_frames
                .map_or_else(|| "-".to_string(), |n| n.to_string())
        )?;
        writeln!(
            f,
            "  bytes/bot/s   up {}  down {}",
            opt(self.bytes_per_bot_s.up, 0),
            opt(self.bytes_per_bot_s.down, 0)
        )?;
        writeln!(
            f,
            "  server        tick p99 {} ms  overruns {}  rss {} MB  cpu {} ms per bot-second  context switches {} per message",
            opt(self.server.tick_p99_ms, 3),
            self.server
                .overruns
                .map_or_else(|| "-".to_string(), |n| n.to_string()),
            opt(self.server.rss_mb, 1),
            opt(self.server.cpu_ms_per_bot_s, 3),
            opt(self.server.context_switches_per_msg, 3)
        )?;
        writeln!(
            f,
            "  bot cpu       {} ms per bot-second",
            opt(self.bot_cpu_ms_per_bot_s, 3)
        )?;
        let m = &self.link.message_level;
        write!(
            f,
            "  link          message-level conditioner: latency {} ms ± {} ms, loss {} %;  kernel packet loss {}",
            opt(Some(m.latency_ms), 1),
            opt(Some(m.jitter_ms), 1),
            opt(Some(m.loss * 100.0), 2),
            self.link
                .kernel_loss
                .map_or_else(|| "none".to_string(), |l| format!("{} %", opt(Some(l * 100.0), 2)))
        )
    }
}

/// Reads the server figures from Prometheus (OpenMetrics) text; a missing line gives `None`.
/// The tick p99 is interpolated within the buckets of `tickroom_tick_duration_seconds`, as
/// PromQL's `histogram_quantile` does.
pub fn parse_metrics(text: &str) -> ServerFigures {
    let mut figures = ServerFigures::default();
    let mut tick_buckets: Vec<(f64, f64)> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some((name, value)) = line.rsplit_once(char::is_whitespace) else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        if !value.is_finite() {
            continue;
        }
        let name = name.trim();
        if let Some(le) = name
            .strip_prefix("tickroom_tick_duration_seconds_bucket{le=\"")
            .and_then(|r| r.strip_suffix("\"}"))
        {
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap_or(f64::NAN)
            };
            if !bound.is_nan() {
                tick_buckets.push((bound, value));
            }
            continue;
        }
        match name {
            "tickroom_tick_overruns_total" => figures.overruns = Some(value.max(0.0) as u64),
            "tickroom_process_context_switches_total{kind=\"voluntary\"}"
            | "tickroom_process_context_switches_total{kind=\"involuntary\"}" => {
                *figures.switches.get_or_insert(0.0) += value;
            }
            "tickroom_received_messages_total" | "tickroom_sent_messages_total" => {
                *figures.messages.get_or_insert(0.0) += value;
            }
            "process_cpu_seconds_total" => figures.cpu_s = Some(value),
            "process_resident_memory_bytes" => figures.rss_mb = Some(value / BYTES_PER_MB),
            _ => {}
        }
    }
    figures.tick_p99_ms = bucket_quantile(0.99, &mut tick_buckets).map(|s| s * 1000.0);
    figures
}

/// The `q` quantile of a histogram given as cumulative `(upper bound, count)` buckets, by linear
/// interpolation within the bucket it falls in (PromQL's `histogram_quantile`); `None` without
/// observations. A quantile in the `+Inf` bucket is the highest finite bound.
pub fn bucket_quantile(q: f64, buckets: &mut [(f64, f64)]) -> Option<f64> {
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for &(bound, cumulative) in buckets.iter() {
        if cumulative >= rank {
            if bound.is_infinite() {
                return Some(lower);
            }
            let inside = cumulative - below;
            let fraction = if inside > 0.0 {
                (rank - below) / inside
            } else {
                1.0
            };
            return Some(lower + (bound - lower) * fraction);
        }
        lower = bound;
        below = cumulative;
    }
    Some(lower)
}

/// Scrapes every url and combines what answered: the worst tick p99 and RSS of any server,
/// the sum of overruns; a figure no server gave stays `None`.
pub async fn scrape_all(urls: &[String]) -> ServerFigures {
    let mut scraped = Vec::with_capacity(urls.len());
    for url in urls {
        scraped.push(scrape_metrics(url).await);
    }
    combine(&scraped)
}

/// Combines the figures of several servers (see [`scrape_all`]).
pub fn combine(figures: &[ServerFigures]) -> ServerFigures {
    let max =
        |pick: fn(&ServerFigures) -> Option<f64>| figures.iter().filter_map(pick).reduce(f64::max);
    let overruns: Vec<u64> = figures.iter().filter_map(|f| f.overruns).collect();
    let sum = |pick: fn(&ServerFigures) -> Option<f64>| {
        figures.iter().filter_map(pick).reduce(|a, b| a + b)
    };
    ServerFigures {
        tick_p99_ms: max(|f| f.tick_p99_ms),
        overruns: (!overruns.is_empty()).then(|| overruns.iter().sum()),
        rss_mb: max(|f| f.rss_mb),
        cpu_ms_per_bot_s: None,
        context_switches_per_msg: None,
        cpu_s: sum(|f| f.cpu_s),
        switches: sum(|f| f.switches),
        messages: sum(|f| f.messages),
    }
}

/// The default scrape target for a gateway URL: the same host, the metrics listener's default
/// port, path `/metrics`; None when `gateway` is not a URL with a host.
pub fn default_metrics_url(gateway: &str) -> Option<String> {
    let mut url = reqwest::Url::parse(gateway).ok()?;
    url.host_str()?;
    url.set_port(Some(DEFAULT_METRICS_PORT)).ok()?;
    url.set_path("/metrics");
    url.set_query(None);
    Some(url.to_string())
}

/// Scrapes `url`; all `None` when the server cannot be reached.
pub async fn scrape_metrics(url: &str) -> ServerFigures {
    let fetch = async {
        let resp = reqwest::Client::new().get(url).send().await.ok()?;
        if !resp.status().is_success() {
            return None;
        }
        resp.text().await.ok()
    };
    match tokio::time::timeout(METRICS_TIMEOUT, fetch).await {
        Ok(Some(text)) => parse_metrics(&text),
        _ => ServerFigures::default(),
    }
}

/// CPU time (user + system) this process used so far, from `/proc/self/stat`.
pub fn process_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_proc_stat_cpu(&stat)
}

/// CPU time (user + system, every thread) process `pid` used so far, from `/proc/<pid>/stat`.
pub fn process_cpu_time_of(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_proc_stat_cpu(&stat)
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line.
fn parse_proc_stat_cpu(stat: &str) -> Option<Duration> {
    // The command name (field 2) may contain spaces; fields after it start past the last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state), so field n is at index n - 3.
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    Duration::try_from_secs_f64((utime + stime) as f64 / USER_HZ).ok()
}

#[cfg(test)]
mod tests {
    use tickroom_protocol::ErrorCode;

    use super::*;
    use crate::error::BotError;
    use crate::stats::record;

    const KEYS: [&str; 26] = [
        "transport",
        "mode",
        "bots",
        "joined",
        "failed",
        "rooms",
        "duration_s",
        "errors",
        "errors_by_code",
        "reconnects",
        "rejoins",
        "room_status_checks",
        "room_moves",
        "max_rollback_ms",
        "gateway_retries",
        "matches_ended",
        "rtt_ms",
        "resume_ms",
        "rejoin_ms",
        "ping_rtt_ms",
        "lost_frames",
        "interval_jitter_ms",
        "bytes_per_bot_s",
        "server",
        "bot_cpu_ms_per_bot_s",
        "link",
    ];

    fn build(outcomes: &[BotOutcome], cpu: Option<Duration>) -> serde_json::Value {
        // The servers used 0.3 s of CPU during the swarm (when it had bots that played), and
        // switched context 50 times for 1,000 messages.
        let report = Report::build(ReportInputs {
            transport: "ws",
            mode: "arena",
            bots: 2,
            duration: Duration::from_secs(3),
            outcomes,
            cpu,
            server_at_start: ServerFigures {
                cpu_s: cpu.map(|_| 10.0),
                switches: cpu.map(|_| 100.0),
                messages: cpu.map(|_| 500.0),
                ..ServerFigures::default()
            },
            server: ServerFigures {
                cpu_s: cpu.map(|_| 10.3),
                switches: cpu.map(|_| 150.0),
                messages: cpu.map(|_| 1500.0),
                ..ServerFigures::default()
            },
        });
        serde_json::from_str(&report.to_json()).unwrap()
    }

    #[test]
    fn unmeasured_figures_are_null() {
        let v = build(&[], None);
        let obj = v.as_object().unwrap();
        assert_eq!(obj.len(), KEYS.len());
        for key in KEYS {
            assert!(obj.contains_key(key), "missing {key}");
        }
        for key in ["p50", "p90", "p99", "p999", "max"] {
            assert!(v["rtt_ms"][key].is_null(), "rtt_ms.{key}");
        }
        assert!(v["resume_ms"]["p50"].is_null() && v["resume_ms"]["p99"].is_null());
        for key in ["p50", "p99", "max"] {
            assert!(v["rejoin_ms"][key].is_null(), "rejoin_ms.{key}");
        }
        assert_eq!(v["rejoins"], 0);
        assert_eq!(v["matches_ended"], 0);
        assert!(v["lost_frames"].is_null());
        assert!(v["interval_jitter_ms"]["p99"].is_null());
        assert!(v["bytes_per_bot_s"]["up"].is_null() && v["bytes_per_bot_s"]["down"].is_null());
        for key in [
            "tick_p99_ms",
            "overruns",
            "rss_mb",
            "cpu_ms_per_bot_s",
            "context_switches_per_msg",
        ] {
            assert!(v["server"][key].is_null(), "server.{key}");
        }
        for raw in ["cpu_s", "switches", "messages"] {
            assert!(
                v["server"].get(raw).is_none(),
                "the raw {raw} stay out of the report"
            );
        }
        assert!(v["bot_cpu_ms_per_bot_s"].is_null());
        assert!(v["link"]["kernel_loss"].is_null(), "not under netns-loss");
        assert_eq!(v["link"]["message_level"]["loss"], 0.0);
        assert_eq!(v["failed"], 2);
        assert_eq!(v["errors_by_code"], serde_json::json!({}));
    }

    #[test]
    fn measured_figures_are_filled() {
        let mut ok = BotOutcome {
            joined: true,
            room_id: Some(7),
            ..BotOutcome::default()
        };
        record(&mut ok.measurements.rtt, Duration::from_millis(10));
        record(&mut ok.measurements.jitter, Duration::from_millis(2));
        ok.measurements.played_s = 2.0;
        ok.measurements.bytes_out = 1000;
        ok.measurements.bytes_in = 4000;
        ok.measurements.matches_ended = 1;
        let bad = BotOutcome {
            error: Some(BotError::Closed(ErrorCode::RoomFull)),
            ..BotOutcome::default()
        };
        let v = build(&[ok, bad], Some(Duration::from_millis(100)));
        assert_eq!(v["joined"], 1);
        assert_eq!(v["failed"], 1);
        assert_eq!(v["rooms"], 1);
        assert_eq!(v["errors"], 1);
        assert_eq!(v["errors_by_code"]["room_full"], 1);
        assert_eq!(v["matches_ended"], 1);
        assert!((v["rtt_ms"]["p99"].as_f64().unwrap() - 10.0).abs() < 0.1);
        assert_eq!(v["bytes_per_bot_s"]["up"], 500.0);
        assert_eq!(v["bytes_per_bot_s"]["down"], 2000.0);
        assert_eq!(v["bot_cpu_ms_per_bot_s"], 50.0);
        // 0.3 s of server CPU over 2 bot-seconds played.
        let server_cpu = v["server"]["cpu_ms_per_bot_s"].as_f64().unwrap();
        assert!((server_cpu - 150.0).abs() < 1e-6, "{server_cpu}");
        assert_eq!(v["server"]["context_switches_per_msg"], 0.05);
        assert!(v["resume_ms"]["p50"].is_null());
        assert!(v["lost_frames"].is_null(), "not lockstep");
    }

    #[test]
    fn rejoins_and_lost_frames_are_reported() {
        let mut ok = BotOutcome {
            joined: true,
            room_id: Some(7),
            ..BotOutcome::default()
        };
        ok.measurements.rejoins = 1;
        record(&mut ok.measurements.rejoin, Duration::from_millis(1500));
        ok.measurements.frames = 100;
        ok.measurements.lost_frames = 2;
        let v = build(&[ok], None);
        assert_eq!(v["rejoins"], 1);
        assert!((v["rejoin_ms"]["p99"].as_f64().unwrap() - 1500.0).abs() < 2.0);
        assert!((v["rejoin_ms"]["max"].as_f64().unwrap() - 1500.0).abs() < 2.0);
        assert_eq!(v["lost_frames"], 2);
    }

    #[test]
    fn server_figures_combine() {
        let a = ServerFigures {
            tick_p99_ms: Some(1.0),
            overruns: Some(2),
            rss_mb: Some(40.0),
            cpu_s: Some(1.5),
            switches: Some(10.0),
            messages: Some(100.0),
            ..ServerFigures::default()
        };
        let b = ServerFigures {
            tick_p99_ms: Some(3.0),
            overruns: Some(5),
            rss_mb: None,
            cpu_s: Some(2.0),
            ..ServerFigures::default()
        };
        let c = combine(&[a, b, ServerFigures::default()]);
        assert_eq!(c.tick_p99_ms, Some(3.0));
        assert_eq!(c.overruns, Some(7));
        assert_eq!(c.rss_mb, Some(40.0));
        assert_eq!(c.cpu_s, Some(3.5), "the servers' CPU adds up");
        assert_eq!((c.switches, c.messages), (Some(10.0), Some(100.0)));
        assert_eq!(combine(&[]), ServerFigures::default());
    }

    #[test]
    fn metrics_text_is_parsed() {
        let text = "# HELP x\n\
            tickroom_tick_duration_seconds_bucket{le=\"0.001\"} 50\n\
            tickroom_tick_duration_seconds_bucket{le=\"0.002\"} 90\n\
            tickroom_tick_duration_seconds_bucket{le=\"0.004\"} 100\n\
            tickroom_tick_duration_seconds_bucket{le=\"+Inf\"} 100\n\
            tickroom_tick_overruns_total 3\n\
            process_cpu_seconds_total 12.5\n\
            process_resident_memory_bytes 52428800\n\
            tickroom_process_context_switches_total{kind=\"voluntary\"} 70\n\
            tickroom_process_context_switches_total{kind=\"involuntary\"} 5\n\
            tickroom_received_messages_total 600\n\
            tickroom_sent_messages_total 900\n";
        let f = parse_metrics(text);
        // Rank 99 of 100 lies 90 % into the (2 ms, 4 ms] bucket.
        let p99 = f.tick_p99_ms.unwrap();
        assert!((p99 - 3.8).abs() < 1e-9, "{p99}");
        assert_eq!(f.overruns, Some(3));
        assert_eq!(f.rss_mb, Some(50.0));
        assert_eq!(f.cpu_s, Some(12.5));
        assert_eq!(f.switches, Some(75.0));
        assert_eq!(f.messages, Some(1500.0));
        assert_eq!(
            parse_metrics("garbage\n{}\nx NaN"),
            ServerFigures::default()
        );
    }

    #[test]
    fn the_link_section_names_both_kinds_of_loss() {
        let conditioner = LinkConfig {
            latency: Duration::from_millis(50),
            jitter: Duration::from_millis(5),
            loss: 0.01,
            mean_burst_len: 3.0,
        };
        let report = Report::build(ReportInputs {
            transport: "quic",
            mode: "arena",
            bots: 1,
            duration: Duration::from_secs(1),
            outcomes: &[],
            cpu: None,
            server_at_start: ServerFigures::default(),
            server: ServerFigures::default(),
        })
        .with_link(LinkReport::new(&conditioner, Some(0.02)));
        let v: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(v["link"]["kernel_loss"], 0.02);
        assert_eq!(v["link"]["message_level"]["latency_ms"], 50.0);
        assert_eq!(v["link"]["message_level"]["jitter_ms"], 5.0);
        assert_eq!(v["link"]["message_level"]["loss"], 0.01);
        assert_eq!(v["link"]["message_level"]["mean_burst_len"], 3.0);
        let table = report.to_string();
        let line = table.lines().last().unwrap();
        assert!(
            line.contains("message-level conditioner: latency 50.0 ms ± 5.0 ms, loss 1.00 %"),
            "{line}"
        );
        assert!(line.contains("kernel packet loss 2.00 %"), "{line}");
        let plain = report.with_link(LinkReport::default()).to_string();
        assert!(plain.ends_with("kernel packet loss none"), "{plain}");
    }

    #[test]
    fn proc_stat_is_parsed() {
        let line = "1234 (tick room) S 1 2 3 4 5 6 7 8 9 10 150 50 0 0 20 0 1 0";
        assert_eq!(parse_proc_stat_cpu(line), Some(Duration::from_secs(2)));
        assert_eq!(parse_proc_stat_cpu("nonsense"), None);
        assert!(process_cpu_time().is_some());
    }
}
