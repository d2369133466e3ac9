//! Runs an import: stream rows, convert, upsert in transactional batches,
//! re-evaluate the lifecycle of every person touched, write rejects.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tandem_core::Sym;

use tandem_core::domain::{Account, Person, Subject, Transition};
use tandem_core::lifecycle::{self, ManualMove, State};
use tandem_core::playbook::{Playbook, StageKind};
use tandem_core::Timestamp;
use tandem_store::fill::FillBehind;
use tandem_store::lifecycle as engine;
use tandem_store::repo::{self, Upsert};
use tandem_store::write::{self, merge_account, merge_person};
use tandem_store::{AnyConnection, Store, StoreError};

use crate::csvread::{Cells, CsvError, CsvSource};
use crate::mapping::{Kind, Mapping, MappingError, Preset};
use crate::rows::{convert, custom_value, AccountRef, Record, RowContext, StageEntry};

/// How to run an import.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    pub kind: Kind,
    pub preset: Preset,
    /// `--map COLUMN=FIELD` pairs (over the playbook's `[import.<kind>]`).
    pub maps: BTreeMap<String, String>,
    /// Rows per transaction.
    pub batch_size: usize,
    /// The import time: stand-in for missing creation times, and how far
    /// automatic stage entry is evaluated.
    pub now: Timestamp,
    /// Store people one row at a time ([`apply_record`]) instead of a
    /// batch at a time ([`apply_people`]). Both store the same; this is
    /// the reference the bulk path is tested and measured against.
    pub row_by_row: bool,
}

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub read: u64,
    pub imported: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub rejected: u64,
    /// Transitions appended (CRM stages and automatic entry).
    pub transitions: u64,
    /// People of `imported` stored by a first load (one bulk transaction,
    /// see [`import_reader`]); the rest went batch by batch.
    pub first_load: u64,
    /// Where rejected rows went, when there were any.
    pub rejects_file: Option<PathBuf>,
}

/// Why an import stopped.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{file}: {source}")]
    Csv {
        file: String,
        #[source]
        source: CsvError,
    },
    #[error("{file}: {source}")]
    Mapping {
        file: String,
        #[source]
        source: MappingError,
    },
    #[error("{file}: cannot write the reject file: {source}")]
    Rejects {
        file: String,
        #[source]
        source: csv::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The reject file next to `path`: `people.csv` → `people.csv.rejects.csv`.
pub fn rejects_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".rejects.csv");
    PathBuf::from(s)
}

pub(crate) struct Rejects {
    path: PathBuf,
    writer: Option<csv::Writer<File>>,
    headers: Vec<String>,
    display: String,
}

impl Rejects {
    /// A reject file at `path` for a CSV with `headers`; created on the
    /// first reject. `display` names the input in messages.
    pub(crate) fn new(path: PathBuf, headers: Vec<String>, display: String) -> Rejects {
        Rejects {
            path,
            writer: None,
            headers,
            display,
        }
    }

    pub(crate) fn push(
        &mut self,
        line: u64,
        reason: &str,
        fields: &Cells,
    ) -> Result<(), ImportError> {
        let err = |e: csv::Error| ImportError::Rejects {
            file: self.display.clone(),
            source: e,
        };
        if self.writer.is_none() {
            // Flexible: a rejected row may have more or fewer fields than the header.
            let mut w = csv::WriterBuilder::new()
                .flexible(true)
                .from_path(&self.path)
                .map_err(err)?;
            let mut header = vec!["line".to_string(), "reason".to_string()];
            header.extend(self.headers.iter().cloned());
            w.write_record(&header).map_err(err)?;
            self.writer = Some(w);
        }
        if let Some(w) = self.writer.as_mut() {
            let line = line.to_string();
            let rec = [line.as_str(), reason].into_iter().chain(fields.iter());
            w.write_record(rec).map_err(|e| ImportError::Rejects {
                file: self.display.clone(),
                source: e,
            })?;
        }
        Ok(())
    }

