//! The PNG figures of `lattice run`, drawn with plotters: a title, one heatmap panel per field
//! with its caption and x/y axes in cells, and a colour bar with the value range. Cells with no
//! value (flows: no flow landed; NaN) are drawn in a grey that is not on the colour scale and
//! named in a legend. Text uses DejaVu Sans, built in, so a machine without fonts draws the
//! same picture.

use std::path::Path;
use std::sync::Once;

use crate::images::write_png;
use anyhow::Context;
use plotters::prelude::*;
use plotters::style::colors::colormaps::ViridisRGB;
use plotters::style::{FontStyle, register_font};

/// The colour of a cell with no value: light grey, not on viridis.
pub const NO_VALUE: RGBColor = RGBColor(200, 200, 200);
/// The longer side of a panel's plot, in pixels.
const PLOT_PX: u32 = 360;
/// Room around a panel's plot: y labels on the left, x labels below, caption above.
const LEFT_PX: u32 = 48;
const BOTTOM_PX: u32 = 42;
const CAPTION_PX: u32 = 30;
const MARGIN_PX: u32 = 10;
const TITLE_PX: u32 = 40;
const BAR_PX: u32 = 130;
const FONT: &str = "sans-serif";

/// One heatmap: `values` `[h, w]`, row y = 0 first (drawn at the bottom); a non-finite value
/// (NaN for "no value") is drawn in [`NO_VALUE`].
pub struct Panel<'a> {
    pub caption: String,
    pub values: &'a [f32],
    pub w: usize,
    pub h: usize,
}

/// A figure: its title, panels side by side (all `w`×`h`), what the colour bar measures, and
/// what a no-value cell means.
pub struct Figure<'a> {
    pub title: String,
    pub panels: Vec<Panel<'a>>,
    pub value_label: String,
    pub no_value: &'a str,
}

/// The figure's size in pixels, from the panels' shape (cells stay square).
pub fn size(panels: usize, w: usize, h: usize) -> (u32, u32) {
    let (pw, ph) = plot_px(w, h);
    let panel_w = pw + LEFT_PX + 2 * MARGIN_PX;
    let panel_h = ph + BOTTOM_PX + CAPTION_PX + 2 * MARGIN_PX;
    (panels as u32 * panel_w + BAR_PX, panel_h + TITLE_PX)
}

fn plot_px(w: usize, h: usize) -> (u32, u32) {
    let scale = PLOT_PX as f64 / w.max(h).max(1) as f64;
    (
        (w as f64 * scale).round() as u32,
        (h as f64 * scale).round() as u32,
    )
}

/// Draws `fig` and writes it as a PNG, atomically.
pub fn write(path: &Path, fig: &Figure<'_>) -> anyhow::Result<()> {
    register_fonts();
    let first = fig
        .panels
        .first()
        .context("a figure has at least one panel")?;
    let (width, height) = size(fig.panels.len(), first.w, first.h);
    let mut rgb = vec![0u8; (width * height * 3) as usize];
    draw(&mut rgb, (width, height), fig)
        .map_err(|e| anyhow::anyhow!("drawing {}: {e}", path.display()))?;
    write_png(path, width, height, rgb)?;
    Ok(())
}

fn register_fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
            .unwrap_or_else(|_| panic!("the built-in DejaVu Sans is a valid font"));
    });
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn draw(rgb: &mut [u8], size: (u32, u32), fig: &Figure<'_>) -> DrawResult {
    let root = BitMapBackend::with_buffer(rgb, size).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(&fig.title, (FONT, 20))?;
    let (plots, bar) = root.split_horizontally(size.0 - BAR_PX);
    let range = finite_range(fig.panels.iter().flat_map(|p| p.values));
    for (area, panel) in plots
        .split_evenly((1, fig.panels.len()))
        .iter()
        .zip(&fig.panels)
    {
        draw_panel(area, panel, range)?;
    }
    let empty = (fig.panels.iter()).any(|p| p.values.iter().any(|v| !v.is_finite()));
    draw_colour_bar(&bar, range, &fig.value_label, empty.then_some(fig.no_value))?;
    root.present()?;
    Ok(())
}

/// The finite values' min and max (a constant or empty field gets a unit span around it).
fn finite_range<'a>(values: impl Iterator<Item = &'a f32>) -> (f32, f32) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| {
            (l.min(v), h.max(v))
        });
    match (lo.is_finite(), lo < hi) {
        (true, true) => (lo, hi),
        (true, false) => (lo - 0.5, lo + 0.5),
        (false, _) => (0.0, 1.0),
    }
}

fn colour(v: f32, (lo, hi): (f32, f32)) -> RGBColor {
    if v.is_finite() {
        ViridisRGB.get_color_normalized(v, lo, hi)
    } else {
        NO_VALUE
    }
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    p: &Panel<'_>,
    range: (f32, f32),
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let (w, h) = (p.w as f64, p.h as f64);
    let mut chart = ChartBuilder::on(area)
        .caption(&p.caption, (FONT, 16))
        .margin(MARGIN_PX)
        .x_label_area_size(BOTTOM_PX)
        .y_label_area_size(LEFT_PX)
        .build_cartesian_2d(0.0..w, 0.0..h)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("x")
        .y_desc("y")
        .x_labels(p.w.min(8) + 1)
        .y_labels(p.h.min(8) + 1)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .label_style((FONT, 13))
        .draw()?;
    let cells = (0..p.h).flat_map(|y| (0..p.w).map(move |x| (x, y)));
    chart.draw_series(cells.map(|(x, y)| {
        let (x0, y0) = (x as f64, y as f64);
        let c = colour(p.values[y * p.w + x], range);
        Rectangle::new([(x0, y0), (x0 + 1.0, y0 + 1.0)], c.filled())
    }))?;
    Ok(())
}

fn draw_colour_bar<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    (lo, hi): (f32, f32),
    label: &str,
    no_value: Option<&str>,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let (bar, legend) = area.split_vertically(area.dim_in_pixel().1 - 46);
    let mut chart = ChartBuilder::on(&bar)
        .caption(label, (FONT, 14))
        .margin(MARGIN_PX)
        .margin_right(16)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..1.0, f64::from(lo)..f64::from(hi))?;
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(6)
        .y_label_formatter(&|v| format!("{v:.3}"))
        .label_style((FONT, 12))
        .draw()?;
    const STEPS: usize = 128;
    let step = f64::from(hi - lo) / STEPS as f64;
    chart.draw_series((0..STEPS).map(|k| {
        let v0 = f64::from(lo) + k as f64 * step;
        let c = colour((v0 + step / 2.0) as f32, (lo, hi));
        Rectangle::new([(0.0, v0), (1.0, v0 + step)], c.filled())
    }))?;
    if let Some(text) = no_value {
        legend.draw(&Rectangle::new([(8, 8), (24, 24)], NO_VALUE.filled()))?;
        legend.draw(&Rectangle::new([(8, 8), (24, 24)], BLACK.stroke_width(1)))?;
        legend.draw(&Text::new(text.to_string(), (30, 9), (FONT, 13)))?;
    }
    Ok(())
}
