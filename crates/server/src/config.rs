//! `tandem serve` configuration: a TOML file (`--config`), `TANDEM_*`
//! environment variables and command-line flags. Precedence, highest first:
//! flag > environment > file > default.
//!
//! ```toml
//! bind = "0.0.0.0:8080"
//! database_url = "postgres://tandem@db/tandem"
//! playbook = "playbook.toml"
//!
//! [alerts]
//! interval_secs = 60        # TANDEM_ALERT_INTERVAL
//! lookback_hours = 168
//! max_attempts = 8
//! backoff_secs = 30
//! timeout_secs = 10
//! [alerts.webhooks]
//! sales = "http://chat-relay/hooks/sales"        # TANDEM_WEBHOOK_SALES
//! marketing = "http://chat-relay/hooks/marketing" # TANDEM_WEBHOOK_MARKETING
//! account_management = "http://chat-relay/hooks/am" # TANDEM_WEBHOOK_ACCOUNT_MANAGEMENT
//! all = "http://chat-relay/hooks/revenue"         # TANDEM_WEBHOOK_ALL
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::alerts::{AlertConfig, Webhooks};

/// The default listen address.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";

/// A configuration that cannot be used: where and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {file}: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    #[error("{origin}: {message}")]
    Value { origin: String, message: String },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    bind: Option<String>,
    database_url: Option<String>,
    playbook: Option<PathBuf>,
    #[serde(default)]
    alerts: FileAlerts,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAlerts {
    interval_secs: Option<u64>,
    lookback_hours: Option<u64>,
    max_attempts: Option<i64>,
    backoff_secs: Option<u64>,
    timeout_secs: Option<u64>,
    #[serde(default)]
    webhooks: Webhooks,
}

/// Values given on the command line (highest precedence). For the CLI's
/// global `--playbook`/`--database-url`, pass them here only when they came
/// from the flag or its environment variable, not from clap's default.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub bind: Option<SocketAddr>,
    pub database_url: Option<String>,
    pub playbook: Option<PathBuf>,
}

/// Everything `tandem serve` runs with.
#[derive(Clone, PartialEq)]
pub struct ServeConfig {
    pub bind: SocketAddr,
    /// `None`: the CLI's default database.
    pub database_url: Option<String>,
    /// `None`: the CLI's default playbook.
    pub playbook: Option<PathBuf>,
    pub alerts: AlertConfig,
}

impl fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServeConfig")
            .field("bind", &self.bind)
            .field(
                "database_url",
                &self.database_url.as_ref().map(|u| {
                    tandem_store::DatabaseUrl::parse(u)
                        .map(|d| d.to_string())
                        .unwrap_or_else(|_| "(invalid)".into())
                }),
            )
            .field("playbook", &self.playbook)
            .field("alerts", &self.alerts)
            .finish()
    }
}

fn value_err(origin: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Value {
        origin: origin.to_string(),
        message: message.into(),
    }
}

/// Seconds as `30`, `30s`, `5m` or `1h`.
fn seconds(origin: &str, s: &str) -> Result<u64, ConfigError> {
    let s = s.trim();
    let (num, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: u64 = num.parse().map_err(|_| {
        value_err(
            origin,
            format!("{s:?} is not a duration like 30, 30s, 5m or 1h"),
        )
    })?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => {
            return Err(value_err(
                origin,
                format!("{s:?}: the unit must be s, m or h"),
            ))
        }
    };
    Ok(n * mult)
}

fn positive(origin: &str, secs: u64) -> Result<Duration, ConfigError> {
    if secs == 0 {
        Err(value_err(origin, "must be more than 0"))
    } else {
        Ok(Duration::from_secs(secs))
    }
}

