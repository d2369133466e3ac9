//! Charts as inline SVG, drawn on the server: vertical bars (one or more
//! series side by side), a horizontal funnel, and lines.
//!
//! Geometry (where each bar or point goes) is computed by pure functions that
//! the tests check; rendering only writes it out. Colours come from CSS
//! classes (`s0`, `s1`, …), so the charts follow the theme and need no inline
//! style (the pages' CSP forbids it). Every chart on a page is followed by a
//! table of its numbers.

use std::fmt::Write;

/// Width and height of every chart's view box; the SVG scales to its box.
pub const WIDTH: f64 = 640.0;
pub const HEIGHT: f64 = 260.0;

/// Space for axis labels: left, right, top, bottom.
const PAD_L: f64 = 48.0;
const PAD_R: f64 = 8.0;
const PAD_T: f64 = 12.0;
const PAD_B: f64 = 44.0;

/// A placed rectangle.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rect {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

/// A named series of values, one per category.
#[derive(Clone, Debug)]
pub struct Series {
    pub name: String,
    pub values: Vec<f64>,
}

/// The largest value drawn, so the tallest bar fills the plot; at least a
/// tiny positive number so all-zero data draws flat bars, not NaN.
fn scale_max(values: impl IntoIterator<Item = f64>) -> f64 {
    values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max)
        .max(f64::MIN_POSITIVE)
}

/// Bars for `series` over `n` categories, grouped side by side per
/// category: `out[s][c]` is series `s`, category `c`. Heights are
/// proportional to the values (negative and non-finite values draw as 0);
/// all bars stand on the same baseline.
pub fn bar_geometry(series: &[Series], n: usize) -> Vec<Vec<Rect>> {
    let plot_w = WIDTH - PAD_L - PAD_R;
    let plot_h = HEIGHT - PAD_T - PAD_B;
    let max = scale_max(series.iter().flat_map(|s| s.values.iter().copied()));
    let slot = plot_w / n.max(1) as f64;
    let group_w = slot * 0.8;
    let bar_w = group_w / series.len().max(1) as f64;
    let base = PAD_T + plot_h;
    series
        .iter()
        .enumerate()
        .map(|(si, s)| {
            (0..n)
                .map(|c| {
                    let v = s.values.get(c).copied().unwrap_or(0.0);
                    let v = if v.is_finite() { v.max(0.0) } else { 0.0 };
                    let h = plot_h * v / max;
                    Rect {
                        x: PAD_L + slot * c as f64 + slot * 0.1 + bar_w * si as f64,
                        y: base - h,
                        w: bar_w,
                        h,
                    }
                })
                .collect()
        })
        .collect()
}

/// Horizontal funnel bars, centred, widths proportional to the values;
/// one row per stage.
pub fn funnel_geometry(values: &[f64]) -> Vec<Rect> {
    let label_w = 120.0;
    let plot_w = WIDTH - label_w - PAD_R;
    let row = (HEIGHT - PAD_T) / values.len().max(1) as f64;
    let max = scale_max(values.iter().copied());
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let v = if v.is_finite() { v.max(0.0) } else { 0.0 };
            let w = plot_w * v / max;
            Rect {
                x: label_w + (plot_w - w) / 2.0,
                y: PAD_T + row * i as f64 + row * 0.1,
                w,
                h: row * 0.8,
            }
        })
        .collect()
}

/// Points of each line: `n` categories spread evenly across the plot, `y`
/// proportional to the value from the common baseline.
pub fn line_geometry(series: &[Series], n: usize) -> Vec<Vec<(f64, f64)>> {
    let plot_w = WIDTH - PAD_L - PAD_R;
    let plot_h = HEIGHT - PAD_T - PAD_B;
    let max = scale_max(series.iter().flat_map(|s| s.values.iter().copied()));
    let step = if n > 1 { plot_w / (n - 1) as f64 } else { 0.0 };
    series
        .iter()
        .map(|s| {
            (0..n)
                .map(|c| {
                    let v = s.values.get(c).copied().unwrap_or(0.0);
                    let v = if v.is_finite() { v.max(0.0) } else { 0.0 };
                    (PAD_L + step * c as f64, PAD_T + plot_h - plot_h * v / max)
                })
                .collect()
        })
        .collect()
}

