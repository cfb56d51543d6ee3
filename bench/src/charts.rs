//! The report's charts, as SVG (text stays text: no font files are needed).
//!
//! * `latency.svg`: p50, p95 and p99 of every endpoint at each concurrency, beside the raw
//!   DynamoDB operations (log scale);
//! * `throughput.svg`: the mixed workload's requests/s against concurrency, beside raw
//!   `GetItem`s/s;
//! * `lag.svg`: projection lag p50 and p99 per read model against the write rate, beside the
//!   raw SNS→SQS round trip;
//! * `replay.svg`: rebuild items written/s per projection and for all, beside raw `BatchWriteItem`
//!   items/s.

use std::fmt::Debug;
use std::path::Path;

use plotters::prelude::*;

use crate::report::Report;
use crate::stats::Latency;

/// A chart written next to the report.
#[derive(Clone, Debug)]
pub struct Chart {
    /// File name inside the report's folder.
    pub file: String,
    pub title: String,
}

const WIDTH: u32 = 960;
const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(127, 127, 127),
];

fn plot<T, E: Debug>(result: Result<T, E>) -> anyhow::Result<T> {
    result.map_err(|error| anyhow::anyhow!("drawing a chart: {error:?}"))
}

/// Draws every chart the report has data for into `dir`; returns them in report order.
pub fn draw(report: &Report, dir: &Path) -> anyhow::Result<Vec<Chart>> {
    let mut charts = Vec::new();
    if let Some(chart) = latency(report, dir)? {
        charts.push(chart);
    }
    if let Some(chart) = throughput(report, dir)? {
        charts.push(chart);
    }
    if let Some(chart) = lag(report, dir)? {
        charts.push(chart);
    }
    if let Some(chart) = replay(report, dir)? {
        charts.push(chart);
    }
    Ok(charts)
}

/// One row of the latency chart: a name and its distribution at one concurrency.
struct Row<'a> {
    name: String,
    concurrency: usize,
    latency: &'a Latency,
}

fn latency(report: &Report, dir: &Path) -> anyhow::Result<Option<Chart>> {
    let Some(api) = &report.api else {
        return Ok(None);
    };
    let mut concurrencies: Vec<usize> = api.endpoints.iter().map(|e| e.concurrency).collect();
    concurrencies.sort_unstable();
    concurrencies.dedup();
    let mut names: Vec<String> = Vec::new();
    for raw in &report.baselines.dynamodb {
        if raw.op != "BatchWriteItem" && !names.contains(&format!("raw {}", raw.op)) {
            names.push(format!("raw {}", raw.op));
        }
    }
    for run in &api.endpoints {
        if !names.contains(&run.endpoint) {
            names.push(run.endpoint.clone());
        }
    }
    let mut rows: Vec<Row> = Vec::new();
    for run in &api.endpoints {
        rows.push(Row {
            name: run.endpoint.clone(),
            concurrency: run.concurrency,
            latency: &run.latency,
        });
    }
    for raw in &report.baselines.dynamodb {
        if concurrencies.contains(&raw.concurrency) && raw.op != "BatchWriteItem" {
            rows.push(Row {
                name: format!("raw {}", raw.op),
                concurrency: raw.concurrency,
                latency: &raw.latency,
            });
        }
    }
    let rows: Vec<&Row> = rows.iter().filter(|r| r.latency.n > 0).collect();
    if rows.is_empty() {
        return Ok(None);
    }
    let lowest = rows
        .iter()
        .map(|r| r.latency.p50_ms)
        .fold(f64::INFINITY, f64::min)
        .max(0.01);
    let highest = rows.iter().map(|r| r.latency.p99_ms).fold(0.0, f64::max);
    let x_from = lowest / 2.0;
    // Room on the right for the names.
    let x_to = (highest * 40.0).max(x_from * 10.0);

    let file = "latency.svg";
    let height = 120 + 28 * names.len() as u32;
    let path = dir.join(file);
    let root = SVGBackend::new(&path, (WIDTH, height)).into_drawing_area();
    plot(root.fill(&WHITE))?;
    let title = "API latency per endpoint: p50 (dot), p95 (tick), p99 (end), log scale";
    let mut chart = plot(
        ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(8)
            .build_cartesian_2d(
                (x_from..x_to).log_scale(),
                -0.6f64..names.len() as f64 - 0.4,
            ),
    )?;
    plot(
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_desc("milliseconds")
            .x_label_formatter(&|v| format!("{v:.1}"))
            .draw(),
    )?;
    let spread = 0.3;
    for (k, c) in concurrencies.iter().enumerate() {
        let color = PALETTE[k % PALETTE.len()];
        let offset = if concurrencies.len() > 1 {
            spread / 2.0 - spread * k as f64 / (concurrencies.len() - 1) as f64
        } else {
            0.0
        };
        let at = |name: &str| {
            let index = names.iter().position(|n| n == name).unwrap_or(0);
            (names.len() - 1 - index) as f64 + offset
        };
        let mine: Vec<&&Row> = rows.iter().filter(|r| r.concurrency == *c).collect();
        plot(
            chart
                .draw_series(mine.iter().map(|r| {
                    let y = at(&r.name);
                    PathElement::new(
                        vec![(r.latency.p50_ms, y), (r.latency.p99_ms, y)],
                        color.stroke_width(2),
                    )
                }))
                .map(|series| {
                    series
                        .label(format!("concurrency {c}"))
                        .legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                        })
                }),
        )?;
        plot(
            chart.draw_series(
                mine.iter()
                    .map(|r| Circle::new((r.latency.p50_ms, at(&r.name)), 4, color.filled())),
            ),
        )?;
        plot(chart.draw_series(mine.iter().map(|r| {
            let y = at(&r.name);
            PathElement::new(
                vec![(r.latency.p95_ms, y - 0.12), (r.latency.p95_ms, y + 0.12)],
                color.stroke_width(2),
            )
        })))?;
    }
    plot(chart.draw_series(names.iter().enumerate().map(|(i, name)| {
        let end = rows
            .iter()
            .filter(|r| &r.name == name)
            .map(|r| r.latency.p99_ms)
            .fold(0.0, f64::max);
        Text::new(
            name.clone(),
            (end * 1.15, (names.len() - 1 - i) as f64 + 0.1),
            ("sans-serif", 13).into_font().color(&BLACK),
        )
    })))?;
    plot(
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw(),
    )?;
    plot(root.present())?;
    Ok(Some(Chart {
        file: file.to_owned(),
        title: title.to_owned(),
    }))
}

