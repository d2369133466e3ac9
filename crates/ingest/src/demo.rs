//! `tandem demo`: a deterministic synthetic B2B company, so a new user sees
//! a full funnel without bringing data.
//!
//! # Determinism
//! Same seed, scale and anchor give byte-identical rows. Randomness comes
//! from [`Rng`] (SplitMix64, below); every account and every person draws
//! from its own stream derived from the seed and its index, so a person's
//! history never depends on how many draws another person made, and the
//! generator never reads the clock or iterates a hash map. The anchor (the
//! end of the history, "now" for the demo) is an input.
//!
//! # Ids
//! The demo fills a fresh database, so accounts and people get their ids
//! here (index + 1) and are inserted with them; touches, activities, deals,
//! campaigns and transitions get ids from the store in insertion order,
//! which is itself deterministic. On PostgreSQL the id sequences are moved
//! past the inserted ids afterwards.
//!
//! # Writing
//! Everything goes into one transaction: a producer thread generates people
//! in batches while the writer stores the previous batch, and nothing is
//! read back (see [`run`]). A failed load leaves the database as it was.
//!
//! # Lifecycle
//! No transition is written by hand: each person's history is built in
//! memory with [`lifecycle::advance`] (automatic entry from touches and
//! deals) and [`lifecycle::manual`] (sellers accepting, qualifying,
//! rejecting and recycling with reason codes), as the CLI would.
//!
//! # Shaping the numbers
//! Each lead-source channel has an intent (how often its leads fill forms
//! and ask for demos), an acceptance rate and a win factor; paid search has
//! high intent and wins, display is cheap per click but rarely closes. Small
//! companies (smb) engage a lot, so they produce many MQLs, but close rarely
//! and small. A few weeks of a display push lower the SAL rate; some MQLs
//! get a late or no first response; some decisions never happen (stalled
//! leads); rejected leads are recycled with `no_response` / `bad_timing`
//! and some come back through nurture touches as MQLs in a new cycle.

mod after_sale;

use std::collections::BTreeMap;
use std::sync::Arc;
use tandem_core::Sym;

use tandem_core::domain::{
    Account, Activity, ActivityKind, Campaign, Deal, DealStatus, Person, PersonTexts, Subject,
    Touch, Transition,
};
use tandem_core::facts::{classify, Facts};
use tandem_core::lifecycle::{self, ManualMove, Profile, State};
use tandem_core::playbook::Playbook;
use tandem_core::sla::business_deadline;
use tandem_core::time::DAY_MS;
use tandem_core::{Minor, Money, Timestamp};
use tandem_store::fill::Fill;
use tandem_store::repo;
use tandem_store::{Store, StoreError};

const HOUR_MS: i64 = 3_600_000;
const MINUTE_MS: i64 = 60_000;
/// Length of the generated history before the anchor: two quarters.
pub const HISTORY_DAYS: i64 = 26 * 7;
/// People per generated batch (the unit handed from the generator to the
/// writer).
const BATCH_PEOPLE: usize = 2_000;

// ------------------------------------------------------------------- PRNG

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and good enough for
/// synthetic data; written here so the output never changes with a
/// dependency's version.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// An independent stream for `(self's seed, stream)`.
    pub fn fork(&self, stream: u64) -> Rng {
        let mut r = Rng(self.0 ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
        Rng(r.next_u64())
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    /// Uniform integer in [lo, hi); `lo` when the range is empty.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        lo + (self.next_u64() % (hi - lo) as u64) as i64
    }

    /// A uniformly chosen element (`xs` must not be empty).
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[(self.next_u64() % xs.len().max(1) as u64) as usize]
    }

    /// An index chosen with the given weights.
    fn weighted(&mut self, w: &[f64]) -> usize {
        let total: f64 = w.iter().sum();
        let mut x = self.f64() * total;
        for (i, wi) in w.iter().enumerate() {
            if x < *wi {
                return i;
            }
            x -= wi;
        }
        w.len().saturating_sub(1)
    }
}

// ---------------------------------------------------------------- options

/// How much data to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// About 2,000 people.
    Small,
    /// 100,000 people.
    Medium,
    /// 1,200,000 people: at about 8.5 touches per person, over 10 million
    /// touches (for benchmarks).
    Large,
}

impl Scale {
    /// Parses `small`, `medium`, `large`.
    pub fn parse(s: &str) -> Option<Scale> {
        match s.trim().to_ascii_lowercase().as_str() {
            "small" => Some(Scale::Small),
            "medium" => Some(Scale::Medium),
            "large" => Some(Scale::Large),
            _ => None,
        }
    }

    /// How many people this scale generates.
    pub fn people(self) -> usize {
        match self {
            Scale::Small => 2_000,
            Scale::Medium => 100_000,
            Scale::Large => 1_200_000,
        }
    }
}

/// What to generate.
#[derive(Clone, Copy, Debug)]
pub struct DemoOptions {
    /// Seed of every random stream.
    pub seed: u64,
    /// How many people (see [`Scale::people`]).
    pub scale: Scale,
    /// The end of the history ("now" for the demo company).
    pub anchor: Timestamp,
    /// Overrides the scale's number of people (tests use fewer).
    pub people: Option<usize>,
}

