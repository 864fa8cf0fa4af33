//! Run search expressions: `config.lr < 0.01`, `summary.val_acc >= 0.9`, `tag = baseline`,
//! joined with `and`; and sort keys such as `-summary.val_acc`. Both compile to SQL with
//! bound parameters for either backend.

use crate::error::{ApiError, ApiResult};
use crate::store::BackendKind;

/// A value bound into generated SQL.
#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    /// Integer.
    Int(i64),
    /// Float.
    Float(f64),
    /// Text.
    Text(String),
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=` or `==`.
    Eq,
    /// `!=`.
    Ne,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
    /// `~`: contains (case-insensitive).
    Contains,
}

impl Op {
    fn sql(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "<>",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Contains => "LIKE",
        }
    }
}

/// A literal on the right of a condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A number.
    Number(f64),
    /// A string (quoted, or a bare word).
    Text(String),
    /// true / false.
    Bool(bool),
}

/// What a condition looks at.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    /// A column of the run (state, name, …).
    Column(&'static str),
    /// A time column compared with RFC 3339 or Unix seconds.
    Time(&'static str),
    /// A tag.
    Tag,
    /// A path inside the config object.
    Config(Vec<String>),
    /// A metric summary value.
    Summary(String),
}

/// One `field op value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// Left side.
    pub field: Field,
    /// Operator.
    pub op: Op,
    /// Right side.
    pub value: Value,
}

fn parse_field(s: &str) -> ApiResult<Field> {
    if let Some(path) = s.strip_prefix("config.") {
        let parts: Vec<String> = path.split('.').map(str::to_string).collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(ApiError::invalid(format!(
                "bad config path in filter: {s:?}"
            )));
        }
        return Ok(Field::Config(parts));
    }
    if let Some(key) = s.strip_prefix("summary.") {
        if key.is_empty() {
            return Err(ApiError::invalid("summary key missing after 'summary.'"));
        }
        return Ok(Field::Summary(key.to_string()));
    }
    Ok(match s {
        "state" => Field::Column("r.state"),
        "name" => Field::Column("r.name"),
        "id" => Field::Column("r.id"),
        "group" => Field::Column("r.group_name"),
        "job_type" => Field::Column("r.job_type"),
        "host" => Field::Column("r.host"),
        "notes" => Field::Column("r.notes"),
        "program" => Field::Column("r.program"),
        "exit_code" => Field::Column("r.exit_code"),
        "git.commit" => Field::Column("r.git_commit"),
        "git.branch" => Field::Column("r.git_branch"),
        "tag" | "tags" => Field::Tag,
        "created_at" => Field::Time("r.created_at"),
        "started_at" => Field::Time("r.started_at"),
        "finished_at" => Field::Time("r.finished_at"),
        "heartbeat_at" => Field::Time("r.heartbeat_at"),
        "updated_at" => Field::Time("r.updated_at"),
        other => {
            return Err(ApiError::invalid(format!(
                "unknown filter field {other:?}: use state, name, id, group, job_type, host, notes, program, exit_code, git.commit, git.branch, tag, created_at, started_at, finished_at, heartbeat_at, updated_at, config.<path> or summary.<key>"
            )));
        }
    })
}

fn tokenize(s: &str) -> ApiResult<Vec<String>> {
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '"' || c == '\'' {
            let mut j = i + 1;
            let mut text = String::new();
            while j < chars.len() && chars[j] != c {
                if chars[j] == '\\' && j + 1 < chars.len() {
                    j += 1;
                }
                text.push(chars[j]);
                j += 1;
            }
            if j >= chars.len() {
                return Err(ApiError::invalid(format!(
                    "unterminated quote in filter {s:?}"
                )));
            }
            // A leading NUL marks a quoted literal so `"and"` is never the keyword.
            out.push(format!("\0{text}"));
            i = j + 1;
        } else if c == ',' {
            out.push(",".to_string());
            i += 1;
        } else if "<>=!~".contains(c) {
            let mut j = i + 1;
            if j < chars.len() && chars[j] == '=' {
                j += 1;
            }
            out.push(chars[i..j].iter().collect());
            i = j;
        } else {
            let mut j = i;
            while j < chars.len() && !chars[j].is_whitespace() && !"<>=!~\"',".contains(chars[j]) {
                j += 1;
            }
            out.push(chars[i..j].iter().collect());
            i = j;
        }
    }
    Ok(out)
}

