//! MLflow's search syntax: the `filter_string` and `order_by` arguments of search-runs,
//! search-experiments, search-registered-models and search-model-versions.
//!
//! A filter is clauses joined by `AND` (there is no `OR`); each clause is an identifier, a
//! comparator and a constant, e.g. ``metrics.`f1 score` > 0.5 AND params.model = 'cnn'``.
//! One parser serves every endpoint: an [`Allowed`] says which identifiers and comparators that
//! endpoint accepts, and the ready constants [`RUNS`], [`EXPERIMENTS`], [`REGISTERED_MODELS`]
//! and [`MODEL_VERSIONS`] follow MLflow's rules. A rejected filter is an `Err(String)` whose
//! text names the problem; callers answer it as `INVALID_PARAMETER_VALUE`.
//!
//! Where MLflow's own stores disagree or are lax, this module takes the SQL reading: `LIKE`
//! matches `%` and `_` only (a backslash escapes the next character, as in PostgreSQL), a
//! quoted string may hold its own quote doubled (`'it''s'`), and a metric that is NaN fails
//! every comparison but `!=`.

use std::cmp::Ordering;
use std::fmt;

/// What a clause or an ordering looks at on a searched entity.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    /// A built-in attribute (`status`, `start_time`, `name`...), aliases already resolved.
    Attribute(String),
    /// A metric's latest value, by key.
    Metric(String),
    /// A parameter's value, by key.
    Param(String),
    /// A tag's value, by key.
    Tag(String),
    /// A property of the run's input datasets: `name`, `digest` or `context`.
    Dataset(String),
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, key) = match self {
            Field::Attribute(k) => ("attribute", k),
            Field::Metric(k) => ("metric", k),
            Field::Param(k) => ("param", k),
            Field::Tag(k) => ("tag", k),
            Field::Dataset(k) => ("dataset", k),
        };
        write!(f, "{kind} '{key}'")
    }
}

/// A field's value on an entity, or a constant in a filter.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A number: metrics, times, version numbers.
    Num(f64),
    /// A string: params, tags, names, statuses.
    Str(String),
}

/// An entity that filters and orderings can be evaluated against.
pub trait Searchable {
    /// The field's value, or `None` when the entity does not have it.
    fn value(&self, field: &Field) -> Option<Value>;

    /// Every value of a field that can hold several (a run's datasets); a clause matches when
    /// any of them does. Defaults to [`Searchable::value`].
    fn values(&self, field: &Field) -> Vec<Value> {
        self.value(field).into_iter().collect()
    }
}

/// A set of the keyed entity kinds an endpoint knows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Kinds {
    /// `metrics.<key>`.
    pub metrics: bool,
    /// `params.<key>`.
    pub params: bool,
    /// `tags.<key>`.
    pub tags: bool,
    /// `datasets.<name|digest|context>`.
    pub datasets: bool,
}

/// What one search endpoint accepts in its filter and order_by.
#[derive(Clone, Copy, Debug)]
pub struct Allowed {
    /// Attribute keys a filter may name (canonical names, after [`Allowed::aliases`]).
    pub attributes: &'static [&'static str],
    /// Attributes compared as numbers; all others are strings.
    pub numeric: &'static [&'static str],
    /// String attributes that accept `IN (...)` and `NOT IN (...)`.
    pub list_attributes: &'static [&'static str],
    /// Attribute keys an order_by may name.
    pub order_attributes: &'static [&'static str],
    /// Alternative attribute names and the canonical name each stands for.
    pub aliases: &'static [(&'static str, &'static str)],
    /// Keyed kinds a filter or order_by may name besides attributes.
    pub entities: Kinds,
    /// Kinds that accept `IS NULL` and `IS NOT NULL`.
    pub null_checks: Kinds,
    /// Tags whose absence reads as the given value (MLflow's `mlflow.prompt.is_prompt`).
    pub absent_tags: &'static [(&'static str, &'static str)],
}

const RUN_STRING_ATTRIBUTES: &[&str] = &[
    "run_id",
    "run_name",
    "status",
    "user_id",
    "artifact_uri",
    "lifecycle_stage",
];

const RUN_ATTRIBUTES: &[&str] = &[
    "run_id",
    "run_name",
    "status",
    "user_id",
    "artifact_uri",
    "lifecycle_stage",
    "start_time",
    "end_time",
];

/// Models are not prompts unless tagged so; MLflow clients filter on this tag.
const PROMPT_TAG_DEFAULT: &[(&str, &str)] = &[("mlflow.prompt.is_prompt", "false")];

/// Search-runs: metrics, params, tags, datasets and the run's attributes.
pub const RUNS: Allowed = Allowed {
    attributes: RUN_ATTRIBUTES,
    numeric: &["start_time", "end_time"],
    list_attributes: RUN_STRING_ATTRIBUTES,
    order_attributes: RUN_ATTRIBUTES,
    aliases: &[
        ("created", "start_time"),
        ("Created", "start_time"),
        ("run name", "run_name"),
        ("Run name", "run_name"),
        ("Run Name", "run_name"),
    ],
    entities: Kinds {
        metrics: true,
        params: true,
        tags: true,
        datasets: true,
    },
    null_checks: Kinds {
        metrics: false,
        params: true,
        tags: true,
        datasets: false,
    },
    absent_tags: &[],
};

const TAGS_ONLY: Kinds = Kinds {
    metrics: false,
    params: false,
    tags: true,
    datasets: false,
};

/// Search-experiments: name, times and tags.
pub const EXPERIMENTS: Allowed = Allowed {
    attributes: &["name", "creation_time", "last_update_time"],
    numeric: &["creation_time", "last_update_time", "experiment_id"],
    list_attributes: &["name"],
    order_attributes: &["name", "experiment_id", "creation_time", "last_update_time"],
    aliases: &[],
    entities: TAGS_ONLY,
    null_checks: TAGS_ONLY,
    absent_tags: &[],
};

/// Search-registered-models: name and tags; ordered by name or timestamps.
pub const REGISTERED_MODELS: Allowed = Allowed {
    attributes: &["name"],
    numeric: &["creation_timestamp", "last_updated_timestamp"],
    list_attributes: &["name"],
    order_attributes: &["name", "creation_timestamp", "last_updated_timestamp"],
    aliases: &[("timestamp", "creation_timestamp")],
    entities: TAGS_ONLY,
    null_checks: TAGS_ONLY,
    absent_tags: PROMPT_TAG_DEFAULT,
};

/// Search-model-versions: model name, version number, source run, source path and tags.
pub const MODEL_VERSIONS: Allowed = Allowed {
    attributes: &["name", "version_number", "run_id", "source_path"],
    numeric: &[
        "version_number",
        "creation_timestamp",
        "last_updated_timestamp",
    ],
    list_attributes: &["name", "run_id"],
    order_attributes: &[
        "name",
        "version_number",
        "creation_timestamp",
        "last_updated_timestamp",
    ],
    aliases: &[],
    entities: TAGS_ONLY,
    null_checks: TAGS_ONLY,
    absent_tags: PROMPT_TAG_DEFAULT,
};

