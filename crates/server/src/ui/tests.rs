//! Templates render, and hostile names, tags and config values come out as inert text.

use askama::Template;
use serde_json::json;
use wanllmdb_api_types::runs::Run;

use super::pages::{ChartSettings, RunPage};
use super::{Chrome, ErrorPage, LoginPage};

const XSS: &str = "<script>alert(1)</script>";

pub(super) fn chrome(user: Option<&str>) -> Chrome {
    Chrome {
        assets: "/static/000000000000",
        user: user.map(str::to_string),
        admin: false,
        csrf: "c0ffee".into(),
        crumbs: vec![
            ("Projects".into(), "/projects".into()),
            (XSS.into(), String::new()),
        ],
    }
}

fn hostile_run() -> Run {
    serde_json::from_value(json!({
        "id": "abcd1234", "project": "p", "name": XSS, "state": "running",
        "config": {"lr": 0.1, "note": XSS, "nested": {"\"><img src=x onerror=alert(2)>": 1}},
        "tags": [XSS], "notes": XSS, "group": null, "job_type": null,
        "git": {"commit": XSS}, "host": XSS, "os": null, "program": "python train.py",
        "runtime": {"python": "3.12"}, "exit_code": null, "created_by": "alice",
        "created_at": "2026-01-01T00:00:00Z", "started_at": "2026-01-01T00:00:00Z",
        "finished_at": null, "heartbeat_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z", "stop_requested": false, "summary": {}
    }))
    .unwrap()
}

pub(super) fn assert_inert(html: &str) {
    assert!(!html.contains("<script>alert"), "raw script tag in output");
    assert!(!html.contains("<img src=x"), "raw img tag in output");
    assert!(
        html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "escaped text kept"
    );
    // Our own scripts are external files only: no inline script anywhere.
    for part in html.split("<script").skip(1) {
        let tag = &part[..part.find('>').unwrap()];
        assert!(tag.contains("src="), "inline script: <script{tag}>");
    }
    assert!(
        !html.contains("style=\""),
        "inline styles are refused by the CSP"
    );
}

#[test]
fn run_page_escapes_names_tags_and_config() {
    let run = hostile_run();
    let page = RunPage::for_test(chrome(Some(XSS)), run, vec![XSS.to_string(), "loss".into()]);
    let html = page.render().unwrap();
    assert_inert(&html);
    assert!(
        html.contains("data-key=\"&#60;script&#62;"),
        "chart keys are escaped attributes"
    );
    assert!(html.contains("data-live=\"true\""));
    assert!(
        html.contains("content=\"c0ffee\""),
        "the CSRF token is in the page"
    );
}

#[test]
fn login_and_error_pages_render() {
    let login = LoginPage {
        chrome: chrome(None),
        next: "/runs/abcd1234".into(),
        username: XSS.into(),
        error: Some(XSS.into()),
    };
    let html = login.render().unwrap();
    assert_inert(&html);
    assert!(html.contains("name=\"api_key\"") && html.contains("name=\"password\""));
    assert!(html.contains("name=\"csrf\" value=\"c0ffee\""));
    let err = ErrorPage {
        chrome: chrome(None),
        status: 404,
        title: "Not Found".into(),
        message: format!("run {XSS} not found"),
        login_hint: true,
    };
    let html = err.render().unwrap();
    assert_inert(&html);
    assert!(html.contains("404 Not Found") && html.contains("href=\"/login\""));
}

#[test]
fn chart_settings_come_from_the_url() {
    let s: ChartSettings =
        serde_urlencoded::from_str("smooth=0.6&x=relative&logy=1&keys=b,zz").unwrap();
    let keys: Vec<String> = (0..20)
        .map(|i| format!("k{i:02}"))
        .chain(["b".into()])
        .collect();
    let charted = s.charted(&keys);
    assert_eq!(
        charted.len(),
        13,
        "12 automatic charts and the one asked for"
    );
    assert_eq!(charted.last().unwrap(), "b");
}
