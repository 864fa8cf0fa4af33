//! End-to-end tests: the real `wanllmdb` binary, as a server and as the command line, against
//! real servers it starts in temporary directories. One test binary for all of them (linking
//! is slow); `support` is what they share.

mod support;

mod admin_users;
mod audit;
mod auth_passwd;
mod backup;
mod cache;
mod cli;
mod hardening;
mod registry;
mod replicas;
mod rough_edges;
mod sdk_side;
mod server;
mod status;
mod sweeps;
