//! A moto_server (a real S3-protocol server from PyPI's `moto[server]`) for the object-storage
//! tests, shared by the server's API tests and the command-line tests.
//!
//! Found through `WANLLMDB_TEST_MOTO_SERVER` or on `PATH`. Without it the tests that need it
//! say so and pass, unless `WANLLMDB_TEST_REQUIRE_S3` is set (CI sets it, so there they fail).

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running moto_server with one bucket; killed on drop.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The bucket created for the test.
    pub bucket: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn binary() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("WANLLMDB_TEST_MOTO_SERVER").filter(|p| !p.is_empty()) {
        return Some(p.into());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join("moto_server"))
        .find(|p| p.is_file())
}

/// `PUT /bucket` without a signature (moto accepts it); the HTTP status, if any answer came.
fn create_bucket(port: u16, bucket: &str) -> Option<u16> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// Starts moto_server on a free port with `bucket` (3 to 63 characters), or None when it is
/// not installed and not required.
pub fn start(bucket: &str) -> Option<Moto> {
    let Some(bin) = binary() else {
        assert!(
            std::env::var_os("WANLLMDB_TEST_REQUIRE_S3").is_none(),
            "WANLLMDB_TEST_REQUIRE_S3 is set but moto_server was not found \
             (set WANLLMDB_TEST_MOTO_SERVER or put it on PATH)"
        );
        eprintln!(
            "moto_server not found: object-storage tests skipped (pip install 'moto[server]')"
        );
        return None;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(&bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let moto = Moto {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
        bucket: bucket.to_string(),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match create_bucket(port, bucket) {
            Some(200) => return Some(moto),
            Some(code) => panic!("moto_server refused to create bucket {bucket}: HTTP {code}"),
            None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            None => panic!("moto_server did not come up on port {port}"),
        }
    }
}
