//! CEL criteria: compiled once when the playbook loads, checked against the
//! variables each place in the playbook may use, evaluated many times.

use std::collections::HashMap;
use std::fmt;

use cel::common::ast::{EntryExpr, Expr};
use cel::common::types::{CelBool, CelString};
use cel::{Context, IdedExpr, Program, Value};

/// The variables a criterion may read. Which ones are in scope depends on
/// where the criterion sits in the playbook (see [`Scope`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Var {
    Person,
    Account,
    Score,
    Touch,
    Deal,
    Activity,
}

impl Var {
    /// The name used in expressions.
    pub fn name(self) -> &'static str {
        match self {
            Var::Person => "person",
            Var::Account => "account",
            Var::Score => "score",
            Var::Touch => "touch",
            Var::Deal => "deal",
            Var::Activity => "activity",
        }
    }

    /// The fields tandem fills in for this variable. `custom` is a map of
    /// imported columns and accepts any key below it.
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            Var::Person => &[
                "id",
                "external_id",
                "email",
                "first_name",
                "last_name",
                "name",
                "title",
                "persona",
                "segment",
                "country",
                "source",
                "owner",
                "created_at",
                "custom",
            ],
            Var::Account => &[
                "id",
                "external_id",
                "name",
                "domain",
                "industry",
                "employees",
                "annual_revenue",
                "segment",
                "target",
                "tier",
                "owner",
                "custom",
            ],
            Var::Score => &["fit", "engagement", "grade"],
            Var::Touch => &["kind", "channel", "campaign", "source", "medium", "cost"],
            Var::Deal => &["count", "open", "won", "lost", "amount_won"],
            Var::Activity => &["count", "calls", "emails", "meetings", "demos"],
        }
    }

    fn from_name(name: &str) -> Option<Var> {
        [
            Var::Person,
            Var::Account,
            Var::Score,
            Var::Touch,
            Var::Deal,
            Var::Activity,
        ]
        .into_iter()
        .find(|v| v.name() == name)
    }
}

/// Where a criterion is used, and so which variables it may read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// `[[stage]] entry`: everything known about a lead.
    StageEntry,
    /// `[scoring.fit] rules` and `[[persona]]`/`[[segment]]` matches: profile only.
    Profile,
    /// `[[channel]] match`: the touch, plus who it belongs to.
    Channel,
    /// `[[account_lists]] match`: the account alone.
    Account,
}

impl Scope {
    /// Variables in scope.
    pub fn vars(self) -> &'static [Var] {
        match self {
            Scope::StageEntry => &[
                Var::Person,
                Var::Account,
                Var::Score,
                Var::Deal,
                Var::Activity,
            ],
            Scope::Profile => &[Var::Person, Var::Account],
            Scope::Channel => &[Var::Touch, Var::Person],
            Scope::Account => &[Var::Account],
        }
    }
}

/// A problem found while compiling a criterion. `offset` is the character
/// offset inside the expression text (0-based).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CriterionProblem {
    pub offset: usize,
    pub message: String,
    /// False for hard errors (syntax, unknown variable), true for warnings
    /// (a field tandem does not know; it evaluates to a missing value).
    pub warning: bool,
}

