//! Delivery: the report by e-mail (multipart: the Markdown as text/plain,
//! the HTML as text/html) over SMTP, and a short Slack-compatible summary
//! posted to a webhook.
//!
//! SMTP is plain by default, for a local relay; `starttls = true` in
//! `[report.smtp]` needs the `smtp-tls` cargo feature (rustls), left out of
//! the default build to keep it lean. The SMTP password is read from
//! `TANDEM_SMTP_PASSWORD`, never from the playbook. The webhook poster speaks
//! plain HTTP/1.1 (`http://` URLs, e.g. a local relay or chat bridge).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{Message, SmtpTransport, Transport};
use serde_json::json;
use tandem_core::playbook::{ReportConfig, SmtpConfig};

use crate::render::{self, money, Style};
use crate::{ReportError, WeeklyReport};

/// Environment variable holding the SMTP password.
pub const PASSWORD_ENV: &str = "TANDEM_SMTP_PASSWORD";
/// Environment variable overriding the playbook's webhook URL.
pub const WEBHOOK_ENV: &str = "TANDEM_REPORT_WEBHOOK";

/// A composed e-mail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email {
    pub subject: String,
    pub from: String,
    pub to: Vec<String>,
    /// The Markdown report.
    pub text: String,
    /// The HTML report.
    pub html: String,
}

fn entries(r: &WeeklyReport, stage: &str) -> u64 {
    r.waterfall
        .iter()
        .find(|s| s.stage == stage)
        .map(|s| s.this_week)
        .unwrap_or(0)
}

fn won(r: &WeeklyReport) -> i64 {
    r.indicators
        .iter()
        .find(|i| i.metric == "revenue_won")
        .and_then(|i| i.this_week)
        .map(|x| x.round() as i64)
        .unwrap_or(0)
}

/// `[Acme] Acme Analytics weekly report 2026-W47: 41 MQLs, 12,345.00 USD won`.
pub fn subject(r: &WeeklyReport, prefix: &str) -> String {
    let mql = r.sla.as_ref().map(|s| s.stage.as_str()).unwrap_or("mql");
    format!(
        "{prefix} {} weekly report {}: {} MQLs, {} {} won",
        r.company,
        r.week,
        entries(r, mql),
        money(won(r)),
        r.currency
    )
    .trim()
    .to_string()
}

/// The e-mail of the report to every recipient list of `[report]`.
pub fn compose(r: &WeeklyReport, cfg: &ReportConfig) -> Result<Email, ReportError> {
    let smtp = cfg
        .smtp
        .as_ref()
        .ok_or_else(|| ReportError::Delivery("the playbook has no [report.smtp]".into()))?;
    let to = cfg.all_recipients();
    if to.is_empty() {
        return Err(ReportError::Delivery(
            "[report.recipients] lists nobody".into(),
        ));
    }
    Ok(Email {
        subject: subject(r, &cfg.subject_prefix),
        from: smtp.from.clone(),
        to,
        text: render::report(r, Style::Markdown)?,
        html: render::report(r, Style::Html)?,
    })
}

fn mailbox(s: &str) -> Result<Mailbox, ReportError> {
    s.parse()
        .map_err(|e| ReportError::Delivery(format!("bad address `{s}`: {e}")))
}

/// The MIME message: multipart/alternative with text/plain and text/html.
pub fn message(e: &Email) -> Result<Message, ReportError> {
    let mut b = Message::builder()
        .from(mailbox(&e.from)?)
        .subject(&e.subject);
    for t in &e.to {
        b = b.to(mailbox(t)?);
    }
    // Quoted-printable for both parts: readable in any client and lossless
    // for the report's non-ASCII characters.
    let part = |ct: ContentType, body: &str| {
        SinglePart::builder()
            .header(ct)
            .header(ContentTransferEncoding::QuotedPrintable)
            .body(body.to_string())
    };
    b.multipart(
        MultiPart::alternative()
            .singlepart(part(ContentType::TEXT_PLAIN, &e.text))
            .singlepart(part(ContentType::TEXT_HTML, &e.html)),
    )
    .map_err(|err| ReportError::Delivery(format!("cannot build the message: {err}")))
}

