//! Real processes. The daemon side launches shims, watches them exit, and signals them; the shim
//! side ([`shim`]) runs inside each job's own supervisor process.

pub mod files;
pub mod launch;
pub mod probes;
pub mod procfs;
pub mod shim;
