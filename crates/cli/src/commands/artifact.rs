//! `wanllmdb artifact …`: versioned datasets, models and code.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Subcommand};
use indicatif::HumanBytes;
use serde::Serialize;
use tokio::sync::Semaphore;
use wanllmdb_api_types::artifacts::{
    Artifact, ArtifactAlias, ArtifactFile, ArtifactVersion, CreateVersionRequest,
    CreateVersionResponse, EntrySpec, Lineage, SetAliasRequest, UpdateArtifactRequest,
    UseVersionRequest, is_valid_artifact_name,
};
use wanllmdb_api_types::files::normalize_path;
use wanllmdb_api_types::{ProjectName, RunId};

use crate::cache::{Cache, ensure_parent, part_path};
use crate::client::{Api, seg};
use crate::commands::JsonFlag;
use crate::commands::cache::CacheArgs;
use crate::config::{GlobalFlags, Settings};
use crate::env;
use crate::error::{CliError, CliResult, user_err};
use crate::output::outln;
use crate::output::when;
use crate::output::{Printer, confirm, kv_table, table};
use crate::transfer::{self, PARALLEL, bar, save_verified};

/// `wanllmdb artifact` subcommands.
#[derive(Debug, Subcommand)]
pub enum ArtifactCommand {
    /// Log files, directories and references as a new version of an artifact
    #[command(after_help = "\
Only content the project does not hold yet is uploaded. If nothing changed since the latest
version, no new version is made and the latest is printed. A single directory is stored with
its contents at the top; several paths keep their names. s3://, gs:// and https:// URIs are
recorded as references (the bytes stay where they are). Inside `wanllmdb run`, the run is
recorded as the version's producer.

Examples:
  wanllmdb artifact put ./data --name mnist --type dataset
  wanllmdb artifact put model.pt config.yaml --name resnet --type model --alias staging \\
      --metadata accuracy=0.93 --description \"after lr sweep\"
  wanllmdb artifact put s3://bucket/imagenet/train.tar --name imagenet --type dataset")]
    Put(PutArgs),
    /// Download a version, checking every digest (content already cached is copied locally)
    #[command(after_help = "\
VERSION is v3, 3, latest (the default) or an alias such as production. Files already in the
target directory with the same content are left alone. Inside `wanllmdb run` (or with --run),
the run is recorded as a user of the version.

Examples:
  wanllmdb artifact get mnist                       # latest, into ./artifacts/mnist/v<N>
  wanllmdb artifact get resnet:production --dir model/
  wanllmdb artifact get other-project/resnet:v2")]
    Get(GetArgs),
    /// List a project's artifacts
    #[command(alias = "list")]
    Ls {
        /// Only this type
        #[arg(long = "type", value_name = "TYPE")]
        kind: Option<String>,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// List the versions of an artifact, newest first
    Versions {
        /// NAME or PROJECT/NAME
        name: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Show a version: details, aliases, files and lineage
    Show {
        /// NAME[:VERSION|ALIAS]
        spec: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Where a version came from (the runs and inputs upstream) and what was made with it,
    /// as trees
    Lineage {
        /// NAME[:VERSION|ALIAS]
        spec: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Point an alias at a version, or remove it with --remove
    #[command(after_help = "\
Examples:
  wanllmdb artifact alias resnet:v3 production      # moves production to v3
  wanllmdb artifact alias resnet production --remove")]
    Alias {
        /// NAME:VERSION (just NAME with --remove)
        spec: String,
        /// The alias (not `latest` or vN, which always mean the newest and the N-th version)
        alias: String,
        /// Remove the alias instead
        #[arg(long)]
        remove: bool,
    },
    /// List an artifact's aliases (latest included) and the versions they point at
    Aliases {
        /// NAME or PROJECT/NAME
        name: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Show where the local content cache is and how much it holds; --clear empties it
    /// (`wanllmdb cache` shows its size limit and prunes it)
    Cache {
        /// Delete everything in the cache
        #[arg(long)]
        clear: bool,
    },
    /// Log a version made of references to s3://, gs:// or https:// objects
    #[command(after_help = "\
Each URI becomes an entry named after its last path segment; the bytes are not uploaded.
The server refuses URIs that point at private, loopback or link-local addresses.

Example:
  wanllmdb artifact ref imagenet s3://datasets/imagenet/train.tar s3://datasets/imagenet/val.tar --type dataset")]
    Ref(RefArgs),
    /// Change an artifact's description, tags or metadata (a version's files never change)
    #[command(after_help = "\
Examples:
  wanllmdb artifact update mnist --description \"MNIST, 70k images\" --tag vision --tag small
  wanllmdb artifact update resnet --metadata owner=vision-team --metadata license=apache-2.0
  wanllmdb artifact update resnet --metadata owner=null      # removes the key")]
    Update(UpdateArgs),
    /// Delete an artifact with all its versions and aliases
    #[command(alias = "rm")]
    Delete {
        /// NAME or PROJECT/NAME
        name: String,
        /// Do not ask for confirmation
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

/// The arguments of `artifact put`.
#[derive(Debug, Args)]
pub struct PutArgs {
    /// Files, directories and s3:// gs:// https:// URIs
    #[arg(required = true)]
    paths: Vec<String>,
    /// Artifact name (NAME, or PROJECT/NAME)
    #[arg(long)]
    name: String,
    /// Type: model, dataset, file, code or any other word (needed for a new artifact)
    #[arg(long = "type", value_name = "TYPE")]
    kind: Option<String>,
    /// Point this alias at the new version (repeatable)
    #[arg(long = "alias", value_name = "ALIAS")]
    aliases: Vec<String>,
    /// Description of the version
    #[arg(long, default_value = "")]
    description: String,
    /// KEY=VALUE metadata of the version (values parsed as JSON when they can be; repeatable)
    #[arg(long = "metadata", value_name = "KEY=VALUE")]
    metadata: Vec<String>,
    /// Run that produced it [default: $WANLLMDB_RUN_ID inside `wanllmdb run`]
    #[arg(long)]
    run: Option<String>,
    #[command(flatten)]
    json: JsonFlag,
}

/// The arguments of `artifact get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// NAME[:VERSION|ALIAS], optionally PROJECT/NAME[:…]
    spec: String,
    /// Directory to write into [default: ./artifacts/NAME/vN]
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Record this run as a user of the version [default: $WANLLMDB_RUN_ID]
    #[arg(long)]
    run: Option<String>,
    #[command(flatten)]
    cache: CacheArgs,
    #[command(flatten)]
    json: JsonFlag,
}

/// The arguments of `artifact ref`.
#[derive(Debug, Args)]
pub struct RefArgs {
    /// NAME or PROJECT/NAME
    name: String,
    /// The URIs
    #[arg(required = true)]
    uris: Vec<String>,
    /// Type (needed for a new artifact)
    #[arg(long = "type", value_name = "TYPE")]
    kind: Option<String>,
    /// Point this alias at the new version (repeatable)
    #[arg(long = "alias", value_name = "ALIAS")]
    aliases: Vec<String>,
    #[command(flatten)]
    json: JsonFlag,
}

/// The arguments of `artifact update`.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// NAME or PROJECT/NAME
    name: String,
    /// New description
    #[arg(long)]
    description: Option<String>,
    /// Replace the tags with these (repeatable)
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// Remove all tags
    #[arg(long, conflicts_with = "tags")]
    clear_tags: bool,
    /// Set these KEY=VALUE pairs in the metadata, keeping the other keys; KEY=null removes
    /// one (repeatable)
    #[arg(long = "metadata", value_name = "KEY=VALUE")]
    metadata: Vec<String>,
    #[command(flatten)]
    json: JsonFlag,
}

/// An artifact named on the command line.
struct Target {
    project: ProjectName,
    name: String,
    version: Option<String>,
}

impl Target {
    fn parse(spec: &str, settings: &Settings) -> CliResult<Target> {
        let (path, version) = match spec.split_once(':') {
            Some((p, v)) if !v.is_empty() => (p, Some(v.to_string())),
            Some(_) => {
                return Err(user_err!("{spec:?}: nothing after ':'")
                    .hint("write NAME:v3, NAME:latest or NAME:ALIAS"));
            }
            None => (spec, None),
        };
        let (project, name) = match path.split_once('/') {
            Some((p, n)) => (super::valid_project_name(p)?, n.to_string()),
            None => (settings.require_project()?, path.to_string()),
        };
        if !is_valid_artifact_name(&name) {
            return Err(user_err!(
                "artifact name {name:?} is not valid: use 1 to 128 of A-Z a-z 0-9 . _ -"
            ));
        }
        Ok(Target {
            project,
            name,
            version,
        })
    }

    /// A fully qualified `PROJECT/NAME:VERSION`, as the server writes it.
    fn qualified(spec: &str) -> CliResult<Target> {
        let bad =
            || CliError::unexpected(format!("{spec:?} is not a PROJECT/NAME:VERSION reference"));
        let (project, rest) = spec.split_once('/').ok_or_else(bad)?;
        let (name, version) = rest.split_once(':').ok_or_else(bad)?;
        let project = ProjectName::parse(project).map_err(|_| bad())?;
        if !is_valid_artifact_name(name) || version.is_empty() {
            return Err(bad());
        }
        Ok(Target {
            project,
            name: name.to_string(),
            version: Some(version.to_string()),
        })
    }

    fn no_version(self, spec: &str) -> CliResult<Target> {
        if self.version.is_some() {
            return Err(user_err!(
                "{spec:?}: give just the artifact name here, without :VERSION"
            ));
        }
        Ok(self)
    }

    fn base(&self) -> String {
        format!(
            "/api/v1/projects/{}/artifacts/{}",
            seg(&self.project),
            seg(&self.name)
        )
    }

    fn version_path(&self) -> String {
        format!(
            "{}/versions/{}",
            self.base(),
            seg(self.version.as_deref().unwrap_or("latest"))
        )
    }
}

fn is_uri(s: &str) -> bool {
    ["s3://", "gs://", "https://", "http://"]
        .iter()
        .any(|p| s.len() > p.len() && s[..p.len()].eq_ignore_ascii_case(p))
}

/// A reference entry named after the URI's last path segment.
fn reference_entry(uri: &str) -> CliResult<EntrySpec> {
    let path = uri
        .split(['?', '#'])
        .next()
        .unwrap_or(uri)
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("");
    let rest = uri.split_once("://").map(|(_, r)| r).unwrap_or("");
    if path.is_empty() || !rest.contains('/') {
        return Err(user_err!("{uri:?} names no object")
            .hint("give the URI of a file, e.g. s3://bucket/data/train.csv"));
    }
    let path = normalize_path(path).map_err(|e| user_err!("{uri:?}: {e}"))?;
    Ok(EntrySpec {
        path,
        sha256: None,
        size: None,
        reference: Some(uri.to_string()),
        checksum: None,
    })
}

fn parse_metadata(pairs: &[String]) -> CliResult<Option<serde_json::Value>> {
    if pairs.is_empty() {
        return Ok(None);
    }
    let mut map = serde_json::Map::new();
    for p in pairs {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| user_err!("--metadata {p:?}: expected KEY=VALUE"))?;
        if k.is_empty() {
            return Err(user_err!("--metadata {p:?}: the key is empty"));
        }
        let value = serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::String(v.into()));
        map.insert(k.to_string(), value);
    }
    Ok(Some(serde_json::Value::Object(map)))
}

/// The run to record, from the flag or the wrapper's environment.
pub(crate) fn run_from(flag: Option<String>) -> CliResult<Option<RunId>> {
    let run = flag.or_else(|| std::env::var(env::RUN_ID).ok().filter(|r| !r.is_empty()));
    run.map(|r| super::valid_run_id(&r)).transpose()
}

/// What `artifact put` did.
#[derive(Debug, Serialize)]
struct PutReport {
    version: ArtifactVersion,
    created: bool,
    uploaded: usize,
    bytes_uploaded: u64,
}

struct Manifest {
    entries: Vec<EntrySpec>,
    local: HashMap<String, PathBuf>,
}

async fn build_manifest(paths: &[String]) -> CliResult<Manifest> {
    let mut entries = Vec::new();
    let mut local_paths = Vec::new();
    for p in paths {
        if is_uri(p) {
            entries.push(reference_entry(p)?);
        } else {
            local_paths.push(PathBuf::from(p));
        }
    }
    let mut files = transfer::collect(&local_paths, None)?;
    // One directory alone: its contents at the top of the artifact.
    if local_paths.len() == 1 && local_paths[0].is_dir() {
        for f in &mut files {
            if let Some((_, rest)) = f.remote.split_once('/') {
                f.remote = rest.to_string();
            }
        }
    }
    let mut local = HashMap::new();
    let digests = transfer::hash_files(files.iter().map(|f| f.local.clone()).collect()).await?;
    for (f, (sha256, size)) in files.into_iter().zip(digests) {
        let path = normalize_path(&f.remote)
            .map_err(|e| user_err!("cannot store {} as {:?}: {e}", f.local.display(), f.remote))?;
        local
            .entry(sha256.clone())
            .or_insert_with(|| f.local.clone());
        entries.push(EntrySpec {
            path,
            sha256: Some(sha256),
            size: Some(size),
            reference: None,
            checksum: None,
        });
    }
    let mut seen = std::collections::HashSet::new();
    for e in &entries {
        if !seen.insert(e.path.clone()) {
            return Err(user_err!("two inputs would both be stored as {}", e.path)
                .hint("rename one, or put them in separate directories"));
        }
    }
    if entries.is_empty() {
        return Err(user_err!("no files found in the paths given"));
    }
    Ok(Manifest { entries, local })
}

async fn log_version(
    api: &Api,
    target: &Target,
    manifest: Manifest,
    req: CreateVersionRequest,
    printer: &Printer,
) -> CliResult<PutReport> {
    let mut req = req;
    req.entries = manifest.entries;
    let path = format!("{}/versions", target.base());
    let resp: CreateVersionResponse = match api.post(&path, &req).await {
        // Like `wanllmdb run`, logging into a project that does not exist yet creates it.
        Err(e) if e.is_missing_project() => {
            if api.ensure_project(&target.project).await? {
                printer.info(format!("Created project {}", target.project));
            }
            api.post(&path, &req).await?
        }
        r => r?,
    };
    let mut todo = Vec::new();
    for u in &resp.uploads {
        let local = manifest.local.get(&u.sha256).ok_or_else(|| {
            CliError::unexpected(format!(
                "the server asked for content {} that was not offered",
                u.sha256
            ))
        })?;
        todo.push(transfer::Upload {
            local: local.clone(),
            url: u.upload_url.clone(),
            complete_url: u.complete_url.clone(),
            parts: u.parts.clone(),
            size: u.size,
            resume_key: None,
        });
    }
    let uploaded = todo.len();
    let bytes_uploaded = todo.iter().map(|t| t.size).sum();
    let version = if todo.is_empty() {
        resp.version
    } else {
        transfer::upload_all(api, todo, printer).await?;
        api.post(
            &format!("{}/drafts/{}/commit", target.base(), resp.version.id),
            &serde_json::json!({}),
        )
        .await?
    };
    Ok(PutReport {
        version,
        created: resp.created,
        uploaded,
        bytes_uploaded,
    })
}

fn print_put(printer: &Printer, report: &PutReport, json: bool) -> CliResult {
    if json {
        return printer.print_json(report);
    }
    let v = &report.version;
    let label = format!(
        "{}/{}:{}",
        v.project,
        v.artifact,
        v.version.as_deref().unwrap_or("?")
    );
    if report.created {
        printer.success(format!(
            "Logged {label} ({} files, {}; {} uploaded, {} sent)",
            v.file_count,
            HumanBytes(v.total_size.max(0) as u64),
            report.uploaded,
            HumanBytes(report.bytes_uploaded)
        ));
    } else {
        printer.success(format!(
            "No change: {label} already holds exactly this content"
        ));
    }
    if !v.aliases.is_empty() {
        printer.info(format!("aliases: {}", v.aliases.join(", ")));
    }
    Ok(())
}

/// What `artifact get` did.
#[derive(Debug, Default, Serialize)]
pub(crate) struct GetReport {
    pub(crate) version: String,
    pub(crate) dir: PathBuf,
    pub(crate) files: usize,
    pub(crate) downloaded: usize,
    pub(crate) from_cache: usize,
    pub(crate) already_there: usize,
    pub(crate) references_skipped: Vec<String>,
}

enum Got {
    Downloaded,
    Cached,
}

/// Runs an `artifact` subcommand.
pub async fn run(cmd: ArtifactCommand, flags: &GlobalFlags, printer: Printer) -> CliResult {
    if let ArtifactCommand::Cache { clear } = cmd {
        return cache_command(clear, &printer).await;
    }
    let settings = Settings::resolve(flags).await?;
    let api = Api::new(&settings)?;
    match cmd {
        ArtifactCommand::Put(args) => put(&api, &settings, printer, args).await,
        ArtifactCommand::Ref(args) => reference(&api, &settings, printer, args).await,
        ArtifactCommand::Get(args) => get_and_report(&api, &settings, printer, args).await,
        ArtifactCommand::Ls { kind, json } => ls(&api, &settings, printer, kind, json).await,
        ArtifactCommand::Versions { name, json } => {
            versions(&api, &settings, printer, name, json).await
        }
        ArtifactCommand::Lineage { spec, json } => {
            lineage(&api, &settings, printer, spec, json).await
        }
        ArtifactCommand::Show { spec, json } => show(&api, &settings, printer, spec, json).await,
        ArtifactCommand::Alias {
            spec,
            alias,
            remove,
        } => set_alias(&api, &settings, printer, spec, alias, remove).await,
        ArtifactCommand::Aliases { name, json } => {
            list_aliases(&api, &settings, printer, name, json).await
        }
        ArtifactCommand::Cache { clear } => cache_command(clear, &printer).await,
        ArtifactCommand::Update(args) => update(&api, &settings, printer, args).await,
        ArtifactCommand::Delete { name, yes } => delete(&api, &settings, printer, name, yes).await,
    }
}

/// `artifact put`: uploads local files as a new version.
async fn put(api: &Api, settings: &Settings, printer: Printer, args: PutArgs) -> CliResult {
    let PutArgs {
        paths,
        name,
        kind,
        aliases,
        description,
        metadata,
        run,
        json,
    } = args;
    let target = Target::parse(&name, settings)?.no_version(&name)?;
    let manifest = build_manifest(&paths).await?;
    let req = CreateVersionRequest {
        kind,
        description,
        metadata: parse_metadata(&metadata)?,
        run: run_from(run)?,
        aliases,
        entries: vec![],
    };
    let report = log_version(api, &target, manifest, req, &printer).await?;
    print_put(&printer, &report, json.json)
}

/// `artifact ref`: logs a version of references to cloud storage, without their bytes.
async fn reference(api: &Api, settings: &Settings, printer: Printer, args: RefArgs) -> CliResult {
    let RefArgs {
        name,
        uris,
        kind,
        aliases,
        json,
    } = args;
    let target = Target::parse(&name, settings)?.no_version(&name)?;
    for u in &uris {
        if !is_uri(u) {
            return Err(user_err!("{u:?} is not an s3://, gs:// or https:// URI")
                .hint("local files are logged with `wanllmdb artifact put`"));
        }
    }
    let manifest = build_manifest(&uris).await?;
    let req = CreateVersionRequest {
        kind,
        run: run_from(None)?,
        aliases,
        ..CreateVersionRequest::default()
    };
    let report = log_version(api, &target, manifest, req, &printer).await?;
    print_put(&printer, &report, json.json)
}

/// `artifact get`: downloads a version into a directory.
async fn get_and_report(
    api: &Api,
    settings: &Settings,
    printer: Printer,
    args: GetArgs,
) -> CliResult {
    let GetArgs {
        spec,
        dir,
        run,
        cache,
        json,
    } = args;
    let target = Target::parse(&spec, settings)?;
    let cache = cache.open()?;
    let report = get(api, &target, dir, run_from(run)?, cache, &printer).await?;
    if json.json {
        return printer.print_json(&report);
    }
    printer.success(format!(
        "{} files of {}:{} in {} ({} downloaded, {} from the local cache, {} already there)",
        report.files,
        target.name,
        report.version,
        report.dir.display(),
        report.downloaded,
        report.from_cache,
        report.already_there
    ));
    if !report.references_skipped.is_empty() {
        printer.warn(format!(
            "{} reference(s) to cloud storage were not downloaded (fetch them with your storage tools): {}",
            report.references_skipped.len(),
            report.references_skipped.join(", ")
        ));
    }
    Ok(())
}

/// `artifact ls`: the artifacts of the project.
async fn ls(
    api: &Api,
    settings: &Settings,
    printer: Printer,
    kind: Option<String>,
    json: JsonFlag,
) -> CliResult {
    let project = settings.require_project()?;
    let mut q = vec![];
    if let Some(k) = kind {
        q.push(("type", k));
    }
    let items: Vec<Artifact> = api
        .get_all(
            &format!("/api/v1/projects/{}/artifacts", seg(&project)),
            &q,
            100_000,
        )
        .await?;
    printer.with_json(json).data(&items, || {
        let mut t = table(&[
            "NAME",
            "TYPE",
            "VERSIONS",
            "LATEST",
            "UPDATED",
            "DESCRIPTION",
        ]);
        for a in &items {
            t.add_row(vec![
                a.name.clone(),
                a.kind.clone(),
                a.version_count.to_string(),
                a.latest_version.clone().unwrap_or_default(),
                when(&a.updated_at),
                a.description.clone(),
            ]);
        }
        t
    })
}

/// `artifact versions`: the versions of one artifact.
async fn versions(
    api: &Api,
    settings: &Settings,
    printer: Printer,
    name: String,
    json: JsonFlag,
) -> CliResult {
    let target = Target::parse(&name, settings)?.no_version(&name)?;
    let versions: Vec<ArtifactVersion> =
        api.get(&format!("{}/versions", target.base()), &[]).await?;
    printer.with_json(json).data(&versions, || {
        let mut t = table(&[
            "VERSION", "ALIASES", "FILES", "SIZE", "RUN", "CREATED", "BY", "DIGEST",
        ]);
        for v in &versions {
            t.add_row(vec![
                v.version.clone().unwrap_or_default(),
                v.aliases.join(","),
                v.file_count.to_string(),
                HumanBytes(v.total_size.max(0) as u64).to_string(),
                v.run.as_ref().map(RunId::to_string).unwrap_or_default(),
                when(&v.created_at),
                v.created_by.clone().unwrap_or_default(),
                v.digest[..12.min(v.digest.len())].to_string(),
            ]);
        }
        t
    })
}

/// `artifact lineage`: the runs and versions upstream and downstream of a version.
async fn lineage(
    api: &Api,
    settings: &Settings,
    printer: Printer,
    spec: String,
    json: JsonFlag,
) -> CliResult {
    let target = Target::parse(&spec, settings)?;
    let lineage: Lineage = api
        .get(&format!("{}/lineage", target.version_path()), &[])
        .await?;
    printer.with_json(json).data(&lineage, || {
        super::lineage::render(&lineage).trim_end().to_string()
    })
}

/// `artifact show`: one version with its files and lineage.
async fn show(
    api: &Api,
    settings: &Settings,
    printer: Printer,
    spec: String,
    json: JsonFlag,
) -> CliResult {
    let target = Target::parse(&spec, settings)?;
    let v: ArtifactVersion = api.get(&target.version_path(), &[]).await?;
    let files: Vec<ArtifactFile> = api
        .get(&format!("{}/files", target.version_path()), &[])
        .await?;
    let lineage: Lineage = api
        .get(&format!("{}/lineage", target.version_path()), &[])
        .await?;
    if json.json {
        return printer.print_json(&serde_json::json!({
            "version": v, "files": files, "lineage": lineage,
        }));
    }
    let produced = lineage
        .produced_by
        .as_ref()
        .map(|r| format!("{} ({}, {})", r.id, r.name, r.state))
        .unwrap_or_else(|| "-".into());
    let used: Vec<String> = lineage
        .used_by
        .iter()
        .map(|r| format!("{} ({})", r.id, r.name))
        .collect();
    outln!(
        "{}",
        kv_table(&[
            ("artifact", format!("{}/{}", v.project, v.artifact)),
            ("version", v.version.clone().unwrap_or_default()),
            ("type", v.kind.clone()),
            ("aliases", v.aliases.join(", ")),
            ("files", v.file_count.to_string()),
            ("size", HumanBytes(v.total_size.max(0) as u64).to_string()),
            ("digest", v.digest.clone()),
            ("description", v.description.clone()),
            ("metadata", v.metadata.to_string()),
            (
                "created",
                format!(
                    "{} by {}",
                    when(&v.created_at),
                    v.created_by.clone().unwrap_or_default()
                )
            ),
            ("logged by run", produced),
            (
                "used by runs",
                if used.is_empty() {
                    "-".into()
                } else {
                    used.join(", ")
                }
            ),
        ])
    )?;
    let mut t = table(&["PATH", "SIZE", "SHA256 / REFERENCE"]);
    for f in &files {
        t.add_row(vec![
            f.path.clone(),
            HumanBytes(f.size).to_string(),
            f.sha256
                .clone()
                .or_else(|| f.reference.clone())
                .unwrap_or_default(),
        ]);
    }
    outln!("{t}")?;
    Ok(())
}

/// `artifact alias`: points an alias at a version, or removes it.
async fn set_alias(
    api: &Api,
    settings: &Settings,
    printer: Printer,
    spec: String,
    alias: String,
    remove: bool,
) -> CliResult {
    let target = Target::parse(&spec, settings)?;
    let path = format!("{}/aliases/{}", target.base(), seg(&alias));
    if remove {
        api.delete(&path).await?;
        printer.success(format!("Removed alias {alias} from {}", target.name));
        return Ok(());
    }
    let version = target.version.clone().ok_or_else(|| {
        user_err!("which version? write {}:v3 {alias}", target.name)
            .hint("or add --remove to take the alias away")
    })?;
    let v: ArtifactVersion = api.put(&path, &SetAliasRequest { version }).await?;
    printer.success(format!(
        "{}:{alias} → {}",
        target.name,
        v.version.unwrap_or_default()
    ));
    Ok(())
}

/// `artifact aliases`: the aliases of one artifact.
async fn list_aliases(
    api: &Api,
    settings: &Settings,
    printer: Printer,
    name: String,
    json: JsonFlag,
) -> CliResult {
    let target = Target::parse(&name, settings)?.no_version(&name)?;
    let aliases: Vec<ArtifactAlias> = api.get(&format!("{}/aliases", target.base()), &[]).await?;
    printer.with_json(json).data(&aliases, || {
        let mut t = table(&["ALIAS", "VERSION", "SET BY", "SINCE"]);
        for a in &aliases {
            t.add_row(vec![
                a.alias.clone(),
                a.version.clone(),
                a.updated_by.clone().unwrap_or_else(|| "-".into()),
                when(&a.updated_at),
            ]);
        }
        t
    })
}

/// `artifact update`: changes an artifact's description, tags or metadata.
async fn update(api: &Api, settings: &Settings, printer: Printer, args: UpdateArgs) -> CliResult {
    let UpdateArgs {
        name,
        description,
        tags,
        clear_tags,
        metadata,
        json,
    } = args;
    let target = Target::parse(&name, settings)?.no_version(&name)?;
    let req = UpdateArtifactRequest {
        description,
        metadata: parse_metadata(&metadata)?,
        tags: if clear_tags {
            Some(vec![])
        } else {
            (!tags.is_empty()).then_some(tags)
        },
    };
    if req.description.is_none() && req.metadata.is_none() && req.tags.is_none() {
        return Err(user_err!("nothing to change")
            .hint("give --description, --tag, --clear-tags or --metadata"));
    }
    let a: Artifact = api.patch(&target.base(), &req).await?;
    if json.json {
        return printer.print_json(&a);
    }
    printer.success(format!("Updated {}/{}", a.project, a.name));
    Ok(())
}

/// `artifact delete`: deletes an artifact and its versions.
async fn delete(
    api: &Api,
    settings: &Settings,
    printer: Printer,
    name: String,
    yes: bool,
) -> CliResult {
    let target = Target::parse(&name, settings)?.no_version(&name)?;
    let a: Artifact = api.get(&target.base(), &[]).await?;
    if !yes
        && !confirm(&format!(
            "Delete artifact {}/{} and its {} version(s)?",
            target.project, target.name, a.version_count
        ))?
    {
        return Err(user_err!("nothing deleted").hint("pass --yes to delete without asking"));
    }
    api.delete(&target.base()).await?;
    printer.success(format!(
        "Deleted {}/{} ({} versions; stored content is freed by the next `wanllmdb admin gc`)",
        target.project, target.name, a.version_count
    ));
    Ok(())
}

/// Downloads `PROJECT/NAME:VERSION` into `dir` exactly as `artifact get` does (paths checked,
/// digests verified, the local cache used): how `model download` fetches a model's files.
pub(crate) async fn download(
    api: &Api,
    artifact: &str,
    dir: PathBuf,
    run: Option<RunId>,
    cache: Option<Cache>,
    printer: &Printer,
) -> CliResult<GetReport> {
    let target = Target::qualified(artifact)?;
    get(api, &target, Some(dir), run, cache, printer).await
}

/// Downloads a version into a directory.
async fn get(
    api: &Api,
    target: &Target,
    dir: Option<PathBuf>,
    run: Option<RunId>,
    cache: Option<Cache>,
    printer: &Printer,
) -> CliResult<GetReport> {
    let v: ArtifactVersion = api.get(&target.version_path(), &[]).await?;
    let label = v.version.clone().unwrap_or_else(|| "latest".into());
    let spec = Target {
        project: target.project.clone(),
        name: target.name.clone(),
        version: Some(label.clone()),
    };
    let files: Vec<ArtifactFile> = api
        .get(
            &format!("{}/files", spec.version_path()),
            &[("download_urls", "true".to_string())],
        )
        .await?;
    let dir = dir.unwrap_or_else(|| Path::new("artifacts").join(&target.name).join(&label));
    // Every path is checked before the first byte is written.
    for f in &files {
        normalize_path(&f.path).map_err(|e| user_err!("refusing entry {:?}: {e}", f.path))?;
    }
    let mut report = GetReport {
        version: label,
        dir: dir.clone(),
        files: files.len(),
        ..GetReport::default()
    };
    let (blobs, refs): (Vec<ArtifactFile>, Vec<ArtifactFile>) =
        files.into_iter().partition(|f| f.sha256.is_some());
    // Files already in place are left alone; the rest, grouped by content, is fetched once
    // per digest (from the cache or the network) and copied to the other paths with it.
    // One blocking pass sorts the files: already there, or by content into groups that are
    // fetched on their own (large, or in the cache) or wait for a bundle (small, from the
    // server itself). A thread hop per small file would cost more than the file.
    let (there, own, waiting) = {
        let (dir, cache) = (dir.clone(), cache.clone());
        tokio::task::spawn_blocking(move || {
            let mut there = 0;
            let mut groups: BTreeMap<String, Vec<ArtifactFile>> = BTreeMap::new();
            for f in blobs {
                let digest = f.sha256.clone().unwrap_or_default();
                if transfer::same_content_blocking(&dir.join(&f.path), &digest, f.size) {
                    there += 1;
                } else {
                    groups.entry(digest).or_default().push(f);
                }
            }
            let (own, waiting): (Vec<_>, Vec<_>) = groups.into_values().partition(|g| {
                let f = &g[0];
                !transfer::bundleable(f.download_url.as_deref().unwrap_or_default(), f.size)
                    || cache.as_ref().is_some_and(|c| {
                        c.holds_blocking(f.sha256.as_deref().unwrap_or_default(), f.size)
                    })
            });
            (there, own, waiting)
        })
        .await
        .map_err(|e| CliError::unexpected(format!("download task failed: {e}")))?
    };
    report.already_there += there;
    let total = own.iter().chain(&waiting).flatten().map(|f| f.size).sum();
    let pb = bar(printer, total, "downloading");
    let limit = Arc::new(Semaphore::new(PARALLEL));
    let mut tasks = tokio::task::JoinSet::new();
    for group in own {
        let (api, cache, pb, limit, dir) = (
            api.clone(),
            cache.clone(),
            pb.clone(),
            limit.clone(),
            dir.clone(),
        );
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let how = place(&api, &group[0], &dir, cache.as_ref(), &pb).await?;
            fill_siblings(&group, &dir, &pb).await?;
            CliResult::Ok((how, group.len()))
        });
    }
    while let Some(r) = tasks.join_next().await {
        match r.map_err(|e| CliError::unexpected(format!("download task failed: {e}")))?? {
            (Got::Downloaded, n) => report.downloaded += n,
            (Got::Cached, n) => report.from_cache += n,
        }
    }
    let items: Vec<(transfer::BundleItem, Vec<ArtifactFile>)> = waiting
        .into_iter()
        .map(|g| {
            let first = &g[0];
            let item = transfer::BundleItem {
                url: first.download_url.clone().unwrap_or_default(),
                dest: dir.join(&first.path),
                sha256: first.sha256.clone().unwrap_or_default(),
                size: first.size,
            };
            (item, g)
        })
        .collect();
    let mut tasks = tokio::task::JoinSet::new();
    for bundle in transfer::batches(items, |(i, _)| i.size) {
        let (api, cache, pb, limit, dir) = (
            api.clone(),
            cache.clone(),
            pb.clone(),
            limit.clone(),
            dir.clone(),
        );
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let list: Vec<transfer::BundleItem> = bundle.iter().map(|(i, _)| i.clone()).collect();
            transfer::fetch_bundle(&api, &list, &pb).await?;
            if let Some(c) = cache {
                let list: Vec<(String, PathBuf)> = bundle
                    .iter()
                    .map(|(i, _)| (i.sha256.clone(), i.dest.clone()))
                    .collect();
                let _ = tokio::task::spawn_blocking(move || c.insert_all(&list)).await;
            }
            let mut n = 0;
            for (_, group) in &bundle {
                fill_siblings(group, &dir, &pb).await?;
                n += group.len();
            }
            CliResult::Ok(n)
        });
    }
    while let Some(r) = tasks.join_next().await {
        report.downloaded +=
            r.map_err(|e| CliError::unexpected(format!("download task failed: {e}")))??;
    }
    pb.finish_and_clear();
    if let Some(c) = &cache
        && let Some(p) = c.settle().await?
        && p.removed_entries > 0
    {
        printer.debug(format!(
            "removed {} least recently used entries ({}) from the local cache to keep it within its limit",
            p.removed_entries,
            HumanBytes(p.removed_bytes)
        ));
    }
    for f in refs {
        let uri = f.reference.clone().unwrap_or_default();
        if uri.to_ascii_lowercase().starts_with("https://") {
            fetch_reference(api, &f, &dir).await?;
            report.downloaded += 1;
        } else {
            report.references_skipped.push(uri);
        }
    }
    if let Some(run) = run {
        let _: ArtifactVersion = api
            .post(
                &format!("{}/use", spec.version_path()),
                &UseVersionRequest { run },
            )
            .await?;
    }
    Ok(report)
}

