//! `wanllmdb project …`: projects and their members.

use clap::{Args, Subcommand, ValueEnum};
use wanllmdb_api_types::projects::{
    AddMemberRequest, CreateProjectRequest, Member, Project, Role, UpdateMemberRequest, Visibility,
};

use crate::client::{Api, seg};
use crate::commands::JsonFlag;
use crate::config::{GlobalFlags, Settings};
use crate::error::{CliResult, user_err};
use crate::output::when;
use crate::output::{Printer, confirm, kv_table, table};

/// `wanllmdb project` subcommands.
#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Create a project
    Create {
        /// Project name (1–128 of A-Z a-z 0-9 . _ -)
        name: String,
        /// What the project is about
        #[arg(long)]
        description: Option<String>,
        /// Who can see it
        #[arg(long, value_enum, default_value_t = VisibilityArg::Private)]
        visibility: VisibilityArg,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// List the projects you can see
    #[command(alias = "ls")]
    List {
        /// Only names containing this text
        #[arg(long)]
        search: Option<String>,
        /// At most this many
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Show a project and its statistics
    Show {
        /// Project name [default: the current project]
        name: Option<String>,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Delete a project and all its runs
    Delete {
        /// Project name
        name: String,
        /// Do not ask for confirmation
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// List, add and remove members, or change their role
    #[command(subcommand)]
    Members(MembersCommand),
}

/// `wanllmdb project members` subcommands.
#[derive(Debug, Subcommand)]
pub enum MembersCommand {
    /// List members and their roles
    #[command(alias = "ls")]
    List(MemberProject),
    /// Add a user with a role
    Add {
        /// User name
        user: String,
        /// Role to give
        #[arg(long, value_enum, default_value_t = RoleArg::Member)]
        role: RoleArg,
        #[command(flatten)]
        project: MemberProject,
    },
    /// Remove a user
    Remove {
        /// User name
        user: String,
        #[command(flatten)]
        project: MemberProject,
    },
    /// Change a user's role
    Role {
        /// User name
        user: String,
        /// New role
        #[arg(value_enum)]
        role: RoleArg,
        #[command(flatten)]
        project: MemberProject,
    },
}

/// The project whose members are meant, and output format.
#[derive(Debug, Args)]
pub struct MemberProject {
    #[command(flatten)]
    pub json: JsonFlag,
}

/// Visibility as typed on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum VisibilityArg {
    /// Anyone with an account can read it
    Public,
    /// Only members can see it
    Private,
}

/// Role as typed on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    /// Everything, including other owners
    Owner,
    /// Manage members and settings
    Admin,
    /// Create and change runs
    Member,
    /// Read only
    Viewer,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Owner => Role::Owner,
            RoleArg::Admin => Role::Admin,
            RoleArg::Member => Role::Member,
            RoleArg::Viewer => Role::Viewer,
        }
    }
}

