//! A mistake in a policy source, with its place, and every mistake of a load.

use std::fmt;

use crate::yaml::Location;

/// One mistake in a policy source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// The file (or other source) name.
    pub source_name: String,
    /// Where the mistake is.
    pub location: Location,
    /// The field path (`spec.rules.images.allowed[1]`), empty for the whole document.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.source_name, self.location)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Something a load accepted but the node will not enforce (a Gatekeeper kind nodeguard does
/// not implement, a parameter that needs the API server), with its place. Same shape as an
/// error; `policy validate --strict` makes notes errors.
pub type PolicyNote = PolicyError;

/// Every mistake found while loading policies (never empty).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyErrors(pub Vec<PolicyError>);

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(f, "{n} error{} in policy", if n == 1 { "" } else { "s" })?;
        for e in &self.0 {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}