fn parse_op(t: &str) -> Option<Op> {
    Some(match t {
        "=" | "==" => Op::Eq,
        "!=" => Op::Ne,
        "<" => Op::Lt,
        "<=" => Op::Le,
        ">" => Op::Gt,
        ">=" => Op::Ge,
        "~" | "~=" => Op::Contains,
        _ => return None,
    })
}

fn parse_value(t: &str) -> Value {
    if let Some(q) = t.strip_prefix('\0') {
        return Value::Text(q.to_string());
    }
    match t {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => match t.parse::<f64>() {
            Ok(n) if n.is_finite() => Value::Number(n),
            _ => Value::Text(t.to_string()),
        },
    }
}

/// Parses `a < 1 and b = x` into conditions.
pub fn parse(expr: &str) -> ApiResult<Vec<Condition>> {
    let toks = tokenize(expr)?;
    let mut out = Vec::new();
    let mut i = 0;
    let bad = |why: &str| ApiError::InvalidInputDetails {
        message: format!("invalid filter {expr:?}: {why}"),
        details: serde_json::json!({ "filter": expr, "example": "config.lr < 0.01 and summary.val_acc >= 0.9" }),
    };
    while i < toks.len() {
        if toks.len() - i < 3 {
            return Err(bad("expected FIELD OP VALUE"));
        }
        let field = parse_field(&toks[i])?;
        let op = parse_op(&toks[i + 1]).ok_or_else(|| {
            bad(&format!(
                "unknown operator {:?} (use = != < <= > >= ~)",
                toks[i + 1]
            ))
        })?;
        let value = parse_value(&toks[i + 2]);
        out.push(Condition { field, op, value });
        i += 3;
        if i < toks.len() {
            match toks[i].to_ascii_lowercase().as_str() {
                "and" | "&&" | "," => i += 1,
                other => {
                    return Err(bad(&format!(
                        "expected 'and' between conditions, found {other:?}"
                    )));
                }
            }
            if i == toks.len() {
                return Err(bad("dangling 'and'"));
            }
        }
    }
    if out.is_empty() {
        return Err(bad("empty filter"));
    }
    Ok(out)
}

/// Builds SQL fragments and collects their parameters, numbering from `first_param`.
pub struct SqlBuilder {
    /// Dialect.
    pub kind: BackendKind,
    /// Parameters in order.
    pub binds: Vec<Bind>,
    /// `LEFT JOIN`s the expressions need (one per summary key), to follow the FROM clause.
    pub joins: Vec<String>,
    summary_keys: Vec<String>,
    first_param: usize,
}

impl SqlBuilder {
    /// A builder whose first placeholder is `$first_param`.
    pub fn new(kind: BackendKind, first_param: usize) -> SqlBuilder {
        SqlBuilder {
            kind,
            binds: Vec::new(),
            joins: Vec::new(),
            summary_keys: Vec::new(),
            first_param,
        }
    }

    /// Adds a parameter and returns its placeholder.
    pub fn param(&mut self, b: Bind) -> String {
        self.binds.push(b);
        format!("${}", self.first_param + self.binds.len() - 1)
    }

    fn json_path(&mut self, path: &[String]) -> String {
        match self.kind {
            BackendKind::Sqlite => {
                let p: String = path
                    .iter()
                    .map(|k| format!(".\"{}\"", k.replace('"', "\\\"")))
                    .collect();
                self.param(Bind::Text(format!("${p}")))
            }
            BackendKind::Postgres => {
                let items: Vec<String> = path
                    .iter()
                    .map(|k| format!("{}::text", self.param(Bind::Text(k.clone()))))
                    .collect();
                format!("ARRAY[{}]", items.join(", "))
            }
        }
    }

    /// SQL for a config value as a number (NULL when it is not a number).
    fn config_number(&mut self, path: &[String]) -> String {
        let p = self.json_path(path);
        match self.kind {
            BackendKind::Sqlite => format!(
                "(CASE WHEN json_type(r.config, {p}) IN ('integer', 'real') THEN json_extract(r.config, {p}) END)"
            ),
            BackendKind::Postgres => format!(
                "(CASE WHEN jsonb_typeof(r.config::jsonb #> {p}) = 'number' THEN (r.config::jsonb #>> {p})::float8 END)"
            ),
        }
    }

