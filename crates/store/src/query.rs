//! What metric readers share (the CLI commands and the HTTP API): the
//! history view of a [`Snapshot`] and grouping people by a dimension.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::sync::{Arc, Mutex};
use tandem_core::Sym;

use tandem_core::domain::{Account, Person};
use tandem_core::facts::{Channels, Classes};
use tandem_core::fxhash::{FxHashMap, FxHashSet};
use tandem_core::metrics::index::HistoryIndex;
use tandem_core::metrics::{History, Window};
use tandem_core::playbook::Playbook;
use tandem_core::Timestamp;

use crate::repo::Snapshot;

/// Dimensions people can be grouped by.
pub const DIMENSIONS: &str =
    "source, segment, persona, channel, campaign, owner, tier, industry, country, or custom.FIELD";

/// A grouping dimension that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot group by `{0}`; use {DIMENSIONS}")]
pub struct UnknownDimension(pub String);

/// The history view metrics take.
pub fn history(snap: &Snapshot) -> History<'_> {
    History {
        transitions: &snap.transitions,
        touches: &snap.touches,
        activities: &snap.activities,
        deals: &snap.deals,
        account_transitions: &snap.account_transitions,
        index: None,
    }
}

/// [`history`] with `index`, which must be built from `snap`.
pub fn history_indexed<'a>(snap: &'a Snapshot, index: &'a HistoryIndex) -> History<'a> {
    History {
        index: Some(index),
        ..history(snap)
    }
}

/// Group key of every person for a dimension. Segment and persona use the
/// stored value, or else the playbook's rules; channel and campaign are those
/// of the person's first touch (how the lead came in).
pub fn group_by(pb: &Playbook, snap: &Snapshot, by: &str) -> Result<GroupKeys, UnknownDimension> {
    PeopleGroups::new(pb, snap).by(by).map(Arc::unwrap_or_clone)
}

/// Group keys by dimension, computed once for one history and playbook and
/// shared by the computations that read them: a server keeps one beside its
/// warm history for as long as the history and playbook are unchanged
/// ([`PeopleGroups::kept`]). Keys do not depend on an as-of instant.
#[derive(Debug, Default)]
pub struct KeptGroups {
    by: Mutex<FxHashMap<String, Arc<GroupKeys>>>,
}

impl KeptGroups {
    fn get(&self, dim: &str) -> Option<Arc<GroupKeys>> {
        let by = self.by.lock().unwrap_or_else(|e| e.into_inner());
        by.get(dim).cloned()
    }

    fn put(&self, dim: &str, keys: &Arc<GroupKeys>) {
        let mut by = self.by.lock().unwrap_or_else(|e| e.into_inner());
        by.insert(dim.to_string(), keys.clone());
    }

    /// The kept keys brought up to `snap`, a history that only grew since
    /// they were computed (no row updated in place; people and touches
    /// with ids above `people_since` and `touches_since` are new). A
    /// person's stored fields, account and rules-based class are then
    /// unchanged, so only new people get keys; for the first-touch
    /// dimensions (channel, campaign) the people with new touches are keyed
    /// again too (a new touch may be earlier than their first one).
    pub fn grown(
        &self,
        pb: &Playbook,
        snap: &Snapshot,
        people_since: i64,
        touches_since: i64,
    ) -> KeptGroups {
        let kept: Vec<(String, Arc<GroupKeys>)> = {
            let by = self.by.lock().unwrap_or_else(|e| e.into_inner());
            by.iter().map(|(d, k)| (d.clone(), k.clone())).collect()
        };
        let new_people: FxHashSet<i64> = snap
            .people
            .iter()
            .filter(|p| p.id > people_since)
            .map(|p| p.id)
            .collect();
        let mut touched = new_people.clone();
        touched.extend(
            snap.touches
                .iter()
                .filter(|t| t.id > touches_since)
                .map(|t| t.person_id),
        );
        let out = KeptGroups::default();
        for (dim, keys) in kept {
            let only = match dim.as_str() {
                "channel" | "campaign" => &touched,
                _ => &new_people,
            };
            if only.is_empty() {
                out.put(&dim, &keys);
                continue;
            }
            // Kept dimensions were computed before, so they are known.
            let Ok(fresh) = PeopleGroups::new(pb, snap).only(only).compute(&dim) else {
                continue;
            };
            let mut keys = Arc::unwrap_or_clone(keys);
            for &person in only {
                match fresh.get(person) {
                    Some(k) => keys.insert(person, k),
                    None => keys.remove(person),
                }
            }
            out.put(&dim, &Arc::new(keys));
        }
        out
    }
}

