//! `--send`: the report e-mailed to a local SMTP sink started by the test,
//! and the chat summary posted to a local webhook.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use tandem_core::playbook::{Playbook, STARTER};
use tandem_report::deliver;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// What the sink received.
#[derive(Debug, Default)]
struct Received {
    helo: String,
    mail_from: String,
    rcpt_to: Vec<String>,
    data: String,
}

/// Accepts one SMTP session on 127.0.0.1:0 and speaks just enough SMTP:
/// 220, EHLO/HELO, MAIL FROM, RCPT TO, DATA, RSET/NOOP, QUIT.
async fn smtp_sink() -> (u16, tokio::task::JoinHandle<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (sock, _) = listener.accept().await.unwrap();
        let (rd, mut wr) = sock.into_split();
        let mut rd = BufReader::new(rd);
        let mut got = Received::default();
        wr.write_all(b"220 sink ESMTP ready\r\n").await.unwrap();
        let mut line = String::new();
        loop {
            line.clear();
            if rd.read_line(&mut line).await.unwrap() == 0 {
                break;
            }
            let cmd = line.trim_end().to_string();
            let upper = cmd.to_ascii_uppercase();
            if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                got.helo = cmd[5.min(cmd.len())..].to_string();
                wr.write_all(b"250-sink greets you\r\n250 8BITMIME\r\n")
                    .await
                    .unwrap();
            } else if upper.starts_with("MAIL FROM:") {
                got.mail_from = cmd[10..]
                    .trim()
                    .trim_matches(['<', '>'])
                    .split('>')
                    .next()
                    .unwrap()
                    .to_string();
                wr.write_all(b"250 OK\r\n").await.unwrap();
            } else if upper.starts_with("RCPT TO:") {
                got.rcpt_to
                    .push(cmd[8..].trim().trim_matches(['<', '>']).to_string());
                wr.write_all(b"250 OK\r\n").await.unwrap();
            } else if upper == "DATA" {
                wr.write_all(b"354 end with <CRLF>.<CRLF>\r\n")
                    .await
                    .unwrap();
                let mut data = String::new();
                loop {
                    let mut l = String::new();
                    if rd.read_line(&mut l).await.unwrap() == 0 || l == ".\r\n" {
                        break;
                    }
                    // Undo dot-stuffing.
                    data.push_str(
                        l.strip_prefix('.')
                            .filter(|_| l.starts_with(".."))
                            .unwrap_or(&l),
                    );
                }
                got.data = data;
                wr.write_all(b"250 OK queued\r\n").await.unwrap();
            } else if upper == "QUIT" {
                wr.write_all(b"221 bye\r\n").await.unwrap();
                break;
            } else if upper == "RSET" || upper == "NOOP" {
                wr.write_all(b"250 OK\r\n").await.unwrap();
            } else {
                wr.write_all(b"502 not implemented\r\n").await.unwrap();
            }
        }
        got
    });
    (port, task)
}

