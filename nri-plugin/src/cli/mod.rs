//! The commands that do not run as the daemon: they judge files, never a live runtime.

pub mod check;
