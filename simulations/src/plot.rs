//! CSV and PNG output for the simulation runner.
//!
//! Three chart kinds are drawn with `plotters` into 1000x600 PNG files on a white background:
//! [`line_chart`] (one line per [`Series`], e.g. the height of every node over time),
//! [`cdf_chart`] (empirical CDFs as step lines, e.g. block arrival time over nodes, with a dashed
//! guide at 95 %) and [`bar_chart`] (one labelled bar per value, e.g. messages received per block).
//! [`write_csv`] writes the raw numbers next to the pictures.
//!
//! Text is rendered by plotters' `ab_glyph` feature, a pure-Rust rasterizer that never looks at the
//! system's font configuration (no fontconfig/freetype C libraries to link, the same output on every
//! machine). The price is that a font must be registered at runtime: the first chart registers the
//! family `"sans-serif"` once from the first file that exists of `$VISION_SIM_FONT` and
//! `/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf` (Debian/Ubuntu package `fonts-dejavu-core`).
//! The font file is read once and leaked, because plotters keeps a `&'static [u8]` to it. If no
//! font is found every chart function returns [`PlotError::Font`] explaining what to install.
//!
//! Bad data never panics: NaN/infinite values are skipped, empty inputs draw an empty chart with its
//! title and axes, and zero-width axis ranges (a single point, all-equal values) are widened.

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::coord::combinators::BindKeyPoints;
use plotters::coord::ranged1d::{AsRangedCoord, Ranged};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontStyle, register_font};

/// Width of every PNG, in pixels.
pub const WIDTH: u32 = 1000;
/// Height of every PNG, in pixels.
pub const HEIGHT: u32 = 600;
/// Environment variable naming a TrueType/OpenType font file to use instead of DejaVu Sans.
pub const FONT_ENV: &str = "VISION_SIM_FONT";
/// Font used when `VISION_SIM_FONT` is unset or names a missing file (Debian: `fonts-dejavu-core`).
pub const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// The family name the font is registered under; all text styles below use it.
const FONT_FAMILY: &str = "sans-serif";
/// Above this many series a line/CDF chart has no legend (it would cover the plot).
const MAX_LEGEND_SERIES: usize = 12;
/// Series with at most this many points also get a dot per point (a single point is visible).
const MAX_MARKED_POINTS: usize = 25;
/// Bars get their value written above them when there are at most this many.
const MAX_VALUE_LABELS: usize = 30;
/// Longer bar labels are shortened with an ellipsis.
const MAX_BAR_LABEL_CHARS: usize = 18;
/// Axis bounds are clamped to ±this, so plotters' tick computation never sees infinite spans.
const MAX_ABS_BOUND: f64 = 1e300;

const TITLE_SIZE: u32 = 28;
const AXIS_DESC_SIZE: u32 = 20;
const TICK_LABEL_SIZE: u32 = 16;
const LEGEND_SIZE: u32 = 16;
const MARGIN: u32 = 20;
const X_LABEL_AREA: u32 = 60;
const Y_LABEL_AREA: u32 = 90;
/// Approximate width of the plotting area (for spacing bar labels).
const PLOT_WIDTH_PX: f64 = (WIDTH - 2 * MARGIN - Y_LABEL_AREA) as f64;

/// Distinct, print-friendly line colors (matplotlib's "tab10").
const TAB10: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];
const GRID_LIGHT: RGBColor = RGBColor(238, 238, 238);
const GRID_BOLD: RGBColor = RGBColor(205, 205, 205);
const GUIDE: RGBColor = RGBColor(90, 90, 90);

/// One named line of (x, y) points.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// Why a chart could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// No usable font: the file is missing, unreadable or not a TrueType/OpenType font.
    #[error("cannot load a font for chart text ({path}): {message}")]
    Font { path: String, message: String },
    /// plotters failed to draw or to encode/write the PNG (the message names the file).
    #[error("cannot draw chart {0}")]
    Draw(String),
    /// Creating the output directory failed.
    #[error("cannot create chart output directory: {0}")]
    Io(#[from] std::io::Error),
}

