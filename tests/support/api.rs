//! Calls to a server's HTTP API as one caller: anonymous, or with a bearer token (an API key
//! or an access token).

use reqwest::blocking::{Client, RequestBuilder};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The password of every account the tests register.
pub const PASSWORD: &str = "Correct-Horse-42";

#[derive(Clone)]
pub struct Api {
    client: Client,
    base: String,
    token: Option<String>,
}

impl Api {
    /// Anonymous calls to the server at `base` (`http://127.0.0.1:PORT`).
    pub fn new(base: &str) -> Api {
        // reqwest is built with TLS but without a crypto provider (the binary brings ring,
        // shared with PostgreSQL's TLS), so install it first.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Api {
            client: Client::new(),
            base: base.to_string(),
            token: None,
        }
    }

    /// The same server, called with `token`.
    pub fn with_token(&self, token: &str) -> Api {
        Api {
            token: Some(token.to_string()),
            ..self.clone()
        }
    }

    /// The same server, called anonymously.
    pub fn anonymous(&self) -> Api {
        Api {
            token: None,
            ..self.clone()
        }
    }

    /// The full URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request to `path`, with the token if there is one; for headers or raw bodies.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let r = self.client.request(method, self.url(path));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// The status and JSON body (null when the body is not JSON) of a call.
    pub fn send(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut r = self.request(method, path);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().unwrap();
        let status = resp.status();
        let text = resp.text().unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(Method::GET, path, None)
    }

    pub fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(Method::POST, path, Some(body))
    }

    /// Registers `name` (email `name@example.com`, password [`PASSWORD`]); the new user.
    pub fn register(&self, name: &str) -> Value {
        let (st, user) = self.anonymous().post(
            "/api/v1/auth/register",
            json!({"username": name, "email": format!("{name}@example.com"), "password": PASSWORD}),
        );
        assert_eq!(st, StatusCode::CREATED, "register {name}: {user}");
        user
    }

    /// Logs in as `name` with `password`: the status and the token pair.
    pub fn login(&self, name: &str, password: &str) -> (StatusCode, Value) {
        self.anonymous().post(
            "/api/v1/auth/login",
            json!({"username": name, "password": password}),
        )
    }

    /// An access token of `name`, who has the password [`PASSWORD`].
    pub fn access_token(&self, name: &str) -> String {
        let (st, pair) = self.login(name, PASSWORD);
        assert_eq!(st, StatusCode::OK, "login {name}: {pair}");
        pair["access_token"].as_str().unwrap().to_string()
    }

    /// A new API key of the caller.
    pub fn new_api_key(&self) -> String {
        let (st, k) = self.post("/api/v1/auth/api-keys", json!({"name": "e2e"}));
        assert_eq!(st, StatusCode::CREATED, "{k}");
        k["key"].as_str().unwrap().to_string()
    }

    /// Registers `name` and returns an API key of that ordinary account.
    pub fn account(&self, name: &str) -> String {
        self.register(name);
        let access = self.access_token(name);
        self.with_token(&access).new_api_key()
    }

    /// Creates the private project `name`, owned by the caller.
    pub fn create_project(&self, name: &str) {
        let (st, b) = self.post("/api/v1/projects", json!({"name": name}));
        assert_eq!(st, StatusCode::CREATED, "project {name}: {b}");
    }
}
