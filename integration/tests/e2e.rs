//! End-to-end tests (see issue: nri-plugin).