    /// SQL for a config value as text (NULL when absent; numbers and booleans as their JSON text).
    fn config_text(&mut self, path: &[String]) -> String {
        let p = self.json_path(path);
        match self.kind {
            BackendKind::Sqlite => format!(
                "(CASE json_type(r.config, {p}) WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' ELSE CAST(json_extract(r.config, {p}) AS TEXT) END)"
            ),
            BackendKind::Postgres => format!("(r.config::jsonb #>> {p})"),
        }
    }

    /// SQL of a summary value (the client-set value wins over the logged one). Each key is
    /// joined once, which both backends plan far better than a subquery per run.
    pub fn summary(&mut self, key: &str) -> String {
        let n = match self.summary_keys.iter().position(|k| k == key) {
            Some(n) => n,
            None => {
                let p = self.param(Bind::Text(key.to_string()));
                let n = self.summary_keys.len();
                self.joins.push(format!(
                    "LEFT JOIN metric_series s{n} ON s{n}.run_pk = r.pk AND s{n}.key = {p}"
                ));
                self.summary_keys.push(key.to_string());
                n
            }
        };
        format!("(CASE WHEN s{n}.is_set THEN s{n}.set_value ELSE s{n}.last_value END)")
    }

    fn compare(&mut self, lhs: &str, op: Op, value: &Value) -> String {
        let rhs = match value {
            Value::Number(n) => self.param(Bind::Float(*n)),
            Value::Text(t) if op == Op::Contains => {
                let p = self.param(Bind::Text(contains_pattern(t)));
                return format!("LOWER({lhs}) LIKE {p} ESCAPE '\\'");
            }
            Value::Text(t) => self.param(Bind::Text(t.clone())),
            Value::Bool(b) => self.param(Bind::Text(b.to_string())),
        };
        format!("{lhs} {} {rhs}", op.sql())
    }

    /// SQL of one condition.
    pub fn condition(&mut self, c: &Condition) -> ApiResult<String> {
        let numeric_only = |c: &Condition| {
            matches!(c.op, Op::Lt | Op::Le | Op::Gt | Op::Ge)
                && !matches!(c.value, Value::Number(_))
        };
        Ok(match &c.field {
            Field::Column(col) => {
                if *col == "r.exit_code" {
                    let Value::Number(n) = c.value else {
                        return Err(ApiError::invalid(
                            "exit_code must be compared with a number",
                        ));
                    };
                    if n.fract() != 0.0 || c.op == Op::Contains {
                        return Err(ApiError::invalid(
                            "exit_code takes a whole number and = != < <= > >=",
                        ));
                    }
                    let p = self.param(Bind::Int(n as i64));
                    format!("r.exit_code {} {p}", c.op.sql())
                } else {
                    let v = match &c.value {
                        Value::Number(n) => Value::Text(fmt_number(*n)),
                        other => other.clone(),
                    };
                    self.compare(col, c.op, &v)
                }
            }
            Field::Time(col) => {
                let us = parse_time_value(&c.value)?;
                let p = self.param(Bind::Int(us));
                if c.op == Op::Contains {
                    return Err(ApiError::invalid("times take = != < <= > >=, not ~"));
                }
                format!("{col} {} {p}", c.op.sql())
            }
            Field::Tag => {
                let Value::Text(t) = &c.value else {
                    return Err(ApiError::invalid("tag must be compared with a word"));
                };
                let p = self.param(Bind::Text(t.clone()));
                match c.op {
                    Op::Eq => format!(
                        "EXISTS (SELECT 1 FROM run_tags t WHERE t.run_pk = r.pk AND t.tag = {p})"
                    ),
                    Op::Ne => format!(
                        "NOT EXISTS (SELECT 1 FROM run_tags t WHERE t.run_pk = r.pk AND t.tag = {p})"
                    ),
                    _ => return Err(ApiError::invalid("tag takes = or != only")),
                }
            }
            Field::Summary(key) => {
                let Value::Number(_) = c.value else {
                    return Err(ApiError::invalid(format!(
                        "summary.{key} must be compared with a number"
                    )));
                };
                if c.op == Op::Contains {
                    return Err(ApiError::invalid(
                        "summary values take = != < <= > >=, not ~",
                    ));
                }
                let lhs = self.summary(key);
                self.compare(&lhs, c.op, &c.value)
            }
            Field::Config(path) => {
                if numeric_only(c) {
                    return Err(ApiError::invalid(
                        "<, <=, > and >= need a number on the right",
                    ));
                }
                match &c.value {
                    Value::Number(n) if c.op == Op::Contains => {
                        let lhs = self.config_text(path);
                        self.compare(&lhs, c.op, &Value::Text(fmt_number(*n)))
                    }
                    Value::Number(_) => {
                        let lhs = self.config_number(path);
                        self.compare(&lhs, c.op, &c.value)
                    }
                    _ => {
                        let lhs = self.config_text(path);
                        self.compare(&lhs, c.op, &c.value)
                    }
                }
            }
        })
    }