/// Line chart: one line per series. Legend only when there are at most 12 series (a chart of 30
/// node heights has none); axis ranges fit the data with a small margin; empty data still draws
/// an empty chart with the title (no panic, no error).
pub fn line_chart(path: &Path, title: &str, x_label: &str, y_label: &str, series: &[Series]) -> Result<(), PlotError> {
    prepare(path)?;
    let finite = |s: &Series| s.points.iter().copied().filter(|&(x, y)| x.is_finite() && y.is_finite()).collect();
    let lines: Vec<Vec<(f64, f64)>> = series.iter().map(finite).collect();
    let (x0, x1) = axis_range(lines.iter().flatten().map(|p| p.0));
    let (y0, y1) = axis_range(lines.iter().flatten().map(|p| p.1));

    let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err(path))?;
    let mut chart = new_chart(&root, path, title, x0..x1, y0..y1)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .axis_desc_style((FONT_FAMILY, AXIS_DESC_SIZE))
        .label_style((FONT_FAMILY, TICK_LABEL_SIZE))
        .x_label_formatter(&tick_label)
        .y_label_formatter(&tick_label)
        .light_line_style(GRID_LIGHT)
        .bold_line_style(GRID_BOLD)
        .max_light_lines(4)
        .x_labels(10)
        .y_labels(8)
        .draw()
        .map_err(draw_err(path))?;

    let legend = !series.is_empty() && series.len() <= MAX_LEGEND_SERIES;
    for (i, (s, points)) in series.iter().zip(&lines).enumerate() {
        let color = series_color(i);
        let style = color.stroke_width(2);
        let drawn = chart.draw_series(LineSeries::new(points.iter().copied(), style)).map_err(draw_err(path))?;
        if legend {
            drawn.label(s.name.as_str()).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
        }
        if points.len() <= MAX_MARKED_POINTS {
            chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled()))).map_err(draw_err(path))?;
        }
    }
    if legend {
        draw_legend(&mut chart, path, SeriesLabelPosition::UpperLeft)?;
    }
    root.present().map_err(draw_err(path))
}

/// Step chart of empirical CDFs: for each (name, samples) the fraction of samples <= x
/// (y from 0 to 1), plus a dashed horizontal guide at y = 0.95. Used for "block arrival time over
/// nodes" (x in ms). Samples may be unsorted; NaN/inf samples are ignored.
pub fn cdf_chart(path: &Path, title: &str, x_label: &str, samples: &[(String, Vec<f64>)]) -> Result<(), PlotError> {
    prepare(path)?;
    let sorted: Vec<Vec<f64>> = samples
        .iter()
        .map(|(_, values)| {
            let mut v: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
            v.sort_by(f64::total_cmp);
            v
        })
        .collect();
    let (x0, x1) = axis_range(sorted.iter().flatten().copied());

    let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err(path))?;
    let mut chart = new_chart(&root, path, title, x0..x1, 0.0..1.05)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc("fraction of samples ≤ x")
        .axis_desc_style((FONT_FAMILY, AXIS_DESC_SIZE))
        .label_style((FONT_FAMILY, TICK_LABEL_SIZE))
        .x_label_formatter(&tick_label)
        .y_label_formatter(&tick_label)
        .light_line_style(GRID_LIGHT)
        .bold_line_style(GRID_BOLD)
        .max_light_lines(4)
        .x_labels(10)
        .y_labels(11)
        .draw()
        .map_err(draw_err(path))?;

    // The 95 % guide goes first so that the curves are drawn over it.
    chart
        .draw_series(DashedLineSeries::new([(x0, 0.95), (x1, 0.95)], 8, 6, GUIDE.stroke_width(1)))
        .map_err(draw_err(path))?;
    let guide_text = TextStyle::from((FONT_FAMILY, LEGEND_SIZE)).color(&GUIDE).pos(Pos::new(HPos::Left, VPos::Bottom));
    chart.draw_series([Text::new("95 %", (x0 + (x1 - x0) * 0.005, 0.955), guide_text)]).map_err(draw_err(path))?;

    let legend = !samples.is_empty() && samples.len() <= MAX_LEGEND_SERIES;
    for (i, ((name, _), values)) in samples.iter().zip(&sorted).enumerate() {
        let style = series_color(i).stroke_width(2);
        let drawn = chart.draw_series(LineSeries::new(cdf_steps(values, x0, x1), style)).map_err(draw_err(path))?;
        if legend {
            drawn.label(name.as_str()).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
        }
    }
    if legend {
        draw_legend(&mut chart, path, SeriesLabelPosition::LowerRight)?;
    }
    root.present().map_err(draw_err(path))
}

