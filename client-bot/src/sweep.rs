//! `tickroom-bot sweep`: the same swarm at growing sizes, one after the other, so one command
//! shows how latency and cost grow with load. Every step's report gives a CSV row; the rows
//! become a plot (SVG, drawn with plotters) of RTT p50 and p99 and of the server's and the
//! bots' CPU per player-second against the number of players. With `--floor` every step also
//! runs the floor (`crate::floor`) at the same size: its figures, and tickroom's CPU as a ratio
//! to them, are appended to the row and drawn as dashed lines.

use std::path::Path;

use plotters::element::DashedPathElement;
use plotters::prelude::*;

use crate::cli::{FloorArgs, SweepArgs};
use crate::floor::{report_ok, run_floor, self_server_command, FloorReport};
use crate::game_bot::GameBotFactory;
use crate::report::Report;
use crate::swarm::run_swarm;

/// One step of a sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepRow {
    /// Bots asked for.
    pub bots: usize,
    /// Bots that joined.
    pub joined: usize,
    /// Errors.
    pub errors: u64,
    /// RTT p50 and p99, ms.
    pub rtt_p50_ms: Option<f64>,
    pub rtt_p99_ms: Option<f64>,
    /// The server's and the bots' CPU per player-second, ms.
    pub server_cpu_ms: Option<f64>,
    pub bot_cpu_ms: Option<f64>,
    /// The server's tick p99 (ms) and overruns.
    pub tick_p99_ms: Option<f64>,
    pub overruns: Option<u64>,
    /// The server's context switches per message received or sent.
    pub switches_per_msg: Option<f64>,
    /// The floor at the same size (`--floor`).
    pub floor: Option<FloorFigures>,
}

/// The floor's figures in a sweep row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FloorFigures {
    /// The floor's RTT p99, ms.
    pub rtt_p99_ms: Option<f64>,
    /// The floor server's CPU per player-second, ms.
    pub server_cpu_ms: Option<f64>,
    /// The floor bots' CPU per bot-second, ms.
    pub bot_cpu_ms: Option<f64>,
}

impl FloorFigures {
    /// The figures of a floor run.
    pub fn of(report: &FloorReport) -> FloorFigures {
        FloorFigures {
            rtt_p99_ms: report.rtt_ms.p99,
            server_cpu_ms: report.server_cpu_ms_per_player_s,
            bot_cpu_ms: report.bot_cpu_ms_per_bot_s,
        }
    }
}

/// `a / b` when both were measured and `b` is above zero.
fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

impl SweepRow {
    /// The row of one step's report.
    pub fn of(report: &Report) -> SweepRow {
        SweepRow {
            bots: report.bots,
            joined: report.joined,
            errors: report.errors,
            rtt_p50_ms: report.rtt_ms.p50,
            rtt_p99_ms: report.rtt_ms.p99,
            server_cpu_ms: report.server.cpu_ms_per_bot_s,
            bot_cpu_ms: report.bot_cpu_ms_per_bot_s,
            tick_p99_ms: report.server.tick_p99_ms,
            overruns: report.server.overruns,
            switches_per_msg: report.server.context_switches_per_msg,
            floor: None,
        }
    }

    /// Tickroom's server CPU per player-second over the floor server's.
    pub fn server_cpu_ratio(&self) -> Option<f64> {
        ratio(self.server_cpu_ms, self.floor.and_then(|f| f.server_cpu_ms))
    }

    /// Tickroom's bot CPU per bot-second over the floor bots'.
    pub fn bot_cpu_ratio(&self) -> Option<f64> {
        ratio(self.bot_cpu_ms, self.floor.and_then(|f| f.bot_cpu_ms))
    }
}

