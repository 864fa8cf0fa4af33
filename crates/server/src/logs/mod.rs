//! (in progress)
pub mod routes;