/// Bar chart with one bar per (label, value), labels on the x axis (e.g. "messages received per
/// block" for block 1..n, or per attacker).
///
/// Bars start at zero (negative values point down); non-finite values draw no bar. When labels
/// would overlap only every k-th is written; long labels are shortened. With at most 30 bars the
/// value is also written above each bar.
pub fn bar_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    bars: &[(String, f64)],
) -> Result<(), PlotError> {
    prepare(path)?;
    let n = bars.len();
    let finite = || bars.iter().map(|b| b.1).filter(|v| v.is_finite());
    let lo = finite().fold(0.0, f64::min).max(-MAX_ABS_BOUND);
    let hi = finite().fold(0.0, f64::max).min(MAX_ABS_BOUND);
    let (y0, y1) = if hi - lo > 0.0 {
        // Room above (below) the bars for their value labels.
        let pad = (hi - lo) * 0.08;
        (if lo < 0.0 { lo - pad } else { 0.0 }, if hi > 0.0 { hi + pad } else { 0.0 })
    } else {
        (0.0, 1.0)
    };

    let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err(path))?;

    // Label every bar if the widest label fits its slot, else every 1, 2, 5, 10, 20, ... -th bar.
    let labels: Vec<String> = bars.iter().map(|(label, _)| shorten(label)).collect();
    let tick_style = TextStyle::from((FONT_FAMILY, TICK_LABEL_SIZE));
    let mut widest = 0;
    for label in &labels {
        widest = widest.max(root.estimate_text_size(label, &tick_style).map_err(draw_err(path))?.0);
    }
    let max_labels = ((PLOT_WIDTH_PX / (f64::from(widest) + 12.0)).floor() as usize).max(1);
    let step = nice_step(n.div_ceil(max_labels));
    // Bar i is centered on x = SLOT * i (integer x so that the custom ticks keep plain formatting).
    const SLOT: i64 = 10;
    let center = |i: usize| i64::try_from(i).map_or(i64::MAX / 2, |i| i.saturating_mul(SLOT));
    let ticks: Vec<i64> = (0..n).step_by(step).map(center).collect();
    let x_range = (-SLOT / 2..center(n.max(1)) - SLOT / 2).with_key_points(ticks);
    let mut chart = new_chart(&root, path, title, x_range, y0..y1)?;
    let x_fmt = |x: &i64| {
        let i = usize::try_from(x.div_euclid(SLOT)).ok().filter(|_| x.rem_euclid(SLOT) == 0);
        i.and_then(|i| labels.get(i)).cloned().unwrap_or_default()
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .axis_desc_style((FONT_FAMILY, AXIS_DESC_SIZE))
        .label_style((FONT_FAMILY, TICK_LABEL_SIZE))
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&tick_label)
        .light_line_style(GRID_LIGHT)
        .bold_line_style(GRID_BOLD)
        .max_light_lines(4)
        .y_labels(8)
        .draw()
        .map_err(draw_err(path))?;

    let color = TAB10[0];
    let visible = || bars.iter().enumerate().filter(|(_, b)| b.1.is_finite());
    chart
        .draw_series(
            visible().map(|(i, b)| Rectangle::new([(center(i) - 4, 0.0), (center(i) + 4, b.1)], color.filled())),
        )
        .map_err(draw_err(path))?;

    if n <= MAX_VALUE_LABELS {
        let above = TextStyle::from((FONT_FAMILY, TICK_LABEL_SIZE - 2)).pos(Pos::new(HPos::Center, VPos::Bottom));
        let below = TextStyle::from((FONT_FAMILY, TICK_LABEL_SIZE - 2)).pos(Pos::new(HPos::Center, VPos::Top));
        let texts = visible().filter_map(|(i, b)| {
            let text = format_value(b.1);
            // Skip the label if it is wider than its bar.
            let text_px = root.estimate_text_size(&text, &above).map_or(f64::INFINITY, |(w, _)| f64::from(w));
            (text_px <= PLOT_WIDTH_PX / n as f64).then(|| {
                let style = if b.1 < 0.0 { below.clone() } else { above.clone() };
                Text::new(text, (center(i), b.1), style)
            })
        });
        chart.draw_series(texts).map_err(draw_err(path))?;
    }
    root.present().map_err(draw_err(path))
}