    pub(crate) fn finish(self) -> Result<Option<PathBuf>, ImportError> {
        match self.writer {
            Some(mut w) => {
                w.flush().map_err(|e| ImportError::Rejects {
                    file: self.display.clone(),
                    source: e.into(),
                })?;
                Ok(Some(self.path))
            }
            None => {
                // No rejects this time: a stale file from an earlier run would mislead.
                let _ = std::fs::remove_file(&self.path);
                Ok(None)
            }
        }
    }
}

/// Imports `path` into `store`. `progress` is called with bytes read so far.
pub async fn import_file(
    store: &Store,
    pb: &Playbook,
    path: &Path,
    opts: &ImportOptions,
    progress: &mut dyn FnMut(u64, &Summary),
) -> Result<Summary, ImportError> {
    let display = path.display().to_string();
    let file = File::open(path).map_err(|e| ImportError::Csv {
        file: display.clone(),
        source: CsvError::Io(e),
    })?;
    import_reader(
        store,
        pb,
        file,
        &display,
        opts,
        rejects_path(path),
        progress,
    )
    .await
}

/// [`import_file`] over any reader; `name` is used in messages.
///
/// A people file imported into an SQLite file that holds no people yet
/// starts as a first load ([`first_load`]); every other import, and the
/// rest of a first load from its first row that needs the store, goes
/// batch by batch, each batch a transaction.
pub async fn import_reader<R: Read>(
    store: &Store,
    pb: &Playbook,
    input: R,
    name: &str,
    opts: &ImportOptions,
    rejects_to: PathBuf,
    progress: &mut dyn FnMut(u64, &Summary),
) -> Result<Summary, ImportError> {
    let src = CsvSource::new(input).map_err(|e| ImportError::Csv {
        file: name.to_string(),
        source: e,
    })?;
    let mut maps = pb
        .import
        .get(opts.kind.as_str())
        .cloned()
        .unwrap_or_default();
    maps.extend(opts.maps.clone());
    let mapping = Mapping::resolve(opts.kind, opts.preset, src.headers(), &maps).map_err(|e| {
        ImportError::Mapping {
            file: name.to_string(),
            source: e,
        }
    })?;
    let mut input = Input {
        rejects: Rejects {
            path: rejects_to,
            writer: None,
            headers: src.headers().to_vec(),
            display: name.to_string(),
        },
        src,
        mapping,
        ctx: RowContext {
            tz: &pb.company.timezone,
            currency: pb.company.currency,
            stages: pb.stages.iter().map(|s| s.id.clone()).collect(),
        },
        name,
        batch_size: opts.batch_size.max(1),
        done: false,
    };
    let mut summary = Summary::default();
    let started = Instant::now();
    let mut next = input.batch(&mut summary)?;
    if opts.kind == Kind::People
        && !opts.row_by_row
        && next
            .as_ref()
            .and_then(|b| b.first())
            .is_some_and(|r| fresh_person(&r.2))
    {
        if let Some(first) = next.take() {
            next = first_load(store, pb, &mut input, first, opts, &mut summary, progress).await?;
        }
    }
    while let Some(batch) = next {
        apply_batch(store, pb, batch, opts, &mut summary, &mut input.rejects).await?;
        progress(input.src.position(), &summary);
        next = input.batch(&mut summary)?;
    }
    tracing::info!(
        import.rows = summary.read,
        import.seconds = started.elapsed().as_secs_f64(),
        "import finished"
    );
    summary.rejects_file = input.rejects.finish()?;
    Ok(summary)
}

/// The rows of an import's file as batches of converted rows.
struct Input<'a, R: Read> {
    src: CsvSource<R>,
    mapping: Mapping,
    ctx: RowContext<'a>,
    rejects: Rejects,
    /// The file, in messages.
    name: &'a str,
    batch_size: usize,
    /// The file has no more rows.
    done: bool,
}

