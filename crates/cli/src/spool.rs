//! The local spool: everything a run produces is written under `.wanllmdb/runs/<id>/` first
//! and shipped from there, so the training program never waits on the network and a
//! server outage loses nothing.
//!
//! ```text
//! run.json        the run as it will be created (project, config, git, host …) and the server
//! config.json     the run's config alone ($WANLLMDB_RUN_CONFIG), for the program to read
//! metrics.jsonl   the program's metrics file ($WANLLMDB_METRICS), one JSON object per line
//! captured.jsonl  metrics captured from output lines (--scalars), one point per line
//! system.jsonl    system/… metrics (CPU, memory, GPUs), one point per line
//! output.jsonl    stdout/stderr lines, one log line per line
//! summary.json    summary values set by the program ({"values": {…}}), sent after the metrics
//! files.json      files to attach once the run is on the server
//! state.json      how far each file has been shipped (byte offset, line, next step)
//! exit.json       how the program ended, once it has
//! wrapper.pid     the live process writing the spool (a wrapper or the Python SDK), while it runs
//! ```
//!
//! The Python SDK writes the same format, so `wanllmdb sync` uploads its offline runs too;
//! `tests/fixtures/spool` is one spool both test suites read. Version 2 added config.json,
//! system.jsonl and summary.json; a spool of a newer version than this binary knows is refused.
//!
//! Shipping is idempotent: points are keyed by (run, key, step) and log lines by (source,
//! line number) on the server, and `state.json` only moves forward after the server
//! acknowledged a batch. A batch sent twice (a crash between acknowledgement and the state
//! write) is stored once.

use std::collections::HashSet;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use wanllmdb_api_types::logs::{AppendLogsRequest, AppendLogsResponse, NewLogLine};
use wanllmdb_api_types::metrics::{AppendHistoryResponse, HistoryPoint};
use wanllmdb_api_types::runs::{CreateRunRequest, FinishRunRequest, Run};

use crate::client::{Api, ApiError, seg};
use crate::error::{CliError, CliResult, user_err};
use crate::metrics_line::{HistoryBody, fast_line, parse_line};
use crate::output::Printer;

/// Format version of `run.json`.
pub const SPOOL_VERSION: u32 = 2;
/// Metric values per shipped batch.
pub const BATCH_VALUES: usize = 20_000;
/// Log lines per shipped batch.
pub const BATCH_LINES: usize = 5_000;
/// Batches per file one live shipping round sends at most; the rest waits for the next round
/// (or the final drain), so a program that logs as fast as it can does not get a busy
/// neighbour for its whole run.
const LIVE_BATCHES: usize = 4;
/// Longest line read from a spool file; longer ones are reported and skipped.
const MAX_LINE: usize = 8 << 20;
const READ_CHUNK: usize = 1 << 20;

/// `run.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SpoolMeta {
    /// Format version.
    pub version: u32,
    /// Server the run belongs to.
    pub host: String,
    /// The run, as it is created (or resumed) on the server.
    pub run: CreateRunRequest,
    /// Started with `--offline`.
    #[serde(default)]
    pub offline: bool,
    /// Unix seconds when the wrapper started.
    pub created_at: f64,
}

/// How far one spool file has been shipped.
#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FileCursor {
    /// Bytes acknowledged by the server.
    pub offset: u64,
    /// Lines consumed (for messages).
    pub line: u64,
    /// Step given to the next line without one.
    pub next_step: i64,
}

/// `state.json`.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShipState {
    /// The run exists on the server.
    #[serde(default)]
    pub created: bool,
    /// Progress through `metrics.jsonl`.
    #[serde(default)]
    pub metrics: FileCursor,
    /// Progress through `captured.jsonl`.
    #[serde(default)]
    pub captured: FileCursor,
    /// Progress through `output.jsonl`.
    #[serde(default)]
    pub output: FileCursor,
    /// Progress through `system.jsonl`.
    #[serde(default)]
    pub system: FileCursor,
    /// `summary.json` as it is now was acknowledged.
    #[serde(default)]
    pub summary_sent: bool,
    /// The final state was acknowledged: nothing is left to do.
    #[serde(default)]
    pub finished: bool,
}