/// Writes a CSV file with the `csv` crate: the header row, then the rows. Fields containing a
/// comma, quote, CR or LF are quoted per RFC 4180 (quotes inside are doubled). Records end with
/// `\n`. Creates parent directories. Rows are written as given, even if their length differs from
/// the header's.
pub fn write_csv(path: &Path, header: &[&str], rows: &[Vec<String>]) -> std::io::Result<()> {
    create_parent(path)?;
    let mut w = csv::WriterBuilder::new()
        .flexible(true)
        .terminator(csv::Terminator::Any(b'\n'))
        .quote_style(csv::QuoteStyle::Necessary)
        .from_path(path)
        .map_err(std::io::Error::from)?;
    w.write_record(header).map_err(std::io::Error::from)?;
    for row in rows {
        w.write_record(row).map_err(std::io::Error::from)?;
    }
    w.flush()
}

/// Registers the font (once per process) and creates the output directory.
fn prepare(path: &Path) -> Result<(), PlotError> {
    static FONT: OnceLock<Result<(), (String, String)>> = OnceLock::new();
    FONT.get_or_init(register_sans_serif).clone().map_err(|(path, message)| PlotError::Font { path, message })?;
    create_parent(path)?;
    Ok(())
}

fn register_sans_serif() -> Result<(), (String, String)> {
    let from_env = std::env::var_os(FONT_ENV).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(p) = from_env.as_ref().filter(|p| !p.is_file()) {
        tracing::warn!("{FONT_ENV}={} is not a file; falling back to {DEFAULT_FONT}", p.display());
    }
    let candidates: Vec<PathBuf> = from_env.into_iter().chain([PathBuf::from(DEFAULT_FONT)]).collect();
    register_first_font(FONT_FAMILY, &candidates)
}

/// Registers the first existing file of `candidates` as `family`; errors are (path(s), message).
fn register_first_font(family: &str, candidates: &[PathBuf]) -> Result<(), (String, String)> {
    let hint = format!("install the Debian/Ubuntu package fonts-dejavu-core or set {FONT_ENV} to a .ttf/.otf file");
    let Some(path) = candidates.iter().find(|p| p.is_file()) else {
        let tried = candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
        return Err((tried, format!("no font file found; {hint}")));
    };
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| (shown.clone(), format!("cannot read it ({e}); {hint}")))?;
    // plotters keeps a `&'static [u8]`; this runs at most once per process.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    register_font(family, FontStyle::Normal, bytes)
        .map_err(|_| (shown, format!("not a valid TrueType/OpenType font; {hint}")))
}

fn create_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => std::fs::create_dir_all(parent),
        _ => Ok(()),
    }
}

fn draw_err<E: Display>(path: &Path) -> impl FnOnce(E) -> PlotError + '_ {
    move |e| PlotError::Draw(format!("{}: {e}", path.display()))
}

