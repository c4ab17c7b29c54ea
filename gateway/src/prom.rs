//! Prometheus exposition through the `prometheus-client` crate (OpenMetrics text): helpers
//! every tickroom process uses to encode its metrics at scrape time from its own lock-free
//! counters, with the conventions Prometheus expects — base units in the name (`_seconds`,
//! `_bytes`), `_total` on counters (the encoder adds it), histograms with buckets (so
//! `histogram_quantile` aggregates over servers), the standard `process_*` metrics and a
//! `tickroom_build_info` carrying the version.

use std::fmt;
use std::sync::Arc;

use hdrhistogram::Histogram;
use prometheus_client::encoding::text::encode_registry;
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

pub use prometheus_client::encoding::DescriptorEncoder as Encoder;

/// The content type of `/metrics` (OpenMetrics text 1.0).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The last line of an OpenMetrics exposition.
pub const EOF: &str = "# EOF\n";

/// Upper bounds of the tick-duration histograms, in seconds (25 µs to 0.4 s).
pub const TICK_BUCKETS_S: [f64; 15] = [
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.02, 0.033,
    0.05, 0.1, 0.2, 0.4,
];
/// Upper bounds of wait-time histograms (matchmaking queue, handshakes), in seconds.
pub const WAIT_BUCKETS_S: [f64; 14] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Encodes what `encode` writes about `data` into `out` (no `# EOF`: the metrics route adds
/// it once after every source).
pub fn encode_into<T: Send + Sync + 'static>(
    out: &mut String,
    data: Arc<T>,
    encode: fn(&T, &mut Encoder) -> fmt::Result,
) {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Source { data, encode }));
    let _ = encode_registry(out, &registry);
}

struct Source<T> {
    data: Arc<T>,
    encode: fn(&T, &mut Encoder) -> fmt::Result,
}

impl<T> fmt::Debug for Source<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Source")
    }
}

impl<T: Send + Sync + 'static> prometheus_client::collector::Collector for Source<T> {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        (self.encode)(&self.data, &mut encoder)
    }
}

/// A counter (`name` without `_total`: the encoder adds it).
pub fn counter(e: &mut Encoder, name: &str, help: &str, value: u64) -> fmt::Result {
    e.encode_descriptor(name, help, None, MetricType::Counter)?
        .encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(&value, None)
}

/// A counter with one label, one series per `(label value, count)`.
pub fn counter_by<'a>(
    e: &mut Encoder,
    name: &str,
    help: &str,
    label: &str,
    values: impl IntoIterator<Item = (&'a str, u64)>,
) -> fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (v, n) in values {
        m.encode_family(&[(label, v)])?
            .encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(&n, None)?;
    }
    Ok(())
}

/// A gauge, with a unit appended to its name when given.
pub fn gauge<V: EncodeGaugeValue>(
    e: &mut Encoder,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    value: V,
) -> fmt::Result {
    e.encode_descriptor(name, help, unit.as_ref(), MetricType::Gauge)?
        .encode_gauge(&value)
}

/// A gauge with one label, one series per `(label value, value)`.
pub fn gauge_by<'a, V: EncodeGaugeValue>(
    e: &mut Encoder,
    name: &str,
    help: &str,
    label: &str,
    values: impl IntoIterator<Item = (&'a str, V)>,
) -> fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (v, x) in values {
        m.encode_family(&[(label, v)])?.encode_gauge(&x)?;
    }
    Ok(())
}

/// A histogram in seconds (`name` without `_seconds`) from an HDR histogram of `unit_s`-second
/// values, over the upper `bounds` (seconds; `+Inf` is added).
pub fn histogram_seconds(
    e: &mut Encoder,
    name: &str,
    help: &str,
    h: &Histogram<u64>,
    unit_s: f64,
    bounds: &[f64],
) -> fmt::Result {
    let mut buckets = Vec::with_capacity(bounds.len() + 1);
    let mut below = 0u64;
    for &b in bounds {
        let upto = (b / unit_s).floor() as u64;
        let cumulative = if h.is_empty() {
            0
        } else {
            h.count_between(0, upto)
        };
        buckets.push((b, cumulative.saturating_sub(below)));
        below = cumulative.max(below);
    }
    // The encoder writes `+Inf` for `f64::MAX`.
    buckets.push((f64::MAX, h.len().saturating_sub(below)));
    let sum = h.mean() * h.len() as f64 * unit_s;
    e.encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?
        .encode_histogram::<prometheus_client::encoding::NoLabelSet>(sum, h.len(), &buckets, None)
}