/// One run's spool directory.
#[derive(Debug, Clone)]
pub struct Spool {
    /// The directory.
    pub dir: PathBuf,
}

impl Spool {
    /// Creates `root/runs/<id>/` with its run description.
    pub fn create(root: &Path, meta: &SpoolMeta) -> CliResult<Spool> {
        let id = meta.run.id.as_deref().unwrap_or_default();
        let dir = root.join("runs").join(id);
        std::fs::create_dir_all(&dir)
            .map_err(|e| user_err!("cannot create the spool {}: {e}", dir.display()))?;
        let spool = Spool { dir };
        write_json(&spool.dir.join("run.json"), meta)?;
        match spool.dir.join("state.json").exists() {
            // The same id again in the same place: a resumed run continues its spool.
            true => {
                let mut state = spool.state()?;
                state.finished = false;
                spool.save_state(&state)?;
                let _ = std::fs::remove_file(spool.dir.join("exit.json"));
            }
            false => spool.save_state(&ShipState::default())?,
        }
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(spool.metrics_path())
            .map_err(|e| user_err!("cannot create {}: {e}", spool.metrics_path().display()))?;
        Ok(spool)
    }

    /// Opens an existing spool directory.
    pub fn open(dir: &Path) -> CliResult<Spool> {
        if !dir.join("run.json").is_file() {
            return Err(
                user_err!("{} is not a run spool (no run.json)", dir.display())
                    .hint("spools live in .wanllmdb/runs/<run id>/"),
            );
        }
        Ok(Spool {
            dir: dir.to_path_buf(),
        })
    }

    /// The run description.
    pub fn meta(&self) -> CliResult<SpoolMeta> {
        let meta: SpoolMeta = read_json(&self.dir.join("run.json"))?;
        if meta.version > SPOOL_VERSION {
            return Err(user_err!(
                "{} was written in spool format {}, newer than this wanllmdb knows ({SPOOL_VERSION})",
                self.dir.display(),
                meta.version
            )
            .hint("upgrade wanllmdb, then sync again"));
        }
        Ok(meta)
    }

    /// Writes the run's config to `config.json` for the program to read; returns its path.
    pub fn write_run_config(&self, config: Option<&serde_json::Value>) -> CliResult<PathBuf> {
        let empty = serde_json::Value::Object(Default::default());
        let p = self.dir.join("config.json");
        write_json(&p, config.unwrap_or(&empty))?;
        Ok(std::fs::canonicalize(&p).unwrap_or(p))
    }

    /// Summary values to set once the metrics are on the server (`summary.json`).
    pub fn summary(&self) -> CliResult<Option<serde_json::Value>> {
        let p = self.dir.join("summary.json");
        if !p.exists() {
            return Ok(None);
        }
        let v: serde_json::Value = read_json(&p)?;
        Ok(v.get("values")
            .filter(|v| v.as_object().is_some_and(|m| !m.is_empty()))
            .cloned())
    }

    /// Shipping progress.
    pub fn state(&self) -> CliResult<ShipState> {
        let p = self.dir.join("state.json");
        if !p.exists() {
            return Ok(ShipState::default());
        }
        read_json(&p)
    }

    /// Records shipping progress (atomically).
    pub fn save_state(&self, s: &ShipState) -> CliResult {
        write_json(&self.dir.join("state.json"), s)
    }