impl<R: Read> Input<'_, R> {
    /// The next rows that convert, up to the batch size; rows that do not
    /// go to the reject file. `None` once the file has no more rows.
    fn batch(&mut self, summary: &mut Summary) -> Result<Option<Vec<Row>>, ImportError> {
        let mut batch = Vec::with_capacity(self.batch_size);
        while !self.done && batch.len() < self.batch_size {
            let row = self.src.next_row().map_err(|e| ImportError::Csv {
                file: self.name.to_string(),
                source: e,
            })?;
            let Some(row) = row else {
                self.done = true;
                break;
            };
            summary.read += 1;
            if let Some(p) = &row.problem {
                summary.rejected += 1;
                self.rejects.push(row.line, p, &row.fields)?;
                continue;
            }
            match convert(&self.mapping, &row.fields, &self.ctx) {
                Ok(rec) => batch.push((row.line, row.fields, rec)),
                Err(reason) => {
                    summary.rejected += 1;
                    self.rejects.push(row.line, &reason, &row.fields)?;
                }
            }
        }
        Ok((!batch.is_empty()).then_some(batch))
    }
}

/// Stores one batch in a transaction of its own: people a batch at a time
/// ([`apply_people`]) or any record row by row ([`apply_record`]), then
/// CRM stages and the re-evaluation of everyone touched.
async fn apply_batch(
    store: &Store,
    pb: &Playbook,
    batch: Vec<Row>,
    opts: &ImportOptions,
    summary: &mut Summary,
    rejects: &mut Rejects,
) -> Result<(), ImportError> {
    let mut tx = store.begin_bulk().await?;
    let mut touched: BTreeSet<i64> = BTreeSet::new();
    let mut crm_stages: Vec<(i64, Vec<StageEntry>)> = Vec::new();
    let mut fresh = Vec::new();
    let count = |summary: &mut Summary, u: Upsert| match u {
        Upsert::Inserted => summary.imported += 1,
        Upsert::Updated => summary.updated += 1,
        Upsert::Unchanged => summary.unchanged += 1,
    };
    match people_only(batch, opts.row_by_row) {
        Ok(people) => {
            let (done, known) =
                apply_people(tx.conn(), people, opts.now, &mut touched, &mut crm_stages).await?;
            for u in done {
                count(summary, u);
            }
            fresh = known;
        }
        Err(batch) => {
            for (line, fields, rec) in batch {
                match apply_record(tx.conn(), pb, rec, opts.now, &mut touched, &mut crm_stages)
                    .await?
                {
                    Ok(u) => count(summary, u),
                    Err(reason) => {
                        summary.rejected += 1;
                        rejects.push(line, &reason, &fields)?;
                    }
                }
            }
        }
    }
    for (pid, stages) in crm_stages {
        summary.transitions += apply_crm_stages(tx.conn(), pb, pid, stages).await?;
    }
    summary.transitions += write::reevaluate_with(tx.conn(), pb, touched, fresh, opts.now)
        .await?
        .len() as u64;
    tx.commit().await?;
    Ok(())
}

/// The indexes a first load keeps up to date as it goes; the others are
/// built once at its end. Each insert into these lands beside the last:
/// a person's transitions arrive in the order of `transitions_subject`'s
/// key, and a fresh person has no account, so its `people_account` key
/// (null, id) comes after every one before it. Built at the end instead,
/// `people_account` was a quarter of the end's 1.1 s on 1M people, while
/// the writer's thread had time to spare during the load.
const FIRST_LOAD_KEPT: [&str; 2] = ["transitions_subject", "people_account"];

/// Whether `rec` is a person whose row is all its facts: no account to
/// look up or create, no CRM stages. Such a person, new to the store, is
/// stored and evaluated without reading anything.
fn fresh_person(rec: &Record) -> bool {
    matches!(rec, Record::Person { account: None, stages, .. } if stages.is_empty())
}