/// A compiled CEL expression.
pub struct Criterion {
    source: String,
    program: Program,
    /// The variables and fields the expression reads, so callers may
    /// remember results keyed by just those inputs.
    reads: Reads,
    /// How [`Criterion::matches`] binds each variable it reads, derived
    /// from `reads` once so evaluating allocates no field names.
    binds: Vec<(&'static str, Bind)>,
    /// Results already computed, by the values read (see [`Memo`]).
    memo: Memo,
}

/// How one variable is bound for an evaluation.
#[derive(Clone, Debug)]
enum Bind {
    /// The whole value.
    Whole,
    /// A map of just these fields (see [`only_fields`]), each with the
    /// literals it is only ever compared with, if so (see [`Cuts`]).
    Fields(Vec<cel::objects::Key>, Vec<Option<Cuts>>),
}

/// The bindings for what `reads` says is read (unread variables are left
/// out), with the comparisons `cuts` found for each field.
fn binds_of(
    reads: &Reads,
    cuts: &[(Var, &str, Option<Vec<Cut<'_>>>)],
) -> Vec<(&'static str, Bind)> {
    let cuts_of = |var: Var, field: &str| {
        cuts.iter()
            .find(|(v, f, _)| *v == var && *f == field)
            .and_then(|(_, _, c)| c.as_deref())
            .map(Cuts::new)
    };
    reads
        .0
        .iter()
        .filter_map(|(var, read)| match read {
            Read::Nothing => None,
            Read::Whole => Some((var.name(), Bind::Whole)),
            Read::Fields(fields) => Some((
                var.name(),
                Bind::Fields(
                    fields
                        .iter()
                        .map(|f| cel::objects::Key::String(std::sync::Arc::new((*f).to_string())))
                        .collect(),
                    fields.iter().map(|f| cuts_of(*var, f)).collect(),
                ),
            )),
        })
        .collect()
}

/// The numbers a field is compared with, when that is all an expression
/// does with it (`score.engagement >= 30`): its value matters only by
/// where it falls among them, so the memo keys it by that ([`Scalar::Class`])
/// and a criterion over a score that changes at every instant is evaluated
/// once per class instead of once per value.
///
/// Only numbers that `f64` holds exactly are cuts, and only such values are
/// classed (integers up to 2^53 in size): CEL compares an int with a double
/// by converting the int, so on these its comparisons are exactly those of
/// the `f64`s.
///
/// Likewise the patterns a text field is only ever tested with
/// (`person.email.matches('@(gmail|yahoo)\\.')`): a text's class is which of
/// them it matches, so a rule over a field that never repeats (an e-mail
/// address) is evaluated once per class, not once per person.
#[derive(Clone, Debug)]
struct Cuts {
    numbers: Box<[f64]>,
    /// Each pattern compiled as `matches` compiles it; `None` for one that
    /// does not compile (`matches` then fails whatever the text).
    patterns: Box<[Option<regex::Regex>]>,
}

/// A literal a field is compared with: what [`comparisons`] finds.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Cut<'e> {
    /// `<`, `<=`, `>`, `>=`, `==` or `!=` with this number.
    Number(f64),
    /// `matches` with this pattern.
    Pattern(&'e str),
}

/// The largest integer that `f64` and every smaller one hold exactly.
const EXACT_INT: u64 = 1 << 53;

/// Patterns classed at most: a text's class is a bit per pattern.
const MAX_PATTERNS: usize = 32;

impl Cuts {
    fn new(cuts: &[Cut<'_>]) -> Cuts {
        let mut numbers: Vec<f64> = Vec::new();
        let mut patterns: Vec<&str> = Vec::new();
        for c in cuts {
            match *c {
                Cut::Number(x) => numbers.push(x),
                Cut::Pattern(p) => {
                    if !patterns.contains(&p) {
                        patterns.push(p);
                    }
                }
            }
        }
        numbers.sort_by(f64::total_cmp);
        numbers.dedup();
        // More patterns than bits: texts are keyed by value instead.
        if patterns.len() > MAX_PATTERNS {
            patterns.clear();
        }
        Cuts {
            numbers: numbers.into(),
            patterns: patterns.iter().map(|p| compile_pattern(p).ok()).collect(),
        }
    }

    /// Where `v` falls: `2i` below the `i`th cut (0-based) and above the
    /// ones before, `2i + 1` equal to it; NaN (which no comparison holds
    /// for) has a class of its own. Values of one class compare alike with
    /// every cut.
    fn class(&self, v: f64) -> u32 {
        if v.is_nan() {
            return u32::MAX;
        }
        let mut class = 0;
        for &t in self.numbers.iter() {
            if v > t {
                class += 2;
            } else {
                if v == t {
                    class += 1;
                }
                break;
            }
        }
        class
    }

    /// The patterns `text` matches, a bit each.
    fn matched(&self, text: &str) -> u32 {
        self.patterns
            .iter()
            .enumerate()
            .filter(|(_, re)| re.as_ref().is_some_and(|re| re.is_match(text)))
            .fold(0, |bits, (i, _)| bits | 1 << i)
    }

    /// The memo key of `v` when it is a number classed exactly, or a text
    /// of a field tested with patterns. Either kind of use fails alike on
    /// a value of the other kind (or compares unequal), so a number's
    /// class says nothing of patterns and a text's nothing of numbers.
    fn key(&self, v: &Value) -> Option<Scalar> {
        let (kind, x) = match v {
            Value::String(text) if !self.patterns.is_empty() => {
                return Some(Scalar::Class(3, self.matched(text)))
            }
            Value::Int(i) if i.unsigned_abs() <= EXACT_INT => (0, *i as f64),
            Value::UInt(u) if *u <= EXACT_INT => (1, *u as f64),
            Value::Float(f) => (2, *f),
            _ => return None,
        };
        Some(Scalar::Class(kind, self.class(x)))
    }
}

/// The number a literal is, when `f64` holds it exactly.
fn exact_number(e: &IdedExpr) -> Option<f64> {
    use cel::common::ast::LiteralValue as L;
    match &e.expr {
        Expr::Literal(L::Int(i)) if i.inner().unsigned_abs() <= EXACT_INT => {
            Some(*i.inner() as f64)
        }
        Expr::Literal(L::UInt(u)) if *u.inner() <= EXACT_INT => Some(*u.inner() as f64),
        Expr::Literal(L::Double(d)) if d.inner().is_finite() => Some(*d.inner()),
        _ => None,
    }
}

/// `var.field` when `e` is a field of a variable.
fn var_field(e: &IdedExpr) -> Option<(Var, &str)> {
    match &e.expr {
        Expr::Select(sel) if !sel.test => match &sel.operand.expr {
            Expr::Ident(root) => Some((Var::from_name(root)?, sel.field.as_str())),
            _ => None,
        },
        _ => None,
    }
}

/// The text a literal is.
fn text_literal(e: &IdedExpr) -> Option<&str> {
    match &e.expr {
        Expr::Literal(cel::common::ast::LiteralValue::String(s)) => Some(s.inner()),
        _ => None,
    }
}

/// Per field of a variable the expression `e` reads, the literals it is
/// compared with when that is every use of it, else `None`: numbers with
/// `<`, `<=`, `>`, `>=`, `==`, `!=` (either side), texts with `matches`
/// (`field.matches('re')` or `matches(field, 're')`). Nothing when `e` has
/// a comprehension: its variables could shadow one of ours.
fn comparisons(e: &IdedExpr) -> Vec<(Var, &str, Option<Vec<Cut<'_>>>)> {
    use cel::common::ast::operators as op;
    type Found<'e> = Vec<(Var, &'e str, Option<Vec<Cut<'e>>>)>;
    fn note<'e>(out: &mut Found<'e>, var: Var, field: &'e str, cut: Option<Cut<'e>>) {
        match out.iter_mut().find(|(v, f, _)| *v == var && *f == field) {
            Some((_, _, cuts)) => match (cuts.as_mut(), cut) {
                (Some(cuts), Some(c)) => cuts.push(c),
                _ => *cuts = None,
            },
            None => out.push((var, field, cut.map(|c| vec![c]))),
        }
    }
    fn walk<'e>(e: &'e IdedExpr, out: &mut Found<'e>) -> bool {
        const COMPARE: [&str; 6] = [
            op::LESS,
            op::LESS_EQUALS,
            op::GREATER,
            op::GREATER_EQUALS,
            op::EQUALS,
            op::NOT_EQUALS,
        ];
        match &e.expr {
            Expr::Call(call) => {
                if call.func_name == "matches" {
                    let pair = match (&call.target, call.args.as_slice()) {
                        (Some(t), [p]) => var_field(t).zip(text_literal(p)),
                        (None, [t, p]) => var_field(t).zip(text_literal(p)),
                        _ => None,
                    };
                    if let Some(((var, field), pattern)) = pair {
                        note(out, var, field, Some(Cut::Pattern(pattern)));
                        return true;
                    }
                }
                if let (None, [a, b]) = (&call.target, call.args.as_slice()) {
                    if COMPARE.contains(&call.func_name.as_str()) {
                        let pair = var_field(a)
                            .zip(exact_number(b))
                            .or_else(|| var_field(b).zip(exact_number(a)));
                        if let Some(((var, field), cut)) = pair {
                            note(out, var, field, Some(Cut::Number(cut)));
                            return true;
                        }
                    }
                }
                call.target.iter().all(|t| walk(t, out)) && call.args.iter().all(|a| walk(a, out))
            }
            Expr::Select(sel) => match var_field(e) {
                Some((var, field)) => {
                    note(out, var, field, None);
                    true
                }
                None => walk(&sel.operand, out),
            },
            Expr::Comprehension(_) => false,
            Expr::List(l) => l.elements.iter().all(|x| walk(x, out)),
            Expr::Map(m) => m.entries.iter().all(|entry| match &entry.expr {
                EntryExpr::MapEntry(me) => walk(&me.key, out) && walk(&me.value, out),
                EntryExpr::StructField(f) => walk(&f.value, out),
            }),
            Expr::Struct(s) => s.entries.iter().all(|entry| match &entry.expr {
                EntryExpr::MapEntry(me) => walk(&me.key, out) && walk(&me.value, out),
                EntryExpr::StructField(f) => walk(&f.value, out),
            }),
            Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => true,
        }
    }
    let mut out = Vec::new();
    if walk(e, &mut out) {
        out
    } else {
        Vec::new()
    }
}

/// What an expression reads of each variable: nothing, some fields, or the
/// whole value (a bare `person`, or a field tandem does not know).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reads(Vec<(Var, Read)>);

/// What an expression reads of one variable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Read {
    /// Not read.
    Nothing,
    /// Only these fields (the first field below the variable).
    Fields(Vec<&'static str>),
    /// All of it.
    Whole,
}

impl Read {
    /// What either `self` or `other` reads.
    pub fn union(self, other: Read) -> Read {
        match (self, other) {
            (Read::Whole, _) | (_, Read::Whole) => Read::Whole,
            (Read::Nothing, r) | (r, Read::Nothing) => r,
            (Read::Fields(mut a), Read::Fields(b)) => {
                for f in b {
                    if !a.contains(&f) {
                        a.push(f);
                    }
                }
                Read::Fields(a)
            }
        }
    }
}

impl Reads {
    fn slot(&mut self, var: Var) -> &mut Read {
        let i = match self.0.iter().position(|(v, _)| *v == var) {
            Some(i) => i,
            None => {
                self.0.push((var, Read::Nothing));
                self.0.len() - 1
            }
        };
        &mut self.0[i].1
    }

    fn whole(&mut self, var: Var) {
        *self.slot(var) = Read::Whole;
    }

    fn field(&mut self, var: Var, field: &str) {
        let known = var.fields().iter().find(|f| **f == field).copied();
        let slot = self.slot(var);
        match (known, &mut *slot) {
            (_, Read::Whole) => {}
            (None, _) => *slot = Read::Whole,
            (Some(f), Read::Fields(fs)) => {
                if !fs.contains(&f) {
                    fs.push(f);
                }
            }
            (Some(f), Read::Nothing) => *slot = Read::Fields(vec![f]),
        }
    }

    /// What is read of `var`.
    pub fn of(&self, var: Var) -> Read {
        self.0
            .iter()
            .find(|(v, _)| *v == var)
            .map(|(_, r)| r.clone())
            .unwrap_or(Read::Nothing)
    }
}

impl fmt::Debug for Criterion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Criterion").field(&self.source).finish()
    }
}