/// Copies the first file of a group of equal content to the others.
async fn fill_siblings(
    group: &[ArtifactFile],
    dir: &Path,
    pb: &indicatif::ProgressBar,
) -> CliResult {
    let first = dir.join(&group[0].path);
    for f in &group[1..] {
        let dest = dir.join(&f.path);
        ensure_parent(&dest).await?;
        crate::cache::copy_checked(&first, &dest, None).await?;
        pb.inc(f.size);
    }
    Ok(())
}

/// Puts one file in place from the cache or its own download.
async fn place(
    api: &Api,
    f: &ArtifactFile,
    dir: &Path,
    cache: Option<&Cache>,
    pb: &indicatif::ProgressBar,
) -> CliResult<Got> {
    let digest = f.sha256.as_deref().unwrap_or_default();
    let dest = dir.join(&f.path);
    if let Some(c) = cache
        && c.copy_out(digest, f.size, &dest, pb).await?
    {
        return Ok(Got::Cached);
    }
    let url = f
        .download_url
        .as_deref()
        .ok_or_else(|| CliError::unexpected("the server gave no download URL"))?;
    ensure_parent(&dest).await?;
    let tmp = part_path(&dest);
    let resp = api.get_stream(url).await?;
    let result = save_verified(resp, &tmp, &dest, Some(digest), &f.path, pb).await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    result?;
    if let Some(c) = cache {
        c.insert(digest, &dest).await;
    }
    Ok(Got::Downloaded)
}