fn throughput(report: &Report, dir: &Path) -> anyhow::Result<Option<Chart>> {
    let Some(api) = &report.api else {
        return Ok(None);
    };
    if api.mixed.is_empty() {
        return Ok(None);
    }
    let mixed: Vec<(f64, f64)> = api
        .mixed
        .iter()
        .map(|m| (m.concurrency as f64, m.per_second))
        .collect();
    let raw: Vec<(f64, f64)> = report
        .baselines
        .dynamodb
        .iter()
        .filter(|r| r.op == "GetItem")
        .map(|r| (r.concurrency as f64, r.per_second))
        .collect();
    let x_to = mixed.iter().chain(&raw).map(|p| p.0).fold(1.0, f64::max) * 1.1;
    let y_to = mixed.iter().chain(&raw).map(|p| p.1).fold(1.0, f64::max) * 1.2;
    let file = "throughput.svg";
    let title = "Mixed workload requests/s against concurrency, beside raw GetItem/s";
    let path = dir.join(file);
    let root = SVGBackend::new(&path, (WIDTH, 480)).into_drawing_area();
    plot(root.fill(&WHITE))?;
    let mut chart = plot(
        ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..x_to, 0f64..y_to),
    )?;
    plot(
        chart
            .configure_mesh()
            .x_desc("concurrency")
            .y_desc("per second")
            .draw(),
    )?;
    for (k, (name, points)) in [("mixed API workload", &mixed), ("raw GetItem", &raw)]
        .into_iter()
        .enumerate()
    {
        let color = PALETTE[k];
        plot(
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map(|s| {
                    s.label(name).legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                    })
                }),
        )?;
        plot(chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled()))))?;
    }
    plot(
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw(),
    )?;
    plot(root.present())?;
    Ok(Some(Chart {
        file: file.to_owned(),
        title: title.to_owned(),
    }))
}