/// A person's first touch: its key (at, id) and its position in the kept
/// touches.
type FirstTouch = ((Timestamp, i64), usize);

/// Groups the people of a snapshot by one dimension after another (what
/// [`group_by`] does once), reading what dimensions share only once: the
/// accounts by id, and each person's first touch for channel and campaign
/// (a pass over every touch).
pub struct PeopleGroups<'s> {
    snap: &'s Snapshot,
    channels: Channels<'s>,
    classes: Classes<'s>,
    accounts: OnceCell<FxHashMap<i64, &'s Account>>,
    /// Person → (at, id) of the first touch and the touch.
    first_touch: OnceCell<FxHashMap<i64, FirstTouch>>,
    /// Keys computed earlier for the same history and playbook.
    kept: Option<&'s KeptGroups>,
    /// Only these people are keyed (and only their touches read).
    only: Option<&'s FxHashSet<i64>>,
}

impl<'s> PeopleGroups<'s> {
    /// Nothing is read until a dimension is asked for.
    pub fn new(pb: &'s Playbook, snap: &'s Snapshot) -> Self {
        PeopleGroups {
            snap,
            channels: Channels::new(pb),
            classes: Classes::new(pb),
            accounts: OnceCell::new(),
            first_touch: OnceCell::new(),
            kept: None,
            only: None,
        }
    }

    /// Keys only `people` (for [`KeptGroups::grown`]).
    fn only(self, people: &'s FxHashSet<i64>) -> Self {
        PeopleGroups {
            only: Some(people),
            ..self
        }
    }

    /// Reads and fills `kept`, which must hold keys of this same history
    /// and playbook only.
    pub fn kept(self, kept: &'s KeptGroups) -> Self {
        PeopleGroups {
            kept: Some(kept),
            ..self
        }
    }