/// Runs one swarm per step (and, with `--floor`, the floor after it), then writes the CSV and
/// the plot; the rows, and whether every step was ok (errors within `--max-errors`, someone
/// joined, in the swarm and in the floor).
pub async fn run_sweep(
    args: &SweepArgs,
    factory: GameBotFactory,
) -> anyhow::Result<(Vec<SweepRow>, bool)> {
    anyhow::ensure!(
        !args.steps.is_empty() && args.steps.iter().all(|&n| n > 0),
        "--steps needs sizes of at least 1"
    );
    let mut rows = Vec::with_capacity(args.steps.len());
    let mut ok = true;
    for &bots in &args.steps {
        let mut swarm = args.swarm.clone();
        swarm.bots = bots;
        swarm.report = None;
        let result = run_swarm(&swarm, factory.clone()).await?;
        ok &= result.ok;
        let mut row = SweepRow::of(&result.report);
        if args.floor {
            let floor_args = FloorArgs {
                bots,
                ramp: swarm.ramp,
                duration: swarm.duration,
                max_errors: swarm.max_errors,
                report: None,
            };
            let floor = run_floor(&floor_args, self_server_command()?).await?;
            ok &= report_ok(&floor_args, &floor);
            row.floor = Some(FloorFigures::of(&floor));
        }
        println!("{}", line(&row));
        rows.push(row);
    }
    std::fs::write(&args.csv, csv(&rows))
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", args.csv.display()))?;
    plot(&rows, &args.plot)?;
    Ok((rows, ok))
}

fn num(v: Option<f64>) -> String {
    v.map_or_else(String::new, |v| format!("{v:.3}"))
}

/// A row's cells, in the CSV's column order (empty where nothing was measured).
fn cells(r: &SweepRow) -> [String; 10] {
    [
        r.bots.to_string(),
        r.joined.to_string(),
        r.errors.to_string(),
        num(r.rtt_p50_ms),
        num(r.rtt_p99_ms),
        num(r.server_cpu_ms),
        num(r.bot_cpu_ms),
        num(r.tick_p99_ms),
        r.overruns.map_or_else(String::new, |n| n.to_string()),
        num(r.switches_per_msg),
    ]
}

/// The floor's cells, appended after [`cells`] when the sweep ran the floor: its RTT p99, server
/// and bot CPU, and tickroom's server and bot CPU as ratios to them.
fn floor_cells(r: &SweepRow) -> [String; 5] {
    let f = r.floor;
    [
        num(f.and_then(|f| f.rtt_p99_ms)),
        num(f.and_then(|f| f.server_cpu_ms)),
        num(f.and_then(|f| f.bot_cpu_ms)),
        num(r.server_cpu_ratio()),
        num(r.bot_cpu_ratio()),
    ]
}

/// The floor's CSV columns.
const FLOOR_HEADER: &str = "floor_rtt_p99_ms,floor_server_cpu_ms_per_player_s,floor_bot_cpu_ms_per_player_s,server_cpu_ratio_to_floor,bot_cpu_ratio_to_floor";

/// One human line per step.
fn line(r: &SweepRow) -> String {
    let [bots, joined, errors, p50, p99, server, bot, tick, overruns, switches] = cells(r);
    let mut text = format!(
        "sweep {bots:>6} bots: joined {joined} errors {errors}  rtt p50 {p50} p99 {p99} ms  cpu server {server} bot {bot} ms per player-second  tick p99 {tick} ms overruns {overruns}  server context switches {switches} per message"
    );
    if r.floor.is_some() {
        let [p99, server, bot, server_ratio, bot_ratio] = floor_cells(r);
        text.push_str(&format!(
            "  floor: rtt p99 {p99} ms cpu server {server} bot {bot} ms, tickroom/floor server {server_ratio}x bot {bot_ratio}x"
        ));
    }
    text
}

/// The CSV: a header and one row per step (empty cells where nothing was measured); when any
/// step ran the floor, its columns follow the others.
pub fn csv(rows: &[SweepRow]) -> String {
    let with_floor = rows.iter().any(|r| r.floor.is_some());
    let mut out = String::from(
        "bots,joined,errors,rtt_p50_ms,rtt_p99_ms,server_cpu_ms_per_player_s,bot_cpu_ms_per_player_s,tick_p99_ms,overruns,server_switches_per_msg",
    );
    if with_floor {
        out.push(',');
        out.push_str(FLOOR_HEADER);
    }
    out.push('\n');
    for r in rows {
        out.push_str(&cells(r).join(","));
        if with_floor {
            out.push(',');
            out.push_str(&floor_cells(r).join(","));
        }
        out.push('\n');
    }
    out
}

