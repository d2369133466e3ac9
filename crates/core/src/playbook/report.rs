//! `[report]`: who receives the weekly report, how it is sent and when.
//!
//! ```toml
//! [report]
//! subject_prefix = "[Acme weekly]"
//! send = { day = "mon", time = "08:00" }      # company timezone
//! webhook = "https://hooks.example/T000/B000"  # optional; or env TANDEM_REPORT_WEBHOOK
//! [report.recipients]
//! all = ["cro@acme.io"]
//! marketing = ["maya@acme.io"]
//! sales = ["sam@acme.io"]
//! [report.smtp]
//! host = "localhost"
//! port = 25
//! from = "tandem@acme.io"
//! username = "tandem"     # optional; the password comes from TANDEM_SMTP_PASSWORD
//! starttls = false        # true needs the `smtp-tls` build feature
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use super::raw::S;
use super::Checker;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawReport {
    pub subject_prefix: Option<String>,
    #[serde(default)]
    pub recipients: BTreeMap<String, S<Vec<S<String>>>>,
    pub webhook: Option<S<String>>,
    pub send: Option<RawSend>,
    pub smtp: Option<RawSmtp>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSend {
    pub day: S<String>,
    pub time: S<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSmtp {
    pub host: S<String>,
    pub port: Option<S<i64>>,
    pub from: S<String>,
    pub username: Option<String>,
    #[serde(default)]
    pub starttls: bool,
}

/// Recipient list names: everyone, or one team.
pub const RECIPIENT_LISTS: &[&str] = &["all", "marketing", "sales"];

/// The SMTP relay the report is sent through.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    /// The sender address.
    pub from: String,
    /// Login name; the password is read from `TANDEM_SMTP_PASSWORD`, never
    /// from the playbook.
    pub username: Option<String>,
    /// Upgrade the connection with STARTTLS (needs the `smtp-tls` feature).
    pub starttls: bool,
}

/// The checked `[report]` section.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ReportConfig {
    /// Put in front of the e-mail subject.
    pub subject_prefix: String,
    /// List name (`all`, `marketing`, `sales`) → addresses.
    pub recipients: BTreeMap<String, Vec<String>>,
    /// Slack-compatible incoming webhook for the short summary.
    pub webhook: Option<String>,
    /// Send day, 0 = Monday … 6 = Sunday.
    pub send_weekday: u8,
    /// Send time, minutes after local midnight.
    pub send_minute: u32,
    pub smtp: Option<SmtpConfig>,
}

impl ReportConfig {
    /// Every recipient once, in list order (`all` first), as they appear.
    pub fn all_recipients(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let order = RECIPIENT_LISTS
            .iter()
            .filter_map(|k| self.recipients.get(*k));
        for addr in order.flatten() {
            if !out.iter().any(|a| a.eq_ignore_ascii_case(addr)) {
                out.push(addr.clone());
            }
        }
        out
    }
}

/// Why an e-mail address is not one, or `None` when it is: exactly one `@`,
/// a non-empty local part, a domain of dot-separated labels of letters,
/// digits and hyphens, and no spaces or characters that break headers.
pub fn email_problem(addr: &str) -> Option<&'static str> {
    if addr
        .chars()
        .any(|c| c.is_whitespace() || "<>,;:\"()[]\\".contains(c))
    {
        return Some("it contains a space or one of <>,;:\"()[]\\");
    }
    let Some((local, domain)) = addr.split_once('@') else {
        return Some("it has no `@`");
    };
    if domain.contains('@') {
        return Some("it has more than one `@`");
    }
    if local.is_empty() {
        return Some("the part before `@` is empty");
    }
    let labels_ok = !domain.is_empty()
        && domain.split('.').all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    if !labels_ok {
        return Some("the domain after `@` is not a host name");
    }
    None
}

fn weekday(s: &str) -> Option<u8> {
    let days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let s = s.to_ascii_lowercase();
    days.iter()
        .position(|d| s == *d || (s.len() > 3 && s.starts_with(d)))
        .map(|i| i as u8)
}

fn hh_mm(s: &str) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

