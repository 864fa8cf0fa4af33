//! `wanllmdb import` and `wanllmdb export`: history from and to other trackers.

pub mod events;
pub mod mlflow;
pub mod tensorboard;

use clap::Subcommand;

/// `wanllmdb import …`.
#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// TensorBoard event files: each directory of them a run, each scalar tag a metric
    Tensorboard(tensorboard::TensorboardArgs),
    /// A running MLflow server: experiments, runs, metrics, artifacts, registered models
    Mlflow(mlflow::MlflowArgs),
}

/// `wanllmdb export …`.
#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// To an MLflow server: a project's runs, metrics, files and registered models
    Mlflow(mlflow::ExportMlflowArgs),
}