    /// How the program ended, when it has. A record without its time (written by an older
    /// wrapper) ends when the record was written.
    pub fn exit(&self) -> CliResult<Option<FinishRunRequest>> {
        let p = self.dir.join("exit.json");
        if !p.exists() {
            return Ok(None);
        }
        let mut exit: FinishRunRequest = read_json(&p)?;
        if exit.finished_at.is_none() {
            exit.finished_at = std::fs::metadata(&p)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs_f64());
        }
        Ok(Some(exit))
    }

    /// Records how the program ended.
    pub fn write_exit(&self, f: &FinishRunRequest) -> CliResult {
        write_json(&self.dir.join("exit.json"), f)
    }

    /// Files to attach to the run once it is on the server (`files.json`).
    pub fn saved_files(&self) -> CliResult<Vec<crate::transfer::LocalFile>> {
        let p = self.dir.join("files.json");
        if !p.exists() {
            return Ok(Vec::new());
        }
        read_json(&p)
    }

    /// Records files to attach.
    pub fn write_saved_files(&self, files: &[crate::transfer::LocalFile]) -> CliResult {
        write_json(&self.dir.join("files.json"), &files)
    }

    /// Attaches the recorded files; forgets the list once they are all on the server.
    pub async fn upload_saved_files(
        &self,
        api: &Api,
        run: &str,
        printer: &Printer,
    ) -> CliResult<usize> {
        let files = self.saved_files()?;
        if files.is_empty() {
            return Ok(0);
        }
        let present: Vec<_> = files.into_iter().filter(|f| f.local.is_file()).collect();
        let n = present.len();
        crate::transfer::put_files(api, run, present, printer).await?;
        let _ = std::fs::remove_file(self.dir.join("files.json"));
        Ok(n)
    }

    /// `metrics.jsonl`.
    pub fn metrics_path(&self) -> PathBuf {
        self.dir.join("metrics.jsonl")
    }

    /// `captured.jsonl`.
    pub fn captured_path(&self) -> PathBuf {
        self.dir.join("captured.jsonl")
    }

    /// `output.jsonl`.
    pub fn output_path(&self) -> PathBuf {
        self.dir.join("output.jsonl")
    }

    /// `system.jsonl`.
    pub fn system_path(&self) -> PathBuf {
        self.dir.join("system.jsonl")
    }

    fn pid_path(&self) -> PathBuf {
        self.dir.join("wrapper.pid")
    }

    /// Marks the spool as owned by this process.
    pub fn claim(&self) -> CliResult {
        std::fs::write(self.pid_path(), std::process::id().to_string())
            .map_err(|e| user_err!("cannot write {}: {e}", self.pid_path().display()))
    }

    /// Releases the spool.
    pub fn release(&self) {
        let _ = std::fs::remove_file(self.pid_path());
    }

    /// The pid of a live wrapper still writing this spool, if any.
    pub fn live_wrapper(&self) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(self.pid_path())
            .ok()?
            .trim()
            .parse()
            .ok()?;
        if pid == std::process::id() {
            return None;
        }
        let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_ok();
        alive.then_some(pid)
    }

    /// Bytes written to the spool files but not yet shipped.
    pub fn pending_bytes(&self, s: &ShipState) -> u64 {
        let len = |p: PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        len(self.metrics_path()).saturating_sub(s.metrics.offset)
            + len(self.captured_path()).saturating_sub(s.captured.offset)
            + len(self.system_path()).saturating_sub(s.system.offset)
            + len(self.output_path()).saturating_sub(s.output.offset)
    }
}

/// Directory that holds `runs/<id>/` spools: `WANLLMDB_DIR`, else `.wanllmdb` next to the
/// `.wanllmdb.toml` in effect, else `./.wanllmdb`.
pub fn spool_root(settings: &crate::config::Settings) -> PathBuf {
    if let Some(d) = std::env::var_os(crate::env::DIR).filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    if let Some((file, _)) = &settings.project_file
        && let Some(dir) = file.parent()
    {
        return dir.join(".wanllmdb");
    }
    PathBuf::from(".wanllmdb")
}

/// Now, in Unix seconds.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn read_json<T: serde::de::DeserializeOwned>(p: &Path) -> CliResult<T> {
    let bytes = std::fs::read(p).map_err(|e| user_err!("cannot read {}: {e}", p.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| user_err!("{} is damaged: {e}", p.display()))
}