impl Clone for Criterion {
    fn clone(&self) -> Self {
        // The text compiled once already, so it compiles again.
        match Program::compile(&self.source) {
            Ok(program) => Criterion {
                source: self.source.clone(),
                program,
                reads: self.reads.clone(),
                binds: self.binds.clone(),
                memo: Memo::default(),
            },
            Err(_) => unreachable_program(&self.source),
        }
    }
}

fn unreachable_program(source: &str) -> Criterion {
    // `false` always compiles; used only if CEL stopped accepting a text it
    // accepted before, which would be a bug in the cel crate.
    #[allow(clippy::expect_used)]
    let program = Program::compile("false").expect("`false` is valid CEL");
    Criterion {
        source: source.to_string(),
        program,
        reads: Reads::default(),
        binds: Vec::new(),
        memo: Memo::default(),
    }
}

impl Criterion {
    /// Compiles `source` and checks the variables it reads against `scope`.
    /// Returns the criterion (when it compiles) and every problem found.
    pub fn compile(source: &str, scope: Scope) -> (Option<Criterion>, Vec<CriterionProblem>) {
        let program = match Program::compile(source) {
            Ok(p) => p,
            Err(errors) => {
                let problems = errors
                    .errors
                    .iter()
                    .map(|e| CriterionProblem {
                        offset: line_col_to_offset(source, e.pos.0, e.pos.1),
                        message: format!("invalid CEL expression: {}", e.msg),
                        warning: false,
                    })
                    .collect();
                return (None, problems);
            }
        };
        let mut problems = Vec::new();
        let mut bound = Vec::new();
        let mut reads = Reads::default();
        check_refs(
            &program,
            program.expression(),
            scope,
            &mut bound,
            &mut problems,
            &mut reads,
        );
        let has_error = problems.iter().any(|p| !p.warning);
        let binds = binds_of(&reads, &comparisons(program.expression()));
        let criterion = (!has_error).then(|| Criterion {
            source: source.to_string(),
            program,
            binds,
            reads,
            memo: Memo::default(),
        });
        (criterion, problems)
    }

    /// The expression text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// What the expression reads of each variable. Evaluating it on inputs
    /// that agree on these gives the same result.
    pub fn reads(&self) -> &Reads {
        &self.reads
    }

    /// True when the expression evaluates to `true`. Anything else (false, a
    /// non-boolean, or an evaluation error such as a missing field compared
    /// with a number) counts as not matching: a lead is never qualified by
    /// data it does not have.
    pub fn matches(&self, vars: &Vars) -> bool {
        // A hit takes the memo's lock once: its two atomic operations were
        // a third of this function when the key, the lookup and the check
        // that the memo is on each took it. The shard is this thread's,
        // so building the key under it keeps no other thread waiting.
        let key = {
            let mut memo = self.memo.lock();
            if memo.off {
                None
            } else {
                match memo_key(&self.binds, vars) {
                    Some(key) => match memo.get(&key) {
                        Some(hit) => return hit,
                        None => Some(key),
                    },
                    None => None,
                }
            }
        };
        let result = self.execute(vars);
        if let Some(key) = key {
            self.memo.lock().put(key, result);
        }
        result
    }

    /// Evaluates the program on `vars` (what [`Criterion::matches`] does
    /// when the memo has no result).
    fn execute(&self, vars: &Vars) -> bool {
        // Building the standard library environment is most of the cost of
        // a small evaluation; it never changes, so it is built once.
        static STDLIB: std::sync::OnceLock<std::sync::Arc<cel::Env>> = std::sync::OnceLock::new();
        let env = STDLIB.get_or_init(|| std::sync::Arc::new(stdlib()));
        let mut ctx = Context::with_env(env.clone());
        // Only what the expression reads: binding a variable converts the
        // whole value (the person with its custom fields, the account) into
        // CEL objects, which was most of the time of evaluating a playbook
        // for a new person. An expression cannot tell a variable it does
        // not mention from one that is unbound, nor, when it only selects
        // some fields of it (`person.title`; any other use reads it whole),
        // the full map from one with just those fields.
        for (name, value) in &vars.0 {
            match self.binds.iter().find(|(n, _)| n == name) {
                None => {}
                Some((_, Bind::Whole)) => ctx.add_variable_from_value(*name, value.clone()),
                Some((_, Bind::Fields(keys, _))) => {
                    ctx.add_variable_from_value(*name, only_fields(value, keys))
                }
            }
        }
        matches!(self.program.execute(&ctx), Ok(Value::Bool(true)))
    }
}