/// How a clause compares its field with its constant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Comparator {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `LIKE`, case-sensitive pattern.
    Like,
    /// `ILIKE`, case-insensitive pattern.
    ILike,
    /// `IN (...)`
    In,
    /// `NOT IN (...)`
    NotIn,
    /// `IS NULL`: the field is absent.
    IsNull,
    /// `IS NOT NULL`: the field is present.
    IsNotNull,
}

impl fmt::Display for Comparator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Comparator::Eq => "=",
            Comparator::Ne => "!=",
            Comparator::Lt => "<",
            Comparator::Le => "<=",
            Comparator::Gt => ">",
            Comparator::Ge => ">=",
            Comparator::Like => "LIKE",
            Comparator::ILike => "ILIKE",
            Comparator::In => "IN",
            Comparator::NotIn => "NOT IN",
            Comparator::IsNull => "IS NULL",
            Comparator::IsNotNull => "IS NOT NULL",
        })
    }
}

const NUMERIC_COMPARATORS: &[Comparator] = &[
    Comparator::Eq,
    Comparator::Ne,
    Comparator::Lt,
    Comparator::Le,
    Comparator::Gt,
    Comparator::Ge,
];

const STRING_COMPARATORS: &[Comparator] = &[
    Comparator::Eq,
    Comparator::Ne,
    Comparator::Like,
    Comparator::ILike,
];

const LIST_COMPARATORS: &[Comparator] = &[Comparator::In, Comparator::NotIn];

const NULL_COMPARATORS: &[Comparator] = &[Comparator::IsNull, Comparator::IsNotNull];

/// The constant side of a clause.
#[derive(Clone, Debug, PartialEq)]
pub enum Operand {
    /// One number or string.
    Value(Value),
    /// The quoted strings of `IN (...)` / `NOT IN (...)`.
    List(Vec<String>),
    /// Nothing: `IS NULL` and `IS NOT NULL`.
    None,
}

/// One `identifier comparator constant` clause of a filter.
#[derive(Clone, Debug, PartialEq)]
pub struct Clause {
    /// What the clause looks at.
    pub field: Field,
    /// How it compares.
    pub comparator: Comparator,
    /// What it compares with.
    pub operand: Operand,
    /// The value an absent field reads as, if the endpoint gives it one.
    absent_as: Option<&'static str>,
}

impl Clause {
    /// Whether the entity satisfies this clause; a comparison on an absent field is false.
    pub fn matches(&self, item: &impl Searchable) -> bool {
        let mut values = item.values(&self.field);
        match self.comparator {
            Comparator::IsNull => return values.is_empty(),
            Comparator::IsNotNull => return !values.is_empty(),
            _ => {}
        }
        if values.is_empty()
            && let Some(default) = self.absent_as
        {
            values.push(Value::Str(default.to_string()));
        }
        values.iter().any(|v| self.holds_for(v))
    }

    fn holds_for(&self, lhs: &Value) -> bool {
        match &self.operand {
            Operand::Value(Value::Num(rhs)) => {
                as_number(lhs).is_some_and(|x| compare_numbers(x, self.comparator, *rhs))
            }
            Operand::Value(Value::Str(rhs)) => compare_strings(&as_text(lhs), self.comparator, rhs),
            Operand::List(list) => {
                let text = as_text(lhs);
                let found = list.contains(&text);
                match self.comparator {
                    Comparator::In => found,
                    Comparator::NotIn => !found,
                    _ => false,
                }
            }
            Operand::None => false,
        }
    }
}

fn as_number(value: &Value) -> Option<f64> {
    match value {
        Value::Num(x) => Some(*x),
        Value::Str(s) => s.trim().parse().ok(),
    }
}

fn as_text(value: &Value) -> String {
    match value {
        Value::Str(s) => s.clone(),
        // Whole numbers print without a fraction so `version_number IN ('3')` finds 3.
        Value::Num(x) if x.fract() == 0.0 && x.abs() < 1e15 => format!("{x:.0}"),
        Value::Num(x) => x.to_string(),
    }
}

fn compare_numbers(x: f64, comparator: Comparator, rhs: f64) -> bool {
    match comparator {
        Comparator::Eq => x == rhs,
        Comparator::Ne => x != rhs,
        Comparator::Lt => x < rhs,
        Comparator::Le => x <= rhs,
        Comparator::Gt => x > rhs,
        Comparator::Ge => x >= rhs,
        _ => false,
    }
}

fn compare_strings(text: &str, comparator: Comparator, rhs: &str) -> bool {
    match comparator {
        Comparator::Eq => text == rhs,
        Comparator::Ne => text != rhs,
        Comparator::Lt => text < rhs,
        Comparator::Le => text <= rhs,
        Comparator::Gt => text > rhs,
        Comparator::Ge => text >= rhs,
        Comparator::Like => like(text, rhs, false),
        Comparator::ILike => like(text, rhs, true),
        _ => false,
    }
}

/// One element of a compiled LIKE pattern.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Piece {
    /// `%`: any run of characters, possibly empty.
    Any,
    /// `_`: exactly one character.
    One,
    /// Any other character, or one escaped by a backslash.
    Char(char),
}

fn compile_like(pattern: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        pieces.push(match c {
            '%' => Piece::Any,
            '_' => Piece::One,
            '\\' => Piece::Char(chars.next().unwrap_or('\\')),
            other => Piece::Char(other),
        });
    }
    pieces
}

fn same_char(a: char, b: char, fold_case: bool) -> bool {
    a == b || (fold_case && a.to_lowercase().eq(b.to_lowercase()))
}

/// SQL `LIKE` over the whole text: `%` any run, `_` one character, everything else literal.
fn like(text: &str, pattern: &str, fold_case: bool) -> bool {
    let pieces = compile_like(pattern);
    let text: Vec<char> = text.chars().collect();
    let (mut t, mut p) = (0, 0);
    // Where to resume after the latest `%`: the piece after it, and the text it has eaten to.
    let mut resume: Option<(usize, usize)> = None;
    while t < text.len() {
        match pieces.get(p) {
            Some(Piece::Any) => {
                resume = Some((p + 1, t));
                p += 1;
                continue;
            }
            Some(Piece::One) => {
                p += 1;
                t += 1;
                continue;
            }
            Some(Piece::Char(c)) if same_char(*c, text[t], fold_case) => {
                p += 1;
                t += 1;
                continue;
            }
            _ => {}
        }
        let Some((after_any, eaten)) = resume else {
            return false;
        };
        p = after_any;
        t = eaten + 1;
        resume = Some((after_any, eaten + 1));
    }
    pieces[p..].iter().all(|piece| *piece == Piece::Any)
}

/// A parsed filter: every clause must hold. The empty filter matches everything.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Filter {
    clauses: Vec<Clause>,
}

impl Filter {
    /// Whether the entity satisfies every clause.
    pub fn matches(&self, item: &impl Searchable) -> bool {
        self.clauses.iter().all(|clause| clause.matches(item))
    }

    /// The clauses, in the order written.
    pub fn clauses(&self) -> &[Clause] {
        &self.clauses
    }

    /// Whether the filter has no clauses and so matches everything.
    pub fn is_empty(&self) -> bool {
        self.clauses.is_empty()
    }

