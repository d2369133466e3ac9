//! The ChannelAttribution path format.
//!
//! ```text
//! path;total_conversions;total_conversion_value;total_null
//! eta > iota > alpha > eta;1;0.244;3
//! ```
//!
//! The header must be exactly the one above (a UTF-8 byte-order mark and
//! `\r\n` line ends are accepted). Fields are separated by `;` only. Steps are
//! separated by `>`; ASCII whitespace around each step is trimmed, so `a > b` and
//! `a>b` are the same path, and an empty step (`a > > b`) is an error. Blank
//! lines are skipped. Numbers are decimal, finite and ≥ 0, and a row with
//! value but no conversions is rejected.

use super::table::{PathTable, TableBuilder};
use super::Path;

/// The header every path file starts with.
pub const HEADER: &str = "path;total_conversions;total_conversion_value;total_null";

/// A path file that cannot be read; `line` is 1-based (the header is line 1).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with the line.
    pub kind: ParseErrorKind,
}

/// What is wrong with a line of a path file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseErrorKind {
    /// The input has no header line.
    #[error("empty input: expected the header {HEADER:?}")]
    Empty,
    /// The first line is not the expected header.
    #[error("expected the header {HEADER:?}, found {0:?}")]
    BadHeader(String),
    /// The file uses `,` instead of `;`.
    #[error("fields must be separated by ';' (found ',' instead); expected the header {HEADER:?}")]
    CommaDelimiter,
    /// A row without exactly four `;`-separated fields.
    #[error("expected 4 fields separated by ';', found {0}")]
    FieldCount(usize),
    /// A row whose path has an empty step.
    #[error("step {0} of the path is empty (steps are separated by '>')")]
    EmptyStep(usize),
    /// A number that does not parse or is negative / not finite.
    #[error("{field} must be a finite decimal number ≥ 0, found {text:?}")]
    BadNumber {
        /// Column name.
        field: &'static str,
        /// The text found.
        text: String,
    },
    /// Value on a row without conversions.
    #[error("total_conversion_value is {0} but total_conversions is 0")]
    ValueWithoutConversions(f64),
}

/// Parses a path file from text. Returns one [`Path`] per data row, in file
/// order, without ages or milestones.
pub fn parse_paths(input: &str) -> Result<Vec<Path>, ParseError> {
    parse_path_table(input).map(|t| t.to_paths())
}

/// Parses a path file from text into a [`PathTable`] (one path per data row,
/// in file order). Channels are interned as they are read, so no string is
/// allocated per touch; this is what large files should use.
pub fn parse_path_table(input: &str) -> Result<PathTable, ParseError> {
    let input = input.strip_prefix('\u{feff}').unwrap_or(input);
    let mut lines = input
        .split('\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l)));
    let err = |line, kind| ParseError { line, kind };
    let (hline, header) = lines
        .by_ref()
        .find(|(_, l)| !l.trim().is_empty())
        .ok_or(err(1, ParseErrorKind::Empty))?;
    if header.trim() != HEADER {
        let kind = if !header.contains(';') && header.contains(',') {
            ParseErrorKind::CommaDelimiter
        } else {
            ParseErrorKind::BadHeader(header.to_string())
        };
        return Err(err(hline, kind));
    }
    let mut table = TableBuilder::default();
    for (line, text) in lines {
        if text.trim().is_empty() {
            continue;
        }
        let [path, conv, value, nulls] =
            split_fields(text).map_err(|found| err(line, ParseErrorKind::FieldCount(found)))?;
        let num = |field: &'static str, text: &str| {
            text.trim()
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| {
                    err(
                        line,
                        ParseErrorKind::BadNumber {
                            field,
                            text: text.to_string(),
                        },
                    )
                })
        };
        let conversions = num("total_conversions", conv)?;
        let value = num("total_conversion_value", value)?;
        let nulls = num("total_null", nulls)?;
        if value > 0.0 && conversions == 0.0 {
            return Err(err(line, ParseErrorKind::ValueWithoutConversions(value)));
        }
        // One pass over the bytes: `>` is ASCII, so every split point is a
        // char boundary (much faster than `split` on these short steps).
        let mut from = 0;
        for (i, b) in path.bytes().chain([b'>']).enumerate() {
            if b != b'>' {
                continue;
            }
            let step = path[from..i].trim_ascii();
            if step.is_empty() {
                let index = table.pending_steps() + 1;
                return Err(err(line, ParseErrorKind::EmptyStep(index)));
            }
            table.step(step);
            from = i + 1;
        }
        table.end_path(conversions, value, nulls, None, None);
    }
    Ok(table.finish())
}

/// The four `;`-separated fields of a row, or the number of fields found.
fn split_fields(text: &str) -> Result<[&str; 4], usize> {
    let mut fields = [""; 4];
    let mut n = 0;
    let mut from = 0;
    for (i, b) in text.bytes().chain([b';']).enumerate() {
        if b == b';' {
            if n < 4 {
                fields[n] = &text[from..i];
            }
            n += 1;
            from = i + 1;
        }
    }
    if n == 4 {
        Ok(fields)
    } else {
        Err(n)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_rows() {
        let text = "\u{feff}path;total_conversions;total_conversion_value;total_null\r\n\
                    eta > iota>alpha > eta;1;0.244;3\r\n\
                    \r\n\
                    beta;0;0;2\n";
        let paths = parse_paths(text).unwrap();
        assert_eq!(
            paths,
            vec![
                Path::new(["eta", "iota", "alpha", "eta"], 1.0, 0.244, 3.0),
                Path::new(["beta"], 0.0, 0.0, 2.0),
            ]
        );
        assert_eq!(parse_paths(HEADER).unwrap(), vec![]);
    }

    #[test]
    fn errors_name_line_and_reason() {
        let h = HEADER;
        let cases = [
            ("", 1, ParseErrorKind::Empty),
            (
                "path,total_conversions,total_conversion_value,total_null\na,1,1,0",
                1,
                ParseErrorKind::CommaDelimiter,
            ),
            (
                "path;conversions;value;null",
                1,
                ParseErrorKind::BadHeader("path;conversions;value;null".into()),
            ),
            (
                &format!("{h}\na;1;1;0\na;1;1"),
                3,
                ParseErrorKind::FieldCount(3),
            ),
            (
                &format!("{h}\na > > b;1;1;0"),
                2,
                ParseErrorKind::EmptyStep(2),
            ),
            (
                &format!("{h}\na;x;1;0"),
                2,
                ParseErrorKind::BadNumber {
                    field: "total_conversions",
                    text: "x".into(),
                },
            ),
            (
                &format!("{h}\na;1;1;-2"),
                2,
                ParseErrorKind::BadNumber {
                    field: "total_null",
                    text: "-2".into(),
                },
            ),
            (
                &format!("{h}\na;0;3;1"),
                2,
                ParseErrorKind::ValueWithoutConversions(3.0),
            ),
        ];
        for (text, line, kind) in cases {
            assert_eq!(parse_paths(text), Err(ParseError { line, kind }), "{text}");
        }
        let e = parse_paths(&format!("{h}\na;1;1")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 2: expected 4 fields separated by ';', found 3"
        );
    }
}