/// Decodes quoted-printable (soft breaks and =XX escapes).
fn unqp(s: &str) -> String {
    let s = s.replace("=\r\n", "");
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// The body of the MIME part with this content type.
fn part(data: &str, content_type: &str) -> String {
    let start = data
        .find(&format!("Content-Type: {content_type}"))
        .expect(content_type);
    let rest = &data[start..];
    let body_start = rest.find("\r\n\r\n").unwrap() + 4;
    let body = &rest[body_start..];
    let end = body.find("\r\n--").unwrap_or(body.len());
    unqp(&body[..end])
}

fn playbook_with(port: u16) -> Playbook {
    let src = format!(
        "{STARTER}\n[report]\nsubject_prefix = \"[Acme weekly]\"\n\
         [report.recipients]\nall = [\"cro@acme.example\"]\nmarketing = [\"maya@acme.example\"]\n\
         sales = [\"ana@acme.example\", \"CRO@acme.example\"]\n\
         [report.smtp]\nhost = \"127.0.0.1\"\nport = {port}\nfrom = \"tandem@acme.example\"\n"
    );
    let loaded = Playbook::load(&src);
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    loaded.playbook.unwrap()
}

#[tokio::test]
async fn report_is_mailed_to_every_list_once() {
    let (port, sink) = smtp_sink().await;
    let pb = playbook_with(port);
    let (db, inputs) = common::demo_db(&pb).await;
    let r = tandem_report::build(&pb, &inputs, None, common::as_of(&pb)).unwrap();
    let cfg = pb.report.clone().unwrap();
    let email = deliver::compose(&r, &cfg).unwrap();
    let smtp = cfg.smtp.clone().unwrap();
    let sent = email.clone();
    tokio::task::spawn_blocking(move || deliver::send(&sent, &smtp, None))
        .await
        .unwrap()
        .unwrap();
    let got = sink.await.unwrap();

    assert_eq!(got.mail_from, "tandem@acme.example");
    // all, marketing, sales; the CRO listed twice gets one copy.
    assert_eq!(
        got.rcpt_to,
        ["cro@acme.example", "maya@acme.example", "ana@acme.example"]
    );
    let headers = got.data[..got.data.find("\r\n\r\n").unwrap()].replace("\r\n ", " ");
    let mql = r
        .waterfall
        .iter()
        .find(|s| s.stage == "mql")
        .unwrap()
        .this_week;
    let won = r
        .indicators
        .iter()
        .find(|i| i.metric == "revenue_won")
        .unwrap()
        .this_week
        .unwrap();
    let subject = format!(
        "Subject: [Acme weekly] Acme Analytics weekly report 2026-W47: {mql} MQLs, {} USD won",
        tandem_report::render::money(won as i64)
    );
    assert!(headers.contains(&subject), "{headers}");
    assert!(
        headers.contains("To: cro@acme.example, maya@acme.example, ana@acme.example"),
        "{headers}"
    );
    assert!(headers.contains("multipart/alternative"));
    let text = part(&got.data, "text/plain");
    let html = part(&got.data, "text/html");
    assert_eq!(text.replace("\r\n", "\n"), email.text.replace("\r\n", "\n"));
    assert_eq!(html.replace("\r\n", "\n"), email.html.replace("\r\n", "\n"));
    let s = r.sla.as_ref().unwrap();
    let key = format!(
        "Handoffs this week: {} (met {}, breached {}",
        s.handoffs, s.met, s.breached
    );
    assert!(text.contains(&key) && html.contains(&key));
    assert!(text.contains(&format!("| Marketing qualified lead | {mql} |")));
    db.cleanup().await.unwrap();
}

#[tokio::test]
async fn summary_is_posted_to_the_webhook() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = sock.read(&mut chunk).await.unwrap();
            buf.extend_from_slice(&chunk[..n]);
            let s = String::from_utf8_lossy(&buf).to_string();
            if let Some(i) = s.find("\r\n\r\n") {
                let len: usize = s
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .unwrap()
                    .trim()
                    .parse()
                    .unwrap();
                if buf.len() >= i + 4 + len {
                    break;
                }
            }
        }
        sock.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            .await
            .unwrap();
        String::from_utf8(buf).unwrap()
    });
    let pb = Playbook::load(STARTER).playbook.unwrap();
    let (db, inputs) = common::demo_db(&pb).await;
    let r = tandem_report::build(&pb, &inputs, None, common::as_of(&pb)).unwrap();
    let body = deliver::slack_payload(&r);
    let url = format!("http://127.0.0.1:{port}/hooks/weekly");
    tokio::task::spawn_blocking(move || deliver::post_webhook(&url, &body))
        .await
        .unwrap()
        .unwrap();
    let req = server.await.unwrap();
    assert!(req.starts_with("POST /hooks/weekly HTTP/1.1\r\n"));
    let json: serde_json::Value =
        serde_json::from_str(&req[req.find("\r\n\r\n").unwrap() + 4..]).unwrap();
    let text = json["text"].as_str().unwrap();
    let mql = r.waterfall.iter().find(|s| s.stage == "mql").unwrap();
    assert!(text.starts_with("*Acme Analytics weekly report 2026-W47*\n"));
    assert!(text.contains(&format!(
        "MQLs: {} (last week {}",
        mql.this_week, mql.last_week
    )));
    assert!(text.contains(&format!("Stalled leads: {}", r.stalled_total)));
    // https needs a TLS build; the error says so instead of failing later.
    let e = deliver::post_webhook("https://hooks.example/x", &serde_json::json!({})).unwrap_err();
    assert!(e.to_string().contains("only http:// URLs"), "{e}");
    db.cleanup().await.unwrap();
}