/// Why the demo could not be written.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The demo refuses to mix with existing data.
    #[error("the database already holds {0} people; the demo only fills an empty database")]
    NotEmpty(i64),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the demo wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DemoSummary {
    /// Rows per table, as written.
    pub rows: Vec<(&'static str, u64)>,
    /// Per funnel/off-ramp stage: (stage, entries over all cycles, people
    /// in it at the anchor), in playbook order.
    pub stages: Vec<(String, u64, u64)>,
}

// ------------------------------------------------------------ fixed lists

const SELLERS: [&str; 5] = [
    "ana.silva",
    "ben.okafor",
    "carla.mendes",
    "dev.patel",
    "erin.walsh",
];
const MARKETERS: [&str; 2] = ["maya.lindqvist", "tom.reyes"];

const INDUSTRIES: [&str; 6] = [
    "software",
    "fintech",
    "healthcare",
    "retail",
    "manufacturing",
    "education",
];

/// Segment ids as the starter playbook derives them from employees.
const SMB: usize = 0;
const MID: usize = 1;
const ENT: usize = 2;

const NAME_A: [&str; 16] = [
    "Blue", "North", "Bright", "Silver", "Quant", "Apex", "Cedar", "Nova", "River", "Summit",
    "Vertex", "Harbor", "Pine", "Lumen", "Orbit", "Granite",
];
const NAME_B: [&str; 12] = [
    "Labs",
    "Systems",
    "Health",
    "Works",
    "Capital",
    "Retail",
    "Learning",
    "Data",
    "Logistics",
    "Foods",
    "Bank",
    "Industries",
];
const FIRST: [&str; 24] = [
    "Alex", "Sam", "Jordan", "Taylor", "Maria", "Chen", "Priya", "Lukas", "Sofia", "Omar", "Emma",
    "Noah", "Aisha", "Mateo", "Hana", "Lea", "Ivan", "Grace", "Ravi", "Zoe", "Kofi", "Elena",
    "Yuki", "Diego",
];
const LAST: [&str; 24] = [
    "Smith", "Garcia", "Kim", "Müller", "Rossi", "Nguyen", "Johnson", "Brown", "Singh", "Khan",
    "Lopez", "Martin", "Schmidt", "Dubois", "Costa", "Ito", "Novak", "Jensen", "Silva", "Ahmed",
    "Walker", "Young", "Fischer", "Moreau",
];

/// Titles with a weight; the starter playbook's persona and fit rules read
/// them (chief/vp/founder → executive and senior, operations → ops leader,
/// analyst/engineer/manager → practitioner; the rest match no persona).
const TITLES: [(&str, f64); 20] = [
    ("Chief Revenue Officer", 2.0),
    ("VP Sales", 3.0),
    ("VP Marketing", 3.0),
    ("Founder", 2.0),
    ("Vice President, Finance", 1.0),
    ("Head of Operations", 4.0),
    ("Director of Revenue Operations", 4.0),
    ("RevOps Lead", 3.0),
    ("Operations Manager", 5.0),
    ("Head of Data", 3.0),
    ("Director of Analytics", 3.0),
    ("Data Analyst", 8.0),
    ("Marketing Manager", 8.0),
    ("Sales Manager", 6.0),
    ("Software Engineer", 6.0),
    ("Marketing Specialist", 6.0),
    ("Consultant", 4.0),
    ("Coordinator", 3.0),
    ("Student", 3.0),
    ("Job seeker", 1.0),
];
const STUDENT_TITLES: [&str; 2] = ["Student", "Job seeker"];

const COUNTRIES: [(&str, f64); 9] = [
    ("US", 45.0),
    ("CA", 6.0),
    ("GB", 10.0),
    ("DE", 8.0),
    ("FR", 6.0),
    ("BR", 7.0),
    ("IN", 10.0),
    ("AU", 4.0),
    ("NL", 4.0),
];
const FREE_MAIL: [&str; 3] = ["gmail.com", "yahoo.com", "hotmail.com"];

/// A lead-source channel of the starter playbook and how its leads behave.
struct Channel {
    /// Playbook channel id.
    id: &'static str,
    /// Share of new leads from this channel.
    share: f64,
    /// How often a later touch is a conversion (form, download, demo…).
    intent: f64,
    /// Chance a seller accepts the MQL.
    accept: f64,
    /// Multiplies the deal win rate.
    win: f64,
    /// Cost of one paid touch in cents (lo, hi); (0, 0) when unpaid.
    cost: (i64, i64),
    /// Fixed cost per campaign in cents (events, email tooling).
    fixed: i64,
}

static CHANNELS: [Channel; 7] = [
    Channel {
        id: "paid_search",
        share: 16.0,
        intent: 0.45,
        accept: 0.95,
        win: 1.6,
        cost: (900, 1_800),
        fixed: 0,
    },
    Channel {
        id: "display",
        share: 18.0,
        intent: 0.16,
        accept: 0.62,
        win: 0.35,
        cost: (400, 900),
        fixed: 0,
    },
    Channel {
        id: "paid_social",
        share: 11.0,
        intent: 0.22,
        accept: 0.78,
        win: 0.7,
        cost: (600, 1_400),
        fixed: 0,
    },
    Channel {
        id: "email",
        share: 10.0,
        intent: 0.25,
        accept: 0.82,
        win: 0.9,
        cost: (0, 0),
        fixed: 150_000,
    },
    Channel {
        id: "organic_search",
        share: 24.0,
        intent: 0.3,
        accept: 0.86,
        win: 1.1,
        cost: (0, 0),
        fixed: 0,
    },
    Channel {
        id: "referral",
        share: 8.0,
        intent: 0.42,
        accept: 0.95,
        win: 1.5,
        cost: (0, 0),
        fixed: 0,
    },
    Channel {
        id: "events",
        share: 13.0,
        intent: 0.35,
        accept: 0.86,
        win: 1.1,
        cost: (0, 0),
        fixed: 1_200_000,
    },
];
const PAID_SEARCH: usize = 0;
const DISPLAY: usize = 1;
const PAID_SOCIAL: usize = 2;
const EMAIL: usize = 3;
const ORGANIC: usize = 4;
const REFERRAL: usize = 5;
const EVENTS: usize = 6;

/// Campaigns run four weeks each, per channel.
const CAMPAIGN_WEEKS: i64 = 4;
/// Weeks (counted from the start of the history) of a display push that
/// floods sales with weak MQLs: the SAL rate drops below the minimum.
const DISPLAY_PUSH: (i64, i64) = (9, 12);

// ---------------------------------------------------------------- generator

/// Shared, read-only inputs of the generator.
struct World {
    pb: Playbook,
    seed: Rng,
    start: Timestamp,
    anchor: Timestamp,
    accounts: Vec<Account>,
    /// Campaign count per channel (history plus one upcoming).
    campaigns_per_channel: i64,
    /// The campaign ids, per channel, interned once (ten million touches
    /// each named one: formatting and interning it per touch cost more
    /// than the rest of making the touch).
    campaign_ids: Vec<Vec<Sym>>,
}

impl World {
    fn week_of(&self, at: Timestamp) -> i64 {
        (at.millis() - self.start.millis()).div_euclid(7 * DAY_MS)
    }

    /// The campaign of a channel running at `at`.
    fn campaign(&self, ch: usize, at: Timestamp) -> Sym {
        let k = (self.week_of(at) / CAMPAIGN_WEEKS).clamp(0, self.campaigns_per_channel - 1);
        self.campaign_ids[ch][k as usize]
    }
}

/// The symbol of a constant text: interned once per thread and text, then
/// found by address (the generator names a kind, source or medium for each
/// of its tens of millions of rows; interning locks a shared table).
fn sym(text: &'static str) -> Sym {
    thread_local! {
        static SEEN: std::cell::RefCell<Vec<(&'static str, Sym)>> =
            const { std::cell::RefCell::new(Vec::new()) };
    }
    SEEN.with(|seen| {
        let mut seen = seen.borrow_mut();
        if let Some((_, s)) = seen
            .iter()
            .find(|(t, _)| std::ptr::eq(*t, text) || *t == text)
        {
            return *s;
        }
        let s = Sym::new(text);
        seen.push((text, s));
        s
    })
}

fn campaign_id(ch: usize, k: i64) -> String {
    format!("demo-{}-{:02}", CHANNELS[ch].id, k + 1)
}

fn segment_of(employees: i64) -> usize {
    if employees >= 1000 {
        ENT
    } else if employees >= 200 {
        MID
    } else {
        SMB
    }
}

fn make_account(world_seed: &Rng, idx: usize) -> Account {
    let mut r = world_seed.fork(0x0A00_0000_0000 + idx as u64);
    let seg = r.weighted(&[55.0, 30.0, 15.0]);
    let employees = match seg {
        SMB => r.range(5, 200),
        MID => r.range(200, 1000),
        _ => r.range(1000, 20_000),
    };
    // Small companies skew to education and retail: the segment marketing
    // over-serves.
    let industry = match seg {
        SMB => r.weighted(&[12.0, 6.0, 8.0, 22.0, 10.0, 30.0]),
        _ => r.weighted(&[28.0, 20.0, 18.0, 10.0, 16.0, 8.0]),
    };
    let target = seg != SMB && r.chance(0.12);
    let name = format!("{} {} {}", r.pick(&NAME_A), r.pick(&NAME_B), idx + 1);
    let slug: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
    Account {
        id: idx as i64 + 1,
        external_id: format!("demo-a{:07}", idx + 1),
        name: Some(name),
        domain: Some(format!("{slug}.example")),
        industry: Some(INDUSTRIES[industry].into()),
        employees: Some(employees),
        // Revenue per employee of 80–250k USD, in cents.
        annual_revenue: Some(employees * r.range(80_000, 250_000) * 100),
        segment: Some(["smb", "mid_market", "enterprise"][seg].into()),
        target,
        tier: target.then(|| r.range(1, 4)),
        owner: Some(SELLERS[idx % SELLERS.len()].into()),
        custom: Default::default(),
    }
}

/// One person's generated rows.
#[derive(Default)]
struct PersonOut {
    person: Person,
    touches: Vec<Touch>,
    activities: Vec<Activity>,
    deals: Vec<Deal>,
    transitions: Vec<Transition>,
}

/// Builds one person's history, moving them through the lifecycle with the
/// real engine.
struct Sim<'w> {
    w: &'w World,
    r: Rng,
    out: PersonOut,
    account: Option<Account>,
    source: usize,
    seg: usize,
    student: bool,
    owner: Sym,
    /// The person's profile for automatic entry, computed once: it depends
    /// on the person and account only, which do not change in the sim.
    profile: Profile,
}

impl Sim<'_> {
    fn state(&self) -> State {
        State::replay(&self.out.transitions)
    }

    fn push_moves(&mut self, moves: &[lifecycle::Move]) {
        let next = self.out.transitions.len() as i64;
        let subject = Subject::Person(self.out.person.id);
        self.out
            .transitions
            .extend(lifecycle::to_transitions(subject, moves, next));
    }

    /// Automatic entry up to `until`, as `tandem` does after new facts.
    fn auto(&mut self, until: Timestamp) {
        let facts = Facts {
            person: &self.out.person,
            account: self.account.as_ref(),
            touches: &self.out.touches,
            activities: &self.out.activities,
            deals: &self.out.deals,
        };
        let moves =
            lifecycle::advance_with(&self.w.pb, &self.state(), &facts, until, &self.profile);
        self.push_moves(&moves);
    }

    /// A seller's move; false when the engine refuses it (the generator
    /// then simply leaves the lead where it is). Unlike `tandem stage`, it
    /// does not first catch up on automatic entry: sellers only move people
    /// who sit in mql, sal or sql, from where only a new deal leads on
    /// automatically, and [`Sim::deal`] catches up itself. That saves most
    /// of the generator's rule evaluations.
    fn manual(&mut self, to: &str, at: Timestamp, reason: Option<&str>) -> bool {
        let owner = self.owner;
        let m = ManualMove {
            to,
            at,
            actor: &owner,
            reason,
            note: None,
        };
        match lifecycle::manual(&self.w.pb, &self.state(), &m) {
            Ok(moves) => {
                self.push_moves(&moves);
                true
            }
            Err(_) => false,
        }
    }

    fn touch(&mut self, ch: usize, kind: &'static str, at: Timestamp) {
        if at > self.w.anchor {
            return;
        }
        let c = &CHANNELS[ch];
        let (medium, source) = match ch {
            PAID_SEARCH => ("cpc", *self.r.pick(&["google", "bing"])),
            DISPLAY => ("display", *self.r.pick(&["gdn", "programmatic"])),
            PAID_SOCIAL => ("paid_social", *self.r.pick(&["linkedin", "facebook"])),
            EMAIL => ("email", "newsletter"),
            ORGANIC => ("organic", "google"),
            REFERRAL => ("referral", *self.r.pick(&["partner", "g2", "review_site"])),
            _ => (
                "",
                if kind == "webinar" {
                    "webinar"
                } else {
                    "conference"
                },
            ),
        };
        // Conversions (forms, demos) come after a click; only clicks cost.
        let cost = (kind == "ad_click" && c.cost.1 > 0).then(|| self.r.range(c.cost.0, c.cost.1));
        self.out.touches.push(Touch {
            id: 0,
            external_id: None,
            person_id: self.out.person.id,
            at,
            kind: sym(kind),
            // Left empty on purpose: the playbook's channel rules derive it
            // from medium (and kind for events), as for imported touches.
            channel: None,
            campaign: Some(self.w.campaign(ch, at)),
            source: Some(sym(source)),
            medium: (!medium.is_empty()).then(|| sym(medium)),
            cost: cost.map(Minor::new),
        });
    }

    /// The first touch of a channel: how a lead arrives.
    fn arrival_kind(&mut self, ch: usize) -> &'static str {
        match ch {
            PAID_SEARCH | DISPLAY | PAID_SOCIAL => "ad_click",
            EMAIL => "email_click",
            EVENTS => {
                if self.r.chance(0.6) {
                    "webinar"
                } else {
                    "event"
                }
            }
            _ => "web_visit",
        }
    }

    /// A run of touches from `from`: browsing, emails, and (by intent)
    /// conversions. Returns the time of the last one.
    fn engage(&mut self, from: Timestamp, n: usize, intent: f64) -> Timestamp {
        let mut at = from;
        for _ in 0..n {
            at = Timestamp::from_millis(at.millis() + self.r.range(2 * HOUR_MS, 6 * DAY_MS));
            if at > self.w.anchor {
                break;
            }
            let ch = match self.r.weighted(&[45.0, 22.0, 20.0, 5.0, 8.0]) {
                0 => self.source,
                1 => EMAIL,
                2 => ORGANIC,
                // Retargeting follows visitors around.
                3 => DISPLAY,
                _ => EVENTS,
            };
            if self.r.chance(intent) {
                let kind = match self.r.weighted(&[3.0, 4.0, 3.0, 1.5]) {
                    0 => "demo_request",
                    1 => "form_fill",
                    2 => "content_download",
                    _ => "webinar",
                };
                let ch = if kind == "webinar" { EVENTS } else { ch };
                self.touch(ch, kind, at);
            } else {
                let kind = match ch {
                    EMAIL => {
                        if self.r.chance(0.7) {
                            "email_open"
                        } else {
                            "email_click"
                        }
                    }
                    PAID_SEARCH | DISPLAY | PAID_SOCIAL => "ad_click",
                    EVENTS => "webinar",
                    _ => "web_visit",
                };
                self.touch(ch, kind, at);
            }
        }
        at
    }

    fn activity(&mut self, kind: ActivityKind, at: Timestamp, outcome: &'static str) {
        if at > self.w.anchor {
            return;
        }
        self.out.activities.push(Activity {
            id: 0,
            external_id: None,
            person_id: self.out.person.id,
            at,
            kind,
            actor: Some(self.owner),
            outcome: Some(sym(outcome)),
        });
    }

    fn later(&mut self, at: Timestamp, lo: i64, hi: i64) -> Timestamp {
        Timestamp::from_millis(at.millis() + self.r.range(lo, hi))
    }

    /// The sales side of one cycle, from an MQL entry at `mql_at`.
    fn handle_mql(&mut self, mql_at: Timestamp, cycle: u32) {
        let anchor = self.w.anchor;
        let hours = self
            .w
            .pb
            .sla
            .sales
            .as_ref()
            .map_or(4.0, |s| s.first_response_hours);
        let deadline = business_deadline(mql_at, hours, &self.w.pb.company);
        // First response: most on time, some late, a few never.
        let roll = self.r.f64();
        let first = if roll < 0.06 {
            None
        } else if roll < 0.22 {
            Some(self.later(deadline, HOUR_MS, 4 * DAY_MS))
        } else {
            let span = (deadline.millis() - mql_at.millis()).max(MINUTE_MS);
            Some(Timestamp::from_millis(
                mql_at.millis() + span / 20 + self.r.range(0, span * 17 / 20),
            ))
        };
        let Some(first) = first else {
            // Nobody called: after two or three weeks the lead goes back to
            // nurture, unless that is still in the future.
            let at = self.later(mql_at, 14 * DAY_MS, 22 * DAY_MS);
            if at <= anchor && self.r.chance(0.7) {
                self.manual("recycled", at, Some("no_response"));
                self.maybe_return(at, cycle);
            }
            return;
        };
        let kind = if self.r.chance(0.6) {
            ActivityKind::Call
        } else {
            ActivityKind::Email
        };
        self.activity(kind, first, "attempted");
        // Follow-up attempts; not always the five the SLA asks for.
        let mut t = first;
        for _ in 0..self.r.range(0, 6) {
            t = self.later(t, 4 * HOUR_MS, 3 * DAY_MS);
            let kind = if self.r.chance(0.5) {
                ActivityKind::Call
            } else {
                ActivityKind::Email
            };
            self.activity(kind, t, "attempted");
        }
        let decide = self.later(first, HOUR_MS, 5 * DAY_MS);
        if decide > anchor {
            return;
        }
        let c = &CHANNELS[self.source];
        let mut accept = c.accept;
        let week = self.w.week_of(mql_at);
        if week >= DISPLAY_PUSH.0 && week <= DISPLAY_PUSH.1 {
            accept *= 0.6;
        }
        if self
            .out
            .person
            .country
            .as_deref()
            .is_some_and(|c| !["US", "CA", "GB", "DE"].contains(&c))
        {
            accept *= 0.85;
        }
        if self.student {
            self.manual("disqualified", decide, Some("student_or_competitor"));
            return;
        }
        if self.r.chance(0.06) {
            // Never decided: the lead sits in mql (stalled once old).
            return;
        }
        if !self.r.chance(accept) {
            match self.r.weighted(&[3.0, 3.0, 4.0]) {
                0 => {
                    self.manual("disqualified", decide, Some("not_icp"));
                }
                1 => {
                    self.manual("recycled", decide, Some("no_response"));
                    self.maybe_return(decide, cycle);
                }
                _ => {
                    self.manual("recycled", decide, Some("bad_timing"));
                    self.maybe_return(decide, cycle);
                }
            }
            return;
        }
        if !self.manual("sal", decide, None) {
            return;
        }
        let meeting = self.later(decide, DAY_MS, 4 * DAY_MS);
        self.activity(ActivityKind::Meeting, meeting, "discovery");
        // SAL → SQL.
        let qualify = self.later(decide, 2 * DAY_MS, 16 * DAY_MS);
        if qualify > anchor {
            return;
        }
        match self.r.weighted(&[62.0, 12.0, 10.0, 8.0, 8.0]) {
            0 => {}
            1 => {
                self.manual("recycled", qualify, Some("bad_timing"));
                self.maybe_return(qualify, cycle);
                return;
            }
            2 => {
                self.manual("recycled", qualify, Some("no_budget"));
                self.maybe_return(qualify, cycle);
                return;
            }
            3 => {
                self.manual("disqualified", qualify, Some("not_icp"));
                return;
            }
            // Left in sal.
            _ => return,
        }
        if !self.manual("sql", qualify, None) {
            return;
        }
        let demo = self.later(qualify, HOUR_MS, 3 * DAY_MS);
        self.activity(ActivityKind::Demo, demo, "demo held");
        if self.r.chance(0.1) {
            // Left in sql: no deal yet.
            return;
        }
        let created = self.later(qualify, DAY_MS, 10 * DAY_MS);
        if created > anchor {
            return;
        }
        self.deal(created, cycle);
    }

    fn deal(&mut self, created: Timestamp, cycle: u32) {
        let anchor = self.w.anchor;
        let (lo, hi, days) = match self.seg {
            SMB => (3_000_00, 12_000_00, (10, 35)),
            MID => (15_000_00, 60_000_00, (20, 60)),
            _ => (60_000_00, 250_000_00, (35, 100)),
        };
        let amount = self.r.range(lo, hi) / 100 * 100;
        let close = self.later(created, days.0 * DAY_MS, days.1 * DAY_MS);
        let industry = self.account.as_ref().and_then(|a| a.industry);
        let mut p_win = 0.33 * CHANNELS[self.source].win;
        if self.seg == SMB {
            p_win *= 0.45;
        }
        if industry.as_deref() == Some("education") {
            p_win *= 0.5;
        }
        let p_win = p_win.min(0.8);
        let won = self.r.chance(p_win);
        let lost_reason = *self.r.pick(&[
            "no_budget",
            "competitor_won",
            "missing_feature",
            "bad_timing",
        ]);
        let status = if close > anchor {
            DealStatus::Open
        } else if won {
            DealStatus::Won
        } else {
            DealStatus::Lost
        };
        let p = &self.out.person;
        let deal = Deal {
            id: 0,
            external_id: format!("{}-d{}", p.external_id(), cycle),
            account_id: p.account_id,
            person_id: Some(p.id),
            name: self
                .account
                .as_ref()
                .and_then(|a| a.name.clone())
                .map(|n| format!("{n} — new business")),
            amount: Money {
                minor: amount,
                currency: self.w.pb.company.currency,
            },
            created_at: created,
            // Open deals carry their expected close date.
            closed_at: Some(close),
            status,
            lost_reason: (status == DealStatus::Lost).then(|| Sym::new(lost_reason)),
            owner: Some(self.owner),
            kind: "new".into(),
        };
        self.out.deals.push(deal);
        self.auto(anchor.min(close));
        if status == DealStatus::Lost {
            // Lost deals go back to nurture; losing to a competitor is a
            // timing question for the next cycle.
            let reason = match lost_reason {
                "competitor_won" => "bad_timing",
                other => other,
            };
            let at = self.later(close, HOUR_MS, 2 * DAY_MS);
            if at <= anchor && self.manual("recycled", at, Some(reason)) {
                self.maybe_return(at, cycle);
            }
        }
    }

    /// Nurture after a recycle: some leads engage again and re-qualify as
    /// MQLs in a new cycle (the engine decides whether they do).
    fn maybe_return(&mut self, recycled_at: Timestamp, cycle: u32) {
        if cycle >= 3 || !self.r.chance(0.45) {
            return;
        }
        let back = self.later(recycled_at, 10 * DAY_MS, 45 * DAY_MS);
        if back > self.w.anchor {
            return;
        }
        self.touch(EMAIL, "email_click", back);
        let n = self.r.range(2, 6) as usize;
        let intent = (CHANNELS[self.source].intent + 0.25).min(0.9);
        self.engage(back, n, intent);
        self.auto(self.w.anchor);
        let st = self.state();
        if st.stage.as_deref() == Some("mql") && st.cycle > cycle {
            if let Some(at) = st.entered_at {
                self.handle_mql(at, st.cycle);
            }
        }
    }
}