/// A criterion's results by the values it read.
///
/// CEL has no clock or randomness, so an expression's result is a function
/// of what is bound to the names it reads: two people with the same title
/// match `person.title.matches('(?i)vp')` alike. Playbooks mostly read a
/// few fields with few distinct values (title, country, industry, a score),
/// and evaluating (a CEL context, the bound maps, the interpreter) cost far
/// more than looking the values up: an import or a demo evaluates the same
/// handful of criteria for every one of a million people.
///
/// Only scalar values are keys (a variable read whole, or a list or map in
/// a read field, is evaluated every time). A criterion over a field that
/// never repeats (an e-mail address) would only fill the memo, so once a
/// full memo has seen fewer hits than misses it is turned off.
///
/// Each thread uses a shard of its own (threads are dealt shards in turn):
/// an import evaluates its people on every core, and one lock shared by
/// all of them was a third of [`Criterion::matches`], its cache line
/// moving between cores at every lookup. A shard learns the few classes
/// on its own.
#[derive(Default)]
struct Memo {
    /// Boxed: criteria sit in enums beside small variants.
    shards: Box<[Shard; MEMO_SHARDS]>,
}

/// Shards per memo: threads beyond this share them.
const MEMO_SHARDS: usize = 8;

/// One thread's part of a [`Memo`], on a cache line of its own (two, as
/// x86 fetches lines in pairs).
#[derive(Default)]
#[repr(align(128))]
struct Shard(std::sync::Mutex<MemoState>);

/// The shard of the current thread.
fn memo_shard() -> usize {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize =
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % MEMO_SHARDS;
    }
    SHARD.with(|s| *s)
}

#[derive(Default)]
struct MemoState {
    results: crate::fxhash::FxHashMap<Vec<Scalar>, bool>,
    hits: u64,
    misses: u64,
    off: bool,
}

/// Results a memo shard keeps before it starts over (or turns off).
const MEMO_CAPACITY: usize = 4096;

/// The memo key of `vars` for a criterion binding `binds`: per bound
/// variable in `binds` order, its read fields' values (or the value, when
/// it is not a map). `None` when a value is not a scalar.
fn memo_key(binds: &[(&'static str, Bind)], vars: &Vars) -> Option<Vec<Scalar>> {
    let len = binds
        .iter()
        .map(|(_, b)| match b {
            Bind::Fields(fields, _) => fields.len(),
            Bind::Whole => 1,
        })
        .sum();
    let mut key = Vec::with_capacity(len);
    for (name, bind) in binds {
        let Some((_, value)) = vars.0.iter().find(|(n, _)| n == name) else {
            key.push(Scalar::Unbound);
            continue;
        };
        match (bind, value) {
            (Bind::Fields(fields, cuts), Value::Map(m)) => {
                for (f, cuts) in fields.iter().zip(cuts) {
                    key.push(match m.map.get(f) {
                        Some(v) => match cuts.as_ref().and_then(|c| c.key(v)) {
                            Some(class) => class,
                            None => Scalar::of(v)?,
                        },
                        None => Scalar::Absent,
                    });
                }
            }
            (_, v) => key.push(Scalar::of(v)?),
        }
    }
    Some(key)
}

impl MemoState {
    /// The result remembered for `key`, counted as a hit or a miss.
    fn get(&mut self, key: &[Scalar]) -> Option<bool> {
        let hit = self.results.get(key).copied();
        match hit {
            Some(_) => self.hits += 1,
            None => self.misses += 1,
        }
        hit
    }

    /// Remembers `result` for `key`; a full memo starts over, or turns off
    /// when it answered fewer lookups than it missed.
    fn put(&mut self, key: Vec<Scalar>, result: bool) {
        if self.results.len() >= MEMO_CAPACITY {
            self.off = self.hits < self.misses;
            self.results.clear();
            self.hits = 0;
            self.misses = 0;
            if self.off {
                return;
            }
        }
        self.results.insert(key, result);
    }
}

impl Memo {
    /// The current thread's state; a panic while it was held left nothing
    /// half-done that a later lookup could misread (each step is one map
    /// operation).
    fn lock(&self) -> std::sync::MutexGuard<'_, MemoState> {
        self.shards[memo_shard()]
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A bound value in a [`Memo`] key. Floats compare by their bits: equal
/// bits are the same value, so the same result.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Scalar {
    /// The variable is not bound.
    Unbound,
    /// The map has no such field.
    Absent,
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(u64),
    Str(std::sync::Arc<String>),
    /// A number of a field only compared with numbers: its kind (int,
    /// uint, double) and [`Cuts::class`].
    Class(u8, u32),
}

impl Scalar {
    fn of(v: &Value) -> Option<Scalar> {
        Some(match v {
            Value::Null => Scalar::Null,
            Value::Bool(b) => Scalar::Bool(*b),
            Value::Int(i) => Scalar::Int(*i),
            Value::UInt(u) => Scalar::UInt(*u),
            Value::Float(f) => Scalar::Float(f.to_bits()),
            Value::String(s) => Scalar::Str(s.clone()),
            _ => return None,
        })
    }
}

/// CEL's standard library, with `matches` backed by [`regex_matches`].
fn stdlib() -> cel::Env {
    let mut env = cel::Env::stdlib();
    // The cel crate is built without its `regex` feature, so these names
    // are free; a clash would be a bug caught by every criterion test.
    #[allow(clippy::expect_used)]
    {
        cel::add_overload!(env, fn regex_matches: (CelString, CelString) -> Result<CelBool>,
            name = "matches", id = "matches")
        .expect("`matches(string, string)` is declared once");
        cel::add_member_overload!(env, fn regex_matches: (CelString, CelString) -> Result<CelBool>,
            name = "matches")
        .expect("`string.matches(string)` is declared once");
    }
    env
}

/// `re` compiled as `matches` compiles it. The memo's pattern classes
/// ([`Cuts`]) compile with this too, so a text's class is exactly what
/// `matches` would answer for it.
fn compile_pattern(re: &str) -> Result<regex::Regex, regex::Error> {
    regex::Regex::new(re)
}

/// `text.matches(re)` (RE2-style syntax of the regex crate, unanchored), as
/// the cel crate's own, but each pattern is compiled once per thread
/// instead of on every call: playbooks match titles and e-mails with a few
/// fixed patterns, and compiling them dominated evaluating criteria
/// (profiled on `tandem demo`: over a third of the time).
fn regex_matches(this: &CelString<'_>, re: &CelString<'_>) -> Result<CelBool, cel::ExecutionError> {
    /// Patterns kept per thread; past this the cache starts over (criteria
    /// hold a handful, so only odd data-built patterns would fill it).
    const MAX_PATTERNS: usize = 256;
    thread_local! {
        static COMPILED: std::cell::RefCell<HashMap<String, Result<regex::Regex, String>>> =
            std::cell::RefCell::new(HashMap::new());
    }
    let pattern = re.inner();
    let outcome = |compiled: &Result<regex::Regex, String>| match compiled {
        Ok(r) => Ok(CelBool::from(r.is_match(this.inner()))),
        Err(err) => Err(cel::ExecutionError::FunctionError {
            function: "matches".to_string(),
            message: format!("'{pattern}' not a valid regex:\n{err}"),
        }),
    };
    COMPILED.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(compiled) = cache.get(pattern) {
            return outcome(compiled);
        }
        if cache.len() >= MAX_PATTERNS {
            cache.clear();
        }
        let compiled = compile_pattern(pattern).map_err(|e| e.to_string());
        let result = outcome(&compiled);
        cache.insert(pattern.to_string(), compiled);
        result
    })
}