fn write_json<T: Serialize>(p: &Path, v: &T) -> CliResult {
    let tmp = p.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(v).map_err(|e| CliError::unexpected(e.to_string()))?;
    std::fs::write(&tmp, bytes).map_err(|e| user_err!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, p).map_err(|e| user_err!("cannot write {}: {e}", p.display()))
}

/// Whether a trailing line without a newline may be consumed (the writer is gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drain {
    /// The program may still be writing: only complete lines.
    Live,
    /// The program has ended: everything.
    Final,
}

/// A batch read from a spool file, and where the cursor is after it.
struct Batch<T> {
    items: Vec<T>,
    cursor: FileCursor,
    /// The file has nothing more to give right now.
    exhausted: bool,
    /// The file had been truncated and was read from its start again.
    restarted: bool,
}

/// Reads lines from `cursor` until `budget` weight is reached; `parse` turns a line into an
/// item and its weight (None: the line is skipped, and was reported).
fn read_batch<T>(
    path: &Path,
    mut cursor: FileCursor,
    drain: Drain,
    budget: usize,
    mut parse: impl FnMut(&[u8], &mut FileCursor) -> Option<(T, usize)>,
) -> std::io::Result<Batch<T>> {
    let mut items = Vec::new();
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Batch {
                items,
                cursor,
                exhausted: true,
                restarted: false,
            });
        }
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    // Shorter than what was shipped: the program truncated it (reopened with "w").
    // Start over; points already sent are stored once.
    let restarted = len < cursor.offset;
    if restarted {
        cursor.offset = 0;
        cursor.line = 0;
    }
    let mut weight = 0usize;
    let mut buf: Vec<u8> = Vec::new();
    while cursor.offset < len && weight < budget {
        file.seek(SeekFrom::Start(cursor.offset))?;
        buf.clear();
        let want = (len - cursor.offset).min(READ_CHUNK as u64) as usize;
        buf.resize(want, 0);
        file.read_exact(&mut buf)?;
        let mut pos = 0usize;
        let mut progressed = false;
        while pos < buf.len() && weight < budget {
            let end = match memchr(b'\n', &buf[pos..]) {
                Some(i) => pos + i,
                None => {
                    let at_eof = cursor.offset + buf.len() as u64 == len;
                    if at_eof && drain == Drain::Final {
                        buf.len()
                    } else if pos == 0 && buf.len() == READ_CHUNK {
                        // One line longer than the read: find its end and skip it.
                        let skipped = skip_long_line(&mut file, cursor.offset)?;
                        match skipped {
                            Some(n) if n as usize > MAX_LINE => {
                                cursor.offset += n;
                                cursor.line += 1;
                                progressed = true;
                                break;
                            }
                            Some(n) => {
                                buf.resize(n as usize, 0);
                                file.seek(SeekFrom::Start(cursor.offset))?;
                                file.read_exact(&mut buf)?;
                                n as usize - 1
                            }
                            None if drain == Drain::Final => {
                                cursor.offset = len;
                                cursor.line += 1;
                                progressed = true;
                                break;
                            }
                            None => break,
                        }
                    } else {
                        break;
                    }
                }
            };
            let line = &buf[pos..end];
            let consumed = (end + 1).min(buf.len()) - pos;
            cursor.line += 1;
            let trimmed = trim_ascii(line);
            if !trimmed.is_empty()
                && let Some((item, w)) = parse(trimmed, &mut cursor)
            {
                items.push(item);
                weight += w;
            }
            cursor.offset += consumed as u64;
            pos += consumed;
            progressed = true;
        }
        if !progressed {
            break;
        }
    }
    let exhausted = weight < budget;
    Ok(Batch {
        items,
        cursor,
        exhausted,
        restarted,
    })
}

/// Length of the line starting at `offset` including its newline, or None when it has none.
fn skip_long_line(file: &mut std::fs::File, offset: u64) -> std::io::Result<Option<u64>> {
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = vec![0u8; READ_CHUNK];
    let mut n = 0u64;
    loop {
        let r = file.read(&mut buf)?;
        if r == 0 {
            return Ok(None);
        }
        if let Some(i) = memchr(b'\n', &buf[..r]) {
            return Ok(Some(n + i as u64 + 1));
        }
        n += r as u64;
    }
}