    /// The `field = constant` clauses, for a caller that narrows its query before matching.
    pub fn equalities(&self) -> impl Iterator<Item = (&Field, &Value)> {
        self.clauses
            .iter()
            .filter_map(|clause| match (&clause.comparator, &clause.operand) {
                (Comparator::Eq, Operand::Value(value)) => Some((&clause.field, value)),
                _ => None,
            })
    }

    /// The string a clause `<attribute> = '...'` requires, if the filter has one.
    pub fn attribute_eq(&self, attribute: &str) -> Option<&str> {
        self.equalities()
            .find_map(|(field, value)| match (field, value) {
                (Field::Attribute(key), Value::Str(s)) if key == attribute => Some(s.as_str()),
                _ => None,
            })
    }
}

/// Parses a filter string; an empty or blank string matches everything.
///
/// # Errors
///
/// A message naming the first problem: bad syntax, an identifier or comparator the endpoint
/// does not accept, or a constant of the wrong type.
pub fn parse_filter(filter: &str, allowed: &Allowed) -> Result<Filter, String> {
    let mut cursor = Cursor::new(filter);
    let mut clauses = Vec::new();
    cursor.skip_whitespace();
    if cursor.at_end() {
        return Ok(Filter { clauses });
    }
    loop {
        clauses.push(parse_clause(&mut cursor, allowed)?);
        cursor.skip_whitespace();
        if cursor.at_end() {
            return Ok(Filter { clauses });
        }
        if !cursor.eat_keyword("AND") {
            return Err(format!(
                "Invalid clause(s) in filter string: '{}'. Clauses must be joined by AND; \
                 OR is not supported",
                cursor.rest()
            ));
        }
        cursor.skip_whitespace();
    }
}

fn parse_clause(cursor: &mut Cursor<'_>, allowed: &Allowed) -> Result<Clause, String> {
    let start = cursor.pos;
    let ident = parse_identifier(cursor)?;
    let field = resolve_field(&ident, allowed, Use::Filter)?;
    cursor.skip_whitespace();
    let comparator = parse_comparator(cursor)?;
    cursor.skip_whitespace();
    let operand = parse_operand(cursor, comparator)?;
    check_comparator(&field, comparator, allowed)?;
    let operand = check_operand(&field, comparator, operand, allowed)
        .map_err(|problem| format!("{problem} in clause '{}'", cursor.text_from(start).trim()))?;
    let absent_as = match &field {
        Field::Tag(key) => allowed
            .absent_tags
            .iter()
            .find(|(tag, _)| tag == key)
            .map(|(_, value)| *value),
        _ => None,
    };
    Ok(Clause {
        field,
        comparator,
        operand,
        absent_as,
    })
}

/// An identifier as written: an optional entity type before the first dot, and the key.
struct Identifier {
    entity: Option<String>,
    key: String,
}

fn parse_identifier(cursor: &mut Cursor<'_>) -> Result<Identifier, String> {
    let first = parse_segment(cursor, false)?;
    if cursor.peek() != Some('.') {
        return Ok(Identifier {
            entity: None,
            key: first,
        });
    }
    cursor.bump();
    let key = parse_segment(cursor, true)?;
    Ok(Identifier {
        entity: Some(first),
        key,
    })
}

