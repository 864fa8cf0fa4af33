//! What the end-to-end tests share: a `wanllmdb server` process on a free port, a client of
//! its HTTP API, the command line as a signed-in user, the databases a suite runs on, and
//! moto_server for object storage.

pub mod api;
pub mod database;
pub mod env;
pub mod moto;
pub mod process;
pub mod server;

pub use api::{Api, PASSWORD};
pub use env::{Env, bare, code, stderr, write};
pub use server::Server;

use std::path::{Path, PathBuf};

/// The `wanllmdb` binary cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_wanllmdb");

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}