/// The plot: RTT p50 and p99 (left axis, ms) and the server's and the bots' CPU per
/// player-second (right axis, ms) against players; the floor's RTT p99 and CPU costs, when
/// measured, as dashed lines in the colour of tickroom's.
pub fn plot(rows: &[SweepRow], path: &Path) -> anyhow::Result<()> {
    let points = |pick: fn(&SweepRow) -> Option<f64>| -> Vec<(f64, f64)> {
        rows.iter()
            .filter_map(|r| pick(r).map(|v| (r.bots as f64, v)))
            .collect()
    };
    let max = |series: &[&Vec<(f64, f64)>]| {
        series
            .iter()
            .flat_map(|s| s.iter().map(|p| p.1))
            .fold(0.0_f64, f64::max)
    };
    let (p50, p99) = (points(|r| r.rtt_p50_ms), points(|r| r.rtt_p99_ms));
    let (server, bot) = (points(|r| r.server_cpu_ms), points(|r| r.bot_cpu_ms));
    let floor_p99 = points(|r| r.floor.and_then(|f| f.rtt_p99_ms));
    let floor_server = points(|r| r.floor.and_then(|f| f.server_cpu_ms));
    let floor_bot = points(|r| r.floor.and_then(|f| f.bot_cpu_ms));
    let x_max = rows.iter().map(|r| r.bots).max().unwrap_or(1) as f64 * 1.05;
    let rtt_max = (max(&[&p50, &p99, &floor_p99]) * 1.15).max(1.0);
    let cpu_max = (max(&[&server, &bot, &floor_server, &floor_bot]) * 1.15).max(0.1);
    let draw = || -> Result<(), Box<dyn std::error::Error>> {
        let root = SVGBackend::new(path, (900, 520)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "tickroom sweep: latency and cost against players",
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .right_y_label_area_size(60)
            .build_cartesian_2d(0.0..x_max, 0.0..rtt_max)?
            .set_secondary_coord(0.0..x_max, 0.0..cpu_max);
        chart
            .configure_mesh()
            .x_desc("players")
            .y_desc("RTT, ms")
            .draw()?;
        chart
            .configure_secondary_axes()
            .y_desc("CPU per player-second, ms")
            .draw()?;
        let styles = [(&p50, "RTT p50", GREEN), (&p99, "RTT p99", RED)];
        for (series, name, color) in styles {
            chart
                .draw_series(LineSeries::new(
                    series.iter().copied(),
                    color.stroke_width(2),
                ))?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            chart.draw_series(series.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        }
        let costs = [(&server, "server CPU", BLUE), (&bot, "bot CPU", MAGENTA)];
        for (series, name, color) in costs {
            chart
                .draw_secondary_series(LineSeries::new(
                    series.iter().copied(),
                    color.stroke_width(2),
                ))?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
        let dashed = |color: RGBColor| {
            move |(x, y): (i32, i32)| {
                DashedPathElement::new(vec![(x, y), (x + 20, y)], 5, 3, color.stroke_width(2))
            }
        };
        if !floor_p99.is_empty() {
            chart
                .draw_series(DashedLineSeries::new(
                    floor_p99.iter().copied(),
                    8,
                    5,
                    RED.stroke_width(2),
                ))?
                .label("floor RTT p99")
                .legend(dashed(RED));
        }
        let floor_costs = [
            (&floor_server, "floor server CPU", BLUE),
            (&floor_bot, "floor bot CPU", MAGENTA),
        ];
        for (series, name, color) in floor_costs {
            if series.is_empty() {
                continue;
            }
            chart
                .draw_secondary_series(DashedLineSeries::new(
                    series.iter().copied(),
                    8,
                    5,
                    color.stroke_width(2),
                ))?
                .label(name)
                .legend(dashed(color));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| anyhow::anyhow!("cannot draw {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(bots: usize, p99: Option<f64>, cpu: Option<f64>) -> SweepRow {
        SweepRow {
            bots,
            joined: bots,
            errors: 0,
            rtt_p50_ms: p99.map(|v| v / 2.0),
            rtt_p99_ms: p99,
            server_cpu_ms: cpu,
            bot_cpu_ms: cpu.map(|v| v * 0.8),
            tick_p99_ms: Some(0.3),
            overruns: Some(0),
            switches_per_msg: Some(0.1),
            floor: None,
        }
    }

    fn with_floor(mut r: SweepRow, p99: f64, server: f64, bot: Option<f64>) -> SweepRow {
        r.floor = Some(FloorFigures {
            rtt_p99_ms: Some(p99),
            server_cpu_ms: Some(server),
            bot_cpu_ms: bot,
        });
        r
    }

    #[test]
    fn floor_columns_follow_the_others_with_the_ratios() {
        let rows = [
            with_floor(row(250, Some(34.0), Some(0.7)), 33.5, 0.35, Some(0.28)),
            with_floor(row(500, Some(36.0), None), 34.0, 0.3, None),
        ];
        let text = csv(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "bots,joined,errors,rtt_p50_ms,rtt_p99_ms,server_cpu_ms_per_player_s,bot_cpu_ms_per_player_s,tick_p99_ms,overruns,server_switches_per_msg,floor_rtt_p99_ms,floor_server_cpu_ms_per_player_s,floor_bot_cpu_ms_per_player_s,server_cpu_ratio_to_floor,bot_cpu_ratio_to_floor"
        );
        assert_eq!(
            lines[1],
            "250,250,0,17.000,34.000,0.700,0.560,0.300,0,0.100,33.500,0.350,0.280,2.000,2.000"
        );
        assert_eq!(
            lines[2], "500,500,0,18.000,36.000,,,0.300,0,0.100,34.000,0.300,,,",
            "no ratio without both figures"
        );
        let shown = line(&rows[0]);
        assert!(shown.contains("floor: rtt p99 33.500 ms"), "{shown}");
        assert!(shown.contains("server 2.000x bot 2.000x"), "{shown}");
        assert!(!line(&row(250, None, None)).contains("floor"));
        assert_eq!(rows[0].server_cpu_ratio(), Some(2.0));
        assert_eq!(row(1, None, Some(1.0)).server_cpu_ratio(), None);
    }

    #[test]
    fn the_floor_is_drawn_dashed() {
        let dir = std::env::temp_dir().join(format!("sweep-floor-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sweep.svg");
        let plain = dir.join("plain.svg");
        let rows = [
            with_floor(row(250, Some(34.0), Some(0.7)), 33.5, 0.35, Some(0.28)),
            with_floor(row(1000, Some(42.0), Some(0.5)), 35.0, 0.3, Some(0.25)),
        ];
        plot(&rows, &path).unwrap();
        plot(&[row(250, Some(34.0), Some(0.7))], &plain).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        let without = std::fs::read_to_string(&plain).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        for label in ["floor RTT p99", "floor server CPU", "floor bot CPU"] {
            assert!(svg.contains(label), "{label} is on the plot");
            assert!(!without.contains(label), "{label} only with the floor");
        }
        assert!(
            svg.matches("<polyline").count() > 4 + 3,
            "dashes are many short lines"
        );
    }

    #[test]
    fn csv_has_a_header_and_a_row_per_step_with_empty_cells_for_the_unmeasured() {
        let unscraped = SweepRow {
            switches_per_msg: None,
            ..row(500, None, None)
        };
        let text = csv(&[row(250, Some(34.0), Some(0.7)), unscraped]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("bots,joined,errors,rtt_p50_ms,rtt_p99_ms,"));
        assert!(lines[0].ends_with(",overruns,server_switches_per_msg"));
        assert_eq!(
            lines[1],
            "250,250,0,17.000,34.000,0.700,0.560,0.300,0,0.100"
        );
        assert_eq!(lines[2], "500,500,0,,,,,0.300,0,");
    }

    #[test]
    fn the_plot_is_an_svg_with_every_series() {
        let dir = std::env::temp_dir().join(format!("sweep-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sweep.svg");
        plot(
            &[
                row(250, Some(34.0), Some(0.7)),
                row(1000, Some(42.0), Some(0.5)),
            ],
            &path,
        )
        .unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(svg.starts_with("<svg"), "{}", &svg[..60.min(svg.len())]);
        for label in ["RTT p50", "RTT p99", "server CPU", "bot CPU", "players"] {
            assert!(svg.contains(label), "{label} is on the plot");
        }
        assert!(svg.matches("<polyline").count() >= 4, "four lines");
    }
}