/// A quoted name (backticks or double quotes) or a bare word; keys may hold dots.
fn parse_segment(cursor: &mut Cursor<'_>, dots: bool) -> Result<String, String> {
    match cursor.peek() {
        Some(quote @ ('`' | '"')) => cursor.quoted(quote),
        _ => {
            let word = cursor.take_while(|c| c.is_alphanumeric() || c == '_' || (dots && c == '.'));
            if word.is_empty() {
                Err(format!(
                    "Expected an identifier at {}, such as 'attribute.<key>', 'metric.<key>', \
                     'param.<key>', 'tag.<key>' or 'dataset.<key>'",
                    cursor.here()
                ))
            } else {
                Ok(word.to_string())
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Use {
    Filter,
    Order,
}

fn resolve_field(ident: &Identifier, allowed: &Allowed, usage: Use) -> Result<Field, String> {
    let Some(entity) = &ident.entity else {
        return resolve_attribute(&ident.key, allowed, usage);
    };
    let key = ident.key.clone();
    let (field, permitted) = match entity.to_ascii_lowercase().as_str() {
        "attribute" | "attributes" | "attr" | "run" => {
            return resolve_attribute(&ident.key, allowed, usage);
        }
        "metric" | "metrics" => (Field::Metric(key), allowed.entities.metrics),
        "param" | "params" | "parameter" | "parameters" => {
            (Field::Param(key), allowed.entities.params)
        }
        "tag" | "tags" => (Field::Tag(key), allowed.entities.tags),
        "dataset" | "datasets" => (Field::Dataset(key), allowed.entities.datasets),
        _ => (Field::Attribute(key), false),
    };
    if !permitted || (usage == Use::Order && matches!(field, Field::Dataset(_))) {
        return Err(format!(
            "Invalid entity type '{entity}'. Valid entity types are {}",
            entity_names(allowed, usage)
        ));
    }
    if let Field::Dataset(key) = &field
        && !DATASET_KEYS.contains(&key.as_str())
    {
        return Err(format!(
            "Invalid dataset key '{key}' specified. Valid keys are {}",
            quoted_list(DATASET_KEYS)
        ));
    }
    Ok(field)
}

const DATASET_KEYS: &[&str] = &["name", "digest", "context"];

fn resolve_attribute(key: &str, allowed: &Allowed, usage: Use) -> Result<Field, String> {
    let canonical = allowed
        .aliases
        .iter()
        .find(|(alias, _)| *alias == key)
        .map_or(key, |(_, name)| *name);
    let (valid, what) = match usage {
        Use::Filter => (allowed.attributes, "attribute key"),
        Use::Order => (allowed.order_attributes, "order_by attribute key"),
    };
    if valid.contains(&canonical) {
        Ok(Field::Attribute(canonical.to_string()))
    } else {
        Err(format!(
            "Invalid {what} '{key}' specified. Valid keys are {}",
            quoted_list(valid)
        ))
    }
}

fn entity_names(allowed: &Allowed, usage: Use) -> String {
    let kinds = allowed.entities;
    let mut names = vec!["attribute"];
    for (on, name) in [
        (kinds.metrics, "metric"),
        (kinds.params, "param"),
        (kinds.tags, "tag"),
        (kinds.datasets && usage == Use::Filter, "dataset"),
    ] {
        if on {
            names.push(name);
        }
    }
    quoted_list(&names)
}

fn quoted_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|item| format!("'{item}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn parse_comparator(cursor: &mut Cursor<'_>) -> Result<Comparator, String> {
    for (symbol, comparator) in [
        ("!=", Some(Comparator::Ne)),
        ("<=", Some(Comparator::Le)),
        (">=", Some(Comparator::Ge)),
        ("<>", None),
        ("==", None),
        ("=", Some(Comparator::Eq)),
        ("<", Some(Comparator::Lt)),
        (">", Some(Comparator::Gt)),
    ] {
        if cursor.eat(symbol) {
            return comparator
                .ok_or_else(|| format!("Invalid comparator '{symbol}'. Use '=' or '!='"));
        }
    }
    if cursor.eat_keyword("LIKE") {
        return Ok(Comparator::Like);
    }
    if cursor.eat_keyword("ILIKE") {
        return Ok(Comparator::ILike);
    }
    if cursor.eat_keyword("IN") {
        return Ok(Comparator::In);
    }
    if cursor.eat_keyword("NOT") {
        cursor.skip_whitespace();
        if cursor.eat_keyword("IN") {
            return Ok(Comparator::NotIn);
        }
        return Err(format!(
            "Invalid comparator 'NOT {}'. Only NOT IN is supported",
            cursor.word()
        ));
    }
    if cursor.eat_keyword("IS") {
        return parse_null_check(cursor);
    }
    Err(format!(
        "Expected a comparator (=, !=, <, <=, >, >=, LIKE, ILIKE, IN, NOT IN, IS NULL, \
         IS NOT NULL) at {}",
        cursor.here()
    ))
}

fn parse_null_check(cursor: &mut Cursor<'_>) -> Result<Comparator, String> {
    cursor.skip_whitespace();
    let negated = cursor.eat_keyword("NOT");
    cursor.skip_whitespace();
    if !cursor.eat_keyword("NULL") {
        return Err(format!(
            "Expected IS NULL or IS NOT NULL, found 'IS {}'",
            cursor.rest()
        ));
    }
    Ok(if negated {
        Comparator::IsNotNull
    } else {
        Comparator::IsNull
    })
}

fn parse_operand(cursor: &mut Cursor<'_>, comparator: Comparator) -> Result<Operand, String> {
    match comparator {
        Comparator::IsNull | Comparator::IsNotNull => return Ok(Operand::None),
        Comparator::In | Comparator::NotIn => return parse_list(cursor, comparator),
        _ => {}
    }
    match cursor.peek() {
        Some(quote @ ('\'' | '"')) => Ok(Operand::Value(Value::Str(cursor.quoted(quote)?))),
        Some(c) if c.is_ascii_digit() || matches!(c, '-' | '+' | '.') => {
            Ok(Operand::Value(Value::Num(cursor.number()?)))
        }
        Some('(') => Err(format!(
            "A parenthesised list is only valid after IN or NOT IN, not after '{comparator}'"
        )),
        _ => Err(format!(
            "Expected a quoted string or a number after '{comparator}', found {}",
            cursor.here()
        )),
    }
}

fn parse_list(cursor: &mut Cursor<'_>, comparator: Comparator) -> Result<Operand, String> {
    if !cursor.eat("(") {
        return Err(format!(
            "Expected a parenthesised list of quoted strings after '{comparator}', found {}",
            cursor.here()
        ));
    }
    let mut items = Vec::new();
    loop {
        cursor.skip_whitespace();
        match cursor.peek() {
            Some(quote @ ('\'' | '"')) => items.push(cursor.quoted(quote)?),
            Some(')') if items.is_empty() => {
                return Err(format!(
                    "Expected a non-empty list of quoted strings after '{comparator}'"
                ));
            }
            _ => {
                return Err(format!(
                    "Expected a list of quoted strings after '{comparator}', found {}",
                    cursor.here()
                ));
            }
        }
        cursor.skip_whitespace();
        if cursor.eat(")") {
            return Ok(Operand::List(items));
        }
        if !cursor.eat(",") {
            return Err(format!(
                "Expected ',' or ')' in the list after '{comparator}', found {}",
                cursor.here()
            ));
        }
    }
}

fn is_numeric(field: &Field, allowed: &Allowed) -> bool {
    match field {
        Field::Metric(_) => true,
        Field::Attribute(key) => allowed.numeric.contains(&key.as_str()),
        _ => false,
    }
}

fn valid_comparators(field: &Field, allowed: &Allowed) -> Vec<Comparator> {
    let mut valid = if is_numeric(field, allowed) {
        NUMERIC_COMPARATORS.to_vec()
    } else {
        STRING_COMPARATORS.to_vec()
    };
    let (lists, nulls) = match field {
        Field::Metric(_) => (false, allowed.null_checks.metrics),
        Field::Param(_) => (true, allowed.null_checks.params),
        Field::Tag(_) => (true, allowed.null_checks.tags),
        Field::Dataset(_) => (true, allowed.null_checks.datasets),
        Field::Attribute(key) => (allowed.list_attributes.contains(&key.as_str()), false),
    };
    if lists {
        valid.extend_from_slice(LIST_COMPARATORS);
    }
    if nulls {
        valid.extend_from_slice(NULL_COMPARATORS);
    }
    valid
}

fn check_comparator(
    field: &Field,
    comparator: Comparator,
    allowed: &Allowed,
) -> Result<(), String> {
    let valid = valid_comparators(field, allowed);
    if valid.contains(&comparator) {
        return Ok(());
    }
    let names: Vec<String> = valid.iter().map(ToString::to_string).collect();
    Err(format!(
        "Invalid comparator '{comparator}' for {field}; valid comparators are {}",
        names.join(", ")
    ))
}

fn check_operand(
    field: &Field,
    comparator: Comparator,
    operand: Operand,
    allowed: &Allowed,
) -> Result<Operand, String> {
    let numeric = is_numeric(field, allowed);
    match operand {
        Operand::Value(Value::Str(text)) if numeric => {
            // A quoted number is fine for a numeric attribute (MLflow's model versions take
            // `version_number = '3'`), never for a metric.
            match (field, text.trim().parse::<f64>()) {
                (Field::Attribute(_), Ok(number)) => Ok(Operand::Value(Value::Num(number))),
                _ => Err(format!(
                    "Expected a numeric value for {field}, found '{text}' after '{comparator}'"
                )),
            }
        }
        Operand::Value(Value::Num(number)) if !numeric => Err(format!(
            "Expected a quoted string value for {field} (e.g. 'my-value'), found {number}"
        )),
        other => Ok(other),
    }
}

/// One `order_by` entry: a field and a direction.
#[derive(Clone, Debug, PartialEq)]
pub struct OrderBy {
    /// What to order by.
    pub field: Field,
    /// `ASC` (the default) or `DESC`.
    pub ascending: bool,
}

/// Parses `order_by` entries such as `metrics.loss DESC`, `attributes.start_time` or `name ASC`.
///
/// # Errors
///
/// A message naming the first entry that does not parse or names a field the endpoint cannot
/// order by.
pub fn parse_order_by(items: &[String], allowed: &Allowed) -> Result<Vec<OrderBy>, String> {
    items
        .iter()
        .map(|item| parse_order_item(item, allowed))
        .collect()
}

fn parse_order_item(item: &str, allowed: &Allowed) -> Result<OrderBy, String> {
    let unparsable = || format!("Invalid order_by clause '{item}'. Could not be parsed.");
    let mut cursor = Cursor::new(item);
    cursor.skip_whitespace();
    if cursor.at_end() {
        return Err(unparsable());
    }
    let ident = parse_identifier(&mut cursor).map_err(|_| unparsable())?;
    let field = resolve_field(&ident, allowed, Use::Order)?;
    cursor.skip_whitespace();
    let ascending = if cursor.eat_keyword("DESC") {
        false
    } else {
        cursor.eat_keyword("ASC") || cursor.at_end()
    };
    cursor.skip_whitespace();
    if !cursor.at_end() {
        return Err(format!(
            "Invalid ordering key in order_by clause '{item}'. Use ASC or DESC."
        ));
    }
    Ok(OrderBy { field, ascending })
}

/// Compares two entities by the orderings in turn. Absent values sort after NaN, and NaN after
/// every number, whichever the direction, as MLflow's stores place them; numbers sort before
/// strings. The caller appends its own tie-breakers.
pub fn compare(order: &[OrderBy], a: &impl Searchable, b: &impl Searchable) -> Ordering {
    order
        .iter()
        .map(|o| compare_values(a.value(&o.field), b.value(&o.field), o.ascending))
        .find(|ordering| ordering.is_ne())
        .unwrap_or(Ordering::Equal)
}

/// 0 for a present number or string, 1 for NaN, 2 for absent.
fn placement(value: Option<&Value>) -> u8 {
    match value {
        None => 2,
        Some(Value::Num(x)) if x.is_nan() => 1,
        Some(_) => 0,
    }
}

fn compare_values(a: Option<Value>, b: Option<Value>, ascending: bool) -> Ordering {
    let by_placement = placement(a.as_ref()).cmp(&placement(b.as_ref()));
    if by_placement.is_ne() {
        return by_placement;
    }
    let ordering = match (a, b) {
        (Some(Value::Num(x)), Some(Value::Num(y))) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        (Some(Value::Str(x)), Some(Value::Str(y))) => x.cmp(&y),
        (Some(Value::Num(_)), Some(Value::Str(_))) => Ordering::Less,
        (Some(Value::Str(_)), Some(Value::Num(_))) => Ordering::Greater,
        _ => Ordering::Equal,
    };
    if ascending {
        ordering
    } else {
        ordering.reverse()
    }
}

/// A position in the text being parsed.
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Self {
        Cursor { text, pos: 0 }
    }

    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    /// Where the cursor stands, for messages: the rest of the text quoted, or the end.
    fn here(&self) -> String {
        if self.at_end() {
            "the end of the text".to_string()
        } else {
            format!("'{}'", self.rest())
        }
    }

    fn text_from(&self, start: usize) -> &'a str {
        &self.text[start..self.pos]
    }

    fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn skip_whitespace(&mut self) {
        self.take_while(char::is_whitespace);
    }

    fn take_while(&mut self, mut keep: impl FnMut(char) -> bool) -> &'a str {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if !keep(c) {
                break;
            }
            self.pos += c.len_utf8();
        }
        &self.text[start..self.pos]
    }

    fn eat(&mut self, symbol: &str) -> bool {
        if self.rest().starts_with(symbol) {
            self.pos += symbol.len();
            true
        } else {
            false
        }
    }

    /// The word at the cursor, without consuming it.
    fn word(&self) -> &'a str {
        let rest = self.rest();
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        &rest[..end]
    }

    /// Consumes `keyword` (any case) when it stands as a whole word at the cursor.
    fn eat_keyword(&mut self, keyword: &str) -> bool {
        let word = self.word();
        if word.eq_ignore_ascii_case(keyword) {
            self.pos += word.len();
            true
        } else {
            false
        }
    }

    /// A string in `quote`s; the quote doubled, or after a backslash, stands for itself.
    fn quoted(&mut self, quote: char) -> Result<String, String> {
        let start = self.pos;
        self.bump();
        let mut out = String::new();
        loop {
            match self.bump() {
                None => {
                    return Err(format!(
                        "Unterminated quoted string starting at '{}'",
                        &self.text[start..]
                    ));
                }
                Some('\\') if matches!(self.peek(), Some(c) if c == quote || c == '\\') => {
                    out.extend(self.bump());
                }
                Some(c) if c == quote => {
                    if self.peek() == Some(quote) {
                        self.bump();
                        out.push(quote);
                    } else {
                        return Ok(out);
                    }
                }
                Some(c) => out.push(c),
            }
        }
    }

    /// A decimal number: optional sign, digits with an optional fraction, optional exponent.
    fn number(&mut self) -> Result<f64, String> {
        let start = self.pos;
        let mut previous = None;
        let text = self.take_while(|c| {
            let sign_ok = previous.is_none_or(|p| matches!(p, 'e' | 'E'));
            let ok = c.is_ascii_digit()
                || matches!(c, '.' | 'e' | 'E')
                || (matches!(c, '+' | '-') && sign_ok);
            previous = Some(c);
            ok
        });
        let boundary = self
            .peek()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        match text.parse::<f64>() {
            Ok(number) if boundary => Ok(number),
            _ => {
                self.pos = start;
                Err(format!("Invalid number at '{}'", self.rest()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entity holding any fields; a field given twice has several values.
    #[derive(Default)]
    struct Item(Vec<(Field, Value)>);

    impl Item {
        fn with(mut self, field: Field, value: Value) -> Self {
            self.0.push((field, value));
            self
        }
        fn attr(self, key: &str, value: &str) -> Self {
            self.with(Field::Attribute(key.into()), Value::Str(value.into()))
        }
        fn num_attr(self, key: &str, value: f64) -> Self {
            self.with(Field::Attribute(key.into()), Value::Num(value))
        }
        fn metric(self, key: &str, value: f64) -> Self {
            self.with(Field::Metric(key.into()), Value::Num(value))
        }
        fn param(self, key: &str, value: &str) -> Self {
            self.with(Field::Param(key.into()), Value::Str(value.into()))
        }
        fn tag(self, key: &str, value: &str) -> Self {
            self.with(Field::Tag(key.into()), Value::Str(value.into()))
        }
        fn dataset(self, key: &str, value: &str) -> Self {
            self.with(Field::Dataset(key.into()), Value::Str(value.into()))
        }
    }

    impl Searchable for Item {
        fn value(&self, field: &Field) -> Option<Value> {
            self.0
                .iter()
                .find(|(f, _)| f == field)
                .map(|(_, v)| v.clone())
        }
        fn values(&self, field: &Field) -> Vec<Value> {
            self.0
                .iter()
                .filter(|(f, _)| f == field)
                .map(|(_, v)| v.clone())
                .collect()
        }
    }

    fn run() -> Item {
        Item::default()
            .attr("run_id", "ab12cd34")
            .attr("run_name", "alpha-run")
            .attr("status", "FINISHED")
            .num_attr("start_time", 1_000.0)
            .metric("acc", 0.92)
            .metric("f1 score", 0.5)
            .metric("big", 10.0)
            .param("lr", "0.01")
            .param("model-type", "CNN")
            .tag("mlflow.runName", "alpha-run")
            .tag("team", "vision")
    }

    fn parse(filter: &str) -> Filter {
        match parse_filter(filter, &RUNS) {
            Ok(parsed) => parsed,
            Err(e) => panic!("{filter:?} should parse: {e}"),
        }
    }

    fn matches(filter: &str, item: &Item) -> bool {
        parse(filter).matches(item)
    }

    fn error(filter: &str, allowed: &Allowed) -> String {
        match parse_filter(filter, allowed) {
            Ok(parsed) => panic!("{filter:?} should be rejected, parsed as {parsed:?}"),
            Err(e) => e,
        }
    }

    fn only_field(filter: &str) -> Field {
        let parsed = parse(filter);
        assert_eq!(parsed.clauses().len(), 1, "{filter}");
        parsed.clauses()[0].field.clone()
    }

    #[test]
    fn blank_filter_matches_everything() {
        for filter in ["", "   ", "\n\t"] {
            let parsed = parse(filter);
            assert!(parsed.is_empty());
            assert!(parsed.matches(&Item::default()));
        }
    }

    #[test]
    fn every_entity_prefix_is_understood() {
        let metric = Field::Metric("acc".into());
        for f in [
            "metrics.acc > 0",
            "metric.acc > 0",
            "`metrics`.acc > 0",
            "METRICS.acc > 0",
        ] {
            assert_eq!(only_field(f), metric, "{f}");
        }
        let param = Field::Param("lr".into());
        for f in [
            "params.lr = 'x'",
            "param.lr = 'x'",
            "parameter.lr = 'x'",
            "parameters.lr = 'x'",
        ] {
            assert_eq!(only_field(f), param, "{f}");
        }
        for f in ["tags.team = 'x'", "tag.team = 'x'"] {
            assert_eq!(only_field(f), Field::Tag("team".into()), "{f}");
        }
        let status = Field::Attribute("status".into());
        for f in [
            "attributes.status = 'x'",
            "attribute.status = 'x'",
            "attr.status = 'x'",
            "run.status = 'x'",
            "status = 'x'",
            "`status` = 'x'",
        ] {
            assert_eq!(only_field(f), status, "{f}");
        }
        for f in ["datasets.name = 'x'", "dataset.name = 'x'"] {
            assert_eq!(only_field(f), Field::Dataset("name".into()), "{f}");
        }
    }

    #[test]
    fn keys_may_be_quoted_or_dotted() {
        assert_eq!(
            only_field("metrics.`f1 score` > 0"),
            Field::Metric("f1 score".into())
        );
        assert_eq!(
            only_field("metrics.\"2019-04-02 error rate\" > 0"),
            Field::Metric("2019-04-02 error rate".into())
        );
        assert_eq!(
            only_field("tags.\"mlflow.runName\" = 'a'"),
            Field::Tag("mlflow.runName".into())
        );
        assert_eq!(
            only_field("tags.mlflow.runName = 'a'"),
            Field::Tag("mlflow.runName".into())
        );
        assert_eq!(
            only_field("params.`model-type` = 'CNN'"),
            Field::Param("model-type".into())
        );
        assert_eq!(only_field("tags.`it``s` = 'a'"), Field::Tag("it`s".into()));
    }

    #[test]
    fn run_attribute_aliases_resolve_to_canonical_names() {
        let start = Field::Attribute("start_time".into());
        assert_eq!(only_field("attributes.created > 5"), start);
        assert_eq!(only_field("attributes.Created > 5"), start);
        let name = Field::Attribute("run_name".into());
        for f in [
            "attributes.`run name` = 'a'",
            "`Run name` = 'a'",
            "attr.`Run Name` = 'a'",
        ] {
            assert_eq!(only_field(f), name, "{f}");
        }
        assert!(matches("attributes.created >= 1000", &run()));
        assert!(!matches("attributes.created > 1000", &run()));
    }

    #[test]
    fn metric_comparators_compare_numbers() {
        let item = run();
        let cases = [
            ("metrics.acc > 0.9", true),
            ("metrics.acc > 0.92", false),
            ("metrics.acc >= 0.92", true),
            ("metrics.acc < 1", true),
            ("metrics.acc <= 0.91", false),
            ("metrics.acc = 0.92", true),
            ("metrics.acc != 0.92", false),
            ("metrics.big > 9", true),
            ("metrics.big = 1e1", true),
            ("metrics.acc > -1.5e-3", true),
            ("metrics.acc > .5", true),
            ("metrics.`f1 score` > 0.4", true),
        ];
        for (filter, expected) in cases {
            assert_eq!(matches(filter, &item), expected, "{filter}");
        }
    }

    #[test]
    fn string_comparators_on_params_tags_and_attributes() {
        let item = run();
        let cases = [
            ("params.lr = '0.01'", true),
            ("params.lr = \"0.01\"", true),
            ("params.lr = '0.010'", false),
            ("params.lr != '0.1'", true),
            ("params.`model-type` LIKE 'C%'", true),
            ("params.`model-type` LIKE 'c%'", false),
            ("params.`model-type` ILIKE 'c%'", true),
            ("params.`model-type` like 'C_N'", true),
            ("params.lr IN ('0.1', '0.01')", true),
            ("params.lr NOT IN ('0.1', '0.01')", false),
            ("tags.team not in ('nlp')", true),
            ("tags.team = 'vision'", true),
            ("attributes.status = 'FINISHED'", true),
            ("attributes.status != 'FINISHED'", false),
            ("status IN ('FAILED', 'KILLED')", false),
            ("attributes.run_id IN ('ab12cd34')", true),
            ("attributes.run_name ILIKE '%ALPHA%'", true),
        ];
        for (filter, expected) in cases {
            assert_eq!(matches(filter, &item), expected, "{filter}");
        }
    }

    #[test]
    fn clauses_join_with_and_in_any_case() {
        let item = run();
        assert!(matches(
            "metrics.acc > 0.9 AND params.lr = '0.01' and tags.team = 'vision' AnD status = 'FINISHED'",
            &item
        ));
        assert!(!matches("metrics.acc > 0.9 AND params.lr = '0.1'", &item));
        assert_eq!(
            parse("metrics.acc>0.9 AND params.lr='0.01'")
                .clauses()
                .len(),
            2
        );
    }

    #[test]
    fn absent_fields_fail_every_comparison_but_is_null() {
        let empty = Item::default();
        for filter in [
            "metrics.acc != 1",
            "metrics.acc < 1",
            "params.lr != 'x'",
            "params.lr NOT IN ('x')",
            "tags.team LIKE '%'",
        ] {
            assert!(!matches(filter, &empty), "{filter}");
        }
        assert!(matches("tags.team IS NULL", &empty));
        assert!(!matches("tags.team IS NOT NULL", &empty));
        assert!(matches("tags.team is not null", &run()));
        assert!(!matches("params.lr IS NULL", &run()));
    }

    #[test]
    fn nan_metrics_only_satisfy_not_equal() {
        let item = Item::default().metric("loss", f64::NAN);
        assert!(matches("metrics.loss != 1", &item));
        for filter in ["metrics.loss = 1", "metrics.loss > 0", "metrics.loss <= 0"] {
            assert!(!matches(filter, &item), "{filter}");
        }
    }

    #[test]
    fn string_values_are_not_compared_as_numbers() {
        let item = Item::default().param("epochs", "10");
        assert!(!matches("params.epochs = '10.0'", &item));
        assert!(matches("params.epochs = '10'", &item));
        let error = error("params.epochs = 10", &RUNS);
        assert!(
            error.contains("Expected a quoted string value for param 'epochs'"),
            "{error}"
        );
    }

    #[test]
    fn quoted_strings_may_hold_their_own_quotes() {
        let item = Item::default().tag("note", "it's \"fine\"");
        assert!(matches("tags.note = 'it''s \"fine\"'", &item));
        assert!(matches("tags.note = \"it's \\\"fine\\\"\"", &item));
        assert!(matches("tags.note = 'it\\'s \"fine\"'", &item));
    }

    #[test]
    fn like_treats_only_percent_and_underscore_as_wildcards() {
        let cases = [
            ("a.b*(c)", "a.b*(c)", true),
            ("axb*(c)", "a.b*(c)", false),
            ("[x]+?", "[x]+?", true),
            ("anything", "%", true),
            ("", "%", true),
            ("", "_", false),
            ("abc", "a%c", true),
            ("abc", "%b%", true),
            ("abc", "%d%", false),
            ("abc", "ab", false),
            ("abc", "_b_", true),
            ("ab", "_b_", false),
            ("50%", "50\\%", true),
            ("500", "50\\%", false),
            ("a_b", "a\\_b", true),
            ("axb", "a\\_b", false),
            ("mississippi", "%iss%ppi", true),
            ("mississippi", "m%s%s%i", true),
            ("mississippi", "m%x%", false),
        ];
        for (text, pattern, expected) in cases {
            assert_eq!(
                like(text, pattern, false),
                expected,
                "{text:?} LIKE {pattern:?}"
            );
        }
        assert!(like("Ünïcode", "ü%CODE", true));
        assert!(!like("Ünïcode", "ü%CODE", false));
    }

    #[test]
    fn datasets_match_when_any_dataset_does() {
        let item = Item::default()
            .dataset("name", "train-set")
            .dataset("name", "eval-set")
            .dataset("context", "training");
        assert!(matches("datasets.name = 'eval-set'", &item));
        assert!(matches("dataset.name LIKE 'train%'", &item));
        assert!(matches("datasets.context IN ('training', 'eval')", &item));
        assert!(!matches("datasets.digest = 'abc'", &item));
        let error = error("datasets.size = 'x'", &RUNS);
        assert!(error.contains("Invalid dataset key 'size'"), "{error}");
    }

    #[test]
    fn invalid_filters_name_their_problem() {
        let cases: [(&str, &Allowed, &str); 18] = [
            (
                "params.lr > '1'",
                &RUNS,
                "Invalid comparator '>' for param 'lr'",
            ),
            ("tags.t < 'a'", &RUNS, "Invalid comparator '<' for tag 't'"),
            (
                "metrics.acc LIKE '1%'",
                &RUNS,
                "Invalid comparator 'LIKE' for metric 'acc'",
            ),
            (
                "metrics.acc IS NULL",
                &RUNS,
                "Invalid comparator 'IS NULL' for metric 'acc'",
            ),
            (
                "start_time LIKE '1'",
                &RUNS,
                "Invalid comparator 'LIKE' for attribute 'start_time'",
            ),
            ("foo = 'x'", &RUNS, "Invalid attribute key 'foo'"),
            (
                "attributes.experiment_id = '1'",
                &RUNS,
                "Invalid attribute key 'experiment_id'",
            ),
            ("widgets.x = 'x'", &RUNS, "Invalid entity type 'widgets'"),
            (
                "metrics.acc > 'high'",
                &RUNS,
                "Expected a numeric value for metric 'acc'",
            ),
            (
                "metrics.acc > '1'",
                &RUNS,
                "Expected a numeric value for metric 'acc'",
            ),
            (
                "start_time > 'yesterday'",
                &RUNS,
                "Expected a numeric value for attribute",
            ),
            (
                "metrics.acc > 0.9 OR metrics.acc < 0.1",
                &RUNS,
                "OR is not supported",
            ),
            ("params.lr = 'open", &RUNS, "Unterminated quoted string"),
            ("params.lr IN ()", &RUNS, "non-empty list"),
            ("params.lr IN '1'", &RUNS, "parenthesised list"),
            ("params.lr = ('1')", &RUNS, "only valid after IN"),
            ("params.lr <> '1'", &RUNS, "Invalid comparator '<>'"),
            ("metrics.acc > 1abc", &RUNS, "Invalid number"),
        ];
        for (filter, allowed, expected) in cases {
            let error = error(filter, allowed);
            assert!(error.contains(expected), "{filter}: {error}");
        }
        for filter in [
            "metrics.acc",
            "metrics.acc >",
            "= 1",
            "metrics. > 1",
            "params.lr = `1`",
            "params.lr NOT LIKE 'a'",
            "params.lr IS 'a'",
            "metrics.acc > 1 AND",
            "metrics.acc > 1 metrics.b > 2",
            "status IN ('a', 1)",
        ] {
            let _ = error(filter, &RUNS);
        }
    }

    #[test]
    fn experiments_accept_names_times_and_tags_only() {
        let experiment = Item::default()
            .attr("name", "Team / vision")
            .num_attr("creation_time", 10.0)
            .tag("group", "x");
        let parsed = |f: &str| match parse_filter(f, &EXPERIMENTS) {
            Ok(parsed) => parsed,
            Err(e) => panic!("{f}: {e}"),
        };
        assert!(parsed("name = 'Team / vision'").matches(&experiment));
        assert!(parsed("attributes.name LIKE 'Team%' AND tags.group = 'x'").matches(&experiment));
        assert!(parsed("creation_time > 5").matches(&experiment));
        assert!(parsed("tags.owner IS NULL").matches(&experiment));
        let error_text = error("metrics.acc > 1", &EXPERIMENTS);
        assert!(
            error_text.contains("Invalid entity type 'metrics'"),
            "{error_text}"
        );
        let error_text = error("run_id = 'x'", &EXPERIMENTS);
        assert!(
            error_text.contains("Invalid attribute key 'run_id'"),
            "{error_text}"
        );
        let error_text = error("creation_time IN ('1')", &EXPERIMENTS);
        assert!(
            error_text.contains("Invalid comparator 'IN'"),
            "{error_text}"
        );
    }

    #[test]
    fn model_versions_take_numbers_for_version_number() {
        let version = Item::default()
            .attr("name", "m")
            .num_attr("version_number", 3.0)
            .attr("run_id", "ab12cd34");
        for (filter, expected) in [
            ("name = 'm' AND version_number = 3", true),
            ("version_number > 2", true),
            ("version_number = '3'", true),
            ("run_id IN ('ab12cd34', 'zz')", true),
            ("name = 'other'", false),
        ] {
            let parsed = match parse_filter(filter, &MODEL_VERSIONS) {
                Ok(parsed) => parsed,
                Err(e) => panic!("{filter}: {e}"),
            };
            assert_eq!(parsed.matches(&version), expected, "{filter}");
        }
        let error_text = error("version_number LIKE '3%'", &MODEL_VERSIONS);
        assert!(
            error_text.contains("Invalid comparator 'LIKE'"),
            "{error_text}"
        );
        let error_text = error("source_path IN ('a')", &MODEL_VERSIONS);
        assert!(
            error_text.contains("Invalid comparator 'IN'"),
            "{error_text}"
        );
    }

    #[test]
    fn models_without_the_prompt_tag_are_not_prompts() {
        let model = Item::default().attr("name", "m");
        let prompt = Item::default()
            .attr("name", "p")
            .tag("mlflow.prompt.is_prompt", "true");
        for allowed in [&REGISTERED_MODELS, &MODEL_VERSIONS] {
            let check = |filter: &str, item: &Item| match parse_filter(filter, allowed) {
                Ok(parsed) => parsed.matches(item),
                Err(e) => panic!("{filter}: {e}"),
            };
            assert!(check("tags.`mlflow.prompt.is_prompt` != 'true'", &model));
            assert!(check("tags.`mlflow.prompt.is_prompt` = 'false'", &model));
            assert!(!check("tags.`mlflow.prompt.is_prompt` = 'true'", &model));
            assert!(check("tags.`mlflow.prompt.is_prompt` IS NULL", &model));
            assert!(!check("tags.`mlflow.prompt.is_prompt` != 'true'", &prompt));
        }
        // Runs have no such default: an absent tag fails `!=`.
        assert!(!matches(
            "tags.`mlflow.prompt.is_prompt` != 'true'",
            &Item::default()
        ));
    }

    #[test]
    fn equalities_expose_clauses_worth_pushing_down() {
        let parsed = match parse_filter(
            "name = 'm' AND run_id = 'ab12cd34' AND version_number > 1 AND tags.k = 'v'",
            &MODEL_VERSIONS,
        ) {
            Ok(parsed) => parsed,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(parsed.attribute_eq("name"), Some("m"));
        assert_eq!(parsed.attribute_eq("run_id"), Some("ab12cd34"));
        assert_eq!(parsed.attribute_eq("version_number"), None);
        assert_eq!(parsed.attribute_eq("source_path"), None);
        let fields: Vec<&Field> = parsed.equalities().map(|(field, _)| field).collect();
        assert_eq!(
            fields,
            [
                &Field::Attribute("name".into()),
                &Field::Attribute("run_id".into()),
                &Field::Tag("k".into())
            ]
        );
    }

    fn order(items: &[&str], allowed: &Allowed) -> Vec<OrderBy> {
        let items: Vec<String> = items.iter().map(ToString::to_string).collect();
        match parse_order_by(&items, allowed) {
            Ok(parsed) => parsed,
            Err(e) => panic!("{items:?}: {e}"),
        }
    }

    fn order_error(item: &str, allowed: &Allowed) -> String {
        match parse_order_by(&[item.to_string()], allowed) {
            Ok(parsed) => panic!("{item:?} should be rejected, parsed as {parsed:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn order_by_entries_parse_with_directions() {
        let parsed = order(
            &[
                "metrics.loss DESC",
                "attributes.start_time",
                "params.lr asc",
                "tags.`my tag` Desc",
                "created DESC",
                "  `Run Name`  ",
            ],
            &RUNS,
        );
        let expected = [
            (Field::Metric("loss".into()), false),
            (Field::Attribute("start_time".into()), true),
            (Field::Param("lr".into()), true),
            (Field::Tag("my tag".into()), false),
            (Field::Attribute("start_time".into()), false),
            (Field::Attribute("run_name".into()), true),
        ];
        let got: Vec<(Field, bool)> = parsed.into_iter().map(|o| (o.field, o.ascending)).collect();
        assert_eq!(got, expected);
        let models = order(&["timestamp DESC", "name"], &REGISTERED_MODELS);
        assert_eq!(
            models[0].field,
            Field::Attribute("creation_timestamp".into())
        );
        assert!(order(&[], &RUNS).is_empty());
    }

    #[test]
    fn invalid_order_by_entries_are_rejected() {
        for (item, allowed, expected) in [
            ("", &RUNS, "Could not be parsed"),
            ("metrics.loss UP", &RUNS, "Invalid ordering key"),
            ("metrics.loss DESC extra", &RUNS, "Invalid ordering key"),
            ("datasets.name", &RUNS, "Invalid entity type 'datasets'"),
            ("foo", &RUNS, "Invalid order_by attribute key 'foo'"),
            ("metrics.acc", &EXPERIMENTS, "Invalid entity type 'metrics'"),
            (
                "run_id",
                &MODEL_VERSIONS,
                "Invalid order_by attribute key 'run_id'",
            ),
        ] {
            let error = order_error(item, allowed);
            assert!(error.contains(expected), "{item}: {error}");
        }
        assert_eq!(
            order(&["experiment_id DESC"], &EXPERIMENTS)[0].field,
            Field::Attribute("experiment_id".into())
        );
    }

    fn sorted_names(items: &mut [Item], order_by: &[OrderBy]) -> Vec<String> {
        items.sort_by(|a, b| compare(order_by, a, b));
        items
            .iter()
            .map(|item| match item.value(&Field::Attribute("name".into())) {
                Some(Value::Str(name)) => name,
                other => panic!("no name: {other:?}"),
            })
            .collect()
    }

    fn loss_items() -> Vec<Item> {
        vec![
            Item::default().attr("name", "missing"),
            Item::default().attr("name", "nan").metric("loss", f64::NAN),
            Item::default().attr("name", "high").metric("loss", 10.0),
            Item::default().attr("name", "low").metric("loss", 2.0),
        ]
    }

    #[test]
    fn missing_and_nan_sort_last_in_both_directions() {
        let ascending = order(&["metrics.loss"], &RUNS);
        assert_eq!(
            sorted_names(&mut loss_items(), &ascending),
            ["low", "high", "nan", "missing"]
        );
        let descending = order(&["metrics.loss DESC"], &RUNS);
        assert_eq!(
            sorted_names(&mut loss_items(), &descending),
            ["high", "low", "nan", "missing"]
        );
    }

    #[test]
    fn strings_order_lexically_and_later_keys_break_ties() {
        let mut items = vec![
            Item::default()
                .attr("name", "b")
                .param("lr", "9")
                .metric("acc", 1.0),
            Item::default()
                .attr("name", "a")
                .param("lr", "10")
                .metric("acc", 1.0),
            Item::default()
                .attr("name", "c")
                .param("lr", "10")
                .metric("acc", 2.0),
            Item::default().attr("name", "d"),
        ];
        let by_lr = order(&["params.lr"], &RUNS);
        assert_eq!(sorted_names(&mut items, &by_lr), ["a", "c", "b", "d"]);
        let by_lr_then_acc = order(&["params.lr", "metrics.acc DESC"], &RUNS);
        assert_eq!(
            sorted_names(&mut items, &by_lr_then_acc),
            ["c", "a", "b", "d"]
        );
        let by_name_desc = order(&["name DESC"], &EXPERIMENTS);
        assert_eq!(
            sorted_names(&mut items, &by_name_desc),
            ["d", "c", "b", "a"]
        );
        assert_eq!(compare(&[], &items[0], &items[1]), Ordering::Equal);
    }
}
