//! `wanllmdb model …`: the model registry: registered models, their versions and stages,
//! four-eyes approvals for Production, aliases, history, and downloading a version's files.

use std::path::PathBuf;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Subcommand, ValueEnum};
use reqwest::StatusCode;
use serde::Serialize;
use serde_json::Value;
use wanllmdb_api_types::registry::{
    ApprovalRequest, CreateModelVersionRequest, ModelEvent, ModelVersion, RegisterModelRequest,
    RegisteredModel, RegistryPolicy, SetModelAliasRequest, Stage, TransitionRequest,
    UpdateModelRequest, is_valid_model_name,
};

use super::artifact::{self, GetReport};
use crate::cache::Cache;
use crate::client::{Api, ApiError, seg};
use crate::commands::JsonFlag;
use crate::commands::cache::CacheArgs;
use crate::config::{GlobalFlags, Settings};
use crate::error::{CliError, CliResult, user_err};
use crate::output::outln;
use crate::output::when;
use crate::output::{Printer, confirm, kv_table, table};

mod refs;
mod tables;

use refs::*;
use tables::*;

/// `wanllmdb model` subcommands.
#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Register a model in the project (model names are unique on the server)
    #[command(after_help = "\
The project's roles govern the model: viewers read, members create versions, move them between
stages and set aliases, admins and owners approve versions for Production and delete.
--require-approval overrides the project's policy (`wanllmdb model policy`) for this model.