impl Checker<'_> {
    fn address(&mut self, a: &S<String>, what: &str) {
        if let Some(why) = email_problem(a.get_ref()) {
            self.error(
                a.span(),
                format!("{what} `{}` is not an e-mail address: {why}", a.get_ref()),
            );
        }
    }

    /// Checks `[report]`; every bad address is reported where it is written.
    pub(super) fn report(&mut self, raw: Option<S<RawReport>>) -> Option<ReportConfig> {
        let raw = raw?;
        let span = raw.span();
        let r = raw.into_inner();
        let mut recipients = BTreeMap::new();
        for (list, addrs) in &r.recipients {
            if !RECIPIENT_LISTS.contains(&list.as_str()) {
                self.error(
                    addrs.span(),
                    format!("unknown recipient list `{list}`; use all, marketing or sales"),
                );
            }
            for a in addrs.get_ref() {
                self.address(a, "recipient");
            }
            recipients.insert(
                list.clone(),
                addrs
                    .get_ref()
                    .iter()
                    .map(|a| a.get_ref().clone())
                    .collect(),
            );
        }
        if recipients.values().all(Vec::is_empty) && r.smtp.is_some() {
            self.warning(
                span.clone(),
                "[report.smtp] is set but [report.recipients] lists nobody",
            );
        }
        if let Some(w) = &r.webhook {
            let u = w.get_ref();
            if !(u.starts_with("https://") || u.starts_with("http://")) {
                self.error(
                    w.span(),
                    format!("webhook `{u}` must be an http:// or https:// URL"),
                );
            }
        }
        let (send_weekday, send_minute) = match &r.send {
            None => (0, 8 * 60),
            Some(s) => {
                let day = weekday(s.day.get_ref()).unwrap_or_else(|| {
                    self.error(
                        s.day.span(),
                        format!(
                            "unknown day `{}`; use mon, tue, wed, thu, fri, sat or sun",
                            s.day.get_ref()
                        ),
                    );
                    0
                });
                let minute = hh_mm(s.time.get_ref()).unwrap_or_else(|| {
                    self.error(
                        s.time.span(),
                        format!("time `{}` must be HH:MM (24-hour)", s.time.get_ref()),
                    );
                    0
                });
                (day, minute)
            }
        };
        let smtp = r.smtp.map(|s| {
            self.address(&s.from, "from");
            if s.host.get_ref().trim().is_empty() {
                self.error(s.host.span(), "smtp host must not be empty");
            }
            let port = match &s.port {
                None => 25,
                Some(p) => match u16::try_from(*p.get_ref()) {
                    Ok(v) if v > 0 => v,
                    _ => {
                        self.error(
                            p.span(),
                            format!("port must be 1..65535, got {}", p.get_ref()),
                        );
                        25
                    }
                },
            };
            SmtpConfig {
                host: s.host.get_ref().trim().to_string(),
                port,
                from: s.from.into_inner(),
                username: s.username,
                starttls: s.starttls,
            }
        });
        Some(ReportConfig {
            subject_prefix: r.subject_prefix.unwrap_or_else(|| "[tandem]".into()),
            recipients,
            webhook: r.webhook.map(|w| w.into_inner()),
            send_weekday,
            send_minute,
            smtp,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::super::{Playbook, STARTER};
    use super::*;

    fn with(section: &str) -> String {
        format!("{STARTER}\n{section}")
    }

    #[test]
    fn addresses_are_checked() {
        assert_eq!(email_problem("ana@acme.io"), None);
        assert_eq!(email_problem("ana@localhost"), None);
        assert!(email_problem("ana.acme.io").is_some());
        assert!(email_problem("a@b@c").is_some());
        assert!(email_problem("@acme.io").is_some());
        assert!(email_problem("ana@acme..io").is_some());
        assert!(email_problem("ana @acme.io").is_some());
        assert!(email_problem("ana@acme.io>").is_some());
    }

    #[test]
    fn report_section_loads() {
        let src = with(
            "[report]\nsubject_prefix = \"[Acme]\"\nsend = { day = \"tue\", time = \"07:30\" }\n\
             [report.recipients]\nall = [\"cro@acme.io\"]\nsales = [\"sam@acme.io\", \"CRO@acme.io\"]\n\
             [report.smtp]\nhost = \"localhost\"\nport = 2525\nfrom = \"tandem@acme.io\"\n",
        );
        let loaded = Playbook::load(&src);
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        let r = loaded.playbook.unwrap().report.unwrap();
        assert_eq!(r.subject_prefix, "[Acme]");
        assert_eq!((r.send_weekday, r.send_minute), (1, 7 * 60 + 30));
        assert_eq!(r.all_recipients(), ["cro@acme.io", "sam@acme.io"]);
        let smtp = r.smtp.unwrap();
        assert_eq!((smtp.host.as_str(), smtp.port), ("localhost", 2525));
    }

    #[test]
    fn bad_address_is_reported_at_its_line_and_column() {
        let src = with("[report.recipients]\nall = [\"cro@acme.io\", \"sam.acme.io\"]\n");
        let line = src.lines().count(); // the last line holds the list
        let loaded = Playbook::load(&src);
        assert!(loaded.playbook.is_none());
        let d: Vec<String> = loaded
            .diagnostics
            .iter()
            .map(|d| d.render("pb.toml", &src))
            .collect();
        assert_eq!(
            d,
            [format!(
                "pb.toml:{line}:23: error: recipient `sam.acme.io` is not an e-mail address: it has no `@`"
            )]
        );
    }

    #[test]
    fn bad_list_day_and_port_are_errors() {
        let src = with(
            "[report]\nsend = { day = \"someday\", time = \"8am\" }\n[report.recipients]\nboard = [\"a@b.io\"]\n\
             [report.smtp]\nhost = \"h\"\nport = 70000\nfrom = \"nobody\"\n",
        );
        let loaded = Playbook::load(&src);
        let msgs: Vec<&str> = loaded
            .diagnostics
            .iter()
            .map(|d| d.message.as_str())
            .collect();
        assert_eq!(
            msgs,
            [
                "unknown day `someday`; use mon, tue, wed, thu, fri, sat or sun",
                "time `8am` must be HH:MM (24-hour)",
                "unknown recipient list `board`; use all, marketing or sales",
                "port must be 1..65535, got 70000",
                "from `nobody` is not an e-mail address: it has no `@`",
            ]
        );
    }
}
