//! The tables `wanllmdb model` prints for people (`--json` prints the API's objects).

use super::*;

pub(super) fn approval_cell(m: &RegisteredModel) -> String {
    let what = if m.approval_required {
        "required"
    } else {
        "not required"
    };
    let why = if m.require_approval.is_some() {
        "set on the model"
    } else {
        "project policy"
    };
    format!("{what} ({why})")
}

pub(super) fn or_dash(s: &str) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s.to_string()
    }
}

pub(super) fn list_cell(items: &[String]) -> String {
    or_dash(&items.join(", "))
}

pub(super) fn metrics_cell(m: &Value) -> String {
    let Some(map) = m.as_object() else {
        return String::new();
    };
    map.iter()
        .map(|(k, v)| match v {
            Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub(super) fn model_table(m: &RegisteredModel) -> comfy_table::Table {
    kv_table(&[
        ("model", m.name.clone()),
        ("project", m.project.to_string()),
        ("description", or_dash(&m.description)),
        ("tags", list_cell(&m.tags)),
        ("production approval", approval_cell(m)),
        ("versions", m.version_count.to_string()),
        (
            "latest",
            m.latest_version.clone().unwrap_or_else(|| "-".into()),
        ),
        ("in production", list_cell(&m.production)),
        (
            "created",
            format!(
                "{} by {}",
                when(&m.created_at),
                m.created_by.as_deref().unwrap_or("-")
            ),
        ),
        ("updated", when(&m.updated_at)),
    ])
}

pub(super) fn models_table(models: &[RegisteredModel]) -> comfy_table::Table {
    let mut t = table(&[
        "NAME",
        "PROJECT",
        "VERSIONS",
        "LATEST",
        "PRODUCTION",
        "APPROVAL",
        "UPDATED",
        "DESCRIPTION",
    ]);
    for m in models {
        t.add_row(vec![
            m.name.clone(),
            m.project.to_string(),
            m.version_count.to_string(),
            m.latest_version.clone().unwrap_or_default(),
            m.production.join(","),
            if m.approval_required { "required" } else { "-" }.to_string(),
            when(&m.updated_at),
            m.description.clone(),
        ]);
    }
    t
}

pub(super) fn version_table(v: &ModelVersion) -> comfy_table::Table {
    let approved = match (&v.approved_by, &v.approved_at) {
        (Some(by), Some(at)) => format!("by {by} at {at}"),
        (Some(by), None) => format!("by {by}"),
        _ => "-".into(),
    };
    kv_table(&[
        ("model", v.model.clone()),
        ("version", v.version.clone()),
        ("stage", v.stage.as_str().to_string()),
        ("aliases", list_cell(&v.aliases)),
        (
            "artifact",
            v.artifact.clone().unwrap_or_else(|| "(deleted)".into()),
        ),
        (
            "run",
            v.run
                .as_ref()
                .map_or_else(|| "-".into(), wanllmdb_api_types::RunId::to_string),
        ),
        ("metrics", or_dash(&metrics_cell(&v.metrics))),
        ("tags", list_cell(&v.tags)),
        ("description", or_dash(&v.description)),
        ("approved", approved),
        (
            "created",
            format!(
                "{} by {}",
                when(&v.created_at),
                v.created_by.as_deref().unwrap_or("-")
            ),
        ),
    ])
}

pub(super) fn versions_table(versions: &[ModelVersion]) -> comfy_table::Table {
    let mut t = table(&[
        "VERSION",
        "STAGE",
        "ALIASES",
        "ARTIFACT",
        "METRICS",
        "APPROVED BY",
        "CREATED",
        "BY",
    ]);
    for v in versions {
        t.add_row(vec![
            v.version.clone(),
            v.stage.as_str().to_string(),
            v.aliases.join(","),
            v.artifact.clone().unwrap_or_else(|| "(deleted)".into()),
            metrics_cell(&v.metrics),
            v.approved_by.clone().unwrap_or_default(),
            when(&v.created_at),
            v.created_by.clone().unwrap_or_default(),
        ]);
    }
    t
}

pub(super) fn policy_table(project: &str, p: &RegistryPolicy) -> comfy_table::Table {
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    kv_table(&[
        ("project", project.to_string()),
        ("require approval", yes_no(p.require_approval).to_string()),
        (
            "allow self-approval",
            format!(
                "{}{}",
                yes_no(p.allow_self_approval),
                if p.allow_self_approval {
                    ""
                } else {
                    " (four eyes)"
                }
            ),
        ),
    ])
}