/// One person, from arrival to wherever the anchor finds them.
fn make_person(w: &World, idx: usize) -> PersonOut {
    let mut r = w.seed.fork(0x0B00_0000_0000 + idx as u64);
    let span = w.anchor.millis() - w.start.millis();
    // Arrival: uniform over the history, with extra display leads during
    // the display push.
    let mut source = r.weighted(&CHANNELS.iter().map(|c| c.share).collect::<Vec<_>>());
    let mut created = Timestamp::from_millis(w.start.millis() + r.range(0, span - HOUR_MS));
    let week = w.week_of(created);
    if week >= DISPLAY_PUSH.0 && week <= DISPLAY_PUSH.1 && r.chance(0.35) {
        source = DISPLAY;
    }
    // Business-ish hours: most touches happen 8:00–20:00 UTC.
    let day = created.millis().div_euclid(DAY_MS) * DAY_MS;
    created = Timestamp::from_millis(
        day + r.range(12 * HOUR_MS, 23 * HOUR_MS) + r.range(0, 60) * MINUTE_MS,
    );
    if created > w.anchor {
        created = Timestamp::from_millis(w.anchor.millis() - r.range(HOUR_MS, 2 * DAY_MS));
    }
    let acc_idx = r.range(0, w.accounts.len() as i64) as usize;
    let account = w.accounts.get(acc_idx).cloned();
    let seg = account
        .as_ref()
        .and_then(|a| a.employees)
        .map(segment_of)
        .unwrap_or(SMB);
    let t = r.weighted(&TITLES.map(|t| t.1));
    let title = TITLES[t].0;
    let student = STUDENT_TITLES.contains(&title);
    let first = *r.pick(&FIRST);
    let last = *r.pick(&LAST);
    let local = format!(
        "{}.{}",
        first.to_ascii_lowercase(),
        last.to_ascii_lowercase().replace('ü', "ue")
    );
    let free = student || r.chance(0.12);
    let email = match (&account, free) {
        (Some(a), false) => format!(
            "{local}{}@{}",
            idx + 1,
            a.domain.clone().unwrap_or_default()
        ),
        _ => format!("{local}{}@{}", idx + 1, r.pick(&FREE_MAIL)),
    };
    let country = COUNTRIES[r.weighted(&COUNTRIES.map(|c| c.1))].0;
    let owner = account
        .as_ref()
        .and_then(|a| a.owner)
        .unwrap_or_else(|| SELLERS[idx % SELLERS.len()].into());
    let mut person = Person {
        id: idx as i64 + 1,
        texts: PersonTexts::new(
            &format!("demo-p{:07}", idx + 1),
            Some(&*email),
            Some(first),
            Some(last),
        ),
        title: Some(title.into()),
        account_id: account.as_ref().map(|a| a.id),
        persona: None,
        segment: None,
        country: Some(country.into()),
        source: Some(CHANNELS[source].id.into()),
        owner: Some(owner),
        created_at: created,
        custom: Default::default(),
    };
    let (persona, segment) = classify(&w.pb, &person, account.as_ref());
    person.persona = persona.map(Sym::from);
    person.segment = segment.map(Sym::from);
    let profile = Profile::new(
        &w.pb,
        &Facts {
            person: &person,
            account: account.as_ref(),
            touches: &[],
            activities: &[],
            deals: &[],
        },
    );
    let mut sim = Sim {
        w,
        r,
        out: PersonOut {
            person,
            ..Default::default()
        },
        account,
        source,
        seg,
        student,
        owner,
        profile,
    };
    // Touches: the arrival, then a run whose length and conversions follow
    // the channel's intent. Small companies engage a lot (and buy little).
    let kind = sim.arrival_kind(source);
    sim.touch(source, kind, created);
    let mut intent = CHANNELS[source].intent;
    if seg == SMB {
        intent += 0.12;
    }
    if student {
        intent += 0.1;
    }
    let n = 3
        + sim.r.range(0, 8) as usize
        + if sim.r.chance(0.3) {
            sim.r.range(0, 10) as usize
        } else {
            0
        };
    sim.engage(created, n, intent);
    sim.auto(w.anchor);
    let st = sim.state();
    if st.stage.as_deref() == Some("mql") {
        if let Some(at) = st.entered_at {
            sim.handle_mql(at, st.cycle);
        }
    }
    sim.out
}

