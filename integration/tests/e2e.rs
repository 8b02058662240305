//! End-to-end tests: nodeguard and the harness against a real containerd with NRI.
//!
//! One test binary (modules below). Tests need root and a testbed prepared by
//! `scripts/testbed/setup.sh`; without it they fail and say so.

mod daemonset;
mod enforcement;
mod gatekeeper;
mod harness;
mod images;
mod operations;
mod outside;
mod smoke;
