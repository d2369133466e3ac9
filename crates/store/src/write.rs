//! Writes that keep the lifecycle current: store a record the way an import
//! does (upsert by external id, blanks never erase stored values) and
//! re-evaluate every person whose facts the write changed. The CSV import
//! and the HTTP API both go through here, so a fact gets the same stages
//! whichever way it arrives.

use std::collections::BTreeSet;

use sqlx::AnyConnection;
use tandem_core::domain::{Account, Activity, Campaign, Deal, Person, Touch, Transition};
use tandem_core::playbook::Playbook;
use tandem_core::Timestamp;

use crate::lifecycle as engine;
use crate::repo::{self, Upsert};
use crate::StoreError;

/// What a save did: the row's id, whether it inserted or changed it, and the
/// transitions the re-evaluation appended.
#[derive(Clone, Debug, PartialEq)]
pub struct Saved {
    pub id: i64,
    pub upsert: Upsert,
    pub transitions: Vec<Transition>,
}

/// Fills what `new` leaves empty from what is stored: a file without a
/// column (or with a blank cell, or a JSON body without the field) never
/// erases a value another import or the API set. Custom fields merge key by
/// key.
pub fn merge_person(new: &mut Person, old: &Person) {
    macro_rules! keep {
        ($($f:ident),*) => { $( if new.$f.is_none() { new.$f = old.$f.clone(); } )* };
    }
    keep!(title, account_id, persona, segment, country, source, owner);
    new.texts = new.texts.or(&old.texts);
    for (k, v) in &old.custom {
        new.custom.entry(k.clone()).or_insert_with(|| v.clone());
    }
}

/// [`merge_person`] for accounts. `target` is kept when the input says false
/// only because it has no such field.
pub fn merge_account(new: &mut Account, old: &Account) {
    macro_rules! keep {
        ($($f:ident),*) => { $( if new.$f.is_none() { new.$f = old.$f.clone(); } )* };
    }
    keep!(
        name,
        domain,
        industry,
        employees,
        annual_revenue,
        segment,
        tier,
        owner
    );
    new.target = new.target || old.target;
    for (k, v) in &old.custom {
        new.custom.entry(k.clone()).or_insert_with(|| v.clone());
    }
}

/// Re-evaluates automatic stage entry up to `until` for each person (once
/// each, in id order) and returns what was appended.
pub async fn reevaluate(
    c: &mut AnyConnection,
    pb: &Playbook,
    people: impl IntoIterator<Item = i64>,
    until: Timestamp,
) -> Result<Vec<Transition>, StoreError> {
    reevaluate_with(c, pb, people, Vec::new(), until).await
}

/// [`reevaluate`] when the caller holds some of these people's facts as
/// stored (`known`, see [`engine::advance_many_with`]): people an import
/// has just inserted need no read.
pub async fn reevaluate_with(
    c: &mut AnyConnection,
    pb: &Playbook,
    people: impl IntoIterator<Item = i64>,
    known: Vec<engine::PersonFacts>,
    until: Timestamp,
) -> Result<Vec<Transition>, StoreError> {
    let ids: Vec<i64> = people
        .into_iter()
        .collect::<BTreeSet<i64>>()
        .into_iter()
        .collect();
    engine::advance_many_with(c, pb, &ids, known, until).await
}

/// The people whose facts a deal (or an account) feeds: its person and every
/// contact of its account.
async fn people_of(
    c: &mut AnyConnection,
    person: Option<i64>,
    account: Option<i64>,
) -> Result<BTreeSet<i64>, StoreError> {
    let mut ids: BTreeSet<i64> = person.into_iter().collect();
    if let Some(aid) = account {
        ids.extend(repo::people_of_account(c, aid).await?.iter().map(|p| p.id));
    }
    Ok(ids)
}

/// Merges `a` over the stored account with its external id, upserts it and,
/// when it changed, re-evaluates its contacts (fit rules read the account).
pub async fn save_account(
    c: &mut AnyConnection,
    pb: &Playbook,
    mut a: Account,
    now: Timestamp,
) -> Result<Saved, StoreError> {
    if let Some(old) = repo::account_by_external(c, &a.external_id).await? {
        merge_account(&mut a, &old);
    }
    let (id, upsert) = repo::upsert_account(c, &a).await?;
    let transitions = if upsert == Upsert::Unchanged {
        Vec::new()
    } else {
        let people = people_of(c, None, Some(id)).await?;
        reevaluate(c, pb, people, now).await?
    };
    Ok(Saved {
        id,
        upsert,
        transitions,
    })
}

/// Upserts a touch and, when it changed, re-evaluates its person.
pub async fn save_touch(
    c: &mut AnyConnection,
    pb: &Playbook,
    t: &Touch,
    now: Timestamp,
) -> Result<Saved, StoreError> {
    let (id, upsert) = repo::upsert_touch(c, t).await?;
    let transitions = if upsert == Upsert::Unchanged {
        Vec::new()
    } else {
        reevaluate(c, pb, [t.person_id], now).await?
    };
    Ok(Saved {
        id,
        upsert,
        transitions,
    })
}

/// Upserts a sales activity and, when it changed, re-evaluates its person.
pub async fn save_activity(
    c: &mut AnyConnection,
    pb: &Playbook,
    a: &Activity,
    now: Timestamp,
) -> Result<Saved, StoreError> {
    let (id, upsert) = repo::upsert_activity(c, a).await?;
    let transitions = if upsert == Upsert::Unchanged {
        Vec::new()
    } else {
        reevaluate(c, pb, [a.person_id], now).await?
    };
    Ok(Saved {
        id,
        upsert,
        transitions,
    })
}

/// Upserts a deal and, when it changed, re-evaluates its person and every
/// contact of its account (opportunity and customer entry read deals).
pub async fn save_deal(
    c: &mut AnyConnection,
    pb: &Playbook,
    d: &Deal,
    now: Timestamp,
) -> Result<Saved, StoreError> {
    let (id, upsert) = repo::upsert_deal(c, d).await?;
    let transitions = if upsert == Upsert::Unchanged {
        Vec::new()
    } else {
        let people = people_of(c, d.person_id, d.account_id).await?;
        reevaluate(c, pb, people, now).await?
    };
    Ok(Saved {
        id,
        upsert,
        transitions,
    })
}

/// Upserts a campaign. Campaigns are not facts about a person, so nothing
/// is re-evaluated.
pub async fn save_campaign(c: &mut AnyConnection, k: &Campaign) -> Result<Saved, StoreError> {
    let (id, upsert) = repo::upsert_campaign(c, k).await?;
    Ok(Saved {
        id,
        upsert,
        transitions: Vec::new(),
    })
}
