//! Bulk target-list import (`tandem accounts target add --file`): a CSV with
//! `account` (the account's external id; also read from `external_id` or
//! `account_id`), `tier` (1, 2 or 3) and optional `marketer` and `seller`
//! (a missing column keeps the owner already on the list; an empty cell
//! clears it).
//! Bad rows go to the reject file next to the input (line, reason, the row),
//! as for every import; good rows are applied in one transaction.

use std::fs::File;
use std::path::{Path, PathBuf};

use tandem_core::accounts::tiers::check_tier;
use tandem_core::Timestamp;
use tandem_store::accounts::{self, NewTarget};
use tandem_store::repo::{self, Upsert};
use tandem_store::Store;

use crate::csvread::{CsvError, CsvSource};
use crate::import::{rejects_path, ImportError, Rejects};

/// What a target-list import did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetSummary {
    pub read: u64,
    pub added: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub rejected: u64,
    /// Where rejected rows went, when there were any.
    pub rejects_file: Option<PathBuf>,
}

fn column(headers: &[String], names: &[&str]) -> Option<usize> {
    headers
        .iter()
        .position(|h| names.contains(&h.trim().to_ascii_lowercase().as_str()))
}

/// Puts every account of the CSV at `path` on the target list, as `actor`
/// at `at`.
pub async fn import_targets(
    store: &Store,
    path: &Path,
    actor: &str,
    at: Timestamp,
) -> Result<TargetSummary, ImportError> {
    let name = path.display().to_string();
    let csv_err = |e: CsvError| ImportError::Csv {
        file: name.clone(),
        source: e,
    };
    let file = File::open(path).map_err(|e| csv_err(CsvError::Io(e)))?;
    let mut src = CsvSource::new(file).map_err(csv_err)?;
    let headers = src.headers().to_vec();
    let missing = |what: &str| ImportError::Csv {
        file: name.clone(),
        source: CsvError::Parse {
            line: 1,
            message: format!("no `{what}` column; the target list needs account and tier"),
        },
    };
    let account_col = column(&headers, &["account", "external_id", "account_id"])
        .ok_or_else(|| missing("account"))?;
    let tier_col = column(&headers, &["tier"]).ok_or_else(|| missing("tier"))?;
    let marketer_col = column(&headers, &["marketer"]);
    let seller_col = column(&headers, &["seller"]);
    let mut rejects = Rejects::new(rejects_path(path), headers, name.clone());
    let mut summary = TargetSummary::default();
    let mut tx = store.begin().await?;
    while let Some(row) = src.next_row().map_err(csv_err)? {
        summary.read += 1;
        let get = |i: Option<usize>| {
            i.and_then(|i| row.fields.get(i))
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
        };
        let checked: Result<(i64, i64), String> = async {
            if let Some(p) = &row.problem {
                return Err(p.clone());
            }
            let ext = get(Some(account_col)).ok_or("`account` is empty")?;
            let raw_tier = get(Some(tier_col)).ok_or("`tier` is empty")?;
            let tier = raw_tier
                .parse::<i64>()
                .map_err(|_| format!("`tier`: {raw_tier:?} is not 1, 2 or 3"))
                .and_then(|t| check_tier(t).map_err(|e| format!("`tier`: {e}")))?;
            let account = repo::account_by_external(tx.conn(), ext)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("`account`: no account with external id {ext:?}"))?;
            Ok((account.id, tier))
        }
        .await;
        match checked {
            Err(reason) => {
                summary.rejected += 1;
                rejects.push(row.line, &reason, &row.fields)?;
            }
            Ok((id, tier)) => {
                // A column the file does not have keeps what the list says.
                let old = accounts::target(tx.conn(), id).await?;
                let keep = |col: Option<usize>, was: Option<String>| match col {
                    Some(_) => get(col).map(str::to_string),
                    None => was,
                };
                let marketer = keep(marketer_col, old.as_ref().and_then(|o| o.marketer.clone()));
                let seller = keep(seller_col, old.as_ref().and_then(|o| o.seller.clone()));
                let t = NewTarget {
                    tier,
                    marketer: marketer.as_deref(),
                    seller: seller.as_deref(),
                    at,
                    actor,
                };
                match accounts::set_target(tx.conn(), id, &t).await? {
                    Upsert::Inserted => summary.added += 1,
                    Upsert::Updated => summary.updated += 1,
                    Upsert::Unchanged => summary.unchanged += 1,
                }
            }
        }
    }
    tx.commit().await?;
    summary.rejects_file = rejects.finish()?;
    Ok(summary)
}