/// The demo company on `db` (the fixture's seed and anchor).
async fn demo_on(db: &tandem_store::testing::TestDb, pb: &Playbook) {
    use tandem_ingest::demo::{self, DemoOptions, Scale};
    demo::run(
        &db.store,
        pb,
        &DemoOptions {
            seed: 42,
            scale: Scale::Small,
            anchor: tandem_core::Timestamp::parse("2026-11-23").unwrap(),
            people: None,
        },
    )
    .await
    .unwrap();
}

/// The server's weekly task: the report due Monday 2026-11-23 08:00 New York
/// (13:00 UTC) is the one of 2026-W47; it is sent once, and a second call
/// in the same week (by this or another instance) sends nothing.
#[tokio::test]
async fn scheduled_send_goes_out_once_per_week_on_every_backend() {
    use tandem_core::Timestamp;
    use tandem_report::scheduled::{send_due_report, SendOutcome};
    use tandem_store::report_sends::{self, SendStatus};

    for db in tandem_store::testing::TestDb::all().await.unwrap() {
        let backend = db.store.backend();
        let (port, sink) = smtp_sink().await;
        let pb = playbook_with(port);
        demo_on(&db, &pb).await;
        // Sunday evening: last week's send (2026-W46's report, due Monday
        // 2026-11-16) is long done by an earlier instance.
        {
            let mut c = db.store.conn().await.unwrap();
            let t = Timestamp::parse("2026-11-16T13:00:00Z").unwrap();
            assert!(
                report_sends::claim(&mut c, "weekly_report:2026-W46", "2026-W46", t, t)
                    .await
                    .unwrap()
            );
            report_sends::sent(&mut c, "weekly_report:2026-W46", t, 3, "W46", None)
                .await
                .unwrap();
        }
        let sunday = Timestamp::parse("2026-11-23T02:00:00Z").unwrap();
        assert_eq!(
            send_due_report(&db.store, &pb, sunday).await.unwrap(),
            SendOutcome::NotDue {
                week: "2026-W46".into()
            },
            "{backend:?}"
        );

        // Monday 08:05 local: W47's report goes out.
        let now = Timestamp::parse("2026-11-23T13:05:00Z").unwrap();
        let out = send_due_report(&db.store, &pb, now).await.unwrap();
        let got = sink.await.unwrap();
        // The numbers the e-mail must carry: the report of W47 as of the
        // scheduled instant, built independently here.
        let due = Timestamp::parse("2026-11-23T13:00:00Z").unwrap();
        let week = tandem_report::Week::parse("2026-W47", &pb.company.timezone).unwrap();
        let r = tandem_report::gather(&db.store, &pb, Some(week), due)
            .await
            .unwrap();
        let mql = r.waterfall.iter().find(|s| s.stage == "mql").unwrap();
        assert!(mql.this_week > 0, "{backend:?}: the demo week has MQLs");
        let won = r
            .indicators
            .iter()
            .find(|i| i.metric == "revenue_won")
            .unwrap()
            .this_week
            .unwrap();
        let subject = format!(
            "[Acme weekly] Acme Analytics weekly report 2026-W47: {} MQLs, {} USD won",
            mql.this_week,
            tandem_report::render::money(won as i64)
        );
        assert_eq!(
            out,
            SendOutcome::Sent {
                week: "2026-W47".into(),
                subject: subject.clone(),
                recipients: vec![
                    "cro@acme.example".into(),
                    "maya@acme.example".into(),
                    "ana@acme.example".into()
                ],
                webhook: None,
            },
            "{backend:?}"
        );
        assert_eq!(
            got.rcpt_to,
            ["cro@acme.example", "maya@acme.example", "ana@acme.example"]
        );
        let headers = got.data[..got.data.find("\r\n\r\n").unwrap()].replace("\r\n ", " ");
        assert!(
            headers.contains(&format!("Subject: {subject}")),
            "{headers}"
        );
        let text = part(&got.data, "text/plain");
        assert!(text.contains(&format!("| Marketing qualified lead | {} |", mql.this_week)));
        let s = r.sla.as_ref().unwrap();
        assert!(text.contains(&format!(
            "Handoffs this week: {} (met {}, breached {}",
            s.handoffs, s.met, s.breached
        )));

        // The log row, and nothing more this week: the sink is gone, so a
        // second send would fail rather than pass silently.
        {
            let mut c = db.store.conn().await.unwrap();
            let row = report_sends::get(&mut c, "weekly_report:2026-W47")
                .await
                .unwrap()
                .unwrap();
            assert_eq!(row.status, SendStatus::Sent);
            assert_eq!(row.attempts, 1);
            assert_eq!(row.recipients, Some(3));
            assert_eq!(row.subject.as_deref(), Some(subject.as_str()));
            assert_eq!(row.sent_at, Some(now));
        }
        for later in ["2026-11-23T13:05:00Z", "2026-11-26T18:00:00Z"] {
            let later = Timestamp::parse(later).unwrap();
            assert_eq!(
                send_due_report(&db.store, &pb, later).await.unwrap(),
                SendOutcome::NotDue {
                    week: "2026-W47".into()
                },
                "{backend:?}"
            );
        }
        db.cleanup().await.unwrap();
    }
}

