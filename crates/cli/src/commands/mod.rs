//! One module per command group.

pub mod completions;
pub mod server;