/// The first load of an SQLite file that holds no people: a CRM's contact
/// export, often the largest file a user imports. Each row that is a
/// fresh person ([`fresh_person`]) with an external id not seen before in
/// the file is a new person whatever the store holds: it gets the next id
/// (as SQLite would give it), its lifecycle is evaluated from the row
/// alone, and the person and its transitions go into one bulk load
/// ([`FillBehind`]) written on a thread of its own while the next rows are
/// parsed. The load commits at its end, all or nothing.
///
/// At the first row that is not such a person (an account to link, CRM
/// stages, an external id seen before) the load commits and that row and
/// the rest of its batch are returned, for the batch-by-batch import to
/// store as an update of what the load stored. The result is what the
/// batch-by-batch import stores, with its batches ending where the load
/// stopped. `None` when the whole file went in, and the batch untouched
/// when the store is not an SQLite file or already holds people.
async fn first_load<R: Read>(
    store: &Store,
    pb: &Playbook,
    input: &mut Input<'_, R>,
    mut batch: Vec<Row>,
    opts: &ImportOptions,
    summary: &mut Summary,
    progress: &mut dyn FnMut(u64, &Summary),
) -> Result<Option<Vec<Row>>, ImportError> {
    let Some(mut fill) = FillBehind::begin(store, &FIRST_LOAD_KEPT, "people").await? else {
        return Ok(Some(batch));
    };
    // Hashes of the external ids stored so far: a collision only ends the
    // load early, which is slower, never wrong.
    let mut seen: HashSet<u64> = HashSet::new();
    let id_hash = |ext: &str| {
        let mut h = std::hash::DefaultHasher::new();
        ext.hash(&mut h);
        h.finish()
    };
    let mut next_id = 1i64;
    loop {
        let stop = batch.iter().position(|(_, _, rec)| match rec {
            Record::Person { person, .. } if fresh_person(rec) => {
                !seen.insert(id_hash(person.external_id()))
            }
            _ => true,
        });
        let rest = stop.map(|i| batch.split_off(i));
        let mut people = Vec::with_capacity(batch.len());
        for (_, _, rec) in batch {
            let Record::Person {
                mut person,
                created_at,
                ..
            } = rec
            else {
                continue;
            };
            person.id = next_id;
            next_id += 1;
            person.created_at = created_at.unwrap_or(opts.now);
            people.push(engine::PersonFacts {
                person: repo::as_stored(person)?,
                account: None,
                touches: Vec::new(),
                activities: Vec::new(),
                deals: Vec::new(),
                transitions: Vec::new(),
            });
        }
        let held: Vec<_> = people
            .iter()
            .map(|pf| (pf, lifecycle::EVERY_INSTANT))
            .collect();
        let transitions: Vec<Transition> = engine::advance_all(pb, &held, opts.now)
            .into_iter()
            .flat_map(|(s, moves)| moves.into_iter().map(move |m| m.to_transition(s, 0)))
            .collect();
        summary.imported += people.len() as u64;
        summary.first_load += people.len() as u64;
        summary.transitions += transitions.len() as u64;
        fill.insert(
            &repo::PEOPLE,
            people.into_iter().map(|pf| pf.person).collect(),
        )
        .await?;
        fill.insert(&repo::TRANSITIONS, transitions).await?;
        progress(input.src.position(), summary);
        if rest.is_some() {
            fill.commit().await?;
            tracing::info!(
                people = next_id - 1,
                "first load committed; the rest of the file goes batch by batch"
            );
            return Ok(rest);
        }
        match input.batch(summary)? {
            Some(b) => batch = b,
            None => break,
        }
    }
    fill.commit().await?;
    Ok(None)
}

/// A converted row: its physical line, its fields (for the reject file)
/// and the record.
type Row = (u64, Cells, Record);