type Chart<'a, X, Y> = ChartContext<
    'a,
    BitMapBackend<'a>,
    Cartesian2d<<X as AsRangedCoord>::CoordDescType, <Y as AsRangedCoord>::CoordDescType>,
>;

fn new_chart<'a, X: AsRangedCoord, Y: AsRangedCoord>(
    root: &DrawingArea<BitMapBackend<'a>, Shift>,
    path: &Path,
    title: &str,
    x: X,
    y: Y,
) -> Result<Chart<'a, X, Y>, PlotError> {
    ChartBuilder::on(root)
        .caption(title, (FONT_FAMILY, TITLE_SIZE))
        .margin(MARGIN)
        .x_label_area_size(X_LABEL_AREA)
        .y_label_area_size(Y_LABEL_AREA)
        .build_cartesian_2d(x, y)
        .map_err(draw_err(path))
}

fn draw_legend<'a, X: Ranged, Y: Ranged>(
    chart: &mut ChartContext<'a, BitMapBackend<'a>, Cartesian2d<X, Y>>,
    path: &Path,
    position: SeriesLabelPosition,
) -> Result<(), PlotError> {
    chart
        .configure_series_labels()
        .position(position)
        .margin(12)
        .label_font((FONT_FAMILY, LEGEND_SIZE))
        .background_style(WHITE.mix(0.85))
        .border_style(GRID_BOLD)
        .draw()
        .map_err(draw_err(path))
}

fn series_color(i: usize) -> RGBColor {
    match TAB10.get(i) {
        Some(&c) => c,
        None => {
            // Golden-ratio hue steps keep further colors apart.
            let (r, g, b) = HSLColor((i as f64 * 0.618_033_988_75).fract(), 0.65, 0.45).rgb();
            RGBColor(r, g, b)
        }
    }
}

/// Padded (min, max) of the finite values; (0, 1) when there are none, and a zero-width range is
/// widened so that plotters always gets a usable axis.
fn axis_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) =
        values.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        return (0.0, 1.0);
    }
    let (lo, hi) = (lo.clamp(-MAX_ABS_BOUND, MAX_ABS_BOUND), hi.clamp(-MAX_ABS_BOUND, MAX_ABS_BOUND));
    let magnitude = lo.abs().max(hi.abs());
    // Also widen spans too thin for f64 tick arithmetic (e.g. 1e9 vs 1e9 + 1e-9).
    if hi - lo <= magnitude * 1e-9 {
        let mid = lo + (hi - lo) / 2.0;
        let half = if magnitude == 0.0 { 1.0 } else { magnitude * 0.05 };
        return (mid - half, mid + half);
    }
    let pad = (hi - lo) * 0.05;
    (lo - pad, hi + pad)
}

/// Vertices of an empirical CDF's step line over `sorted` (finite, ascending), spanning the axis.
fn cdf_steps(sorted: &[f64], x0: f64, x1: f64) -> Vec<(f64, f64)> {
    if sorted.is_empty() {
        return Vec::new();
    }
    let n = sorted.len() as f64;
    let mut points = Vec::with_capacity(2 * sorted.len() + 2);
    points.push((x0, 0.0));
    for (i, &v) in sorted.iter().enumerate() {
        points.push((v, i as f64 / n));
        points.push((v, (i + 1) as f64 / n));
    }
    points.push((x1, 1.0));
    points
}

fn shorten(label: &str) -> String {
    if label.chars().count() <= MAX_BAR_LABEL_CHARS {
        label.to_string()
    } else {
        let mut s: String = label.chars().take(MAX_BAR_LABEL_CHARS - 1).collect();
        s.push('…');
        s
    }
}

/// A bar's value: integers as such, others with at most two decimals ("42.5", "0.33").
fn format_value(v: f64) -> String {
    if v == 0.0 || (0.01..1e9).contains(&v.abs()) { trim_zeros(format!("{v:.2}")) } else { tick_label(&v) }
}