/// Runs a `project` subcommand.
pub async fn run(cmd: ProjectCommand, flags: &GlobalFlags, printer: Printer) -> CliResult {
    let settings = Settings::resolve(flags).await?;
    let api = Api::new(&settings)?;
    match cmd {
        ProjectCommand::Create {
            name,
            description,
            visibility,
            json,
        } => {
            let req = CreateProjectRequest {
                name: super::valid_project_name(&name)?,
                description,
                visibility: Some(match visibility {
                    VisibilityArg::Public => Visibility::Public,
                    VisibilityArg::Private => Visibility::Private,
                }),
            };
            let p: Project = api.post("/api/v1/projects", &req).await?;
            if json.json {
                printer.print_json(&p)
            } else {
                printer.success(format!("Created project {}", p.name));
                Ok(())
            }
        }
        ProjectCommand::List {
            search,
            limit,
            json,
        } => {
            let items = list_projects(&api, search, limit).await?;
            printer.with_json(json).data(&items, || {
                let mut t = table(&[
                    "NAME",
                    "VISIBILITY",
                    "ROLE",
                    "RUNS",
                    "RUNNING",
                    "OWNER",
                    "DESCRIPTION",
                ]);
                for p in &items {
                    t.add_row(vec![
                        p.name.to_string(),
                        p.visibility.as_str().to_string(),
                        p.role
                            .map(|r| r.as_str().to_string())
                            .unwrap_or_else(|| "-".into()),
                        p.stats.run_count.to_string(),
                        p.stats.running_count.to_string(),
                        p.owner.clone(),
                        p.description.clone(),
                    ]);
                }
                t
            })
        }
        ProjectCommand::Show { name, json } => {
            let name = match name {
                Some(n) => super::valid_project_name(&n)?,
                None => settings.require_project()?,
            };
            let p: Project = api
                .get(&format!("/api/v1/projects/{}", seg(&name)), &[])
                .await?;
            printer.with_json(json).data(&p, || {
                kv_table(&[
                    ("name", p.name.to_string()),
                    ("description", p.description.clone()),
                    ("visibility", p.visibility.as_str().to_string()),
                    ("owner", p.owner.clone()),
                    (
                        "your role",
                        p.role
                            .map(|r| r.as_str().to_string())
                            .unwrap_or_else(|| "-".into()),
                    ),
                    ("runs", p.stats.run_count.to_string()),
                    ("running", p.stats.running_count.to_string()),
                    ("last activity", when(&p.stats.last_activity_at)),
                    ("created", when(&p.created_at)),
                ])
            })
        }
        ProjectCommand::Delete { name, yes } => {
            if !yes && !confirm(&format!("Delete project {name} and all its runs?"))? {
                return Err(user_err!("not deleted"));
            }
            api.delete(&format!("/api/v1/projects/{}", seg(&name)))
                .await?;
            printer.success(format!("Deleted project {name}"));
            Ok(())
        }
        ProjectCommand::Members(m) => members(m, &settings, &api, printer).await,
    }
}

async fn list_projects(api: &Api, search: Option<String>, limit: usize) -> CliResult<Vec<Project>> {
    let q: Vec<(&str, String)> = search.map(|s| ("q", s)).into_iter().collect();
    Ok(api.get_all("/api/v1/projects", &q, limit).await?)
}

async fn members(
    cmd: MembersCommand,
    settings: &Settings,
    api: &Api,
    printer: Printer,
) -> CliResult {
    let project = settings.require_project()?;
    let base = format!("/api/v1/projects/{}/members", seg(&project));
    let (json, changed) = match cmd {
        MembersCommand::List(p) => (p.json, None),
        MembersCommand::Add {
            user,
            role,
            project: p,
        } => {
            let _: Member = api
                .post(
                    &base,
                    &AddMemberRequest {
                        username: user.clone(),
                        role: role.into(),
                    },
                )
                .await?;
            (p.json, Some(format!("Added {user} to {project}")))
        }
        MembersCommand::Remove { user, project: p } => {
            api.delete(&format!("{base}/{}", seg(&user))).await?;
            (p.json, Some(format!("Removed {user} from {project}")))
        }
        MembersCommand::Role {
            user,
            role,
            project: p,
        } => {
            let _: Member = api
                .patch(
                    &format!("{base}/{}", seg(&user)),
                    &UpdateMemberRequest { role: role.into() },
                )
                .await?;
            (
                p.json,
                Some(format!(
                    "{user} is now {} of {project}",
                    Role::from(role).as_str()
                )),
            )
        }
    };
    if let Some(msg) = changed {
        printer.success(msg);
    }
    let list: Vec<Member> = api.get(&base, &[]).await?;
    printer.with_json(json).data(&list, || {
        let mut t = table(&["USER", "ROLE", "ADDED"]);
        for m in &list {
            t.add_row(vec![
                m.username.clone(),
                m.role.as_str().to_string(),
                m.added_at.clone(),
            ]);
        }
        t
    })
}