/// The batch as people for [`apply_people`] when every row is a person
/// (and the bulk path is on), else the batch unchanged.
fn people_only(batch: Vec<Row>, row_by_row: bool) -> Result<Vec<PersonRecord>, Vec<Row>> {
    if row_by_row
        || !batch
            .iter()
            .all(|(_, _, r)| matches!(r, Record::Person { .. }))
    {
        return Err(batch);
    }
    Ok(batch
        .into_iter()
        .filter_map(|(_, _, r)| match r {
            Record::Person {
                person,
                created_at,
                account,
                stages,
            } => Some(PersonRecord {
                person,
                created_at,
                account,
                stages,
            }),
            _ => None,
        })
        .collect())
}

/// What applying one record did, or why it was refused (a reason for the
/// reject file or the API's error).
pub type RowResult = Result<Upsert, String>;

async fn person_id(c: &mut AnyConnection, ext: &str) -> Result<Result<i64, String>, StoreError> {
    Ok(match repo::person_by_external(c, ext).await? {
        Some(p) => Ok(p.id),
        None => Err(format!("unknown person `{ext}`; import people first")),
    })
}

async fn account_id(c: &mut AnyConnection, r: &AccountRef) -> Result<i64, StoreError> {
    if let Some(a) = repo::account_by_external(c, &r.external_id).await? {
        return Ok(a.id);
    }
    // A stub the accounts import fills in later (same external id).
    let stub = Account {
        external_id: r.external_id.clone(),
        name: r.name.clone(),
        ..Account::default()
    };
    Ok(repo::upsert_account(c, &stub).await?.0)
}

/// Merges `a` with the stored account of its external id (a missing field
/// never erases a stored one) and upserts it.
pub async fn upsert_account(c: &mut AnyConnection, mut a: Account) -> Result<Upsert, StoreError> {
    if let Some(old) = repo::account_by_external(c, &a.external_id).await? {
        merge_account(&mut a, &old);
    }
    Ok(repo::upsert_account(c, &a).await?.1)
}

/// Merges `person` with the stored row of its external id (a missing field
/// never erases a stored one), links it to `account` (a stub if unknown)
/// and upserts it: the person as stored now, id included, and what changed.
/// It was created at `created_at` when given, else when stored, else at
/// `otherwise`. `existing` is the stored row of its external id, which the
/// caller read (one query for many people, or [`repo::person_by_external`]).
pub async fn upsert_person(
    c: &mut AnyConnection,
    mut person: Person,
    existing: Option<&Person>,
    created_at: Option<Timestamp>,
    account: Option<&AccountRef>,
    otherwise: Timestamp,
) -> Result<(Person, Upsert), StoreError> {
    person.created_at = created_at
        .or(existing.map(|p| p.created_at))
        .unwrap_or(otherwise);
    if let Some(a) = account {
        person.account_id = Some(account_id(c, a).await?);
    }
    if let Some(old) = existing {
        merge_person(&mut person, old);
    }
    let (id, u) = repo::upsert_person_over(c, &person, existing).await?;
    person.id = id;
    Ok((person, u))
}