    /// SQL of an ORDER BY term for a sort key (`-summary.acc` or `summary.acc:desc`).
    pub fn order_by(&mut self, sort: &str) -> ApiResult<String> {
        let (key, desc) = if let Some(k) = sort.strip_prefix('-') {
            (k, true)
        } else if let Some(k) = sort.strip_suffix(":desc") {
            (k, true)
        } else {
            (
                sort.strip_suffix(":asc")
                    .unwrap_or(sort)
                    .trim_start_matches('+'),
                false,
            )
        };
        let dir = if desc { "DESC" } else { "ASC" };
        let expr = match parse_field(key)? {
            Field::Column(c) | Field::Time(c) => c.to_string(),
            Field::Config(path) => self.config_number(&path),
            Field::Summary(k) => self.summary(&k),
            Field::Tag => return Err(ApiError::invalid("cannot sort by tag")),
        };
        Ok(format!("{expr} {dir} NULLS LAST"))
    }
}

/// A `LIKE` pattern (backslash escapes) for text that holds `text` in lower case.
pub(super) fn contains_pattern(text: &str) -> String {
    let esc = text
        .to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{esc}%")
}

fn fmt_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

fn parse_time_value(v: &Value) -> ApiResult<i64> {
    match v {
        Value::Number(n) => {
            crate::store::seconds_to_us(*n).ok_or_else(|| ApiError::invalid("time out of range"))
        }
        Value::Text(t) => {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .map(|d| (d.unix_timestamp_nanos() / 1000) as i64)
                .map_err(|_| {
                    ApiError::invalid(format!(
                        "{t:?} is not a time: use RFC 3339 (2026-01-31T12:00:00Z) or Unix seconds"
                    ))
                })
        }
        Value::Bool(_) => Err(ApiError::invalid("a time cannot be true or false")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_conditions() {
        let c = parse("config.lr < 0.01 and summary.val_acc>=0.9").unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].field, Field::Config(vec!["lr".into()]));
        assert_eq!(c[0].op, Op::Lt);
        assert_eq!(c[0].value, Value::Number(0.01));
        assert_eq!(c[1].field, Field::Summary("val_acc".into()));
        assert_eq!(c[1].op, Op::Ge);
        let q = parse("name ~ 'and' and tag = \"a b\"").unwrap();
        assert_eq!(q[0].value, Value::Text("and".into()));
        assert_eq!(q[1].value, Value::Text("a b".into()));
    }

    #[test]
    fn rejects_bad_filters() {
        assert_eq!(parse("state = finished, name ~ x").unwrap().len(), 2);
        for bad in [
            "",
            "config.lr <",
            "nosuch = 1",
            "config.lr << 1",
            "state = x or",
            "a = 1 and",
            "config..x = 1",
            "name = 'open",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should fail");
        }
        let mut b = SqlBuilder::new(BackendKind::Sqlite, 1);
        let c = parse("summary.acc > high").unwrap();
        assert!(b.condition(&c[0]).is_err());
        let c = parse("config.opt < adam").unwrap();
        assert!(b.condition(&c[0]).is_err());
        let c = parse("exit_code < 0.5").unwrap();
        assert!(b.condition(&c[0]).is_err());
        let c = parse("config.x ~ 0.5").unwrap();
        assert!(b.condition(&c[0]).unwrap().contains("LIKE"));
    }

    #[test]
    fn builds_numbered_params() {
        let mut b = SqlBuilder::new(BackendKind::Postgres, 3);
        let c = parse("config.opt.lr <= 0.5").unwrap();
        let sql = b.condition(&c[0]).unwrap();
        assert!(sql.contains("ARRAY[$3::text, $4::text]"), "{sql}");
        assert!(sql.ends_with("<= $5"), "{sql}");
        assert_eq!(b.binds.len(), 3);
        assert!(
            b.order_by("-summary.loss")
                .unwrap()
                .contains("DESC NULLS LAST")
        );
        assert!(b.order_by("tag").is_err());
    }
}