/// Whether a shipping round stops after this batch: the file is drained, or a live round
/// sent its share.
fn round_over(exhausted: bool, drain: Drain, rounds: usize) -> bool {
    exhausted || (drain == Drain::Live && rounds >= LIVE_BATCHES)
}

fn read_error(path: &Path, e: std::io::Error) -> ApiError {
    ApiError::Decode(format!("cannot read {}: {e}", path.display()))
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    memchr::memchr(needle, hay)
}

fn trim_ascii(s: &[u8]) -> &[u8] {
    s.trim_ascii()
}

/// The spool files that hold wire-format points, one per line.
#[derive(Debug, Clone, Copy)]
enum PointsFile {
    /// `captured.jsonl`.
    Captured,
    /// `system.jsonl`.
    System,
}

impl PointsFile {
    fn path(self, spool: &Spool) -> PathBuf {
        match self {
            PointsFile::Captured => spool.captured_path(),
            PointsFile::System => spool.system_path(),
        }
    }

    fn cursor(self) -> fn(&mut ShipState) -> &mut FileCursor {
        match self {
            PointsFile::Captured => |s| &mut s.captured,
            PointsFile::System => |s| &mut s.system,
        }
    }
}

/// Ships one spool to the server.
pub struct Shipper {
    /// The spool.
    pub spool: Spool,
    /// Its run description.
    pub meta: SpoolMeta,
    /// Shipping progress.
    pub state: ShipState,
    api: Api,
    printer: Printer,
    warned_keys: HashSet<String>,
    malformed: u64,
}

impl Shipper {
    /// A shipper for `spool`, talking to `api`.
    pub fn new(spool: Spool, api: Api, printer: Printer) -> CliResult<Shipper> {
        let meta = spool.meta()?;
        let state = spool.state()?;
        Ok(Shipper {
            spool,
            meta,
            state,
            api,
            printer,
            warned_keys: HashSet::new(),
            malformed: 0,
        })
    }

    /// The run id.
    pub fn run_id(&self) -> &str {
        self.meta.run.id.as_deref().unwrap_or_default()
    }

    /// Lines of the metrics file that could not be read.
    pub fn malformed_lines(&self) -> u64 {
        self.malformed
    }

    /// Creates (or resumes) the run on the server, creating its project when it is missing.
    /// The run starts when the wrapper started, however much later it is uploaded.
    pub async fn ensure_created(&mut self) -> Result<Run, ApiError> {
        if self.meta.run.started_at.is_none() {
            self.meta.run.started_at = Some(self.meta.created_at);
        }
        let run = match self
            .api
            .post::<_, Run>("/api/v1/runs", &self.meta.run)
            .await
        {
            Err(e) if e.is_missing_project() => {
                if self.api.ensure_project(&self.meta.run.project).await? {
                    self.printer
                        .info(format!("Created project {}", self.meta.run.project));
                }
                self.api
                    .post::<_, Run>("/api/v1/runs", &self.meta.run)
                    .await?
            }
            r => r?,
        };
        if !self.state.created {
            self.state.created = true;
            self.save()?;
        }
        Ok(run)
    }

    fn save(&self) -> Result<(), ApiError> {
        self.spool
            .save_state(&self.state)
            .map_err(|e| ApiError::Decode(e.message))
    }

    /// Ships what the spool holds; returns the number of metric values and log lines sent.
    pub async fn ship(&mut self, drain: Drain) -> Result<u64, ApiError> {
        if !self.state.created {
            self.ensure_created().await?;
        }
        let mut sent = self.ship_metrics(drain).await?;
        sent += self.ship_points(drain, PointsFile::Captured).await?;
        sent += self.ship_points(drain, PointsFile::System).await?;
        sent += self.ship_output(drain).await?;
        self.ship_summary().await?;
        Ok(sent)
    }

