//! Declarative projects: `bgrun.toml`, its diagnostics, and the jobs it describes.

pub mod config_env;
pub mod diag;
pub mod export;
pub mod file;
pub mod import;
pub mod load;

pub const FILE_NAME: &str = "bgrun.toml";