fn transport(smtp: &SmtpConfig, password: Option<&str>) -> Result<SmtpTransport, ReportError> {
    let builder = if smtp.starttls {
        #[cfg(feature = "smtp-tls")]
        {
            SmtpTransport::starttls_relay(&smtp.host)
                .map_err(|e| ReportError::Delivery(format!("STARTTLS to {}: {e}", smtp.host)))?
        }
        #[cfg(not(feature = "smtp-tls"))]
        {
            return Err(ReportError::Delivery(
                "[report.smtp] starttls = true, but this tandem was built without the `smtp-tls` feature".into(),
            ));
        }
    } else {
        SmtpTransport::builder_dangerous(&smtp.host)
    };
    let mut builder = builder
        .port(smtp.port)
        .timeout(Some(Duration::from_secs(30)));
    if let Some(user) = &smtp.username {
        builder = builder.credentials(Credentials::new(
            user.clone(),
            password.unwrap_or_default().to_string(),
        ));
    }
    Ok(builder.build())
}

/// Sends the e-mail through `smtp` (blocking). `password` is used with the
/// configured user name (see [`PASSWORD_ENV`]).
pub fn send(e: &Email, smtp: &SmtpConfig, password: Option<&str>) -> Result<(), ReportError> {
    let msg = message(e)?;
    transport(smtp, password)?
        .send(&msg)
        .map_err(|err| ReportError::Delivery(format!("SMTP {}:{}: {err}", smtp.host, smtp.port)))?;
    tracing::info!(report.recipients = e.to.len(), "weekly report e-mailed");
    Ok(())
}

/// A few lines for chat: MQLs, SLA compliance, won revenue, celebrations.
pub fn summary(r: &WeeklyReport) -> String {
    let mql = r.sla.as_ref().map(|s| s.stage.as_str()).unwrap_or("mql");
    let mut lines = vec![format!("*{} weekly report {}*", r.company, r.week)];
    let row = r.waterfall.iter().find(|s| s.stage == mql);
    if let Some(s) = row {
        lines.push(format!(
            "MQLs: {} (last week {}, 4-week avg {:.1})",
            s.this_week, s.last_week, s.avg4
        ));
    }
    if let Some(s) = &r.sla {
        lines.push(format!(
            "Sales SLA: {} handoffs, {} breached, compliance {}",
            s.handoffs,
            s.breached,
            s.compliance_pct
                .map(|p| format!("{p:.1}%"))
                .unwrap_or_else(|| "-".into())
        ));
    }
    lines.push(format!("Won this week: {} {}", money(won(r)), r.currency));
    lines.push(format!("Stalled leads: {}", r.stalled_total));
    for c in &r.celebrations {
        lines.push(format!(":tada: {c}"));
    }
    lines.join("\n")
}

/// The Slack-compatible JSON body (`{"text": …}`).
pub fn slack_payload(r: &WeeklyReport) -> serde_json::Value {
    json!({ "text": summary(r) })
}

/// POSTs JSON to an `http://host[:port]/path` URL with HTTP/1.1 and fails
/// unless the answer is 2xx.
pub fn post_webhook(url: &str, body: &serde_json::Value) -> Result<(), ReportError> {
    let bad = |why: &str| ReportError::Delivery(format!("webhook: {why}"));
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        bad("only http:// URLs can be posted by this build (use a local relay for https)")
    })?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let payload = body.to_string();
    let mut s = TcpStream::connect(&addr).map_err(|e| bad(&format!("cannot connect: {e}")))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| bad(&e.to_string()))?;
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
        payload.len()
    );
    s.write_all(req.as_bytes())
        .map_err(|e| bad(&format!("cannot send: {e}")))?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)
        .map_err(|e| bad(&format!("no answer: {e}")))?;
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| bad("the answer is not HTTP"))?;
    if !(200..300).contains(&status) {
        return Err(bad(&format!("HTTP {status}")));
    }
    Ok(())
}