/// Campaigns: four weeks each per channel over the history, plus one
/// upcoming campaign per channel starting at the anchor. Costs are the sum
/// of their touches' costs plus a fixed cost for events and email.
fn make_campaigns(w: &World, touch_cost: &BTreeMap<String, i64>) -> Vec<Campaign> {
    let mut out = Vec::new();
    let mut r = w.seed.fork(0x0C00_0000_0000);
    for (ch, c) in CHANNELS.iter().enumerate() {
        for k in 0..w.campaigns_per_channel {
            let starts = w.start.plus_days(k * CAMPAIGN_WEEKS * 7);
            let ends = starts.plus_days(CAMPAIGN_WEEKS * 7);
            let id = campaign_id(ch, k);
            let upcoming = starts >= w.anchor;
            let spent =
                touch_cost.get(&id).copied().unwrap_or(0) + if upcoming { 0 } else { c.fixed };
            let budget = if upcoming {
                r.range(20_000, 60_000) * 100
            } else {
                (spent * 11 / 10 / 100_00 + 1) * 100_00
            };
            let segment = match ch {
                EVENTS | PAID_SEARCH => Some("enterprise"),
                DISPLAY | PAID_SOCIAL => Some("smb"),
                _ => None,
            };
            out.push(Campaign {
                id: 0,
                external_id: id.clone(),
                name: format!(
                    "{} wave {}{}",
                    c.id.replace('_', " "),
                    k + 1,
                    if upcoming { " (upcoming)" } else { "" }
                ),
                channel: Some(c.id.to_string()),
                starts_at: Some(starts),
                ends_at: Some(ends),
                budget: Some(budget),
                cost: Some(spent),
                persona: None,
                segment: segment.map(str::to_string),
                owner: Some(MARKETERS[ch % MARKETERS.len()].to_string()),
            });
        }
    }
    out
}