fn lag(report: &Report, dir: &Path) -> anyhow::Result<Option<Chart>> {
    let Some(lag) = &report.lag else {
        return Ok(None);
    };
    if lag.runs.is_empty() {
        return Ok(None);
    }
    let mut models: Vec<&str> = Vec::new();
    for run in &lag.runs {
        if !models.contains(&run.read_model.as_str()) {
            models.push(&run.read_model);
        }
    }
    let x_to = lag
        .runs
        .iter()
        .map(|r| r.target_per_second)
        .fold(1.0, f64::max)
        * 1.1;
    let raw = report
        .baselines
        .find("SNS→SQS", 1)
        .map(|r| r.latency.p50_ms);
    // Log scale: lags run from tens of milliseconds at low rates to the deadline once the
    // local pipeline falls behind, and the raw round trip must show beside both.
    let shown = || {
        lag.runs
            .iter()
            .flat_map(|r| [r.latency.p50_ms, r.latency.p99_ms])
            .chain(raw)
            .filter(|ms| *ms > 0.0)
    };
    let y_from = match shown().fold(f64::INFINITY, f64::min) {
        least if least.is_finite() => least / 1.5,
        _ => 1.0,
    };
    let y_to = shown().fold(10.0, f64::max) * 1.5;
    let file = "lag.svg";
    let title = "Projection lag against write rate: p50 (solid), p99 (thin), log scale";
    let path = dir.join(file);
    let root = SVGBackend::new(&path, (WIDTH, 540)).into_drawing_area();
    plot(root.fill(&WHITE))?;
    let mut chart = plot(
        ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..x_to, (y_from..y_to).log_scale()),
    )?;
    plot(
        chart
            .configure_mesh()
            .x_desc("writes per second")
            .y_desc("milliseconds")
            .draw(),
    )?;
    for (k, model) in models.iter().enumerate() {
        let color = PALETTE[k % PALETTE.len()];
        let runs: Vec<_> = lag.runs.iter().filter(|r| r.read_model == *model).collect();
        // A run where no write showed has no lag to draw (and 0 has no place on a log scale).
        let p50: Vec<(f64, f64)> = runs
            .iter()
            .filter(|r| r.visible > 0)
            .map(|r| (r.target_per_second, r.latency.p50_ms))
            .collect();
        let p99: Vec<(f64, f64)> = runs
            .iter()
            .filter(|r| r.visible > 0)
            .map(|r| (r.target_per_second, r.latency.p99_ms))
            .collect();
        plot(
            chart
                .draw_series(LineSeries::new(p50.iter().copied(), color.stroke_width(3)))
                .map(|s| {
                    s.label(model.to_string()).legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3))
                    })
                }),
        )?;
        plot(chart.draw_series(LineSeries::new(p99.iter().copied(), color.stroke_width(1))))?;
        plot(
            chart.draw_series(
                p50.iter()
                    .chain(&p99)
                    .map(|&p| Circle::new(p, 3, color.filled())),
            ),
        )?;
    }
    if let Some(raw) = raw {
        let color = PALETTE[5];
        plot(
            chart
                .draw_series(LineSeries::new(
                    [(0.0, raw), (x_to, raw)],
                    color.stroke_width(1),
                ))
                .map(|s| {
                    s.label("raw SNS→SQS p50").legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(1))
                    })
                }),
        )?;
    }
    plot(
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw(),
    )?;
    plot(root.present())?;
    Ok(Some(Chart {
        file: file.to_owned(),
        title: title.to_owned(),
    }))
}

fn replay(report: &Report, dir: &Path) -> anyhow::Result<Option<Chart>> {
    let Some(replay) = &report.replay else {
        return Ok(None);
    };
    let mut bars: Vec<(String, f64)> = replay
        .projections
        .iter()
        .map(|p| (p.projection.clone(), p.items as f64 / p.seconds.max(1e-9)))
        .collect();
    bars.push((
        "all projections".to_owned(),
        replay.items as f64 / replay.seconds.max(1e-9),
    ));
    bars.push((
        "raw BatchWriteItem items/s".to_owned(),
        replay.raw_batch_write_per_second,
    ));
    let x_to = bars.iter().map(|b| b.1).fold(1.0, f64::max) * 1.35;
    let file = "replay.svg";
    let title = "Rebuild: items written per second, beside raw BatchWriteItem items/s";
    let path = dir.join(file);
    let height = 120 + 40 * bars.len() as u32;
    let root = SVGBackend::new(&path, (WIDTH, height)).into_drawing_area();
    plot(root.fill(&WHITE))?;
    let mut chart = plot(
        ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(8)
            .build_cartesian_2d(0f64..x_to, -0.6f64..bars.len() as f64 - 0.4),
    )?;
    plot(
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_desc("per second")
            .draw(),
    )?;
    let last = bars.len() - 1;
    plot(
        chart.draw_series(bars.iter().enumerate().map(|(i, (_, value))| {
            let y = (last - i) as f64;
            let color = if i == last { PALETTE[5] } else { PALETTE[0] };
            Rectangle::new([(0.0, y - 0.3), (*value, y + 0.3)], color.filled())
        })),
    )?;
    plot(
        chart.draw_series(bars.iter().enumerate().map(|(i, (name, value))| {
            Text::new(
                format!("{name}: {value:.0}"),
                (value + x_to * 0.01, (last - i) as f64 + 0.1),
                ("sans-serif", 13).into_font().color(&BLACK),
            )
        })),
    )?;
    plot(root.present())?;
    Ok(Some(Chart {
        file: file.to_owned(),
        title: title.to_owned(),
    }))
}