impl ServeConfig {
    /// Reads `file` (if any), then the environment through `env`, then the
    /// flags in `flags`.
    pub fn load(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
        flags: Overrides,
    ) -> Result<ServeConfig, ConfigError> {
        let (f, fname) = match file {
            Some(p) => {
                let name = p.display().to_string();
                let text = std::fs::read_to_string(p).map_err(|e| ConfigError::Read {
                    file: name.clone(),
                    source: e,
                })?;
                let parsed: FileConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    file: name.clone(),
                    message: e.to_string().trim().to_string(),
                })?;
                (parsed, name)
            }
            None => (FileConfig::default(), String::new()),
        };
        let env = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        let d = AlertConfig::default();

        let bind = match (flags.bind, env("TANDEM_BIND"), &f.bind) {
            (Some(b), _, _) => b,
            (None, Some(e), _) => e.parse().map_err(|_| {
                value_err(
                    "TANDEM_BIND",
                    format!("{e:?} is not an address like 127.0.0.1:8080"),
                )
            })?,
            (None, None, Some(b)) => b.parse().map_err(|_| {
                value_err(
                    &format!("{fname}: bind"),
                    format!("{b:?} is not an address like 127.0.0.1:8080"),
                )
            })?,
            (None, None, None) => DEFAULT_BIND
                .parse()
                .map_err(|_| value_err("default", "bad default address"))?,
        };
        let database_url = flags
            .database_url
            .or_else(|| env("TANDEM_DATABASE_URL"))
            .or(f.database_url);
        let playbook = flags
            .playbook
            .or_else(|| env("TANDEM_PLAYBOOK").map(PathBuf::from))
            .or(f.playbook);

        let a = f.alerts;
        let interval = match env("TANDEM_ALERT_INTERVAL") {
            Some(v) => positive(
                "TANDEM_ALERT_INTERVAL",
                seconds("TANDEM_ALERT_INTERVAL", &v)?,
            )?,
            None => match a.interval_secs {
                Some(s) => positive(&format!("{fname}: alerts.interval_secs"), s)?,
                None => d.interval,
            },
        };
        let lookback = a
            .lookback_hours
            .map(|h| Duration::from_secs(h * 3600))
            .unwrap_or(d.lookback);
        let max_attempts = match a.max_attempts {
            Some(n) if n >= 1 => n,
            Some(n) => {
                return Err(value_err(
                    &format!("{fname}: alerts.max_attempts"),
                    format!("must be at least 1, not {n}"),
                ))
            }
            None => d.max_attempts,
        };
        let backoff = match a.backoff_secs {
            Some(s) => positive(&format!("{fname}: alerts.backoff_secs"), s)?,
            None => d.backoff,
        };
        let timeout = match a.timeout_secs {
            Some(s) => positive(&format!("{fname}: alerts.timeout_secs"), s)?,
            None => d.timeout,
        };
        let webhooks = Webhooks {
            marketing: env("TANDEM_WEBHOOK_MARKETING").or(a.webhooks.marketing),
            sales: env("TANDEM_WEBHOOK_SALES").or(a.webhooks.sales),
            account_management: env("TANDEM_WEBHOOK_ACCOUNT_MANAGEMENT")
                .or(a.webhooks.account_management),
            all: env("TANDEM_WEBHOOK_ALL").or(a.webhooks.all),
        };
        for (name, url) in [
            ("marketing", &webhooks.marketing),
            ("sales", &webhooks.sales),
            ("account_management", &webhooks.account_management),
            ("all", &webhooks.all),
        ] {
            if let Some(u) = url {
                if !u.starts_with("http://") {
                    return Err(value_err(
                        &format!("webhook `{name}`"),
                        "must be an http:// URL (this build has no TLS; use a relay for https)",
                    ));
                }
            }
        }
        Ok(ServeConfig {
            bind,
            database_url,
            playbook,
            alerts: AlertConfig {
                interval,
                lookback,
                max_attempts,
                backoff,
                timeout,
                webhooks,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn flag_beats_env_beats_file_beats_default() {
        let dir = std::env::temp_dir().join(format!("tandem-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("serve.toml");
        std::fs::write(
            &file,
            "bind = \"127.0.0.1:9000\"\ndatabase_url = \"file.db\"\nplaybook = \"file.toml\"\n\
             [alerts]\ninterval_secs = 120\nmax_attempts = 3\n[alerts.webhooks]\nsales = \"http://file/sales\"\nall = \"http://file/all\"\n",
        )
        .unwrap();

        let c = ServeConfig::load(None, env(&[]), Overrides::default()).unwrap();
        assert_eq!(c.bind.to_string(), DEFAULT_BIND);
        assert_eq!((c.database_url, c.playbook), (None, None));
        assert_eq!(c.alerts, AlertConfig::default());

        let c = ServeConfig::load(Some(&file), env(&[]), Overrides::default()).unwrap();
        assert_eq!(c.bind.to_string(), "127.0.0.1:9000");
        assert_eq!(c.database_url.as_deref(), Some("file.db"));
        assert_eq!(c.alerts.interval, Duration::from_secs(120));
        assert_eq!(c.alerts.max_attempts, 3);
        assert_eq!(
            c.alerts.webhooks.sales.as_deref(),
            Some("http://file/sales")
        );

        let e = env(&[
            ("TANDEM_BIND", "127.0.0.1:9001"),
            ("TANDEM_DATABASE_URL", "env.db"),
            ("TANDEM_ALERT_INTERVAL", "5m"),
            ("TANDEM_WEBHOOK_SALES", "http://env/sales"),
        ]);
        let c = ServeConfig::load(Some(&file), &e, Overrides::default()).unwrap();
        assert_eq!(c.bind.to_string(), "127.0.0.1:9001");
        assert_eq!(c.database_url.as_deref(), Some("env.db"));
        assert_eq!(c.playbook.as_deref(), Some(Path::new("file.toml")));
        assert_eq!(c.alerts.interval, Duration::from_secs(300));
        assert_eq!(c.alerts.webhooks.sales.as_deref(), Some("http://env/sales"));
        assert_eq!(c.alerts.webhooks.all.as_deref(), Some("http://file/all"));

        let flags = Overrides {
            bind: Some("127.0.0.1:9002".parse().unwrap()),
            database_url: Some("flag.db".into()),
            playbook: None,
        };
        let c = ServeConfig::load(Some(&file), &e, flags).unwrap();
        assert_eq!(c.bind.to_string(), "127.0.0.1:9002");
        assert_eq!(c.database_url.as_deref(), Some("flag.db"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_values_name_their_origin() {
        let err = |pairs: &[(&str, &str)]| {
            ServeConfig::load(None, env(pairs), Overrides::default())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(&[("TANDEM_BIND", "localhost")]),
            "TANDEM_BIND: \"localhost\" is not an address like 127.0.0.1:8080"
        );
        assert_eq!(
            err(&[("TANDEM_ALERT_INTERVAL", "0")]),
            "TANDEM_ALERT_INTERVAL: must be more than 0"
        );
        assert_eq!(
            err(&[("TANDEM_ALERT_INTERVAL", "5d")]),
            "TANDEM_ALERT_INTERVAL: \"5d\": the unit must be s, m or h"
        );
        assert_eq!(
            err(&[("TANDEM_WEBHOOK_ALL", "https://hooks.slack.com/x")]),
            "webhook `all`: must be an http:// URL (this build has no TLS; use a relay for https)"
        );
        let dir = std::env::temp_dir().join(format!("tandem-config-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("serve.toml");
        std::fs::write(&file, "[alerts]\nintervall_secs = 5\n").unwrap();
        let e = ServeConfig::load(Some(&file), env(&[]), Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `intervall_secs`"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