/// Downloads an https:// reference (without our credentials), checking a `sha256:` checksum
/// when the entry has one.
async fn fetch_reference(api: &Api, f: &ArtifactFile, dir: &Path) -> CliResult {
    let uri = f.reference.as_deref().unwrap_or_default();
    let dest = dir.join(&f.path);
    ensure_parent(&dest).await?;
    let tmp = part_path(&dest);
    let resp = api.get_stream(uri).await.map_err(|e| {
        user_err!(
            "cannot fetch reference {uri}: {}",
            CliError::from(e).message
        )
    })?;
    let expected = f
        .checksum
        .as_deref()
        .and_then(|c| c.strip_prefix("sha256:"))
        .map(str::to_string);
    let result = save_verified(
        resp,
        &tmp,
        &dest,
        expected.as_deref(),
        uri,
        &indicatif::ProgressBar::hidden(),
    )
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    result
}

async fn cache_command(clear: bool, printer: &Printer) -> CliResult {
    let cache = Cache::require()?;
    let root = cache.root().to_path_buf();
    if clear {
        match tokio::fs::remove_dir_all(&root).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(user_err!("cannot clear {}: {e}", root.display())),
        }
        printer.success(format!("Cleared {}", root.display()));
        return Ok(());
    }
    let (files, bytes) = tokio::task::spawn_blocking(move || du(&root))
        .await
        .map_err(|e| CliError::unexpected(format!("cache scan failed: {e}")))?;
    outln!(
        "{}\n{files} files, {}",
        cache.root().display(),
        HumanBytes(bytes)
    )?;
    Ok(())
}

/// Files and bytes below a directory.
fn du(dir: &Path) -> (u64, u64) {
    let mut total = (0, 0);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return total;
    };
    for e in entries.flatten() {
        match e.file_type() {
            Ok(t) if t.is_dir() => {
                let (f, b) = du(&e.path());
                total.0 += f;
                total.1 += b;
            }
            Ok(t) if t.is_file() => {
                total.0 += 1;
                total.1 += e.metadata().map(|m| m.len()).unwrap_or(0);
            }
            _ => {}
        }
    }
    total
}