Examples:
  wanllmdb model register churn --description \"churn classifier\" --tag tabular
  wanllmdb model register churn-dev --require-approval false")]
    Register {
        /// Model name: 1 to 128 of A-Z a-z 0-9 . _ -
        name: String,
        /// Free text
        #[arg(long)]
        description: Option<String>,
        /// Tag (repeatable)
        #[arg(long = "tag", value_name = "TAG")]
        tags: Vec<String>,
        /// Whether Production needs an approval [default: the project's policy]
        #[arg(long, value_name = "BOOL")]
        require_approval: Option<bool>,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// List registered models: those of the project, or every one you can read with --all
    #[command(alias = "list")]
    Ls {
        /// Only models whose name or description contains this
        #[arg(long)]
        search: Option<String>,
        /// Models of every project you can read, not just the current one
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Show a model and its versions, or one version (NAME@ALIAS, NAME/STAGE, NAME:vN)
    #[command(after_help = "\
With just NAME: the model and a table of its versions (--json: {\"model\", \"versions\"}).
With a reference: that version alone (--json: the version).

Examples:
  wanllmdb model show churn
  wanllmdb model show churn@champion
  wanllmdb model show churn/Production
  wanllmdb model show churn:v3")]
    Show {
        /// NAME, or NAME@ALIAS, NAME/STAGE, NAME:vN, NAME:latest
        reference: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// List a model's versions, newest first
    Versions {
        /// Model name
        name: String,
        /// Only versions in this stage
        #[arg(long, value_parser = stage_parser(), ignore_case = true)]
        stage: Option<Stage>,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Create or delete model versions
    #[command(subcommand)]
    Version(VersionCommand),
    /// Move a version to another stage (Production may need an approval first)
    #[command(after_help = "\
VERSION is v3 or 3, @ALIAS, or a stage name (the newest version in that stage).
When the model needs an approval for Production (see `wanllmdb model show NAME`), a project
admin or owner other than the version's creator approves it first:
  wanllmdb model approve churn v3

Examples:
  wanllmdb model transition churn v3 --to Staging --comment \"passes offline eval\"
  wanllmdb model transition churn v3 --to Production --archive-existing
  wanllmdb model transition churn v1 --to Archived")]
    Transition {
        /// Model name
        name: String,
        /// The version: v3, 3, @ALIAS or a stage name
        #[arg(id = "ver", value_name = "VERSION")]
        version: String,
        /// Stage to move to: Staging, Production, Archived or None
        #[arg(long, value_parser = stage_parser(), ignore_case = true)]
        to: Stage,
        /// Why (kept in the history)
        #[arg(long, short = 'm')]
        comment: Option<String>,
        /// Into Production or Staging: archive the versions already in that stage
        #[arg(long)]
        archive_existing: bool,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Approve a version for Production (project admins and owners), or --revoke the approval
    #[command(after_help = "\
Four eyes: the creator of a version may not approve it unless the project's policy allows
self-approval (`wanllmdb model policy --allow-self-approval true`). After --revoke, the version
needs a new approval before it can be promoted to Production.

Examples:
  wanllmdb model approve churn v3 --comment \"reviewed eval report\"
  wanllmdb model approve churn v3 --revoke --comment \"leak found in features\"")]
    Approve {
        /// Model name
        name: String,
        /// The version: v3, 3, @ALIAS or a stage name
        #[arg(id = "ver", value_name = "VERSION")]
        version: String,
        /// Why (kept in the history)
        #[arg(long, short = 'm')]
        comment: Option<String>,
        /// Withdraw the approval instead
        #[arg(long)]
        revoke: bool,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Point an alias at a version, or remove one with --remove ALIAS
    #[command(after_help = "\
An alias names exactly one version of a model and moves when set again. Use it anywhere a
version is asked for as @ALIAS, and in references as NAME@ALIAS.

Examples:
  wanllmdb model alias churn v3 champion            # moves champion to v3
  wanllmdb model alias churn @champion previous     # previous → where champion points now
  wanllmdb model alias churn --remove champion")]
    Alias {
        /// Model name
        name: String,
        /// The version: v3, 3, @ALIAS or a stage name
        #[arg(id = "ver", value_name = "VERSION", required_unless_present = "remove")]
        version: Option<String>,
        /// The alias: 1 to 64 of A-Z a-z 0-9 . _ -, not a version or a stage name
        #[arg(required_unless_present = "remove")]
        alias: Option<String>,
        /// Remove this alias instead
        #[arg(long, value_name = "ALIAS", conflicts_with_all = ["ver", "alias"])]
        remove: Option<String>,
        /// Why (kept in the history)
        #[arg(long, short = 'm')]
        comment: Option<String>,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Who did what to a model (or to one version), oldest first
    #[command(after_help = "\
Every registration, change, new version, stage transition, approval, revocation, alias move and
deletion is kept with who did it, when, and the comment given.

Examples:
  wanllmdb model history churn
  wanllmdb model history churn v3 --json")]
    History {
        /// Model name
        name: String,
        /// Only this version: v3, 3, @ALIAS or a stage name
        #[arg(id = "ver", value_name = "VERSION")]
        version: Option<String>,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Change a model's description, tags or approval setting
    #[command(after_help = "\
Examples:
  wanllmdb model update churn --description \"churn classifier v2 features\" --tag tabular
  wanllmdb model update churn --require-approval project    # follow the project's policy again")]
    Update {
        /// Model name
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
        /// Whether Production needs an approval for this model
        #[arg(long, value_enum, value_name = "SETTING")]
        require_approval: Option<ApprovalSetting>,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Delete a model with all its versions, aliases and history (project admins)
    #[command(alias = "rm")]
    Delete {
        /// Model name
        name: String,
        /// Do not ask for confirmation
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Show the project's registry policy, or change it (project admins)
    #[command(after_help = "\
The policy applies to every model of the project that has no setting of its own:
  require approval     Production needs an approval by a project admin or owner (default true)
  allow self-approval  the creator of a version may approve it (default false: four eyes)

Examples:
  wanllmdb model policy
  wanllmdb model policy --require-approval true --allow-self-approval false")]
    Policy {
        /// Production needs an approval
        #[arg(long, value_name = "BOOL")]
        require_approval: Option<bool>,
        /// The creator of a version may approve it
        #[arg(long, value_name = "BOOL")]
        allow_self_approval: Option<bool>,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Download a model version's files, checking every digest (as `artifact get` does)
    #[command(after_help = "\
The reference picks the version: NAME@ALIAS, NAME/STAGE (the newest version in Production,
Staging, Archived or None), NAME:vN or NAME:latest. Its artifact version is downloaded: files
already there are left alone, content in the local cache is copied, everything else is fetched
and its SHA-256 checked. Inside `wanllmdb run` (or with --run), the run is recorded as a user of
the artifact version.

Examples:
  wanllmdb model download churn@champion --dir model/
  wanllmdb model download churn/Production            # into ./models/churn/v<N>
  wanllmdb model download churn:v3 --json")]
    Download {
        /// NAME@ALIAS, NAME/STAGE, NAME:vN or NAME:latest
        reference: String,
        /// Directory to write into [default: ./models/NAME/vN]
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Record this run as a user of the files [default: $WANLLMDB_RUN_ID]
        #[arg(long)]
        run: Option<String>,
        #[command(flatten)]
        cache: CacheArgs,
        #[command(flatten)]
        json: JsonFlag,
    },
}

/// `wanllmdb model version` subcommands.
#[derive(Debug, Subcommand)]
pub enum VersionCommand {
    /// Register an artifact version as the next version of a model
    #[command(after_help = "\
--artifact names the files: ART:v3 or ART:ALIAS (ART:latest included) in the model's project,
or PROJECT/ART:VER in another project you can read. Log them first with
`wanllmdb artifact put`. Metric values are read as numbers or booleans when they are ones,
else kept as text. Inside `wanllmdb run`, that run is recorded as the one that trained it.

Examples:
  wanllmdb artifact put model.pt --name churn-model --type model
  wanllmdb model version create churn --artifact churn-model:v1 \\
      --metrics auc=0.91 --metrics f1=0.84 --description \"gbm, 400 trees\"
  wanllmdb model version create churn --artifact shared/churn-model:best --run ab12cd34")]
    Create {
        /// Model name
        name: String,
        /// ART:VER, ART:ALIAS or PROJECT/ART:VER
        #[arg(long, value_name = "ARTIFACT")]
        artifact: String,
        /// The run that trained it [default: $WANLLMDB_RUN_ID inside `wanllmdb run`]
        #[arg(long)]
        run: Option<String>,
        /// Evaluation metric KEY=VALUE (repeatable)
        #[arg(long = "metrics", alias = "metric", value_name = "KEY=VALUE")]
        metrics: Vec<String>,
        /// Free text
        #[arg(long)]
        description: Option<String>,
        /// Tag (repeatable)
        #[arg(long = "tag", value_name = "TAG")]
        tags: Vec<String>,
        /// Move it to this stage at once, under the rules of `model transition` (Production
        /// without a needed approval leaves it in None, with a warning)
        #[arg(long, value_parser = stage_parser(), ignore_case = true)]
        stage: Option<Stage>,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Delete a version (project admins); its artifact version stays
    #[command(alias = "rm")]
    Delete {
        /// Model name
        name: String,
        /// The version: v3, 3, @ALIAS or a stage name
        #[arg(id = "ver", value_name = "VERSION")]
        version: String,
        /// Do not ask for confirmation
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

/// `model update --require-approval`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ApprovalSetting {
    /// Production needs an approval
    #[value(name = "true")]
    Required,
    /// Production needs no approval
    #[value(name = "false")]
    NotRequired,
    /// Follow the project's policy
    Project,
}

fn stage_parser() -> impl TypedValueParser<Value = Stage> {
    PossibleValuesParser::new(["Staging", "Production", "Archived", "None"])
        .try_map(|s| Stage::parse(&s).ok_or_else(|| format!("unknown stage {s:?}")))
}

/// Runs a `model` subcommand.
pub async fn run(cmd: ModelCommand, flags: &GlobalFlags, printer: Printer) -> CliResult {
    let settings = Settings::resolve(flags).await?;
    let api = Api::new(&settings)?;
    match cmd {
        ModelCommand::Register {
            name,
            description,
            tags,
            require_approval,
            json,
        } => {
            let req = RegisterModelRequest {
                name: model_name(&name)?.to_string(),
                project: settings.require_project()?,
                description,
                tags,
                require_approval,
            };
            register(&api, req, printer.with_json(json)).await
        }
        ModelCommand::Ls { search, all, json } => {
            let mut q = Vec::new();
            if let (false, Some(p)) = (all, &settings.project) {
                q.push(("project", p.clone()));
            }
            if let Some(s) = search {
                q.push(("search", s));
            }
            let models: Vec<RegisteredModel> = api.get("/api/v1/models", &q).await?;
            printer
                .with_json(json)
                .data(&models, || models_table(&models))
        }
        ModelCommand::Show { reference, json } => {
            show(&api, &ModelRef::parse(&reference)?, printer.with_json(json)).await
        }
        ModelCommand::Versions { name, stage, json } => {
            let versions = list_versions(&api, model_name(&name)?, stage).await?;
            printer
                .with_json(json)
                .data(&versions, || versions_table(&versions))
        }
        ModelCommand::Version(VersionCommand::Create {
            name,
            artifact,
            run,
            metrics,
            description,
            tags,
            stage,
            json,
        }) => {
            let req = CreateModelVersionRequest {
                artifact: Some(artifact_spec(&artifact)?),
                artifact_version_id: None,
                run: artifact::run_from(run)?,
                stage,
                description,
                metrics: parse_metrics(&metrics)?,
                tags,
            };
            create_version(&api, model_name(&name)?, req, printer.with_json(json)).await
        }
        ModelCommand::Version(VersionCommand::Delete { name, version, yes }) => {
            delete_version(&api, model_name(&name)?, &version, yes, printer).await
        }
        ModelCommand::Transition {
            name,
            version,
            to,
            comment,
            archive_existing,
            json,
        } => {
            let req = TransitionRequest {
                to,
                comment,
                archive_existing,
            };
            transition(
                &api,
                model_name(&name)?,
                &version,
                req,
                printer.with_json(json),
            )
            .await
        }
        ModelCommand::Approve {
            name,
            version,
            comment,
            revoke,
            json,
        } => {
            let req = ApprovalRequest {
                comment,
                approved_by: None,
            };
            let name = model_name(&name)?;
            approve(&api, name, &version, req, revoke, printer.with_json(json)).await
        }
        ModelCommand::Alias {
            name,
            version,
            alias,
            remove,
            comment,
            json,
        } => {
            let name = model_name(&name)?;
            match (remove, version, alias) {
                (Some(alias), _, _) => remove_alias(&api, name, &alias, printer).await,
                (None, Some(version), Some(alias)) => {
                    let p = printer.with_json(json);
                    set_alias(&api, name, &version, &alias, comment, p).await
                }
                _ => Err(user_err!("give VERSION and ALIAS, or --remove ALIAS")
                    .hint(format!("e.g. wanllmdb model alias {name} v3 champion"))),
            }
        }
        ModelCommand::History {
            name,
            version,
            json,
        } => {
            let name = model_name(&name)?;
            history(&api, name, version.as_deref(), printer.with_json(json)).await
        }
        ModelCommand::Update {
            name,
            description,
            tags,
            clear_tags,
            require_approval,
            json,
        } => {
            let req = UpdateModelRequest {
                description,
                tags: if clear_tags {
                    Some(vec![])
                } else {
                    (!tags.is_empty()).then_some(tags)
                },
                require_approval: match require_approval {
                    Some(ApprovalSetting::Required) => Some(true),
                    Some(ApprovalSetting::NotRequired) => Some(false),
                    _ => None,
                },
                follow_project: matches!(require_approval, Some(ApprovalSetting::Project)),
            };
            update(&api, model_name(&name)?, req, printer.with_json(json)).await
        }
        ModelCommand::Delete { name, yes } => {
            delete_model(&api, model_name(&name)?, yes, printer).await
        }
        ModelCommand::Policy {
            require_approval,
            allow_self_approval,
            json,
        } => {
            let project = settings.require_project()?;
            super::valid_project_name(&project)?;
            let change = (require_approval, allow_self_approval);
            policy(&api, &project, change, printer.with_json(json)).await
        }
        ModelCommand::Download {
            reference,
            dir,
            run,
            cache,
            json,
        } => {
            let cache = cache.open()?;
            let fetch = Fetch {
                dir,
                run: artifact::run_from(run)?,
                cache,
            };
            let r = ModelRef::parse(&reference)?;
            download(&api, &r, fetch, printer.with_json(json)).await
        }
    }
}

async fn register(api: &Api, req: RegisterModelRequest, printer: Printer) -> CliResult {
    let project = req.project.clone();
    super::valid_project_name(&project)?;
    let m: RegisteredModel = api.post("/api/v1/models", &req).await.map_err(|e| {
        let missing = e.is_missing_project();
        let err = CliError::from(e);
        if missing {
            err.hint(format!(
                "create the project first: wanllmdb project create {project}"
            ))
        } else {
            err
        }
    })?;
    printer.data(&m, || model_table(&m))?;
    printer.info(format!(
        "add a version with: wanllmdb model version create {} --artifact ART:v1",
        m.name
    ));
    Ok(())
}

async fn list_versions(
    api: &Api,
    model: &str,
    stage: Option<Stage>,
) -> CliResult<Vec<ModelVersion>> {
    let q: Vec<(&str, String)> = stage
        .map(|s| vec![("stage", s.as_str().to_string())])
        .unwrap_or_default();
    Ok(api.get(&model_path(model, "/versions"), &q).await?)
}

async fn show(api: &Api, r: &ModelRef, printer: Printer) -> CliResult {
    if let Some(sel) = &r.selector {
        let v = fetch_version(api, &r.model, sel).await?;
        return printer.data(&v, || version_table(&v));
    }
    let m: RegisteredModel = api.get(&model_path(&r.model, ""), &[]).await?;
    let versions = list_versions(api, &r.model, None).await?;
    let both = serde_json::json!({ "model": m, "versions": versions });
    printer.data(&both, || {
        let mut out = model_table(&m).to_string();
        if !versions.is_empty() {
            out.push_str(&format!("\n\nversions\n{}", versions_table(&versions)));
        }
        out
    })
}

async fn create_version(
    api: &Api,
    model: &str,
    req: CreateModelVersionRequest,
    printer: Printer,
) -> CliResult {
    let v: ModelVersion = api.post(&model_path(model, "/versions"), &req).await?;
    for w in &v.warnings {
        printer.warn(w);
    }
    if printer.json {
        return printer.print_json(&v);
    }
    printer.success(format!(
        "Registered {} {} from {} ({})",
        v.model,
        v.version,
        v.artifact
            .as_deref()
            .or(req.artifact.as_deref())
            .unwrap_or("-"),
        v.stage.as_str()
    ));
    if v.stage == Stage::None {
        printer.info(format!(
            "stage it with: wanllmdb model transition {} {} --to Staging",
            v.model, v.version
        ));
    }
    Ok(())
}

async fn transition(
    api: &Api,
    model: &str,
    version: &str,
    req: TransitionRequest,
    printer: Printer,
) -> CliResult {
    let version = resolve_version(api, model, version).await?;
    let path = model_path(model, &format!("/versions/{}/transition", seg(&version)));
    let v: ModelVersion = api.post(&path, &req).await.map_err(|e| {
        let needs_approval =
            e.status() == Some(StatusCode::CONFLICT) && req.to == Stage::Production;
        let err = CliError::from(e);
        if needs_approval && !err.message.contains("model approve") {
            err.hint(format!(
                "a project admin or owner other than its creator approves it with \
                 `wanllmdb model approve {model} {version}`"
            ))
        } else {
            err
        }
    })?;
    if printer.json {
        return printer.print_json(&v);
    }
    printer.success(format!(
        "{} {} is in {} now",
        v.model,
        v.version,
        v.stage.as_str()
    ));
    if req.archive_existing && matches!(req.to, Stage::Production | Stage::Staging) {
        printer.info(format!(
            "any other version that was in {} is archived now",
            req.to.as_str()
        ));
    }
    Ok(())
}

async fn approve(
    api: &Api,
    model: &str,
    version: &str,
    req: ApprovalRequest,
    revoke: bool,
    printer: Printer,
) -> CliResult {
    let version = resolve_version(api, model, version).await?;
    let action = if revoke {
        "/approval/revoke"
    } else {
        "/approval"
    };
    let path = model_path(model, &format!("/versions/{}{action}", seg(&version)));
    let v: ModelVersion = api
        .post(&path, &req)
        .await
        .map_err(|e| refused_approval(e, revoke))?;
    if printer.json {
        return printer.print_json(&v);
    }
    if revoke {
        printer.success(format!(
            "Revoked the approval of {} {} (stage: {})",
            v.model,
            v.version,
            v.stage.as_str()
        ));
    } else {
        printer.success(format!(
            "{} {} approved for Production by {}",
            v.model,
            v.version,
            v.approved_by.as_deref().unwrap_or("you")
        ));
        printer.info(format!(
            "promote it with: wanllmdb model transition {} {} --to Production",
            v.model, v.version
        ));
    }
    Ok(())
}

/// A refused approval, with the rule that refused it as the next step.
fn refused_approval(e: ApiError, revoke: bool) -> CliError {
    let refused = matches!(
        e.status(),
        Some(StatusCode::FORBIDDEN | StatusCode::CONFLICT)
    );
    let err = CliError::from(e);
    if refused && !revoke {
        err.hint("approvals take a project admin or owner other than the version's creator (unless `wanllmdb model policy --allow-self-approval true`)")
    } else {
        err
    }
}

async fn set_alias(
    api: &Api,
    model: &str,
    version: &str,
    alias: &str,
    comment: Option<String>,
    printer: Printer,
) -> CliResult {
    let version = resolve_version(api, model, version).await?;
    let path = model_path(model, &format!("/aliases/{}", seg(alias)));
    let v: ModelVersion = api
        .put(&path, &SetModelAliasRequest { version, comment })
        .await?;
    if printer.json {
        return printer.print_json(&v);
    }
    printer.success(format!("{}@{alias} → {}", v.model, v.version));
    Ok(())
}

async fn remove_alias(api: &Api, model: &str, alias: &str, printer: Printer) -> CliResult {
    let alias = alias.strip_prefix('@').unwrap_or(alias);
    api.delete(&model_path(model, &format!("/aliases/{}", seg(alias))))
        .await?;
    printer.success(format!("Removed alias {alias} from {model}"));
    Ok(())
}

async fn history(api: &Api, model: &str, version: Option<&str>, printer: Printer) -> CliResult {
    let mut q = Vec::new();
    if let Some(v) = version {
        q.push(("version", resolve_version(api, model, v).await?));
    }
    let events: Vec<ModelEvent> = api.get(&model_path(model, "/history"), &q).await?;
    printer.data(&events, || {
        let mut t = table(&["WHEN", "WHO", "ACTION", "VERSION", "CHANGE", "COMMENT"]);
        for e in &events {
            let change = match (&e.from, &e.to) {
                (Some(f), Some(t)) => format!("{f} → {t}"),
                (None, Some(t)) => t.clone(),
                (Some(f), None) => format!("{f} →"),
                (None, None) => String::new(),
            };
            t.add_row(vec![
                e.at.clone(),
                e.user.clone().unwrap_or_else(|| "-".into()),
                e.action.clone(),
                e.version.clone().unwrap_or_default(),
                change,
                e.comment.clone().unwrap_or_default(),
            ]);
        }
        t
    })
}

async fn update(api: &Api, model: &str, req: UpdateModelRequest, printer: Printer) -> CliResult {
    if req.description.is_none()
        && req.tags.is_none()
        && req.require_approval.is_none()
        && !req.follow_project
    {
        return Err(user_err!("nothing to change")
            .hint("give --description, --tag, --clear-tags or --require-approval"));
    }
    let m: RegisteredModel = api.patch(&model_path(model, ""), &req).await?;
    if printer.json {
        return printer.print_json(&m);
    }
    printer.success(format!(
        "Updated {} (Production approval: {})",
        m.name,
        approval_cell(&m)
    ));
    Ok(())
}

async fn delete_model(api: &Api, model: &str, yes: bool, printer: Printer) -> CliResult {
    let m: RegisteredModel = api.get(&model_path(model, ""), &[]).await?;
    let question = format!(
        "Delete model {} with its {} version(s), aliases and history?",
        m.name, m.version_count
    );
    if !yes && !confirm(&question)? {
        return Err(user_err!("nothing deleted").hint("pass --yes to delete without asking"));
    }
    api.delete(&model_path(model, "")).await?;
    printer.success(format!(
        "Deleted model {} ({} versions; their artifacts stay)",
        m.name, m.version_count
    ));
    Ok(())
}

async fn delete_version(
    api: &Api,
    model: &str,
    version: &str,
    yes: bool,
    printer: Printer,
) -> CliResult {
    let version = resolve_version(api, model, version).await?;
    if !yes && !confirm(&format!("Delete {model} {version}?"))? {
        return Err(user_err!("nothing deleted").hint("pass --yes to delete without asking"));
    }
    api.delete(&model_path(model, &format!("/versions/{}", seg(&version))))
        .await?;
    printer.success(format!(
        "Deleted {model} {version} (its artifact version stays)"
    ));
    Ok(())
}

async fn policy(
    api: &Api,
    project: &str,
    change: (Option<bool>, Option<bool>),
    printer: Printer,
) -> CliResult {
    let path = format!("/api/v1/projects/{}/registry-policy", seg(project));
    let mut p: RegistryPolicy = api.get(&path, &[]).await?;
    if let (None, None) = change {
        return printer.data(&p, || policy_table(project, &p));
    }
    p.require_approval = change.0.unwrap_or(p.require_approval);
    p.allow_self_approval = change.1.unwrap_or(p.allow_self_approval);
    let p: RegistryPolicy = api.put(&path, &p).await?;
    if printer.json {
        return printer.print_json(&p);
    }
    printer.success(format!("Updated the registry policy of {project}"));
    outln!("{}", policy_table(project, &p))?;
    Ok(())
}

/// Where `model download` writes, and how.
struct Fetch {
    dir: Option<PathBuf>,
    run: Option<wanllmdb_api_types::RunId>,
    cache: Option<Cache>,
}

/// What `model download` did.
#[derive(Debug, Serialize)]
struct DownloadReport {
    version: ModelVersion,
    download: GetReport,
}

async fn download(api: &Api, r: &ModelRef, fetch: Fetch, printer: Printer) -> CliResult {
    let Some(sel) = &r.selector else {
        return Err(user_err!("which version of {}?", r.model).hint(format!(
            "write {0}@ALIAS, {0}/Production or {0}:v3",
            r.model
        )));
    };
    let v = fetch_version(api, &r.model, sel).await?;
    let Some(art) = v.artifact.clone() else {
        return Err(user_err!(
            "the artifact version of {} {} was deleted: there are no files to download",
            v.model,
            v.version
        ));
    };
    let dir = fetch
        .dir
        .unwrap_or_else(|| PathBuf::from("models").join(&v.model).join(&v.version));
    let report = artifact::download(api, &art, dir, fetch.run, fetch.cache, &printer).await?;
    let skipped = report.references_skipped.clone();
    let out = DownloadReport {
        version: v,
        download: report,
    };
    if printer.json {
        printer.print_json(&out)?;
    } else {
        let d = &out.download;
        printer.success(format!(
            "{} {} ({art}): {} files in {} ({} downloaded, {} from the local cache, {} already there)",
            out.version.model,
            out.version.version,
            d.files,
            d.dir.display(),
            d.downloaded,
            d.from_cache,
            d.already_there
        ));
    }
    if !skipped.is_empty() {
        printer.warn(format!(
            "{} reference(s) to cloud storage were not downloaded (fetch them with your storage tools): {}",
            skipped.len(),
            skipped.join(", ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_definitions_are_consistent() {
        use clap::CommandFactory;
        crate::Cli::command().debug_assert();
    }

    fn r(s: &str) -> ModelRef {
        ModelRef::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn references_pick_a_version() {
        assert_eq!(r("churn").selector, None);
        assert_eq!(
            r("churn@champion").selector,
            Some(Selector::Alias("champion".into()))
        );
        assert_eq!(
            r("churn/production").selector,
            Some(Selector::Stage(Stage::Production))
        );
        assert_eq!(r("churn:3").selector, Some(Selector::Version("v3".into())));
        assert_eq!(r("churn.v2:V12").model, "churn.v2");
        assert_eq!(
            r("churn.v2:V12").selector,
            Some(Selector::Version("v12".into()))
        );
        assert_eq!(r("churn:latest").selector, Some(Selector::Latest));
        for bad in [
            "churn/prod",
            "churn:champion",
            "churn@",
            "churn:",
            "bad name@x",
            "churn:v0",
        ] {
            assert!(ModelRef::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn version_arguments() {
        assert_eq!(
            Selector::parse("7").unwrap(),
            Selector::Version("v7".into())
        );
        assert_eq!(Selector::parse("@best").unwrap().segment(), "@best");
        assert_eq!(Selector::parse("staging").unwrap().segment(), "Staging");
        let e = Selector::parse("best").unwrap_err();
        assert!(e.hint.unwrap().contains("@best"));
        assert_eq!(version_label("v+3"), None);
        assert_eq!(version_label("-3"), None);
    }

    #[test]
    fn metrics_keep_numbers_and_booleans() {
        let m = parse_metrics(&[
            "auc=0.91".into(),
            "trees=400".into(),
            "calibrated=true".into(),
            "note=gbm, tuned".into(),
            "list=[1]".into(),
            "eq=a=b".into(),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            m,
            serde_json::json!({"auc": 0.91, "trees": 400, "calibrated": true,
                "note": "gbm, tuned", "list": "[1]", "eq": "a=b"})
        );
        assert!(parse_metrics(&["auc".into()]).is_err());
        assert!(parse_metrics(&["=1".into()]).is_err());
        assert_eq!(parse_metrics(&[]).unwrap(), None);
    }

    #[test]
    fn artifact_specs_need_a_version() {
        assert!(artifact_spec("ds:v1").is_ok());
        assert!(artifact_spec("other/ds:best").is_ok());
        assert!(artifact_spec("ds").is_err());
        assert!(artifact_spec("ds:").is_err());
        assert!(artifact_spec("bad project/ds:v1").is_err());
    }
}