/// The indexes a demo load keeps up to date as it writes (the others are
/// built at the end): people are written in id order and each person's
/// rows together, in time order, so these take each row next to the last.
/// On the large demo that is 6.8 s less of index building for 2.6 s more
/// of writing, done while the writer waits for the generator.
const KEPT_INDEXES: [&str; 4] = [
    "touches_person_at",
    "activities_person_at",
    "deals_person",
    "transitions_subject",
];

/// Writes the demo company into an empty database, in one transaction, and
/// returns what it wrote.
///
/// People are generated on a separate thread (split over the cores) while
/// this task writes the previous batch, so generation and writing overlap;
/// nothing is read back. The rows go in through a bulk load
/// ([`tandem_store::fill::Fill`]: on an SQLite file SQLite's own statements,
/// secondary indexes built once at the end). The load is all-or-nothing:
/// on any error the transaction rolls back and the database is as empty
/// as before.
pub async fn run(
    store: &Store,
    pb: &Playbook,
    opts: &DemoOptions,
) -> Result<DemoSummary, DemoError> {
    {
        let mut c = store.conn().await?;
        let people = repo::counts(&mut c)
            .await?
            .into_iter()
            .find(|(t, _)| *t == "people")
            .map(|(_, n)| n)
            .unwrap_or(0);
        if people > 0 {
            return Err(DemoError::NotEmpty(people));
        }
    }
    let seed = Rng::new(opts.seed);
    let n_people = opts.people.unwrap_or_else(|| opts.scale.people()).max(1);
    let n_accounts = (n_people / 4).max(1);
    let start = opts.anchor.plus_days(-HISTORY_DAYS);
    let accounts: Vec<Account> = (0..n_accounts).map(|i| make_account(&seed, i)).collect();
    let plan = after_sale::plan_targets(pb, &seed, start, &accounts);
    let campaigns_per_channel = HISTORY_DAYS / 7 / CAMPAIGN_WEEKS + 1 + 1;
    let world = Arc::new(World {
        pb: pb.clone(),
        seed,
        start,
        anchor: opts.anchor,
        accounts,
        campaigns_per_channel,
        campaign_ids: (0..CHANNELS.len())
            .map(|ch| {
                (0..campaigns_per_channel)
                    .map(|k| Sym::new(&campaign_id(ch, k)))
                    .collect()
            })
            .collect(),
    });

    let mut fill = Fill::begin(store, &KEPT_INDEXES).await?;
    fill.insert(&repo::ACCOUNTS, &plan.accounts).await?;
    fill.insert(&repo::TARGETS, &plan.targets).await?;

    let mut rows: BTreeMap<&'static str, u64> = BTreeMap::new();
    rows.insert("accounts", plan.accounts.len() as u64);
    let mut touch_cost: BTreeMap<String, i64> = BTreeMap::new();
    let mut entries: BTreeMap<String, u64> = BTreeMap::new();
    let mut current: BTreeMap<String, u64> = BTreeMap::new();
    let mut book = after_sale::PeopleFacts::new(plan.accounts.len());

    // The producer generates batches in person order; a bounded channel
    // keeps at most a few batches in memory.
    let (send, mut batches) = tokio::sync::mpsc::channel::<Vec<PersonOut>>(2);
    let producer = {
        let world = Arc::clone(&world);
        std::thread::spawn(move || {
            let mut from = 0;
            while from < n_people {
                let to = (from + BATCH_PEOPLE).min(n_people);
                // A closed channel means the writer failed: stop quietly.
                if send.blocking_send(generate(&world, from, to)).is_err() {
                    break;
                }
                from = to;
            }
        })
    };
    let mut written = 0usize;
    while let Some(outs) = batches.recv().await {
        let write_started = std::time::Instant::now();
        let mut n = [0u64; 4];
        for o in &outs {
            for t in &o.touches {
                if let (Some(k), Some(c)) = (&t.campaign, t.cost.map(Minor::get)) {
                    match touch_cost.get_mut(k.as_str()) {
                        Some(sum) => *sum += c,
                        None => {
                            touch_cost.insert(k.to_string(), c);
                        }
                    }
                }
            }
            for t in &o.transitions {
                match entries.get_mut(t.to.as_str()) {
                    Some(e) => *e += 1,
                    None => {
                        entries.insert(t.to.to_string(), 1);
                    }
                }
            }
            if let Some(last) = o.transitions.last() {
                *current.entry(last.to.to_string()).or_default() += 1;
            }
            n[0] += o.touches.len() as u64;
            n[1] += o.activities.len() as u64;
            n[2] += o.deals.len() as u64;
            n[3] += o.transitions.len() as u64;
        }
        written += outs.len();
        *rows.entry("people").or_default() += outs.len() as u64;
        *rows.entry("touches").or_default() += n[0];
        *rows.entry("activities").or_default() += n[1];
        *rows.entry("deals").or_default() += n[2];
        *rows.entry("transitions").or_default() += n[3];
        fill.insert(&repo::PEOPLE, outs.iter().map(|o| &o.person))
            .await?;
        fill.insert(&repo::TOUCHES, outs.iter().flat_map(|o| &o.touches))
            .await?;
        fill.insert(&repo::ACTIVITIES, outs.iter().flat_map(|o| &o.activities))
            .await?;
        fill.insert(&repo::DEALS, outs.iter().flat_map(|o| &o.deals))
            .await?;
        fill.insert(&repo::TRANSITIONS, outs.iter().flat_map(|o| &o.transitions))
            .await?;
        for o in outs {
            book.add_person(
                o.person.account_id,
                o.person.id,
                o.transitions,
                o.activities,
                o.deals,
            );
        }
        tracing::info!(
            people = written,
            write_ms = write_started.elapsed().as_millis() as u64,
            "demo batch written"
        );
    }
    if let Err(panic) = producer.join() {
        // A panic in the generator is a bug; re-raise it.
        std::panic::resume_unwind(panic);
    }
    debug_assert_eq!(written, n_people);

    let campaigns = make_campaigns(&world, &touch_cost);
    rows.insert("campaigns", campaigns.len() as u64);
    fill.insert(&repo::CAMPAIGNS, &campaigns).await?;
    let after = book.finish(plan, pb, start, opts.anchor);
    *rows.entry("deals").or_default() += after.deals.len() as u64;
    *rows.entry("activities").or_default() += after.activities.len() as u64;
    *rows.entry("transitions").or_default() += after.transitions.len() as u64;
    fill.insert(&repo::DEALS, &after.deals).await?;
    fill.insert(&repo::ACTIVITIES, &after.activities).await?;
    fill.insert(&repo::TRANSITIONS, &after.transitions).await?;
    drop(after);
    let finish_started = std::time::Instant::now();
    fill.commit().await?;
    tracing::info!(
        ms = finish_started.elapsed().as_millis() as u64,
        "demo indexes built and committed"
    );

    let order = [
        "accounts",
        "people",
        "touches",
        "activities",
        "deals",
        "campaigns",
        "transitions",
    ];
    Ok(DemoSummary {
        rows: order
            .iter()
            .map(|t| (*t, rows.get(t).copied().unwrap_or(0)))
            .collect(),
        stages: pb
            .stages
            .iter()
            .map(|s| {
                (
                    s.id.clone(),
                    entries.get(&s.id).copied().unwrap_or(0),
                    current.get(&s.id).copied().unwrap_or(0),
                )
            })
            .collect(),
    })
}

