//! ISO weeks in the company timezone: Monday 00:00 local to the next Monday.

use jiff::civil::{Date, ISOWeekDate, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::Span;
use serde::Serialize;
use tandem_core::metrics::Window;
use tandem_core::Timestamp;

use crate::ReportError;

/// An ISO week (`2026-W48`) and its window in the company timezone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Week {
    pub year: i16,
    pub week: i8,
    /// Monday 00:00 local to the next Monday 00:00 local (167, 168 or 169
    /// hours around daylight-saving changes).
    pub window: Window,
}

fn midnight(d: Date, tz: &TimeZone) -> Result<Timestamp, ReportError> {
    let ts = tz
        .to_timestamp(d.to_datetime(Time::midnight()))
        .map_err(|e| ReportError::invalid("week", e.to_string()))?;
    Ok(Timestamp::from_millis(ts.as_millisecond()))
}

impl Week {
    /// The week `year`-W`week`.
    pub fn new(year: i16, week: i8, tz: &TimeZone) -> Result<Week, ReportError> {
        let bad = |e: jiff::Error| ReportError::invalid("week", e.to_string());
        let monday = ISOWeekDate::new(year, week, Weekday::Monday)
            .map_err(bad)?
            .date();
        let next = monday.checked_add(Span::new().days(7)).map_err(bad)?;
        let window = Window::new(midnight(monday, tz)?, midnight(next, tz)?)?;
        Ok(Week { year, week, window })
    }

    /// Parses `YYYY-Www` (e.g. `2026-W48`).
    pub fn parse(s: &str, tz: &TimeZone) -> Result<Week, ReportError> {
        let bad =
            || ReportError::invalid("week", format!("`{s}` is not an ISO week such as 2026-W48"));
        let (y, w) = s.trim().split_once("-W").ok_or_else(bad)?;
        let year: i16 = y.parse().map_err(|_| bad())?;
        let week: i8 = w.parse().map_err(|_| bad())?;
        Week::new(year, week, tz).map_err(|_| bad())
    }

    /// The week containing `at` (local time).
    pub fn containing(at: Timestamp, tz: &TimeZone) -> Result<Week, ReportError> {
        let d = at
            .to_jiff()
            .to_zoned_datetime(tz.clone())
            .date()
            .iso_week_date();
        Week::new(d.year(), d.week(), tz)
    }

    /// The last week that is over at `as_of`: the one before the week
    /// containing `as_of`.
    pub fn last_complete(as_of: Timestamp, tz: &TimeZone) -> Result<Week, ReportError> {
        Week::containing(as_of, tz)?.previous(tz)
    }

    /// The week before.
    pub fn previous(&self, tz: &TimeZone) -> Result<Week, ReportError> {
        Week::containing(Timestamp::from_millis(self.window.from.millis() - 1), tz)
    }

    /// `2026-W48`.
    pub fn label(&self) -> String {
        format!("{}-W{:02}", self.year, self.week)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn weeks_are_local_and_dst_aware() {
        let tz = TimeZone::get("America/New_York").unwrap();
        let w = Week::parse("2026-W48", &tz).unwrap();
        assert_eq!(w.label(), "2026-W48");
        // Monday 2026-11-23 00:00 EST = 05:00 UTC.
        assert_eq!(
            w.window.from,
            Timestamp::parse("2026-11-23T05:00:00Z").unwrap()
        );
        assert_eq!(
            w.window.to,
            Timestamp::parse("2026-11-30T05:00:00Z").unwrap()
        );
        // The week of the fall-back change (Sunday 2026-11-01) is 169 hours.
        let dst = Week::parse("2026-W44", &tz).unwrap();
        assert_eq!(dst.window.len_ms(), 169 * 3_600_000);
        assert_eq!(
            Week::last_complete(Timestamp::parse("2026-11-23T05:00:00Z").unwrap(), &tz)
                .unwrap()
                .label(),
            "2026-W47"
        );
        // Sunday evening local is still W47 although it is Monday in UTC.
        assert_eq!(
            Week::containing(Timestamp::parse("2026-11-23T02:00:00Z").unwrap(), &tz)
                .unwrap()
                .label(),
            "2026-W47"
        );
        assert_eq!(
            Week::parse("2027-W01", &tz)
                .unwrap()
                .previous(&tz)
                .unwrap()
                .label(),
            "2026-W53"
        );
        assert!(Week::parse("2026-48", &tz).is_err());
        assert!(Week::parse("2026-W54", &tz).is_err());
    }
}