/// Upserts one record inside the caller's transaction, merging with what is
/// stored (a missing field never erases a stored one). Adds every person
/// whose lifecycle may have changed to `touched` and CRM stage entries to
/// `crm_stages`; the caller re-evaluates them (`tandem_store::lifecycle::advance`)
/// once the batch is applied. Shared by CSV import and Segment ingest.
pub async fn apply_record(
    c: &mut AnyConnection,
    pb: &Playbook,
    rec: Record,
    now: Timestamp,
    touched: &mut BTreeSet<i64>,
    crm_stages: &mut Vec<(i64, Vec<StageEntry>)>,
) -> Result<RowResult, StoreError> {
    match rec {
        Record::Person {
            person,
            created_at,
            account,
            stages,
        } => {
            let first_stage = stages.iter().filter_map(|s| s.at).min();
            let existing = repo::person_by_external(c, person.external_id()).await?;
            let (stored, u) = upsert_person(
                c,
                person,
                existing.as_ref(),
                created_at,
                account.as_ref(),
                first_stage.unwrap_or(now),
            )
            .await?;
            let id = stored.id;
            // An unchanged row was fully applied, stages included, by the
            // batch that stored it: skipping it makes a re-run after a kill cheap.
            if u != Upsert::Unchanged {
                touched.insert(id);
                if !stages.is_empty() {
                    crm_stages.push((id, stages));
                }
            }
            Ok(Ok(u))
        }
        Record::Account(a) => Ok(Ok(upsert_account(c, a).await?)),
        Record::Touch { mut touch, person } => {
            let pid = match person_id(c, &person).await? {
                Ok(id) => id,
                Err(e) => return Ok(Err(e)),
            };
            touch.person_id = pid;
            let (_, u) = repo::upsert_touch(c, &touch).await?;
            touched.insert(pid);
            Ok(Ok(u))
        }
        Record::Activity {
            mut activity,
            person,
        } => {
            let pid = match person_id(c, &person).await? {
                Ok(id) => id,
                Err(e) => return Ok(Err(e)),
            };
            activity.person_id = pid;
            let (_, u) = repo::upsert_activity(c, &activity).await?;
            touched.insert(pid);
            Ok(Ok(u))
        }
        Record::Deal {
            mut deal,
            person,
            account,
            person_updates,
        } => {
            if let Some(p) = &person {
                match repo::person_by_external(c, p).await? {
                    Some(mut found) => {
                        deal.person_id = Some(found.id);
                        if !person_updates.is_empty() {
                            for (field, value) in &person_updates {
                                set_person_field(&mut found, field, value);
                            }
                            repo::upsert_person(c, &found).await?;
                        }
                        touched.insert(found.id);
                    }
                    None => return Ok(Err(format!("unknown person `{p}`; import people first"))),
                }
            }
            if let Some(a) = &account {
                deal.account_id = Some(
                    account_id(
                        c,
                        &AccountRef {
                            external_id: a.clone(),
                            name: None,
                        },
                    )
                    .await?,
                );
                // Every contact of the account may move (opportunity, customer).
                if let Some(aid) = deal.account_id {
                    for p in repo::people_of_account(c, aid).await? {
                        touched.insert(p.id);
                    }
                }
            }
            if let Some(reason) = &deal.lost_reason {
                if pb.reason(reason).is_none() {
                    // Keep the CRM's text; reasons outside the playbook show as such in leakage.
                    tracing::debug!(deal.lost_reason = %reason, "lost reason not in the playbook");
                }
            }
            let (_, u) = repo::upsert_deal(c, &deal).await?;
            Ok(Ok(u))
        }
        Record::Transition {
            person,
            stage,
            at,
            actor,
            reason,
            note,
        } => {
            let pid = match person_id(c, &person).await? {
                Ok(id) => id,
                Err(e) => return Ok(Err(e)),
            };
            let pf = engine::load(c, pid).await?;
            let state = pf.state();
            // Idempotent: the same transition already stored is not appended again.
            if pf
                .transitions
                .iter()
                .any(|t| t.to == stage && t.at == at && !t.skipped)
            {
                return Ok(Ok(Upsert::Unchanged));
            }
            let m = ManualMove {
                to: &stage,
                at,
                actor: &actor,
                reason: reason.as_deref(),
                note: note.as_deref(),
            };
            match lifecycle::manual(pb, &state, &m) {
                Ok(moves) => {
                    repo::append(c, Subject::Person(pid), &moves).await?;
                    Ok(Ok(Upsert::Inserted))
                }
                Err(e) => Ok(Err(e.to_string())),
            }
        }
    }
}

/// A [`Record::Person`]'s fields, for [`apply_people`].
#[derive(Clone, Debug)]
pub struct PersonRecord {
    pub person: Person,
    pub created_at: Option<Timestamp>,
    pub account: Option<AccountRef>,
    pub stages: Vec<StageEntry>,
}

