//! The model registry end to end: artifacts registered as model versions, stages, four-eyes
//! approvals by a second account, aliases, downloads by reference and the history of it all,
//! through the real `wanllmdb` binary.

use std::process::Output;

use serde_json::{Value, json};

use crate::support::{Env, code, stderr};

impl Env {
    /// `wanllmdb ARGS --project reg` as the user with `key`.
    fn as_user(&self, key: &str, args: &[&str]) -> Output {
        let mut c = self.wl(args);
        c.args(["--project", "reg"]).env("WANLLMDB_API_KEY", key);
        c.output().unwrap()
    }

    /// `wanllmdb ARGS --project reg --json` as the admin, which must succeed.
    fn reg_json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["--project", "reg", "--json"]);
        self.json(&all)
    }

    /// `wanllmdb ARGS --project reg` as the admin, which must fail with exit code 1.
    fn refused(&self, args: &[&str]) -> String {
        let out = self.as_user(&self.key, args);
        assert_eq!(code(&out), 1, "{args:?}: {}", stderr(&out));
        stderr(&out)
    }
}

fn actions(history: &Value) -> Vec<(String, String)> {
    history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_string(),
                e["version"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn models_are_versioned_staged_approved_by_a_second_admin_and_downloaded() {
    // A server where anyone may register an account.
    let env = Env::with_server_args(&["--allow-registration", "true"]);
    let w = env.work();
    env.ok(&["project", "create", "reg"]);
    let reviewer = env.server.api().account("reviewer");
    let (st, b) = env.api().post(
        "/api/v1/projects/reg/members",
        json!({"username": "reviewer", "role": "admin"}),
    );
    assert!(st == 200 || st == 201, "{st} {b}");

    // Two artifact versions to register; the second is reached through an alias.
    std::fs::create_dir_all(w.join("model")).unwrap();
    let weights: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 253) as u8).collect();
    std::fs::write(w.join("model/weights.bin"), &weights).unwrap();
    std::fs::write(w.join("model/config.json"), "{\"trees\": 400}").unwrap();
    let put = |extra: &[&str]| {
        let mut args = vec!["artifact", "put", "model", "--name", "churn-model"];
        args.extend(extra);
        env.reg_json(&args)
    };
    assert_eq!(put(&["--type", "model"])["version"]["version"], "v1");
    std::fs::write(w.join("model/config.json"), "{\"trees\": 800}").unwrap();
    assert_eq!(put(&["--alias", "candidate"])["version"]["version"], "v2");

    let m = env.reg_json(&[
        "model",
        "register",
        "churn",
        "--description",
        "churn classifier",
        "--tag",
        "tabular",
    ]);
    assert_eq!(m["project"], "reg");
    assert_eq!(m["approval_required"], true, "{m}");
    let v1 = env.reg_json(&[
        "model",
        "version",
        "create",
        "churn",
        "--artifact",
        "churn-model:v1",
        "--metrics",
        "auc=0.91",
        "--metrics",
        "calibrated=true",
        "--metrics",
        "note=baseline gbm",
    ]);
    assert_eq!(v1["version"], "v1");
    assert_eq!(v1["stage"], "None");
    assert_eq!(v1["artifact"], "reg/churn-model:v1");
    assert_eq!(
        v1["metrics"],
        json!({"auc": 0.91, "calibrated": true, "note": "baseline gbm"})
    );
    let v2 = env.reg_json(&[
        "model",
        "version",
        "create",
        "churn",
        "--artifact",
        "churn-model:candidate",
    ]);
    assert_eq!(v2["version"], "v2");
    assert_eq!(v2["artifact"], "reg/churn-model:v2");

    let staged = env.reg_json(&["model", "transition", "churn", "v1", "--to", "staging"]);
    assert_eq!(staged["stage"], "Staging");

    // Production needs an approval; the refusal says who can give one.
    let err = env.refused(&["model", "transition", "churn", "v1", "--to", "Production"]);
    assert!(err.contains("approv"), "{err}");
    assert!(err.contains("reviewer"), "{err}");
    assert!(err.contains("wanllmdb model approve churn v1"), "{err}");
    // Four eyes: the creator, an owner of the project, may not approve their own version.
    let err = env.refused(&["model", "approve", "churn", "v1"]);
    assert!(err.contains("allow-self-approval"), "{err}");
    let out = env.as_user(
        &reviewer,
        &[
            "model",
            "approve",
            "churn",
            "@Staging",
            "--comment",
            "eval report reviewed",
            "--json",
        ],
    );
    // `@Staging` is an alias that does not exist: a clear failure, nothing approved.
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let out = env.as_user(
        &reviewer,
        &[
            "model",
            "approve",
            "churn",
            "Staging",
            "--comment",
            "eval report reviewed",
            "--json",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let approved: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(approved["version"], "v1");
    assert_eq!(approved["approved_by"], "reviewer");
    let prod = env.reg_json(&[
        "model",
        "transition",
        "churn",
        "v1",
        "--to",
        "Production",
        "--comment",
        "ship it",
    ]);
    assert_eq!(prod["stage"], "Production");

    let shown = env.reg_json(&["model", "show", "churn"]);
    assert_eq!(shown["model"]["production"], json!(["v1"]), "{shown}");
    assert_eq!(shown["model"]["version_count"], 2);
    assert_eq!(shown["model"]["latest_version"], "v2");
    let versions: Vec<(&str, &str)> = shown["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["version"].as_str().unwrap(), v["stage"].as_str().unwrap()))
        .collect();
    assert_eq!(versions, [("v2", "None"), ("v1", "Production")]);
    let table = env.ok(&["model", "show", "churn", "--project", "reg"]);
    assert!(table.contains("required (project policy)"), "{table}");
    assert!(table.contains("reviewer"), "{table}");
    let listed = env.reg_json(&["model", "ls", "--search", "churn"]);
    assert_eq!(listed[0]["name"], "churn", "{listed}");
    let in_prod = env.reg_json(&["model", "versions", "churn", "--stage", "Production"]);
    assert_eq!(in_prod.as_array().unwrap().len(), 1);
    assert_eq!(in_prod[0]["version"], "v1");

    // An alias, and a download by it that round-trips the bytes.
    env.ok(&[
        "model",
        "alias",
        "churn",
        "v1",
        "champion",
        "--project",
        "reg",
    ]);
    assert_eq!(
        env.reg_json(&["model", "show", "churn@champion"])["version"],
        "v1"
    );
    assert_eq!(
        env.reg_json(&["model", "show", "churn/production"])["version"],
        "v1"
    );
    let got = env.reg_json(&["model", "download", "churn@champion", "--dir", "out"]);
    assert_eq!(got["version"]["version"], "v1");
    assert_eq!(got["download"]["files"], 2, "{got}");
    assert_eq!(std::fs::read(w.join("out/weights.bin")).unwrap(), weights);
    assert_eq!(
        std::fs::read_to_string(w.join("out/config.json")).unwrap(),
        "{\"trees\": 400}"
    );
    // The same files again by another reference: nothing to fetch.
    let again = env.reg_json(&["model", "download", "churn:v1", "--dir", "out"]);
    assert_eq!(again["download"]["already_there"], 2, "{again}");
    let err = env.refused(&["model", "download", "churn"]);
    assert!(err.contains("churn@ALIAS"), "{err}");

    // A revoked approval blocks the promotion it allowed.
    env.reg_json(&["model", "transition", "churn", "v2", "--to", "Staging"]);
    let out = env.as_user(&reviewer, &["model", "approve", "churn", "v2"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = env.as_user(
        &reviewer,
        &[
            "model",
            "approve",
            "churn",
            "v2",
            "--revoke",
            "--comment",
            "feature leak",
            "--json",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let revoked: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(revoked["approved_by"], Value::Null, "{revoked}");
    let err = env.refused(&["model", "transition", "churn", "v2", "--to", "Production"]);
    assert!(err.contains("approv"), "{err}");
    let still = env.reg_json(&["model", "show", "churn/Production"]);
    assert_eq!(still["version"], "v1");

    // Every action, in order, with who did it.
    let history = env.reg_json(&["model", "history", "churn"]);
    let want: Vec<(String, String)> = [
        ("registered", ""),
        ("version_created", "v1"),
        ("version_created", "v2"),
        ("transition", "v1"),
        ("approved", "v1"),
        ("transition", "v1"),
        ("alias_set", "v1"),
        ("transition", "v2"),
        ("approved", "v2"),
        ("approval_revoked", "v2"),
    ]
    .iter()
    .map(|(a, v)| (a.to_string(), v.to_string()))
    .collect();
    assert_eq!(actions(&history), want, "{history}");
    let ev = &history.as_array().unwrap()[4];
    assert_eq!(ev["user"], "reviewer");
    assert_eq!(ev["comment"], "eval report reviewed");
    let ev = &history.as_array().unwrap()[5];
    assert_eq!(
        (ev["from"].clone(), ev["to"].clone()),
        ("Staging".into(), "Production".into())
    );
    assert_eq!(ev["user"], "admin");
    let only_v2 = env.reg_json(&["model", "history", "churn", "v2"]);
    assert_eq!(only_v2.as_array().unwrap().len(), 4, "{only_v2}");
    let text = env.ok(&["model", "history", "churn", "--project", "reg"]);
    assert!(
        text.contains("approval_revoked") && text.contains("feature leak"),
        "{text}"
    );

    // Policy: admins may allow self-approval, after which the creator can approve.
    let p = env.reg_json(&["model", "policy"]);
    assert_eq!(
        p,
        json!({"require_approval": true, "allow_self_approval": false})
    );
    let p = env.reg_json(&["model", "policy", "--allow-self-approval", "true"]);
    assert_eq!(p["allow_self_approval"], true);
    let mine = env.reg_json(&["model", "approve", "churn", "v2"]);
    assert_eq!(mine["approved_by"], "admin");

    // Deleting: a version, then the model; the artifact stays.
    env.ok(&["model", "version", "delete", "churn", "v2", "--yes"]);
    assert_eq!(
        env.reg_json(&["model", "show", "churn"])["model"]["version_count"],
        1
    );
    env.ok(&["model", "delete", "churn", "--yes"]);
    assert_eq!(env.reg_json(&["model", "ls"]), json!([]));
    assert_eq!(
        env.reg_json(&["artifact", "versions", "churn-model"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
}