/// Values bound to variables for one evaluation.
#[derive(Clone, Debug, Default)]
pub struct Vars(Vec<(&'static str, Value)>);

impl Vars {
    /// An empty set of bindings.
    pub fn new() -> Self {
        Vars(Vec::new())
    }

    /// Binds `var` to a JSON-like value (objects become CEL maps).
    pub fn set(&mut self, var: Var, value: &serde_json::Value) -> &mut Self {
        self.set_cel(var, json_to_cel(value))
    }

    /// Binds `var` to a value already converted with [`json_to_cel`].
    pub fn set_cel(&mut self, var: Var, v: Value) -> &mut Self {
        if let Some(slot) = self.0.iter_mut().find(|(n, _)| *n == var.name()) {
            slot.1 = v;
        } else {
            self.0.push((var.name(), v));
        }
        self
    }
}

/// `value` reduced to the fields `keys` when it is a map (all an
/// expression that only selects those fields can see of it); anything else
/// unchanged.
fn only_fields(value: &Value, keys: &[cel::objects::Key]) -> Value {
    use cel::objects::Map;
    match value {
        Value::Map(m) => {
            let mut out = HashMap::with_capacity(keys.len());
            for k in keys {
                if let Some(v) = m.map.get(k) {
                    out.insert(k.clone(), v.clone());
                }
            }
            Value::Map(Map {
                map: std::sync::Arc::new(out),
            })
        }
        other => other.clone(),
    }
}

/// Converts JSON to CEL: integers stay integers (so `employees >= 500`
/// compares ints), other numbers become doubles.
pub fn json_to_cel(value: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match value {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        J::String(s) => Value::String(s.clone().into()),
        J::Array(items) => Value::List(items.iter().map(json_to_cel).collect::<Vec<_>>().into()),
        // Straight into CEL's map: going through a `HashMap<String, _>`
        // built every map twice (a tenth of evaluating a new person).
        J::Object(map) => object_to_cel(map),
    }
}

/// [`json_to_cel`] of a JSON object, from the map itself.
pub fn object_to_cel(map: &serde_json::Map<String, serde_json::Value>) -> Value {
    Value::Map(cel::objects::Map {
        map: std::sync::Arc::new(
            map.iter()
                .map(|(k, v)| {
                    (
                        cel::objects::Key::String(std::sync::Arc::new(k.clone())),
                        json_to_cel(v),
                    )
                })
                .collect(),
        ),
    })
}

fn line_col_to_offset(source: &str, line: isize, col: isize) -> usize {
    // cel reports 1-based lines and 1-based columns (in characters).
    let line = line.max(1) as usize;
    let col = col.max(1) as usize;
    let mut offset = 0;
    for (i, l) in source.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            return offset + (col - 1).min(l.chars().count());
        }
        offset += l.chars().count();
    }
    offset
}