/// `tickroom_build_info{version} 1`.
pub fn build_info(e: &mut Encoder) -> fmt::Result {
    let labels = [("version", env!("CARGO_PKG_VERSION"))];
    e.encode_descriptor(
        "tickroom_build",
        "the running build's version and role",
        None,
        MetricType::Info,
    )?
    .encode_info(&labels)
}

/// The standard `process_*` metrics of this process (Linux `/proc`; nothing elsewhere).
pub fn process(e: &mut Encoder) -> fmt::Result {
    let Some(p) = ProcessStats::read() else {
        return Ok(());
    };
    e.encode_descriptor(
        "process_cpu",
        "user and system CPU time spent",
        Some(&Unit::Seconds),
        MetricType::Counter,
    )?
    .encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(&p.cpu_seconds, None)?;
    gauge(
        e,
        "process_resident_memory",
        "resident memory size",
        Some(Unit::Bytes),
        p.rss_bytes,
    )?;
    gauge(
        e,
        "process_virtual_memory",
        "virtual memory size",
        Some(Unit::Bytes),
        p.vsize_bytes,
    )?;
    gauge(
        e,
        "process_open_fds",
        "open file descriptors",
        None,
        p.open_fds,
    )?;
    gauge(
        e,
        "process_max_fds",
        "the limit of open file descriptors",
        None,
        p.max_fds,
    )?;
    gauge(
        e,
        "process_start_time",
        "start time of the process since the unix epoch",
        Some(Unit::Seconds),
        p.start_time_s,
    )?;
    counter_by(
        e,
        "tickroom_process_context_switches",
        "context switches of the process's live threads (voluntary: it waited; involuntary: it was preempted)",
        "kind",
        [
            ("voluntary", p.voluntary_switches),
            ("involuntary", p.involuntary_switches),
        ],
    )
}

/// What `/proc/self` says about this process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessStats {
    /// User + system CPU time, seconds.
    pub cpu_seconds: f64,
    /// Resident set size, bytes.
    pub rss_bytes: u64,
    /// Virtual memory size, bytes.
    pub vsize_bytes: u64,
    /// Open file descriptors.
    pub open_fds: u64,
    /// The soft limit of file descriptors.
    pub max_fds: u64,
    /// Start time, seconds since the unix epoch.
    pub start_time_s: f64,
    /// Context switches summed over the live threads (those of threads that ended are gone).
    pub voluntary_switches: u64,
    pub involuntary_switches: u64,
}

impl ProcessStats {
    /// Reads `/proc/self` (None when it is not there).
    pub fn read() -> Option<ProcessStats> {
        // USER_HZ and the page size are 100 and 4096 on every Linux tickroom runs on.
        const TICKS_PER_S: f64 = 100.0;
        const PAGE_BYTES: u64 = 4096;
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command (which may hold spaces) start after the last ')'.
        let rest = stat.rsplit_once(')')?.1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
        // In `rest`, field 0 is the state (stat field 3): utime is stat field 14 → index 11.
        let cpu_seconds = (num(11)? + num(12)?) as f64 / TICKS_PER_S;
        let start_ticks = num(19)?;
        let vsize_bytes = num(20)?;
        let rss_bytes = num(21)? * PAGE_BYTES;
        let boot_s = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("btime "))?
            .trim()
            .parse::<f64>()
            .ok()?;
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
        let max_fds = std::fs::read_to_string("/proc/self/limits")
            .ok()?
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .and_then(|l| l.split_whitespace().nth(3))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let (voluntary_switches, involuntary_switches) = context_switches();
        Some(ProcessStats {
            voluntary_switches,
            involuntary_switches,
            cpu_seconds,
            rss_bytes,
            vsize_bytes,
            open_fds,
            max_fds,
            start_time_s: boot_s + start_ticks as f64 / TICKS_PER_S,
        })
    }
}

