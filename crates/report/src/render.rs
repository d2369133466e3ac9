//! Markdown and HTML from the same data, through embedded minijinja
//! templates (`templates/`). Numbers are formatted by the same filters in
//! both, so the two carry the same figures.

use minijinja::value::Value;
use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use crate::{Agenda, ReportError, WeeklyReport};

/// Markdown or HTML.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    Markdown,
    Html,
}

/// `1234567` minor units → `12,345.67`.
pub fn money(minor: i64) -> String {
    let neg = minor < 0;
    let m = minor.unsigned_abs();
    let (units, cents) = (m / 100, m % 100);
    format!("{}{}.{cents:02}", if neg { "-" } else { "" }, group(units))
}

/// `1234567` → `1,234,567`.
fn group(n: u64) -> String {
    let s = n.to_string();
    // Digits from the right in groups of three, then reversed back.
    let rev: Vec<char> = s.chars().rev().collect();
    let groups: Vec<String> = rev.chunks(3).map(|g| g.iter().rev().collect()).collect();
    groups.into_iter().rev().collect::<Vec<_>>().join(",")
}

fn as_f64(v: &Value) -> Option<f64> {
    if v.is_none() || v.is_undefined() {
        return None;
    }
    f64::try_from(v.clone()).ok().filter(|x| x.is_finite())
}

/// A number with `digits` decimals (thousands grouped), `-` for none.
fn num(v: Value, digits: Option<usize>) -> String {
    let d = digits.unwrap_or(0);
    match as_f64(&v) {
        None => "-".into(),
        Some(x) => {
            let s = format!("{:.d$}", x.abs());
            let (int, frac) = s.split_once('.').unwrap_or((&s, ""));
            let int = group(int.parse().unwrap_or(0));
            let sign = if x < 0.0 && s.chars().any(|c| c != '0' && c != '.') {
                "-"
            } else {
                ""
            };
            if frac.is_empty() {
                format!("{sign}{int}")
            } else {
                format!("{sign}{int}.{frac}")
            }
        }
    }
}

/// A 0..1 share as a percentage, `-` for none.
fn pct(v: Value, digits: Option<usize>) -> String {
    let d = digits.unwrap_or(1);
    match as_f64(&v) {
        None => "-".into(),
        Some(x) => format!("{:.d$}%", x * 100.0),
    }
}

/// A value of a metric with unit `money`, `rate` or `count`.
fn metric(v: Value, unit: &str) -> String {
    match (unit, as_f64(&v)) {
        (_, None) => "-".into(),
        ("money", Some(x)) => money(x.round() as i64),
        ("rate", Some(_)) => pct(v, Some(1)),
        (_, Some(x)) if x.fract() == 0.0 => num(v, Some(0)),
        _ => num(v, Some(2)),
    }
}

/// Escapes `|` and newlines for a Markdown table cell.
fn cell(v: Value) -> String {
    let s = if v.is_none() || v.is_undefined() {
        "-".to_string()
    } else {
        v.to_string()
    };
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

fn env() -> Result<Environment<'static>, ReportError> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.add_filter("money", |v: Value| match as_f64(&v) {
        Some(x) => money(x.round() as i64),
        None => "-".to_string(),
    });
    env.add_filter("num", num);
    env.add_filter("pct", pct);
    env.add_filter("metric", |v: Value, unit: String| metric(v, &unit));
    env.add_filter("cell", cell);
    let templates: [(&'static str, &'static str); 4] = [
        ("report.md", include_str!("../templates/report.md")),
        ("report.html", include_str!("../templates/report.html")),
        ("agenda.md", include_str!("../templates/agenda.md")),
        ("agenda.html", include_str!("../templates/agenda.html")),
    ];
    for (name, src) in templates {
        env.add_template(name, src)
            .map_err(|source| ReportError::Render {
                template: name,
                source,
            })?;
    }
    Ok(env)
}

fn render_one<T: Serialize>(template: &'static str, data: &T) -> Result<String, ReportError> {
    let env = env()?;
    let t = env
        .get_template(template)
        .map_err(|source| ReportError::Render { template, source })?;
    t.render(minijinja::context! { r => Value::from_serialize(data) })
        .map_err(|source| ReportError::Render { template, source })
}

/// The weekly report as Markdown or self-contained HTML.
pub fn report(r: &WeeklyReport, style: Style) -> Result<String, ReportError> {
    match style {
        Style::Markdown => render_one("report.md", r),
        Style::Html => render_one("report.html", r),
    }
}

/// The meeting agenda as Markdown or self-contained HTML.
pub fn agenda(a: &Agenda, style: Style) -> Result<String, ReportError> {
    match style {
        Style::Markdown => render_one("agenda.md", a),
        Style::Html => render_one("agenda.html", a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_format_the_same_everywhere() {
        assert_eq!(money(123_456_789), "1,234,567.89");
        assert_eq!(money(-5), "-0.05");
        assert_eq!(money(0), "0.00");
        assert_eq!(num(Value::from(1234.5), Some(1)), "1,234.5");
        assert_eq!(num(Value::from(-0.04), Some(1)), "0.0");
        assert_eq!(num(Value::from(()), None), "-");
        assert_eq!(pct(Value::from(0.8567), None), "85.7%");
        assert_eq!(metric(Value::from(250_000.0), "money"), "2,500.00");
        assert_eq!(metric(Value::from(12.0), "count"), "12");
        assert_eq!(cell(Value::from("a|b")), "a\\|b");
    }
}