    fn accounts(&self) -> &FxHashMap<i64, &'s Account> {
        self.accounts
            .get_or_init(|| self.snap.accounts.iter().map(|a| (a.id, a)).collect())
    }

    /// Each person's first touch by (at, id).
    fn first_touch(&self) -> &FxHashMap<i64, FirstTouch> {
        self.first_touch.get_or_init(|| {
            // Keys and positions, from three columns: a person's first
            // touch is read whole only when asked for.
            let mut first: FxHashMap<i64, FirstTouch> =
                FxHashMap::with_capacity_and_hasher(self.snap.people.len(), Default::default());
            for (i, (person, key)) in self.snap.touches.keys().enumerate() {
                if self.only.is_some_and(|o| !o.contains(&person)) {
                    continue;
                }
                let e = first.entry(person).or_insert((key, i));
                if key < e.0 {
                    *e = (key, i);
                }
            }
            first
        })
    }

    /// Group key of every person for `by` (see [`group_by`]), from the kept
    /// keys when they have it.
    pub fn by(&self, by: &str) -> Result<Arc<GroupKeys>, UnknownDimension> {
        if let Some(hit) = self.kept.and_then(|k| k.get(by)) {
            return Ok(hit);
        }
        let keys = Arc::new(self.compute(by)?);
        if let Some(k) = self.kept {
            k.put(by, &keys);
        }
        Ok(keys)
    }

    /// [`PeopleGroups::by`], computed. Keys stored on a row are borrowed,
    /// not copied per person.
    fn compute(&self, by: &str) -> Result<GroupKeys, UnknownDimension> {
        let custom = match by {
            "source" | "owner" | "country" | "segment" | "persona" | "tier" | "industry"
            | "channel" | "campaign" => None,
            other => match other.strip_prefix("custom.") {
                Some(f) => Some(f),
                None => return Err(UnknownDimension(other.to_string())),
            },
        };
        let account_of = |p: &Person| match by {
            "segment" | "persona" | "tier" | "industry" => p
                .account_id
                .and_then(|id| self.accounts().get(&id).copied()),
            _ => None,
        };
        let first_touch =
            |p: &Person| (self.first_touch().get(&p.id)).map(|&(_, i)| self.snap.touches.get(i));
        let borrowed = |v: &'s Option<Sym>| v.as_deref().map(Cow::Borrowed);
        let mut out =
            GroupKeys::with_capacity(self.only.map_or(self.snap.people.len(), |o| o.len()));
        let people = self
            .snap
            .people
            .iter()
            .filter(|p| self.only.is_none_or(|o| o.contains(&p.id)));
        for p in people {
            let key: Option<Cow<'s, str>> = match (by, custom) {
                (_, Some(field)) => p.custom.get(field).map(|v| match v {
                    serde_json::Value::String(s) => Cow::Borrowed(s.as_str()),
                    v => Cow::Owned(v.to_string()),
                }),
                ("source", _) => borrowed(&p.source),
                ("owner", _) => borrowed(&p.owner),
                ("country", _) => borrowed(&p.country),
                ("segment", _) => borrowed(&p.segment)
                    .or_else(|| self.classes.segment(p, account_of(p)).map(Cow::Owned)),
                ("persona", _) => borrowed(&p.persona)
                    .or_else(|| self.classes.persona(p, account_of(p)).map(Cow::Owned)),
                ("tier", _) => account_of(p)
                    .and_then(|a| a.tier)
                    .map(|t| Cow::Owned(format!("tier {t}"))),
                ("industry", _) => account_of(p).and_then(|a| borrowed(&a.industry)),
                ("channel", _) => {
                    first_touch(p).and_then(|t| self.channels.of(t, p).map(Cow::Owned))
                }
                ("campaign", _) => {
                    first_touch(p).and_then(|t| t.campaign.map(|c| Cow::Borrowed(c.as_str())))
                }
                _ => None,
            };
            if let Some(k) = key.filter(|k| !k.is_empty()) {
                out.insert(p.id, &k);
            }
        }
        Ok(out)
    }
}

/// A group key per person id, as [`group_by`] gives it.
pub use tandem_core::metrics::GroupKeys;

/// Person → segment and person → persona maps for the scorecard's goals
/// ([`group_by`]). Classifying every person runs the playbook's rules, and
/// only goals filtered by a segment or persona read the result, so a map
/// is built only when some goal filters by its dimension (else empty).
pub fn goal_groups(
    pb: &Playbook,
    snap: &Snapshot,
) -> Result<(GroupKeys, GroupKeys), UnknownDimension> {
    let (s, p) = goal_groups_of(pb, &PeopleGroups::new(pb, snap))?;
    Ok((Arc::unwrap_or_clone(s), Arc::unwrap_or_clone(p)))
}

/// [`goal_groups`] through `groups` (which may keep them).
pub fn goal_groups_of(
    pb: &Playbook,
    groups: &PeopleGroups<'_>,
) -> Result<(Arc<GroupKeys>, Arc<GroupKeys>), UnknownDimension> {
    let by = |dim: &str, needed: bool| {
        if needed {
            groups.by(dim)
        } else {
            Ok(Arc::default())
        }
    };
    Ok((
        by("segment", pb.goals.iter().any(|g| g.segment.is_some()))?,
        by("persona", pb.goals.iter().any(|g| g.persona.is_some()))?,
    ))
}

/// A period that cannot be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PeriodError {
    /// `as_of`, `from` or `to` is not a date or instant.
    #[error("{field}: {source}")]
    Time {
        field: &'static str,
        #[source]
        source: tandem_core::time::TimeError,
    },
    /// `to` is not after `from`.
    #[error("the period is empty: --to ({to}) must be after --from ({from})")]
    Empty { from: Timestamp, to: Timestamp },
}