fn check_refs(
    program: &Program,
    e: &IdedExpr,
    scope: Scope,
    bound: &mut Vec<String>,
    problems: &mut Vec<CriterionProblem>,
    reads: &mut Reads,
) {
    let offset = |id: u64| {
        program
            .source_info()
            .offset_for(id)
            .map(|(start, _)| start as usize)
            .unwrap_or(0)
    };
    match &e.expr {
        Expr::Ident(name) => {
            if bound.iter().any(|b| b == name) {
                return;
            }
            match Var::from_name(name) {
                Some(v) if scope.vars().contains(&v) => reads.whole(v),
                _ => problems.push(CriterionProblem {
                    offset: offset(e.id),
                    message: format!(
                        "unknown variable `{name}`; here you can use {}",
                        scope
                            .vars()
                            .iter()
                            .map(|v| format!("`{}`", v.name()))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    warning: false,
                }),
            }
        }
        Expr::Select(sel) => {
            // `person.title` / `has(person.custom.x)`: check the first field
            // below a known variable; anything under `custom` is allowed.
            if let Expr::Ident(root) = &sel.operand.expr {
                if !bound.iter().any(|b| b == root) {
                    if let Some(v) = Var::from_name(root) {
                        if scope.vars().contains(&v) && !v.fields().contains(&sel.field.as_str()) {
                            problems.push(CriterionProblem {
                                offset: offset(e.id),
                                message: format!(
                                    "unknown field `{}.{}`; known fields: {} (imported columns are under `{}.custom`)",
                                    root,
                                    sel.field,
                                    v.fields().join(", "),
                                    root
                                ),
                                warning: true,
                            });
                        }
                    }
                }
            }
            match &sel.operand.expr {
                Expr::Ident(root)
                    if !bound.iter().any(|b| b == root)
                        && Var::from_name(root).is_some_and(|v| scope.vars().contains(&v)) =>
                {
                    if let Some(v) = Var::from_name(root) {
                        reads.field(v, &sel.field);
                    }
                }
                _ => check_refs(program, &sel.operand, scope, bound, problems, reads),
            }
        }
        Expr::Call(call) => {
            if let Some(t) = &call.target {
                check_refs(program, t, scope, bound, problems, reads);
            }
            for a in &call.args {
                check_refs(program, a, scope, bound, problems, reads);
            }
        }
        Expr::Comprehension(c) => {
            check_refs(program, &c.iter_range, scope, bound, problems, reads);
            let n = bound.len();
            bound.push(c.iter_var.clone());
            if let Some(v2) = &c.iter_var2 {
                bound.push(v2.clone());
            }
            bound.push(c.accu_var.clone());
            for part in [&c.accu_init, &c.loop_cond, &c.loop_step, &c.result] {
                check_refs(program, part, scope, bound, problems, reads);
            }
            bound.truncate(n);
        }
        Expr::List(l) => {
            for el in &l.elements {
                check_refs(program, el, scope, bound, problems, reads);
            }
        }
        Expr::Map(m) => {
            for entry in &m.entries {
                if let EntryExpr::MapEntry(me) = &entry.expr {
                    check_refs(program, &me.key, scope, bound, problems, reads);
                    check_refs(program, &me.value, scope, bound, problems, reads);
                }
            }
        }
        Expr::Struct(s) => {
            for entry in &s.entries {
                match &entry.expr {
                    EntryExpr::MapEntry(me) => {
                        check_refs(program, &me.value, scope, bound, problems, reads);
                    }
                    EntryExpr::StructField(f) => {
                        check_refs(program, &f.value, scope, bound, problems, reads);
                    }
                }
            }
        }
        Expr::Literal(_) | Expr::Unspecified => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn matches_uses_regexes_member_and_global_and_rejects_bad_ones() {
        let person = |title: &str| {
            let mut v = Vars::new();
            v.set(Var::Person, &json!({ "title": title }));
            v
        };
        let (member, _) = Criterion::compile("person.title.matches('(?i)head|vp')", Scope::Profile);
        let (global, _) = Criterion::compile("matches(person.title, '^Data')", Scope::Profile);
        let (bad, _) = Criterion::compile("person.title.matches('(head')", Scope::Profile);
        let (member, global, bad) = (member.unwrap(), global.unwrap(), bad.unwrap());
        // Twice each: the second evaluation reads the compiled pattern.
        for _ in 0..2 {
            assert!(member.matches(&person("VP Sales")));
            assert!(member.matches(&person("Head of Data")));
            assert!(!member.matches(&person("Data Analyst")));
            assert!(global.matches(&person("Data Analyst")));
            assert!(!global.matches(&person("Head of Data")));
            // An invalid pattern is an evaluation error: never a match.
            assert!(!bad.matches(&person("(head")));
        }
        let mut ctx = Context::with_env(std::sync::Arc::new(stdlib()));
        ctx.add_variable_from_value("t", Value::String("x".to_string().into()));
        let err = Program::compile("t.matches('(x')")
            .unwrap()
            .execute(&ctx)
            .unwrap_err();
        assert!(format!("{err:?}").contains("not a valid regex"), "{err:?}");
    }

    /// Binding only what an expression reads (the variables it mentions,
    /// only the fields it selects) gives the result of binding everything.
    #[test]
    fn binding_what_is_read_matches_binding_everything() {
        let everything = |c: &Criterion, vars: &Vars| {
            let mut ctx = Context::with_env(std::sync::Arc::new(stdlib()));
            for (name, value) in &vars.0 {
                ctx.add_variable_from_value(*name, value.clone());
            }
            matches!(c.program.execute(&ctx), Ok(Value::Bool(true)))
        };
        let people = [
            json!({ "title": "VP Sales", "email": "a@acme.io", "country": "US",
                    "custom": { "plan": "pro", "seats": 12 } }),
            json!({ "title": null, "email": "b@gmail.com", "country": "DE", "custom": {} }),
            json!({ "country": "FR" }),
        ];
        let accounts = [
            json!({ "industry": "software", "employees": 500 }),
            json!(null),
        ];
        let exprs = [
            "true",
            "person.title.matches('(?i)vp|head')",
            "!person.email.matches('@(gmail|yahoo)\\\\.')",
            "person.country in ['US', 'DE'] && account.employees >= 200",
            "has(person.title) && person.title != null",
            "has(person.custom.plan) && person.custom.plan == 'pro'",
            "person.custom.seats > 10",
            "size(person) > 2",
            "person.custom.exists(k, k == 'seats')",
            "account == null || account.industry == 'software'",
            "score.fit >= 40 && score.engagement >= 30",
            "[person].exists(p, p.country == 'FR')",
        ];
        let mut checked = 0;
        for (src, scope) in exprs
            .iter()
            .flat_map(|e| [(*e, Scope::Profile), (*e, Scope::StageEntry)])
        {
            let (c, problems) = Criterion::compile(src, scope);
            let Some(c) = c else {
                // `score` is not in the profile scope.
                assert!(!problems.is_empty());
                continue;
            };
            for p in &people {
                for a in &accounts {
                    let mut vars = Vars::new();
                    vars.set(Var::Person, p)
                        .set(Var::Account, a)
                        .set(Var::Score, &json!({ "fit": 50, "engagement": 30 }));
                    assert_eq!(c.matches(&vars), everything(&c, &vars), "{src} on {p} {a}");
                    checked += 1;
                }
            }
        }
        assert!(checked >= 130, "{checked}");
    }

    /// Each of `exprs` compiled as a stage entry (all of them compile).
    fn stage_entries(exprs: &[&str]) -> Vec<Criterion> {
        exprs
            .iter()
            .map(|e| match Criterion::compile(e, Scope::StageEntry) {
                (Some(c), _) => c,
                (None, problems) => panic!("{e}: {problems:?}"),
            })
            .collect()
    }

    /// Each of `criteria` answers on `vars` as evaluating it does.
    fn answers_as_executed(
        criteria: &[Criterion],
        vars: &Vars,
    ) -> Result<(), proptest::test_runner::TestCaseError> {
        for crit in criteria {
            proptest::prop_assert_eq!(
                crit.matches(vars),
                executed(crit, vars),
                "{} on {:?}",
                crit.source(),
                vars
            );
        }
        Ok(())
    }

    /// Every criterion evaluated with [`Criterion::execute`] directly.
    fn executed(c: &Criterion, vars: &Vars) -> bool {
        c.execute(vars)
    }

    proptest::proptest! {
        /// Remembered results are the results: the same criteria over
        /// people and accounts whose fields repeat (so the memo answers
        /// most evaluations), with absent fields, nulls, ints and floats of
        /// equal value, and lists, which are never remembered.
        #[test]
        fn memo_answers_as_evaluating_does(
            rows in proptest::collection::vec(
                (0usize..4, 0usize..4, 0usize..5, 0usize..6, 0usize..4),
                1..120,
            )
        ) {
            let titles = [json!("VP Sales"), json!("Analyst"), json!(null), json!(["VP"])];
            let countries = [json!("US"), json!("DE"), json!("FR"), json!(null)];
            let employees = [json!(200), json!(200.0), json!(199), json!(null), json!("many")];
            let fits = [json!(40), json!(39.5), json!(40.0), json!(null), json!(39.9), json!(39.0)];
            let exprs = [
                "person.title.matches('(?i)vp|head')",
                "person.country in ['US', 'DE'] && account.employees >= 200",
                "has(person.title) && person.title != null",
                "account == null || account.employees == 200",
                "score.fit >= 40 && person.country == 'US'",
                "size(person) > 1",
                "has(person.title)",
                "person.title == 'VP Sales' && person.country == 'US'",
                "score.fit > 39.5",
            ];
            let criteria = stage_entries(&exprs);
            for (t, c, e, f, shape) in rows {
                let mut person = serde_json::Map::new();
                if shape != 0 {
                    person.insert("title".into(), titles[t].clone());
                }
                if shape != 1 {
                    person.insert("country".into(), countries[c].clone());
                }
                let account = if shape == 2 { json!(null) } else { json!({ "employees": employees[e] }) };
                let mut vars = Vars::new();
                vars.set(Var::Person, &serde_json::Value::Object(person))
                    .set(Var::Account, &account)
                    .set(Var::Score, &json!({ "fit": fits[f] }));
                for crit in &criteria {
                    proptest::prop_assert_eq!(crit.matches(&vars), executed(crit, &vars), "{}", crit.source());
                }
            }
        }
    }

    proptest::proptest! {
        /// A text field only tested with `matches` against literal
        /// patterns is remembered by which of them it matches, and those
        /// results are the results: texts over the patterns' letters, an
        /// invalid pattern, both call forms, a field also used otherwise
        /// (remembered by value), and values that are not texts.
        #[test]
        fn texts_tested_with_patterns_are_remembered_by_class(
            rows in proptest::collection::vec((text(), text(), 0i64..400), 1..150)
        ) {
            let exprs = [
                "!person.email.matches('@(gmail|yahoo|hotmail)\\\\.')",
                "person.email.matches('^a') && !matches(person.email, 'z$')",
                "person.title.matches('(?i)vp') || person.title.matches('(')",
                "person.title.matches('(?i)vp') && person.title.size() > 3",
                "person.email.matches('b') || account.employees >= 200",
                "person.title.matches('^$') || person.title == 'VP'",
            ];
            let criteria = stage_entries(&exprs);
            for (email, title, employees) in rows {
                let key = |k: &str| cel::objects::Key::String(std::sync::Arc::new(k.to_string()));
                let map = |pairs: Vec<(&str, Value)>| {
                    Value::Map(cel::objects::Map {
                        map: std::sync::Arc::new(
                            pairs.into_iter().map(|(k, v)| (key(k), v)).collect(),
                        ),
                    })
                };
                let mut person = vec![("title", title)];
                if !matches!(&email, Value::Bool(_)) {
                    // A bool stands for an absent field.
                    person.push(("email", email));
                }
                let mut vars = Vars::new();
                vars.set_cel(Var::Person, map(person))
                    .set_cel(Var::Account, map(vec![("employees", Value::Int(employees))]));
                answers_as_executed(&criteria, &vars)?;
            }
        }
    }

    /// A text over the letters of the patterns in
    /// `texts_tested_with_patterns_are_remembered_by_class`, or a value
    /// that is not a text (a bool: the field is absent).
    fn text() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        prop_oneof![
            8 => "[abzVPvp@.gmailyho]{0,10}".prop_map(|s| Value::String(std::sync::Arc::new(s))),
            1 => Just(Value::Null),
            1 => (0i64..3).prop_map(Value::Int),
            1 => Just(Value::Bool(false)),
        ]
    }

    /// `score` bound to a map of `fit` and `engagement` (CEL values, so
    /// uints and NaN too, which JSON does not have).
    fn score_vars(fit: Value, engagement: Value) -> Vars {
        let key = |k: &str| cel::objects::Key::String(std::sync::Arc::new(k.to_string()));
        let map = [(key("fit"), fit), (key("engagement"), engagement)]
            .into_iter()
            .collect();
        let mut vars = Vars::new();
        vars.set_cel(
            Var::Score,
            Value::Map(cel::objects::Map {
                map: std::sync::Arc::new(map),
            }),
        );
        vars
    }

    /// A number, or something that is not one, near the cuts of the
    /// expressions in `numbers_compared_with_numbers_are_remembered_by_class`.
    fn number() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        const EDGE: i64 = 1 << 53;
        prop_oneof![
            (-3i64..70).prop_map(Value::Int),
            (-6i64..140).prop_map(|h| Value::Float(h as f64 / 2.0)),
            (0u64..70).prop_map(Value::UInt),
            (EDGE - 2..EDGE + 3).prop_map(Value::Int),
            (EDGE - 2..EDGE + 3).prop_map(|i| Value::Float(i as f64)),
            (EDGE as u64 - 2..EDGE as u64 + 3).prop_map(Value::UInt),
            Just(Value::Float(f64::NAN)),
            Just(Value::Float(f64::INFINITY)),
            Just(Value::Int(i64::MIN)),
            Just(Value::Null),
            Just(Value::String(std::sync::Arc::new("40".into()))),
        ]
    }

    proptest::proptest! {
        /// A field only compared with numbers is remembered by where it
        /// falls among them, and those results are the results: ints,
        /// uints and doubles on and around the cuts, integers around 2^53
        /// (where `f64` stops holding every one), NaN, null and text.
        #[test]
        fn numbers_compared_with_numbers_are_remembered_by_class(
            rows in proptest::collection::vec((number(), number()), 1..150)
        ) {
            let exprs = [
                "score.fit >= 40 && score.engagement >= 30",
                "score.fit == 40 || 30.5 > score.engagement",
                "score.fit != 39 && score.engagement <= 30",
                "score.engagement == 9007199254740992 || score.fit < 0",
                "score.fit >= 9007199254740993",
                "score.fit > 1 && score.fit * 2 > 90",
                "score.engagement >= 30u && score.engagement <= 60.5",
            ];
            let criteria = stage_entries(&exprs);
            for (fit, engagement) in rows {
                let vars = score_vars(fit, engagement);
                answers_as_executed(&criteria, &vars)?;
            }
        }
    }

    /// The MQL rule over an engagement score that differs at every instant
    /// keeps a memo of a few classes, not one result per value; a field
    /// also used otherwise than in a comparison is remembered by value.
    #[test]
    fn a_score_compared_with_thresholds_is_evaluated_once_per_class() {
        let c = |src: &str| Criterion::compile(src, Scope::StageEntry).0.unwrap();
        let (mql, doubled) = (
            c("score.fit >= 40 && score.engagement >= 30"),
            c("score.fit >= 40 && score.engagement * 2.0 >= 60"),
        );
        let n = 3 * MEMO_CAPACITY;
        let mut matched = 0;
        for i in 0..n {
            let engagement = 60.0 * (i as f64 / n as f64);
            let vars = score_vars(Value::Int(40 + (i % 3) as i64), Value::Float(engagement));
            let m = mql.matches(&vars);
            assert_eq!(m, executed(&mql, &vars), "{i}");
            assert_eq!(m, engagement >= 30.0, "{i}");
            assert_eq!(doubled.matches(&vars), m, "{i}");
            matched += usize::from(m);
        }
        assert_eq!(matched, n / 2);
        let (m, d) = (mql.memo.lock(), doubled.memo.lock());
        // fit: equal to 40 or above; engagement: below 30, 30, above.
        assert!(
            !m.off && m.results.len() <= 6,
            "{} {}",
            m.off,
            m.results.len()
        );
        assert!(m.hits as usize >= n - 6, "{}", m.hits);
        assert!(
            d.off,
            "every engagement differs: the memo of `doubled` turned off"
        );
    }

    /// A criterion over values that repeat keeps its memo; one over a
    /// field that never repeats turns it off once it filled, unless it only
    /// tests the field with patterns; all keep answering as evaluating does.
    #[test]
    fn memo_stays_on_for_repeating_values_and_turns_off_for_unique_ones() {
        let (title, _) = Criterion::compile("person.title.matches('(?i)vp|head')", Scope::Profile);
        let (email, _) = Criterion::compile("!person.email.endsWith('@gmail.com')", Scope::Profile);
        let (pattern, _) =
            Criterion::compile("!person.email.matches('@gmail\\\\.')", Scope::Profile);
        let (title, email, pattern) = (title.unwrap(), email.unwrap(), pattern.unwrap());
        let n = 2 * MEMO_CAPACITY + 10;
        for i in 0..n {
            let title_of = ["VP Sales", "Analyst", "Head of Data"][i % 3];
            let mut vars = Vars::new();
            vars.set(
                Var::Person,
                &json!({
                    "title": title_of,
                    "email": format!("p{i}@{}", if i % 2 == 0 { "gmail.com" } else { "acme.io" }),
                }),
            );
            assert_eq!(title.matches(&vars), executed(&title, &vars), "{i}");
            assert_eq!(email.matches(&vars), executed(&email, &vars), "{i}");
            let m = pattern.matches(&vars);
            assert_eq!(m, executed(&pattern, &vars), "{i}");
            assert_eq!(m, i % 2 == 1, "{i}");
        }
        // Every e-mail differs, but it matches the pattern or not: two
        // results, kept.
        let p = pattern.memo.lock();
        assert!(
            !p.off && p.results.len() == 2,
            "{} {}",
            p.off,
            p.results.len()
        );
        assert!(p.hits as usize >= n - 2, "{}", p.hits);
        drop(p);
        let (t, e) = (title.memo.lock(), email.memo.lock());
        // Three titles, two classes: "VP Sales" and "Head of Data" both
        // match the pattern.
        assert!(
            !t.off && t.results.len() == 2,
            "{} {}",
            t.off,
            t.results.len()
        );
        assert!(t.hits as usize >= n - 2, "{}", t.hits);
        assert!(
            e.off && e.results.is_empty(),
            "{} {}",
            e.off,
            e.results.len()
        );
    }

    #[test]
    fn evaluates_against_bound_variables() {
        let (c, problems) = Criterion::compile(
            "account.industry in ['software', 'fintech'] && person.title.matches('(?i)vp|head')",
            Scope::Profile,
        );
        assert!(problems.is_empty(), "{problems:?}");
        let c = c.unwrap();
        let mut vars = Vars::new();
        vars.set(Var::Person, &json!({"title": "VP Sales"}))
            .set(Var::Account, &json!({"industry": "fintech"}));
        assert!(c.matches(&vars));
        vars.set(Var::Account, &json!({"industry": "retail"}));
        assert!(!c.matches(&vars));
    }

    #[test]
    fn missing_data_never_matches() {
        let (c, _) = Criterion::compile("account.employees >= 500", Scope::Profile);
        let c = c.unwrap();
        let mut vars = Vars::new();
        vars.set(Var::Account, &json!({"employees": null}));
        assert!(!c.matches(&vars));
        vars.set(Var::Account, &json!({"employees": 800}));
        assert!(c.matches(&vars));
    }

    #[test]
    fn custom_fields_are_open() {
        let (c, problems) = Criterion::compile("person.custom.plan == 'pro'", Scope::Profile);
        assert!(problems.is_empty());
        let mut vars = Vars::new();
        vars.set(Var::Person, &json!({"custom": {"plan": "pro"}}));
        assert!(c.unwrap().matches(&vars));
    }

    #[test]
    fn unknown_variable_is_an_error_with_its_offset() {
        let (c, problems) = Criterion::compile("score.fit > 10 && lead.x == 1", Scope::StageEntry);
        assert!(c.is_none());
        assert_eq!(problems.len(), 1);
        assert!(!problems[0].warning);
        assert_eq!(problems[0].offset, 18, "{problems:?}");
        assert!(problems[0].message.contains("`lead`"));
    }

    #[test]
    fn variable_out_of_scope_is_an_error() {
        let (_, problems) = Criterion::compile("score.fit > 10", Scope::Profile);
        assert_eq!(problems.len(), 1);
        assert!(!problems[0].warning);
    }

    #[test]
    fn unknown_field_is_a_warning() {
        let (c, problems) = Criterion::compile("person.titel == 'x'", Scope::Profile);
        assert!(c.is_some());
        assert_eq!(problems.len(), 1);
        assert!(problems[0].warning);
    }

    #[test]
    fn comprehension_variables_are_bound() {
        let (c, problems) =
            Criterion::compile("['a','b'].exists(x, x == person.country)", Scope::Profile);
        assert!(problems.is_empty(), "{problems:?}");
        assert!(c.is_some());
    }

    #[test]
    fn syntax_error_reports_the_column() {
        let (c, problems) = Criterion::compile("score.fit >= && true", Scope::StageEntry);
        assert!(c.is_none());
        assert!(!problems.is_empty());
        assert_eq!(problems[0].offset, 13, "{problems:?}");
    }

    #[test]
    fn reads_names_the_fields_an_expression_uses() {
        let reads = |src: &str, scope: Scope| {
            let (c, problems) = Criterion::compile(src, scope);
            assert!(problems.iter().all(|p| p.warning), "{problems:?}");
            let c = c.expect("compiles");
            (
                c.reads().of(Var::Person),
                c.reads().of(Var::Touch),
                c.reads().of(Var::Account),
            )
        };
        assert_eq!(
            reads(
                "touch.medium in ['cpc'] || touch.kind == 'event'",
                Scope::Channel
            ),
            (
                Read::Nothing,
                Read::Fields(vec!["medium", "kind"]),
                Read::Nothing
            )
        );
        // A bare variable, or a field tandem does not know, is the whole value.
        assert_eq!(reads("size(touch) > 0", Scope::Channel).1, Read::Whole);
        assert_eq!(reads("touch.nope == 1", Scope::Channel).1, Read::Whole);
        assert_eq!(
            reads(
                "has(person.custom.plan) && account.employees > 5",
                Scope::Profile
            ),
            (
                Read::Fields(vec!["custom"]),
                Read::Nothing,
                Read::Fields(vec!["employees"])
            )
        );
        // A comprehension's own variable named like one of ours is not ours.
        assert_eq!(
            reads("[1, 2].exists(person, person > 1)", Scope::Profile).0,
            Read::Nothing
        );
        assert_eq!(
            Read::Fields(vec!["a"]).union(Read::Fields(vec!["b", "a"])),
            Read::Fields(vec!["a", "b"])
        );
        assert_eq!(Read::Nothing.union(Read::Whole), Read::Whole);
    }
}