/// Voluntary and involuntary context switches summed over `/proc/self/task/*/status`.
fn context_switches() -> (u64, u64) {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return (0, 0);
    };
    let mut sums = (0, 0);
    for task in tasks.flatten() {
        if let Ok(status) = std::fs::read_to_string(task.path().join("status")) {
            let (voluntary, involuntary) = switches_in(&status);
            sums.0 += voluntary;
            sums.1 += involuntary;
        }
    }
    sums
}

/// Voluntary and involuntary context switches in one thread's `/proc/.../status` text.
fn switches_in(status: &str) -> (u64, u64) {
    let mut switches = (0, 0);
    for line in status.lines() {
        let value = |rest: &str| rest.trim().parse::<u64>().unwrap_or(0);
        if let Some(rest) = line.strip_prefix("voluntary_ctxt_switches:") {
            switches.0 = value(rest);
        } else if let Some(rest) = line.strip_prefix("nonvoluntary_ctxt_switches:") {
            switches.1 = value(rest);
        }
    }
    switches
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(encode: fn(&(), &mut Encoder) -> fmt::Result) -> String {
        let mut out = String::new();
        encode_into(&mut out, Arc::new(()), encode);
        out
    }

    #[test]
    fn counters_gauges_and_labels_follow_the_conventions() {
        let out = text(|_, e| {
            counter(e, "t_joins", "joins", 3)?;
            counter_by(e, "t_desyncs", "desyncs", "mode", [("duel", 2)])?;
            gauge(e, "t_memory", "memory", Some(Unit::Bytes), 7u64)?;
            gauge_by(e, "t_depth", "depth", "worker", [("0", 4i64)])
        });
        assert!(
            out.contains("# TYPE t_joins counter\nt_joins_total 3\n"),
            "{out}"
        );
        assert!(out.contains("t_desyncs_total{mode=\"duel\"} 2\n"), "{out}");
        assert!(out.contains("t_memory_bytes 7\n"), "{out}");
        assert!(out.contains("t_depth{worker=\"0\"} 4\n"), "{out}");
        assert!(!out.contains("# EOF"), "the route adds EOF once");
    }

    #[test]
    fn hdr_histograms_become_cumulative_buckets_in_seconds() {
        let out = text(|_, e| {
            let mut h = Histogram::<u64>::new_with_max(1_000_000, 3).unwrap();
            for us in [10, 30, 30, 2_000, 900_000] {
                h.record(us).unwrap();
            }
            histogram_seconds(e, "t_tick", "tick", &h, 1e-6, &[0.000_025, 0.001, 0.01])
        });
        assert!(
            out.contains("t_tick_seconds_bucket{le=\"0.000025\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("t_tick_seconds_bucket{le=\"0.001\"} 3\n"),
            "{out}"
        );
        assert!(
            out.contains("t_tick_seconds_bucket{le=\"0.01\"} 4\n"),
            "{out}"
        );
        assert!(
            out.contains("t_tick_seconds_bucket{le=\"+Inf\"} 5\n"),
            "{out}"
        );
        assert!(out.contains("t_tick_seconds_count 5\n"), "{out}");
    }

    #[test]
    fn process_and_build_info_are_standard() {
        let out = text(|_, e| {
            build_info(e)?;
            process(e)
        });
        assert!(out.contains("tickroom_build_info{version=\""), "{out}");
        assert!(out.contains("process_resident_memory_bytes "), "{out}");
        assert!(out.contains("process_cpu_seconds_total "), "{out}");
        assert!(out.contains("process_open_fds "), "{out}");
        assert!(
            out.contains("tickroom_process_context_switches_total{kind=\"voluntary\"} "),
            "{out}"
        );
        // This thread waiting is a voluntary switch of its own. (The process's sum may also
        // lose the counts of other test threads that ended meanwhile, so compare this one.)
        let own = || switches_in(&std::fs::read_to_string("/proc/thread-self/status").unwrap()).0;
        let before = own();
        std::thread::park_timeout(std::time::Duration::from_millis(2));
        assert!(own() > before, "waiting is a voluntary switch");
        // The process's sum, read after, covers at least this live thread's count.
        let mine = own();
        let p = ProcessStats::read().unwrap();
        assert!(p.voluntary_switches >= mine, "{p:?}");
        assert!(
            p.rss_bytes > 0 && p.open_fds > 0 && p.start_time_s > 1.6e9,
            "{p:?}"
        );
    }
}