impl PeriodError {
    /// The parameter at fault (`as_of`, `from` or `to`).
    pub fn field(&self) -> &'static str {
        match self {
            PeriodError::Time { field, .. } => field,
            PeriodError::Empty { .. } => "to",
        }
    }
}

fn parse_at(pb: &Playbook, field: &'static str, s: &str) -> Result<Timestamp, PeriodError> {
    Timestamp::parse_in(s, &pb.company.timezone)
        .map_err(|source| PeriodError::Time { field, source })
}

/// The as-of instant: `as_of` read in the company timezone, or `now`.
pub fn as_of(pb: &Playbook, as_of: Option<&str>, now: Timestamp) -> Result<Timestamp, PeriodError> {
    match as_of {
        Some(s) => parse_at(pb, "as_of", s),
        None => Ok(now),
    }
}

/// The window `[from, to)`: dates are midnight in the company timezone;
/// without `from`, from the earliest transition; without `to`, up to and
/// including `as_of`.
pub fn window(
    pb: &Playbook,
    snap: &Snapshot,
    from: Option<&str>,
    to: Option<&str>,
    as_of: Timestamp,
) -> Result<Window, PeriodError> {
    // The time column alone: reading whole transitions took a tenth of a
    // warm waterfall.
    let earliest = snap.transitions.ats().iter().min().copied();
    window_since(pb, earliest, from, to, as_of)
}

/// [`window`] for a history whose earliest person transition is
/// `earliest` (`None`: it has none).
pub fn window_since(
    pb: &Playbook,
    earliest: Option<Timestamp>,
    from: Option<&str>,
    to: Option<&str>,
    as_of: Timestamp,
) -> Result<Window, PeriodError> {
    let from = match from {
        Some(s) => parse_at(pb, "from", s)?,
        None => earliest.unwrap_or(as_of),
    };
    let to = match to {
        Some(s) => parse_at(pb, "to", s)?,
        // Half-open: include what happened exactly at as-of.
        None => Timestamp::from_millis(as_of.millis() + 1),
    };
    Window::new(from, to).map_err(|_| PeriodError::Empty { from, to })
}

/// The window of ISO week `YYYY-Www` (e.g. `2026-W48`): Monday 00:00 to the
/// next Monday 00:00 in the company timezone, with its canonical label.
/// Shared by `tandem sla --week` and the API's `week` parameter.
pub fn iso_week(pb: &Playbook, s: &str) -> Result<(String, Window), WeekError> {
    use jiff::civil::{Date, ISOWeekDate, Time, Weekday};
    let bad = || WeekError(s.to_string());
    let (y, w) = s.split_once("-W").ok_or_else(bad)?;
    let year: i16 = y.parse().map_err(|_| bad())?;
    let week: i8 = w.parse().map_err(|_| bad())?;
    let monday = ISOWeekDate::new(year, week, Weekday::Monday)
        .map_err(|_| bad())?
        .date();
    let next = monday
        .checked_add(jiff::Span::new().days(7))
        .map_err(|_| bad())?;
    let tz = &pb.company.timezone;
    let at = |d: Date| -> Result<Timestamp, WeekError> {
        let ts = tz
            .to_timestamp(d.to_datetime(Time::midnight()))
            .map_err(|_| bad())?;
        Ok(Timestamp::from_millis(ts.as_millisecond()))
    };
    let window = Window::new(at(monday)?, at(next)?).map_err(|_| bad())?;
    Ok((format!("{year}-W{week:02}"), window))
}

/// A week that is not an ISO week.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid week `{0}`: expected an ISO week such as 2026-W48")]
pub struct WeekError(pub String);

