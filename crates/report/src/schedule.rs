//! When the weekly report is due: the playbook's `[report] send` day and
//! time (default Monday 08:00) in the company timezone.

use jiff::civil::Time;
use jiff::Span;
use tandem_core::playbook::Playbook;
use tandem_core::Timestamp;

use crate::ReportError;

/// The first send instant strictly after `now`: the next send weekday at
/// the send time, local time. Across a daylight-saving change the send
/// stays at the same local time (so the UTC gap is 167 or 169 hours); a
/// send time that does not exist that day (spring gap) moves forward by
/// the gap. Pure: the server loop sleeps until it.
pub fn next_send_after(now: Timestamp, pb: &Playbook) -> Result<Timestamp, ReportError> {
    let (weekday, minute) = pb
        .report
        .as_ref()
        .map(|r| (r.send_weekday, r.send_minute))
        .unwrap_or((0, 8 * 60));
    let tz = &pb.company.timezone;
    let bad = |e: jiff::Error| ReportError::invalid("schedule", e.to_string());
    let today = now.to_jiff().to_zoned_datetime(tz.clone()).date();
    let ahead =
        (i64::from(weekday) - i64::from(today.weekday().to_monday_zero_offset())).rem_euclid(7);
    let time = Time::new((minute / 60) as i8, (minute % 60) as i8, 0, 0).map_err(bad)?;
    for extra in [0, 7] {
        let day = today
            .checked_add(Span::new().days(ahead + extra))
            .map_err(bad)?;
        let at = tz.to_timestamp(day.to_datetime(time)).map_err(bad)?;
        let at = Timestamp::from_millis(at.as_millisecond());
        if at > now {
            return Ok(at);
        }
    }
    Err(ReportError::invalid("schedule", "no send time after now"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use tandem_core::playbook::STARTER;

    fn next(now: &str, pb: &Playbook) -> Timestamp {
        next_send_after(Timestamp::parse(now).unwrap(), pb).unwrap()
    }

    #[test]
    fn monday_eight_local_across_dst() {
        // Starter: America/New_York, no [report] → Monday 08:00.
        let pb = Playbook::load(STARTER).playbook.unwrap();
        let t = |s: &str| Timestamp::parse(s).unwrap();
        // Monday 2026-10-26 07:00 EDT: today at 08:00 EDT = 12:00 UTC.
        assert_eq!(next("2026-10-26T11:00:00Z", &pb), t("2026-10-26T12:00:00Z"));
        // Exactly at the send time: the next one, a week later; clocks fall
        // back on Sunday 2026-11-01, so 08:00 EST = 13:00 UTC (169 h later).
        assert_eq!(next("2026-10-26T12:00:00Z", &pb), t("2026-11-02T13:00:00Z"));
        // From a Wednesday.
        assert_eq!(next("2026-11-25T22:00:00Z", &pb), t("2026-11-30T13:00:00Z"));
        // Spring forward on Sunday 2027-03-14: 08:00 EDT = 12:00 UTC (167 h).
        assert_eq!(next("2027-03-08T13:00:00Z", &pb), t("2027-03-15T12:00:00Z"));
        // Sunday 23:30 local is Monday 04:30 UTC: still "today is Sunday".
        assert_eq!(next("2026-11-30T04:30:00Z", &pb), t("2026-11-30T13:00:00Z"));
    }

    #[test]
    fn configured_day_and_time() {
        let src = format!("{STARTER}\n[report]\nsend = {{ day = \"fri\", time = \"16:45\" }}\n");
        let pb = Playbook::load(&src).playbook.unwrap();
        // Friday 2026-11-27 16:45 EST = 21:45 UTC.
        assert_eq!(
            next("2026-11-25T22:00:00Z", &pb),
            Timestamp::parse("2026-11-27T21:45:00Z").unwrap()
        );
    }
}