/// The people rows of one batch, stored with a few statements instead of
/// three per row: one lookup of every external id, multi-row inserts of
/// the new people (in order of first appearance, so they get the ids the
/// row-by-row [`apply_record`] gives them), one `UPDATE` per stored person
/// that changed. Rows are applied in order in memory first, so a person
/// appearing twice in a batch merges exactly as when each row is upserted
/// over the one before. Returns what each row did (in order) and the facts
/// of the new people that need no read for their re-evaluation (no
/// account, no CRM stages: the person row is all there is); `touched` and
/// `crm_stages` are filled as [`apply_record`] fills them.
pub async fn apply_people(
    c: &mut AnyConnection,
    rows: Vec<PersonRecord>,
    now: Timestamp,
    touched: &mut BTreeSet<i64>,
    crm_stages: &mut Vec<(i64, Vec<StageEntry>)>,
) -> Result<(Vec<Upsert>, Vec<engine::PersonFacts>), StoreError> {
    /// A distinct external id of the batch: its current state.
    struct Slot {
        person: Person,
        /// Not stored before this batch (`person.id` is 0 until inserted).
        new: bool,
        /// A row changed it (stored people only: needs an `UPDATE`).
        changed: bool,
        /// A row changed or inserted it: re-evaluate.
        touched: bool,
        /// Has CRM stage entries: its facts change before re-evaluation.
        staged: bool,
    }
    let mut exts: Vec<&str> = rows.iter().map(|r| r.person.external_id()).collect();
    exts.sort_unstable();
    exts.dedup();
    let mut stored = repo::people_by_external_many(c, &exts).await?;
    let mut slots: Vec<Slot> = Vec::new();
    let mut slot_of: HashMap<Box<str>, usize> = HashMap::with_capacity(rows.len());
    let mut accounts: HashMap<String, i64> = HashMap::new();
    let mut stages_of: Vec<(usize, Vec<StageEntry>)> = Vec::new();
    let mut results = Vec::with_capacity(rows.len());
    for PersonRecord {
        mut person,
        created_at,
        account,
        stages,
    } in rows
    {
        let at = slot_of.get(person.external_id()).copied();
        let existing: Option<&Person> = match at {
            Some(i) => Some(&slots[i].person),
            None => stored.get(person.external_id()),
        };
        person.created_at = created_at
            .or(existing.map(|p| p.created_at))
            .or(stages.iter().filter_map(|s| s.at).min())
            .unwrap_or(now);
        if let Some(a) = &account {
            let id = match accounts.get(&a.external_id) {
                Some(id) => *id,
                None => {
                    let id = account_id(c, a).await?;
                    accounts.insert(a.external_id.clone(), id);
                    id
                }
            };
            person.account_id = Some(id);
        }
        // `existing` again: the account lookup above needed `c` mutably.
        let existing: Option<&Person> = match at {
            Some(i) => Some(&slots[i].person),
            None => stored.get(person.external_id()),
        };
        if let Some(old) = existing {
            merge_person(&mut person, old);
        }
        // As `repo::upsert_person_over` decides.
        let u = match existing {
            Some(old)
                if (Person {
                    id: old.id,
                    ..person.clone()
                }) == *old =>
            {
                Upsert::Unchanged
            }
            Some(_) => Upsert::Updated,
            None => Upsert::Inserted,
        };
        results.push(u);
        if u == Upsert::Unchanged {
            continue;
        }
        let i = match at {
            Some(i) => {
                let slot = &mut slots[i];
                person.id = slot.person.id;
                slot.person = person;
                slot.changed |= !slot.new;
                i
            }
            None => {
                let ext: Box<str> = person.external_id().into();
                let (new, id) = match stored.remove(&*ext) {
                    Some(old) => (false, old.id),
                    None => (true, 0),
                };
                person.id = id;
                slots.push(Slot {
                    person,
                    new,
                    changed: !new,
                    touched: false,
                    staged: false,
                });
                slot_of.insert(ext, slots.len() - 1);
                slots.len() - 1
            }
        };
        slots[i].touched = true;
        if !stages.is_empty() {
            slots[i].staged = true;
            stages_of.push((i, stages));
        }
    }
    let new: Vec<usize> = (0..slots.len()).filter(|&i| slots[i].new).collect();
    let ids = {
        let people: Vec<&Person> = new.iter().map(|&i| &slots[i].person).collect();
        repo::insert_new_people(c, &people).await?
    };
    for (&i, id) in new.iter().zip(ids) {
        slots[i].person.id = id;
    }
    for s in slots.iter().filter(|s| s.changed) {
        repo::update_person(c, s.person.id, &s.person).await?;
    }
    for (i, stages) in stages_of {
        crm_stages.push((slots[i].person.id, stages));
    }
    let mut fresh = Vec::new();
    for s in slots {
        if s.touched {
            touched.insert(s.person.id);
        }
        if s.new && !s.staged && s.person.account_id.is_none() {
            fresh.push(engine::PersonFacts {
                person: repo::as_stored(s.person)?,
                account: None,
                touches: Vec::new(),
                activities: Vec::new(),
                deals: Vec::new(),
                transitions: Vec::new(),
            });
        }
    }
    Ok((results, fresh))
}

