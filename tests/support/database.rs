//! The databases a suite runs on: SQLite in the server's data directory always, and a fresh
//! PostgreSQL schema when `WANLLMDB_TEST_DATABASE_URL` is set.

use std::path::Path;
use std::process::Command;

/// A fresh PostgreSQL schema, dropped at the end.
pub struct Schema {
    base: String,
    name: String,
}

impl Schema {
    /// None when `WANLLMDB_TEST_DATABASE_URL` is not set.
    pub fn create() -> Option<Schema> {
        let base = std::env::var("WANLLMDB_TEST_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!("rep_{}_{nanos}", std::process::id());
        psql(&base, &format!("CREATE SCHEMA {name}"));
        Some(Schema { base, name })
    }

    /// The database URL servers use: the schema first on the search path.
    pub fn url(&self) -> String {
        let sep = if self.base.contains('?') { '&' } else { '?' };
        format!("{}{sep}options[search_path]={}", self.base, self.name)
    }

    /// Runs `sql` with `{schema}` standing for this schema's name; returns the output.
    pub fn query(&self, sql: &str) -> String {
        psql(&self.base, &sql.replace("{schema}", &self.name))
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        psql(
            &self.base,
            &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name),
        );
    }
}

/// Runs `sql` on the database at `url`; its output, unaligned and without headers.
fn psql(url: &str, sql: &str) -> String {
    succeeds(Command::new("psql").arg(url).args(["-XAtqc", sql]), sql)
}

/// Runs `cmd`, which carries out `sql` and must succeed; its output, trimmed.
fn succeeds(cmd: &mut Command, sql: &str) -> String {
    let out = cmd.output().expect("run the database client");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Where a test server keeps its database.
pub struct Db {
    schema: Option<Schema>,
}

impl Db {
    pub fn sqlite() -> Db {
        Db { schema: None }
    }

    /// The server arguments that select it.
    pub fn args(&self) -> Vec<String> {
        match &self.schema {
            Some(s) => vec!["--database-url".into(), s.url()],
            None => Vec::new(),
        }
    }

    pub fn is_sqlite(&self) -> bool {
        self.schema.is_none()
    }

    /// Runs SQL on the database (`data` is the server's data directory).
    pub fn sql(&self, data: &Path, sql: &str) {
        match &self.schema {
            Some(s) => {
                s.query(&format!("SET search_path TO {{schema}}; {sql}"));
            }
            None => {
                let script = "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\nc.executescript(sys.argv[2])\nc.commit()";
                succeeds(
                    Command::new("python3")
                        .args(["-c", script])
                        .arg(data.join("wanllmdb.db"))
                        .arg(sql),
                    sql,
                );
            }
        }
    }
}

/// SQLite always; PostgreSQL (a fresh schema each) when configured.
pub fn databases() -> Vec<Db> {
    let mut v = vec![Db::sqlite()];
    if let Some(schema) = Schema::create() {
        v.push(Db {
            schema: Some(schema),
        });
    }
    v
}