/// The stage MQLs are counted in: the sales SLA's stage, or `mql`.
pub fn mql_stage(pb: &Playbook) -> String {
    pb.sla
        .sales
        .as_ref()
        .map(|s| s.stage.clone())
        .unwrap_or_else(|| "mql".into())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use tandem_core::domain::PersonTexts;
    use tandem_core::domain::Touch;
    use tandem_core::playbook::STARTER;

    fn person(id: i64, source: &str) -> Person {
        Person {
            id,
            texts: PersonTexts::new(&format!("p{id}"), None, None, None),
            source: Some(source.into()),
            ..Person::default()
        }
    }

    fn touch(id: i64, person_id: i64, at: i64, channel: &str, campaign: Option<&str>) -> Touch {
        Touch {
            id,
            person_id,
            at: Timestamp::from_millis(at),
            kind: "web_visit".into(),
            channel: Some(channel.into()),
            campaign: campaign.map(Sym::from),
            ..Touch::default()
        }
    }

    /// Kept keys are the computed ones, computed once per dimension and
    /// shared by every grouping that reads the same kept set.
    #[test]
    fn kept_groups_are_computed_once_and_equal_fresh_ones() {
        let pb = Playbook::load(STARTER).playbook.unwrap();
        let snap = Snapshot {
            people: vec![person(1, "events"), person(2, "paid_search")],
            // Person 1's first touch is the later id (earlier instant).
            touches: vec![
                touch(5, 1, 10, "email", None),
                touch(6, 1, 5, "search", None),
            ]
            .into(),
            ..Snapshot::default()
        };
        let kept = KeptGroups::default();
        let a = PeopleGroups::new(&pb, &snap).kept(&kept);
        let channel = a.by("channel").unwrap();
        assert_eq!(channel.get(1), Some("search"));
        assert_eq!(channel.get(2), None);
        assert_eq!(*channel, group_by(&pb, &snap, "channel").unwrap());
        let b = PeopleGroups::new(&pb, &snap).kept(&kept);
        assert!(Arc::ptr_eq(&channel, &b.by("channel").unwrap()));
        let source = b.by("source").unwrap();
        assert_eq!(source.get(2), Some("paid_search"));
        assert!(Arc::ptr_eq(&source, &a.by("source").unwrap()));
        assert!(a.by("colour").is_err());
    }

    /// Keys kept for a history and grown with the people and touches added
    /// since are the keys of the grown history, person by person: a new
    /// person is keyed, a backdated touch moves an old person's first touch
    /// (to another channel, and to no campaign), a later touch changes
    /// nothing, and a dimension of stored fields keys the new person only.
    #[test]
    fn grown_keys_equal_the_keys_of_the_grown_history() {
        let pb = Playbook::load(STARTER).playbook.unwrap();
        let old = Snapshot {
            people: vec![person(1, "events"), person(2, "paid_search")],
            touches: vec![
                touch(1, 1, 10, "email", Some("spring")),
                touch(2, 2, 20, "search", Some("brand")),
            ]
            .into(),
            ..Snapshot::default()
        };
        let dims = ["channel", "campaign", "source", "segment"];
        let kept = KeptGroups::default();
        let groups = PeopleGroups::new(&pb, &old).kept(&kept);
        for d in dims {
            groups.by(d).unwrap();
        }
        let mut new = old.clone();
        new.people.push(person(3, "webinar"));
        // Kept in time order, as a history keeps touches.
        new.touches = vec![
            touch(4, 1, 5, "social", None),
            touch(1, 1, 10, "email", Some("spring")),
            touch(2, 2, 20, "search", Some("brand")),
            touch(5, 3, 25, "events", Some("expo")),
            touch(3, 2, 30, "display", Some("retarget")),
        ]
        .into();
        let grown = kept.grown(&pb, &new, 2, 2);
        let grown = PeopleGroups::new(&pb, &new).kept(&grown);
        for d in dims {
            let want = group_by(&pb, &new, d).unwrap();
            let got = grown.by(d).unwrap();
            for p in 1..=3 {
                assert_eq!(got.get(p), want.get(p), "{d} of person {p}");
            }
            assert_eq!(got.len(), want.len(), "{d}");
        }
        assert_eq!(grown.by("channel").unwrap().get(1), Some("social"));
        assert_eq!(grown.by("campaign").unwrap().get(1), None);
        assert_eq!(grown.by("campaign").unwrap().get(2), Some("brand"));
    }
}