    async fn ship_metrics(&mut self, drain: Drain) -> Result<u64, ApiError> {
        let path = self.spool.metrics_path();
        let mut sent = 0;
        let mut rounds = 0;
        loop {
            rounds += 1;
            let printer = self.printer;
            let warned = &mut self.warned_keys;
            let malformed = &mut self.malformed;
            let mut body = HistoryBody::default();
            let batch = read_batch(&path, self.state.metrics, drain, BATCH_VALUES, |line, cur| {
                if let Some(fast) = fast_line(line) {
                    if fast.values.is_empty() {
                        return None;
                    }
                    body.push_fast(&fast, &mut cur.next_step);
                    return Some(((), fast.values.len()));
                }
                match parse_line(line) {
                    Ok(p) => {
                        for (k, why) in &p.skipped {
                            if warned.insert(k.clone()) {
                                printer.warn(format!(
                                    "metrics line {}: {k:?} not recorded: {why} (reported once per key)",
                                    cur.line
                                ));
                            }
                        }
                        if p.values.is_empty() {
                            return None;
                        }
                        let w = p.values.len();
                        body.push_point(&p.into_point(&mut cur.next_step));
                        Some(((), w))
                    }
                    Err(e) => {
                        *malformed += 1;
                        if *malformed <= 10 {
                            printer.warn(format!(
                                "metrics line {} skipped: {e}; write one JSON object per line, like {{\"step\": 3, \"loss\": 0.25}}",
                                cur.line
                            ));
                        }
                        None
                    }
                }
            })
            .map_err(|e| read_error(&path, e))?;
            if batch.restarted {
                self.printer.warn(
                    "the metrics file was truncated (opened with \"w\" instead of \"a\"?); reading it again from the start",
                );
            }
            sent += self.post_history(body).await?;
            self.commit(|s| &mut s.metrics, batch.cursor)?;
            if round_over(batch.exhausted, drain, rounds) {
                return Ok(sent);
            }
        }
    }

    /// Ships a file of wire-format points.
    async fn ship_points(&mut self, drain: Drain, file: PointsFile) -> Result<u64, ApiError> {
        let path = file.path(&self.spool);
        let slot = file.cursor();
        let mut sent = 0;
        let mut rounds = 0;
        loop {
            rounds += 1;
            let mut body = HistoryBody::default();
            let start = *slot(&mut self.state);
            let batch = read_batch(&path, start, drain, BATCH_VALUES, |line, _| {
                let p: HistoryPoint = serde_json::from_slice(line).ok()?;
                body.push_point(&p);
                Some(((), p.values.0.len()))
            })
            .map_err(|e| read_error(&path, e))?;
            sent += self.post_history(body).await?;
            self.commit(slot, batch.cursor)?;
            if round_over(batch.exhausted, drain, rounds) {
                return Ok(sent);
            }
        }
    }

    /// Sends a history body; returns the values it held.
    async fn post_history(&self, body: HistoryBody) -> Result<u64, ApiError> {
        if body.points == 0 {
            return Ok(0);
        }
        let n = body.values as u64;
        let path = format!("/api/v1/runs/{}/history", seg(self.run_id()));
        let _: AppendHistoryResponse = self
            .api
            .post_raw(&path, "application/json", body.finish())
            .await?;
        Ok(n)
    }

    /// Records that a file is shipped up to `cursor` (written only when it moved).
    fn commit(
        &mut self,
        slot: fn(&mut ShipState) -> &mut FileCursor,
        cursor: FileCursor,
    ) -> Result<(), ApiError> {
        let current = slot(&mut self.state);
        if *current != cursor {
            *current = cursor;
            self.save()?;
        }
        Ok(())
    }

