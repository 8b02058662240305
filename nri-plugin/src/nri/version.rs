//! What the runtime can do, from what it announces at Configure.
//!
//! NRI v0.10 (containerd 2.2) added `ValidateContainerAdjustment`: a plugin subscribed to it
//! is called with every container's final adjustment, and its error, rejection or timeout
//! fails the container. A runtime that does not know the event rejects a plugin subscribing
//! to it, so the subscription depends on what the runtime says it is: its NRI version when it
//! sends one (`ConfigureRequest.NRI_version`, NRI v0.12+), else containerd's own version.

use nodeguard_proto::nri::v1alpha1 as nri;

/// A release number, `major.minor.patch`; a pre-release counts as its release.
type Release = (u64, u64, u64);

/// The NRI version that added `ValidateContainerAdjustment`.
const NRI_VALIDATION: Release = (0, 10, 0);
/// The first containerd release with NRI v0.10.
const CONTAINERD_VALIDATION: Release = (2, 2, 0);

/// Reads `v1.2.3`, `1.2.3`, `v2.2.0-rc.1` or `v2.3.4+unknown`; `None` for anything else.
fn release(text: &str) -> Option<Release> {
    let text = text.trim();
    let text = text.strip_prefix('v').unwrap_or(text);
    let core = text.split(['-', '+']).next()?;
    let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
    let major = parts.next()??;
    let minor = parts.next().flatten().unwrap_or(0);
    let patch = parts.next().flatten().unwrap_or(0);
    Some((major, minor, patch))
}

/// Whether the runtime calls `ValidateContainerAdjustment` (and accepts a subscription to it).
pub fn validates(request: &nri::ConfigureRequest) -> bool {
    if let Some(nri) = release(&request.nri_version) {
        return nri >= NRI_VALIDATION;
    }
    request.runtime_name == "containerd"
        && release(&request.runtime_version).is_some_and(|v| v >= CONTAINERD_VALIDATION)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configure(name: &str, version: &str, nri: &str) -> nri::ConfigureRequest {
        nri::ConfigureRequest {
            runtime_name: name.into(),
            runtime_version: version.into(),
            nri_version: nri.into(),
            ..Default::default()
        }
    }

    #[test]
    fn containerd_2_2_and_later_validate() {
        for (version, nri, expected) in [
            ("v1.7.24", "", false),
            ("v2.0.5", "", false),
            ("v2.1.9", "", false),
            ("2.1.4", "", false),
            ("v2.2.0", "", true),
            ("v2.2.0-rc.1", "", true),
            ("v2.2.7", "", true),
            ("v2.3.4", "v0.12.0", true),
            ("v2.4.0-beta.0", "v0.12.1", true),
            ("", "", false),
            ("garbage", "", false),
            // The NRI version, when sent, decides.
            ("v9.9.9", "v0.8.0", false),
        ] {
            assert_eq!(
                validates(&configure("containerd", version, nri)),
                expected,
                "{version} {nri}"
            );
        }
    }

    #[test]
    fn another_runtime_validates_only_when_its_nri_version_says_so() {
        assert!(!validates(&configure("cri-o", "1.34.0", "")));
        assert!(validates(&configure("cri-o", "1.35.0", "v0.11.0")));
    }

    #[test]
    fn release_numbers() {
        assert_eq!(release("v0.12.2"), Some((0, 12, 2)));
        assert_eq!(release("2.3"), Some((2, 3, 0)));
        assert_eq!(release("v2.3.4+unknown"), Some((2, 3, 4)));
        assert_eq!(release(""), None);
        assert_eq!(release("vx"), None);
    }
}