/// People `from..to`, in index order. Split over the available cores:
/// every person has their own random stream, so the split changes nothing
/// in the output.
fn generate(w: &World, from: usize, to: usize) -> Vec<PersonOut> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let per = (to - from).div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (from..to)
            .step_by(per)
            .map(|lo| {
                let hi = (lo + per).min(to);
                scope.spawn(move || (lo..hi).map(|i| make_person(w, i)).collect::<Vec<_>>())
            })
            .collect();
        let mut out = Vec::with_capacity(to - from);
        for h in handles {
            match h.join() {
                Ok(v) => out.extend(v),
                // A panic in a worker is a bug in the generator; re-raise it.
                Err(e) => std::panic::resume_unwind(e),
            }
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_the_reference_output() {
        // First output of the reference SplitMix64 from state 0.
        assert_eq!(Rng::new(0).next_u64(), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn ranges_and_streams() {
        let mut r = Rng::new(9);
        for _ in 0..1000 {
            let x = r.range(-3, 4);
            assert!((-3..4).contains(&x));
            let f = r.f64();
            assert!((0.0..1.0).contains(&f));
        }
        assert_eq!(r.range(5, 5), 5);
        let base = Rng::new(42);
        assert_eq!(base.fork(1).next_u64(), base.fork(1).next_u64());
        assert_ne!(base.fork(1).next_u64(), base.fork(2).next_u64());
    }
}