/// Sets `segment`, `owner`, `custom.x`, … on a person from a deal row.
fn set_person_field(p: &mut Person, field: &str, value: &str) {
    let v = Some(value.to_string());
    match field {
        "segment" => p.segment = v.map(Sym::from),
        "persona" => p.persona = v.map(Sym::from),
        "owner" => p.owner = v.map(Sym::from),
        "source" => p.source = v.map(Sym::from),
        "country" => p.country = v.map(Sym::from),
        "title" => p.title = v.map(Sym::from),
        _ => {
            let key = field.strip_prefix("custom.").unwrap_or(field);
            p.custom.insert(key.to_string(), custom_value(value));
        }
    }
}

/// Applies the stages a CRM says a person entered, in time order, forward
/// only: a stage at or behind the current one (in the same cycle) is
/// skipped, and so is an off-ramp without a valid reason.
async fn apply_crm_stages(
    c: &mut AnyConnection,
    pb: &Playbook,
    pid: i64,
    mut stages: Vec<StageEntry>,
) -> Result<u64, StoreError> {
    let mut appended = 0u64;
    let pf = engine::load(c, pid).await?;
    let created = pf.person.created_at;
    stages.sort_by_key(|s| {
        (
            s.at.unwrap_or(created),
            pb.stage(&s.stage).and_then(|x| x.funnel_index),
        )
    });
    for s in stages {
        let at = s.at.unwrap_or(created);
        appended += engine::advance(c, pb, pid, at).await?.len() as u64;
        let pf = engine::load(c, pid).await?;
        let state: State = pf.state();
        let (Some(target), current) = (
            pb.stage(&s.stage),
            state.stage.as_deref().and_then(|x| pb.stage(x)),
        ) else {
            continue;
        };
        let behind = match (current.and_then(|c| c.funnel_index), target.funnel_index) {
            (Some(ci), Some(ti)) => ti <= ci,
            _ => current.is_some_and(|c| c.id == target.id),
        };
        if behind || (target.kind != StageKind::Funnel && s.reason.is_none()) {
            continue;
        }
        let m = ManualMove {
            to: &target.id,
            at,
            actor: "import",
            reason: s.reason.as_deref(),
            note: None,
        };
        if let Ok(moves) = lifecycle::manual(pb, &state, &m) {
            appended += repo::append(c, Subject::Person(pid), &moves).await?.len() as u64;
        }
    }
    Ok(appended)
}