/// Escapes text for SVG/HTML content and attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Short axis number: 1234 → `1.2k`, 0.25 → `0.25`.
fn short(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if a >= 10.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn open(out: &mut String, title: &str) {
    let _ = write!(
        out,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{}" xmlns="http://www.w3.org/2000/svg"><title>{}</title>"#,
        esc(title),
        esc(title)
    );
}

/// Baseline, the top value and category labels under the plot.
fn axes(out: &mut String, labels: &[String], max: f64) {
    let base = HEIGHT - PAD_B;
    let _ = write!(
        out,
        r#"<line class="axis" x1="{PAD_L}" y1="{base}" x2="{}" y2="{base}"/><text class="tick" x="{}" y="{}" text-anchor="end">{}</text><text class="tick" x="{}" y="{base}" text-anchor="end">0</text>"#,
        WIDTH - PAD_R,
        PAD_L - 4.0,
        PAD_T + 8.0,
        short(max),
        PAD_L - 4.0,
    );
    let slot = (WIDTH - PAD_L - PAD_R) / labels.len().max(1) as f64;
    for (i, l) in labels.iter().enumerate() {
        let x = PAD_L + slot * (i as f64 + 0.5);
        let l: String = l.chars().take(14).collect();
        let _ = write!(
            out,
            r#"<text class="tick" x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            base + 16.0,
            esc(&l)
        );
    }
}

fn legend(out: &mut String, series: &[Series]) {
    if series.len() < 2 {
        return;
    }
    let mut x = PAD_L;
    for (i, s) in series.iter().enumerate() {
        let _ = write!(
            out,
            r#"<rect class="s{}" x="{x:.1}" y="{:.1}" width="10" height="10"/><text class="tick" x="{:.1}" y="{:.1}">{}</text>"#,
            i % 8,
            HEIGHT - 14.0,
            x + 14.0,
            HEIGHT - 5.0,
            esc(&s.name)
        );
        x += 24.0 + 7.0 * s.name.chars().count() as f64;
    }
}

/// Vertical bars: one bar per category and series, side by side.
pub fn bars(title: &str, labels: &[String], series: &[Series]) -> String {
    let mut out = String::new();
    open(&mut out, title);
    let max = scale_max(series.iter().flat_map(|s| s.values.iter().copied()));
    for (si, rects) in bar_geometry(series, labels.len()).iter().enumerate() {
        for (c, r) in rects.iter().enumerate() {
            let v = series[si].values.get(c).copied().unwrap_or(0.0);
            let _ = write!(
                out,
                r#"<rect class="bar s{}" x="{:.2}" y="{:.2}" width="{:.2}" height="{:.2}"><title>{}: {}</title></rect>"#,
                si % 8,
                r.x,
                r.y,
                r.w,
                r.h,
                esc(labels.get(c).map(String::as_str).unwrap_or("")),
                short(v)
            );
        }
    }
    axes(&mut out, labels, max);
    legend(&mut out, series);
    out.push_str("</svg>");
    out
}

/// A horizontal funnel: one centred bar per stage with its label and value.
pub fn funnel(title: &str, labels: &[String], values: &[f64]) -> String {
    let mut out = String::new();
    open(&mut out, title);
    for (i, r) in funnel_geometry(values).iter().enumerate() {
        let label = labels.get(i).map(String::as_str).unwrap_or("");
        let _ = write!(
            out,
            r#"<rect class="bar s0" x="{:.2}" y="{:.2}" width="{:.2}" height="{:.2}"/><text class="tick" x="4" y="{:.1}">{}</text><text class="val" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            r.x,
            r.y,
            r.w,
            r.h,
            r.y + r.h / 2.0 + 4.0,
            esc(label),
            120.0 + (WIDTH - 120.0 - PAD_R) / 2.0,
            r.y + r.h / 2.0 + 4.0,
            short(values[i])
        );
    }
    out.push_str("</svg>");
    out
}

/// Lines, one per series, over the categories.
pub fn lines(title: &str, labels: &[String], series: &[Series]) -> String {
    let mut out = String::new();
    open(&mut out, title);
    let max = scale_max(series.iter().flat_map(|s| s.values.iter().copied()));
    for (si, pts) in line_geometry(series, labels.len()).iter().enumerate() {
        let d: Vec<String> = pts.iter().map(|(x, y)| format!("{x:.2},{y:.2}")).collect();
        let _ = write!(
            out,
            r#"<polyline class="line s{}" fill="none" points="{}"/>"#,
            si % 8,
            d.join(" ")
        );
        for (x, y) in pts {
            let _ = write!(
                out,
                r#"<circle class="dot s{}" cx="{x:.2}" cy="{y:.2}" r="3"/>"#,
                si % 8
            );
        }
    }
    // Line labels sit under the points, not in bar slots.
    let n = labels.len();
    let step = if n > 1 {
        (WIDTH - PAD_L - PAD_R) / (n - 1) as f64
    } else {
        0.0
    };
    let base = HEIGHT - PAD_B;
    let _ = write!(
        out,
        r#"<line class="axis" x1="{PAD_L}" y1="{base}" x2="{}" y2="{base}"/><text class="tick" x="{}" y="{}" text-anchor="end">{}</text>"#,
        WIDTH - PAD_R,
        PAD_L - 4.0,
        PAD_T + 8.0,
        short(max)
    );
    // Label every k-th point so labels never overlap.
    let every = n.div_ceil(8).max(1);
    for (i, l) in labels.iter().enumerate().filter(|(i, _)| i % every == 0) {
        let _ = write!(
            out,
            r#"<text class="tick" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            PAD_L + step * i as f64,
            base + 16.0,
            esc(l)
        );
    }
    legend(&mut out, series);
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn s(name: &str, v: &[f64]) -> Series {
        Series {
            name: name.into(),
            values: v.to_vec(),
        }
    }

    const PLOT_H: f64 = HEIGHT - PAD_T - PAD_B;

    #[test]
    fn bar_heights_are_proportional_to_values() {
        let g = bar_geometry(&[s("a", &[10.0, 5.0, 2.5, 0.0])], 4);
        let h: Vec<f64> = g[0].iter().map(|r| r.h).collect();
        // The largest value fills the plot (260 - 12 - 44 = 204 units).
        assert_eq!(PLOT_H, 204.0);
        assert_eq!(h, vec![204.0, 102.0, 51.0, 0.0]);
        // All stand on the baseline.
        for r in &g[0] {
            assert!((r.y + r.h - (HEIGHT - PAD_B)).abs() < 1e-9);
        }
    }

    #[test]
    fn side_by_side_series_share_the_scale_and_do_not_overlap() {
        let g = bar_geometry(&[s("a", &[4.0, 1.0]), s("b", &[2.0, 8.0])], 2);
        assert_eq!(g[0][0].h, 102.0); // 4 of 8
        assert_eq!(g[1][1].h, 204.0); // 8 of 8
        assert_eq!(g[0][1].h, 25.5); // 1 of 8
                                     // Plot width 584, two slots of 292, groups 80% wide, two bars each.
        assert!((g[0][0].w - 116.8).abs() < 1e-9);
        assert!((g[1][0].x - (g[0][0].x + g[0][0].w)).abs() < 1e-9);
        assert!(g[1][0].x + g[1][0].w <= g[0][1].x);
    }

    #[test]
    fn zero_negative_and_nan_values_draw_flat() {
        let g = bar_geometry(&[s("a", &[0.0, -3.0, f64::NAN])], 3);
        assert!(g[0].iter().all(|r| r.h == 0.0 && r.y.is_finite()));
    }

    #[test]
    fn funnel_widths_are_proportional_and_centred() {
        let g = funnel_geometry(&[1000.0, 250.0, 50.0]);
        let plot_w = WIDTH - 120.0 - PAD_R;
        assert_eq!(g[0].w, plot_w);
        assert_eq!(g[1].w, plot_w / 4.0);
        assert!((g[2].w - plot_w / 20.0).abs() < 1e-9);
        let centre = 120.0 + plot_w / 2.0;
        for r in &g {
            assert!((r.x + r.w / 2.0 - centre).abs() < 1e-9);
        }
        assert!(g[0].y < g[1].y && g[1].y < g[2].y);
    }

    #[test]
    fn line_points_follow_values() {
        let g = line_geometry(&[s("mqls", &[0.0, 50.0, 100.0])], 3);
        let base = HEIGHT - PAD_B;
        assert_eq!(g[0][0], (PAD_L, base));
        assert_eq!(g[0][1].1, base - PLOT_H / 2.0);
        assert_eq!(g[0][2], (WIDTH - PAD_R, PAD_T));
    }

    #[test]
    fn rendered_bars_carry_the_geometry_and_escape_labels() {
        let svg = bars("t<1>", &["a&b".into(), "c".into()], &[s("x", &[2.0, 1.0])]);
        assert!(svg.starts_with("<svg"));
        assert!(svg.ends_with("</svg>"));
        assert!(svg.contains(r#"height="204.00""#));
        assert!(svg.contains(r#"height="102.00""#));
        assert!(svg.contains("a&amp;b"));
        assert!(svg.contains("t&lt;1&gt;"));
        assert!(!svg.contains("style="));
    }
}