    async fn ship_output(&mut self, drain: Drain) -> Result<u64, ApiError> {
        let path = self.spool.output_path();
        let mut sent = 0;
        let mut rounds = 0;
        loop {
            rounds += 1;
            let batch = read_batch(&path, self.state.output, drain, BATCH_LINES, |line, _| {
                let l: NewLogLine = serde_json::from_slice(line).ok()?;
                Some((l, 1))
            })
            .map_err(|e| read_error(&path, e))?;
            if !batch.items.is_empty() {
                let n = batch.items.len() as u64;
                let path = format!("/api/v1/runs/{}/logs", seg(self.run_id()));
                let _: AppendLogsResponse = self
                    .api
                    .post(&path, &AppendLogsRequest { lines: batch.items })
                    .await?;
                sent += n;
            }
            self.commit(|s| &mut s.output, batch.cursor)?;
            if round_over(batch.exhausted, drain, rounds) {
                return Ok(sent);
            }
        }
    }

    /// Sets the summary values of `summary.json` once, after the metrics they refer to.
    async fn ship_summary(&mut self) -> Result<(), ApiError> {
        if self.state.summary_sent {
            return Ok(());
        }
        let values = self
            .spool
            .summary()
            .map_err(|e| ApiError::Decode(e.message))?;
        if let Some(values) = values {
            let path = format!("/api/v1/runs/{}/summary", seg(self.run_id()));
            let _: serde_json::Value = self
                .api
                .post(&path, &serde_json::json!({ "values": values }))
                .await?;
        }
        self.state.summary_sent = true;
        self.save()
    }

    /// Records the final state on the server.
    pub async fn finish(&mut self, f: &FinishRunRequest) -> Result<(), ApiError> {
        let path = format!("/api/v1/runs/{}/finish", seg(self.run_id()));
        let _: Run = self.api.post(&path, f).await?;
        self.state.finished = true;
        self.save()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(path: &Path, cur: FileCursor, drain: Drain, budget: usize) -> Batch<String> {
        read_batch(path, cur, drain, budget, |l, _| {
            Some((String::from_utf8_lossy(l).into_owned(), 1))
        })
        .unwrap()
    }

    #[test]
    fn partial_last_line_waits_until_the_final_drain() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.jsonl");
        std::fs::write(&p, "a\nb\n\nc").unwrap();
        let b = collect(&p, FileCursor::default(), Drain::Live, 100);
        assert_eq!(b.items, ["a", "b"]);
        assert_eq!(b.cursor.offset, 5);
        assert_eq!(b.cursor.line, 3);
        let b2 = collect(&p, b.cursor, Drain::Final, 100);
        assert_eq!(b2.items, ["c"]);
        assert_eq!(b2.cursor.offset, 6);
    }

    #[test]
    fn budget_splits_batches_at_line_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.jsonl");
        let text: String = (0..10).map(|i| format!("{i}\n")).collect();
        std::fs::write(&p, &text).unwrap();
        let mut cur = FileCursor::default();
        let mut all = Vec::new();
        loop {
            let b = collect(&p, cur, Drain::Live, 3);
            all.extend(b.items);
            cur = b.cursor;
            if b.exhausted {
                break;
            }
        }
        assert_eq!(all.len(), 10);
        assert_eq!(cur.offset, text.len() as u64);
    }

    #[test]
    fn a_truncated_file_is_read_again_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.jsonl");
        std::fs::write(&p, "a\nb\nc\n").unwrap();
        let b = collect(&p, FileCursor::default(), Drain::Live, 100);
        std::fs::write(&p, "d\n").unwrap();
        let b2 = collect(&p, b.cursor, Drain::Live, 100);
        assert!(b2.restarted);
        assert_eq!(b2.items, ["d"]);
        assert_eq!(b2.cursor.offset, 2);
    }

    #[test]
    fn lines_longer_than_a_read_are_whole() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.jsonl");
        let long = "x".repeat(READ_CHUNK + 10);
        std::fs::write(&p, format!("{long}\nshort\n")).unwrap();
        let b = collect(&p, FileCursor::default(), Drain::Live, 100);
        assert_eq!(b.items.len(), 2);
        assert_eq!(b.items[0].len(), long.len());
        assert_eq!(b.items[1], "short");
    }
}