/// An axis tick: "0", "12", "0.25", "2500", "1.5e9" — no trailing ".0", no float noise.
fn tick_label(v: &f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".to_string()
    } else if !(1e-4..1e9).contains(&a) {
        let s = format!("{v:.3e}");
        match s.split_once('e') {
            Some((mantissa, exp)) => format!("{}e{exp}", trim_zeros(mantissa.to_string())),
            None => s,
        }
    } else {
        trim_zeros(format!("{v:.6}"))
    }
}

/// "1.500" -> "1.5", "2.000" -> "2", "-0.000" -> "0" (only for strings with a decimal point).
fn trim_zeros(mut s: String) -> String {
    if s.contains('.') {
        let len = s.trim_end_matches('0').trim_end_matches('.').len();
        s.truncate(len);
    }
    if s == "-0" { "0".to_string() } else { s }
}

/// The smallest of 1, 2, 5, 10, 20, 50, ... that is >= `at_least`.
fn nice_step(at_least: usize) -> usize {
    let mut unit = 1usize;
    loop {
        for m in [1, 2, 5] {
            let step = unit.saturating_mul(m);
            if step >= at_least || step == usize::MAX {
                return step;
            }
        }
        unit = unit.saturating_mul(10);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

    fn assert_png(path: &Path) {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(bytes[..8], PNG_SIGNATURE, "{} is not a PNG", path.display());
        assert!(bytes.len() > 5_000, "{} is only {} bytes", path.display(), bytes.len());
    }

    fn series(name: &str, points: Vec<(f64, f64)>) -> Series {
        Series { name: name.to_string(), points }
    }

    fn sample_lines() -> Vec<Series> {
        (0..4)
            .map(|k| {
                let points = (0..=60).map(|t| (t as f64, (t as f64 * (1.0 + k as f64 * 0.1) / 6.0).floor())).collect();
                series(&format!("node-{k}"), points)
            })
            .collect()
    }

    fn many_lines() -> Vec<Series> {
        (0..30).map(|k| series(&format!("n{k}"), (0..50).map(|t| (t as f64, (t + k % 3) as f64)).collect())).collect()
    }

    fn sample_cdfs() -> Vec<(String, Vec<f64>)> {
        let spread = |base: f64, step: f64| (0..30).rev().map(|i| base + step * i as f64 + (i % 7) as f64).collect();
        vec![
            ("block 1".to_string(), spread(40.0, 9.0)),
            ("block 2".to_string(), spread(60.0, 14.0)),
            ("block 3 (partitioned)".to_string(), spread(120.0, 25.0)),
        ]
    }

    fn sample_bars() -> Vec<(String, f64)> {
        (1..=12).map(|b| (format!("block {b}"), (30 + (b * 17) % 23) as f64)).collect()
    }

    #[test]
    fn draws_each_chart_as_png() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nested/lines.png");
        line_chart(&p, "Height over time", "time (s)", "height", &sample_lines()).unwrap();
        assert_png(&p);
        let p = dir.path().join("many.png");
        line_chart(&p, "30 nodes", "time (s)", "height", &many_lines()).unwrap();
        assert_png(&p);
        let p = dir.path().join("cdf.png");
        cdf_chart(&p, "Block arrival", "arrival (ms)", &sample_cdfs()).unwrap();
        assert_png(&p);
        let p = dir.path().join("bars.png");
        bar_chart(&p, "Messages per block", "block", "messages", &sample_bars()).unwrap();
        assert_png(&p);
    }

    #[test]
    fn empty_and_degenerate_inputs_do_not_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = |name: &str| dir.path().join(name);
        line_chart(&p("l0.png"), "empty", "x", "y", &[]).unwrap();
        line_chart(&p("l1.png"), "empty series", "x", "y", &[series("a", vec![])]).unwrap();
        line_chart(&p("l2.png"), "one point", "x", "y", &[series("a", vec![(3.0, 7.0)])]).unwrap();
        line_chart(&p("l3.png"), "flat", "x", "y", &[series("a", vec![(0.0, 0.0), (1.0, 0.0)])]).unwrap();
        let bad = vec![(f64::NAN, 1.0), (2.0, f64::INFINITY), (f64::MAX, -f64::MAX), (1.0, 1e-300)];
        line_chart(&p("l4.png"), "bad", "x", "y", &[series("a", bad)]).unwrap();
        let thin = vec![(1e9, 5.0), (1e9 + 1e-7, 5.0 + 1e-12)];
        line_chart(&p("l5.png"), "thin", "x", "y", &[series("a", thin)]).unwrap();
        cdf_chart(&p("c0.png"), "empty", "ms", &[]).unwrap();
        cdf_chart(&p("c1.png"), "no samples", "ms", &[("a".to_string(), vec![])]).unwrap();
        cdf_chart(&p("c2.png"), "one", "ms", &[("a".to_string(), vec![5.0, f64::NAN, f64::NEG_INFINITY])]).unwrap();
        cdf_chart(&p("c3.png"), "equal", "ms", &[("a".to_string(), vec![2.0; 10])]).unwrap();
        bar_chart(&p("b0.png"), "empty", "x", "y", &[]).unwrap();
        bar_chart(&p("b1.png"), "one", "x", "y", &[("only".to_string(), 4.0)]).unwrap();
        bar_chart(&p("b2.png"), "zeros", "x", "y", &[("a".to_string(), 0.0), ("b".to_string(), 0.0)]).unwrap();
        let weird = [("nan", f64::NAN), ("neg", -3.5), ("inf", f64::INFINITY), ("big", 1e12)];
        let weird: Vec<_> = weird.iter().map(|(l, v)| (l.to_string(), *v)).collect();
        bar_chart(&p("b3.png"), "weird", "x", "y", &weird).unwrap();
        let many: Vec<_> = (0..500).map(|i| (format!("block {i}"), i as f64)).collect();
        bar_chart(&p("b4.png"), "many", "x", "y", &many).unwrap();
        for name in ["l0", "l2", "c0", "c2", "b0", "b3", "b4"] {
            assert_png(&p(&format!("{name}.png")));
        }
    }

    #[test]
    fn unwritable_path_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, "x").unwrap();
        let err = line_chart(&blocker.join("chart.png"), "t", "x", "y", &sample_lines()).unwrap_err();
        assert!(matches!(err, PlotError::Io(_)), "{err:?}");
    }

    #[test]
    fn missing_or_invalid_font_explains_what_to_install() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.ttf");
        let (path, message) = register_first_font("test-missing", std::slice::from_ref(&missing)).unwrap_err();
        assert_eq!(path, missing.display().to_string());
        let err = PlotError::Font { path, message }.to_string();
        assert!(err.contains("fonts-dejavu-core") && err.contains(FONT_ENV), "{err}");
        let garbage = dir.path().join("garbage.ttf");
        std::fs::write(&garbage, b"not a font").unwrap();
        let (_, message) = register_first_font("test-garbage", &[missing, garbage]).unwrap_err();
        assert!(message.contains("not a valid"), "{message}");
    }

    #[test]
    fn csv_quotes_per_rfc4180() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/out.csv");
        let rows = vec![
            vec!["1".to_string(), "plain".to_string(), "x".to_string()],
            vec!["2".to_string(), "a,b".to_string(), "say \"hi\"".to_string()],
            vec!["3".to_string(), "two\nlines".to_string(), String::new()],
            vec!["4".to_string(), "cr\r".to_string(), "\"".to_string()],
        ];
        write_csv(&path, &["id", "name, full", "note"], &rows).unwrap();
        let expected = "id,\"name, full\",note\n\
                        1,plain,x\n\
                        2,\"a,b\",\"say \"\"hi\"\"\"\n\
                        3,\"two\nlines\",\n\
                        4,\"cr\r\",\"\"\"\"\n";
        assert_eq!(std::fs::read_to_string(&path).unwrap(), expected);
    }

    #[test]
    fn csv_with_no_rows_is_just_the_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.csv");
        write_csv(&path, &["a", "b"], &[]).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a,b\n");
    }

    #[test]
    fn axis_range_pads_and_widens() {
        assert_eq!(axis_range(std::iter::empty()), (0.0, 1.0));
        assert_eq!(axis_range([f64::NAN].into_iter()), (0.0, 1.0));
        assert_eq!(axis_range([0.0, 0.0].into_iter()), (-1.0, 1.0));
        assert_eq!(axis_range([100.0].into_iter()), (95.0, 105.0));
        assert_eq!(axis_range([0.0, 10.0, f64::INFINITY].into_iter()), (-0.5, 10.5));
        let (lo, hi) = axis_range([-f64::MAX, f64::MAX].into_iter());
        assert!(lo.is_finite() && hi.is_finite() && lo < hi);
    }

    #[test]
    fn number_formatting() {
        let ticks: Vec<String> =
            [0.0, -0.0, 12.0, 0.25, 0.30000000000000004, -20.0, 2500.0, 1.5e9, 2e-5].iter().map(tick_label).collect();
        assert_eq!(ticks, ["0", "0", "12", "0.25", "0.3", "-20", "2500", "1.5e9", "2e-5"]);
        let values: Vec<String> = [120.0, -15.0, 42.5, 1.0 / 3.0, 0.001, 2e-5].into_iter().map(format_value).collect();
        assert_eq!(values, ["120", "-15", "42.5", "0.33", "0.001", "2e-5"]);
        let steps: Vec<usize> = [0, 1, 2, 3, 6, 11, 99, 101].into_iter().map(nice_step).collect();
        assert_eq!(steps, [1, 1, 2, 5, 10, 20, 100, 200]);
    }

    #[test]
    fn cdf_steps_are_a_staircase() {
        assert!(cdf_steps(&[], 0.0, 1.0).is_empty());
        assert_eq!(
            cdf_steps(&[1.0, 2.0], 0.0, 3.0),
            vec![(0.0, 0.0), (1.0, 0.0), (1.0, 0.5), (2.0, 0.5), (2.0, 1.0), (3.0, 1.0)]
        );
    }

    /// Renders one sample of each chart for eyeballing:
    /// `cargo test --release -p vision-sim plot::tests::render_samples -- --ignored`
    /// (into `$PLOT_SAMPLES_DIR`, default `/tmp/plot-samples`).
    #[test]
    #[ignore]
    fn render_samples() {
        let dir = PathBuf::from(std::env::var("PLOT_SAMPLES_DIR").unwrap_or_else(|_| "/tmp/plot-samples".into()));
        line_chart(&dir.join("line.png"), "Chain height per node", "time (s)", "height", &sample_lines()).unwrap();
        line_chart(&dir.join("line-30.png"), "Chain height, 30 nodes", "time (s)", "height", &many_lines()).unwrap();
        cdf_chart(&dir.join("cdf.png"), "Block arrival time over nodes", "arrival time (ms)", &sample_cdfs()).unwrap();
        bar_chart(&dir.join("bar.png"), "Messages received per block", "block", "messages", &sample_bars()).unwrap();
        let attackers: Vec<_> =
            [("honest", 120.0), ("spammer", -15.0), ("withholding-attacker-long-name", 42.5), ("eclipse", 7.0)]
                .iter()
                .map(|(l, v)| (l.to_string(), *v))
                .collect();
        bar_chart(&dir.join("bar-attackers.png"), "Score per attacker", "attacker", "score", &attackers).unwrap();
        line_chart(&dir.join("line-empty.png"), "No data yet", "time (s)", "height", &[]).unwrap();
        let one = [series("lonely", vec![(5.0, 3.0)])];
        line_chart(&dir.join("line-one-point.png"), "One point", "time (s)", "height", &one).unwrap();
        let many: Vec<_> = (1..=200).map(|i| (format!("{i}"), ((i * 37) % 50) as f64)).collect();
        bar_chart(&dir.join("bar-200.png"), "Messages per block (200 blocks)", "block", "messages", &many).unwrap();
    }
}