/// An SMTP server that is down: the attempt is logged as failed with a
/// retry time; before it nobody tries again, after it the next call does.
#[tokio::test]
async fn failed_scheduled_send_is_retried_later() {
    use tandem_core::Timestamp;
    use tandem_report::scheduled::{send_due_report, SendOutcome, RETRY_AFTER};
    use tandem_store::report_sends::{self, SendStatus};

    // A port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let pb = playbook_with(port);
    let (db, _) = common::demo_db(&pb).await;
    let now = Timestamp::parse("2026-11-24T09:00:00Z").unwrap();
    let e = send_due_report(&db.store, &pb, now).await.unwrap_err();
    assert!(
        e.to_string().contains(&format!("SMTP 127.0.0.1:{port}")),
        "{e}"
    );
    let mut c = db.store.conn().await.unwrap();
    let row = report_sends::get(&mut c, "weekly_report:2026-W47")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.status, SendStatus::Failed);
    assert_eq!(row.attempts, 1);
    let retry = Timestamp::from_millis(now.millis() + RETRY_AFTER.as_millis() as i64);
    assert_eq!(row.next_attempt_at, Some(retry));
    drop(c);
    let before = Timestamp::from_millis(retry.millis() - 1);
    assert_eq!(
        send_due_report(&db.store, &pb, before).await.unwrap(),
        SendOutcome::NotDue {
            week: "2026-W47".into()
        }
    );
    // At the retry time the claim is taken again (and fails again: still down).
    assert!(send_due_report(&db.store, &pb, retry).await.is_err());
    let mut c = db.store.conn().await.unwrap();
    let row = report_sends::get(&mut c, "weekly_report:2026-W47")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.attempts, 2);
    drop(c);
    db.cleanup().await.unwrap();
}

/// Without `[report.smtp]` the task does nothing and records nothing.
#[tokio::test]
async fn scheduled_send_needs_smtp() {
    use tandem_report::scheduled::{send_due_report, SendOutcome};
    let pb = Playbook::load(STARTER).playbook.unwrap();
    let db = tandem_store::testing::TestDb::sqlite().await.unwrap();
    let now = tandem_core::Timestamp::parse("2026-11-24T09:00:00Z").unwrap();
    assert_eq!(
        send_due_report(&db.store, &pb, now).await.unwrap(),
        SendOutcome::NotConfigured
    );
    let mut c = db.store.conn().await.unwrap();
    assert!(
        tandem_store::report_sends::get(&mut c, "weekly_report:2026-W47")
            .await
            .unwrap()
            .is_none()
    );
    drop(c);
    db.cleanup().await.unwrap();
}
